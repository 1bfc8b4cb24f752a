"""``--actor USERNAME`` of the commands that make changes a person decides (``import_people``,
``rebuild_index``, ``reapply_erasures``, ``export_audit``, ``create_kiosk``, ``changepassword``,
``createsuperuser``):
whom their audit records name instead of "system".

It attributes, it does not authenticate: anyone who can run ``manage.py`` can name anyone. So that
the log never names someone for what they could not have done, the user must be an active staff
user allowed to make the command's changes in the admin; otherwise the command stops before it
changes anything. The housekeeping commands (``purge_expired``, ``demo``) keep "system": what they
do follows from the settings, or is made-up data, not someone's decision."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

SUPERUSER = "superuser status"   # in ``permissions``: what only a superuser may do (no permission says it)


def add_actor_argument(parser: CommandParser, changes: str) -> None:
    """The ``--actor USERNAME`` option; ``changes`` as its help names them ("the import's changes")."""
    parser.add_argument("--actor", metavar="USERNAME",
                        help=f"the staff user the audit log names for {changes} (default: system)")


def _holders(missing: list[str]) -> str:
    """Who has every one of the ``missing`` permissions, as the refusal says it: the groups that hold
    them all ("the Enrollers group has them"), else superusers. ``import_people --include-erased`` said
    the Enrollers group had the lifting of an erasure, a superuser's (an operator-commands review)."""
    from django.contrib.auth.models import Group

    them = "them" if len(missing) > 1 else "it"
    if SUPERUSER in missing:
        return f"superusers have {them}"
    groups = Group.objects.all()
    for perm in missing:
        app, codename = perm.split(".", 1)
        groups = groups.filter(permissions__content_type__app_label=app, permissions__codename=codename)
    names = sorted(groups.distinct().values_list("name", flat=True))
    if not names:
        return f"superusers have {them}"
    return f"the {' and '.join(names)} group{'s have' if len(names) > 1 else ' has'} {them}"


def command_actor(username: str | None, permissions: Iterable[str], *, changes: str,
                  holders: str | None = None) -> object | None:
    """The user ``--actor`` names (``None``, the system, when ``username`` is ``None``): an active
    staff user holding each of ``permissions`` (``"app.codename"``, or :data:`SUPERUSER`). Raises
    ``CommandError`` naming what is missing otherwise; ``changes`` and ``holders`` say, in that
    message, what the command does ("the import's changes") and who has them (by default the groups
    holding every missing one, else superusers: :func:`_holders`)."""
    if username is None:
        return None
    users = get_user_model()
    user = users._default_manager.filter(**{users.USERNAME_FIELD: users.normalize_username(username)}).first()
    if user is None or not user.is_active or not user.is_staff:
        raise CommandError(f"--actor {username!r} is not an active staff user (a username, as the admin's "
                           "Users list shows it)")
    missing = [perm for perm in dict.fromkeys(permissions)
               if not (user.is_superuser if perm == SUPERUSER else user.has_perm(perm))]
    if missing:
        raise CommandError(f"--actor {username!r} may not make {changes}: the user lacks "
                           f"{', '.join(missing)} ({holders or _holders(missing)})")
    return user
