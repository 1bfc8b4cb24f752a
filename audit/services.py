"""Writing to the audit log (the only write the log allows), and its one exception: retention."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Count
from django.db.models.signals import post_save, pre_save
from django.http import HttpRequest
from django.utils import timezone

from .models import EXPIRING_ACTIONS, AuditEvent

# rows a retention purge deletes (or clears) per transaction
PURGE_BATCH = 10_000


def _actor_fields(actor: object | None) -> tuple[int | None, str]:
    if actor is None:
        return None, "system"
    if not getattr(actor, "is_authenticated", False):   # AnonymousUser: someone not logged in
        return None, "anonymous"
    return actor.pk, actor.get_username()


def audit_record(*, actor: object | None, action: str, summary: str,
                 obj: models.Model | None = None, object_type: str = "", object_id: object = "") -> AuditEvent:
    """Append one event. ``obj`` (a model instance) or ``object_type``/``object_id`` name the
    object; ``actor`` is a user, ``None`` for the system (commands, background jobs) or an
    ``AnonymousUser`` for someone not logged in (a failed login).
    ``summary`` must not contain biometric data or names."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id if object_id != "" else obj.pk
    actor_id, actor_name = _actor_fields(actor)
    return AuditEvent.objects.create(actor_id=actor_id, actor=actor_name, action=action,
                                     object_type=object_type, object_id=str(object_id if object_id is not None else ""),
                                     summary=summary[:300])


def audit_records(*, actor: object | None, action: str, object_type: str,
                  rows: Iterable[tuple[object, str]]) -> None:
    """Append one event per ``(object_id, summary)`` of ``rows``, each as :func:`audit_record`
    writes it, in one insert: a bulk change of 1,700 people wrote a row at a time."""
    actor_id, actor_name = _actor_fields(actor)
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor_id=actor_id, actor=actor_name, action=action, object_type=object_type,
                    object_id=str(object_id), summary=summary[:300]) for object_id, summary in rows],
        batch_size=1000)


def audit_list_export(request: HttpRequest, *, object_type: str, what: str, rows: int,
                      filters: Iterable[str] = (), form: str = "CSV") -> AuditEvent | None:
    """Record one download of a list of people's data (a check-in or audit CSV): who (the staff
    user, or an API token's service account), which list (``what``, the ``filters`` as words) and
    how many rows, counted when it began. Call it once the request is accepted and just before the
    streamed answer is returned: one record per download, never per row, and none for a download
    refused before it (a 400, 403 or 406 never gets here). A HEAD request gets the download's
    headers only (servers send no body for it): nothing is recorded, ``None``.

    ``filters`` and ``what`` name people by id only ("person #12", which a subject-access export
    finds), never by name or staff id; a free-text search is said to be there, not what it was.
    ``request`` is Django's or DRF's (its ``user`` is then the API token's service account).
    ``form``: what the list was handed out as ("CSV"; "JSON" for a page of the API's list)."""
    if request.method == "HEAD":
        return None
    described = "; ".join(filters) or "no filters"
    return audit_record(actor=request.user, action=AuditEvent.Action.LIST_EXPORT, object_type=object_type,
                        summary=f"downloaded {what} as {form}, {rows} row{'' if rows == 1 else 's'}: {described}")


def user_roles(user: models.Model) -> dict:
    """What a user may do, as the audit log records it (staff, superuser, active, groups, permissions)."""
    return {"staff": user.is_staff, "superuser": user.is_superuser, "active": user.is_active,
            "groups": sorted(user.groups.values_list("name", flat=True)) if user.pk else [],
            "permissions": sorted(user.user_permissions.values_list("codename", flat=True)) if user.pk else []}


def roles_diff(before: dict, after: dict) -> str:
    """``"staff: False -> True; ..."`` for the roles that differ."""
    return "; ".join(f"{k}: {before.get(k)} -> {after[k]}" for k in after if before.get(k) != after[k])


@contextmanager
def audit_user_saves(*, command: str, change: str, actor: object | None = None) -> Iterator[None]:
    """Audit the users that a management command creates or saves while the block runs (the
    admin's pages audit their own): a creation with the roles it grants, or ``change`` (say
    ``"set the password"``) for an existing user, with a role change of its own when the save
    changed their roles. The actor is ``actor`` (the command's ``--actor``), else the system;
    never the password."""
    saved: dict[int, tuple[models.Model, bool]] = {}
    roles_before: dict[int, dict] = {}

    def before(sender, instance, **kwargs) -> None:
        if instance.pk is not None and instance.pk not in roles_before:
            stored = sender._default_manager.filter(pk=instance.pk).first()
            roles_before[instance.pk] = user_roles(stored) if stored is not None else {}

    def remember(sender, instance, created: bool, **kwargs) -> None:
        first = saved.get(instance.pk)
        saved[instance.pk] = (instance, created or bool(first and first[1]))

    users = get_user_model()
    uid = f"audit_user_saves:{id(saved)}"
    pre_save.connect(before, sender=users, weak=False, dispatch_uid=uid)
    post_save.connect(remember, sender=users, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        pre_save.disconnect(sender=users, dispatch_uid=uid)
        post_save.disconnect(sender=users, dispatch_uid=uid)
        for pk, (user, created) in saved.items():
            if created:
                audit_record(actor=actor, action=AuditEvent.Action.CREATE, obj=user,
                             summary=f"created user #{pk} with manage.py {command}")
            else:
                audit_record(actor=actor, action=AuditEvent.Action.UPDATE, obj=user,
                             summary=f"{change} of user #{pk} with manage.py {command}")
            roles = roles_diff({} if created else roles_before.get(pk, {}), user_roles(user))
            if roles:
                audit_record(actor=actor, action=AuditEvent.Action.ROLE_CHANGE, obj=user, summary=roles)


def audit_decisions_purge(*, older_than_days: int, now: datetime | None = None,
                          dry_run: bool = False) -> dict[str, int]:
    """Delete the recognition decisions and staff logins (:data:`audit.models.EXPIRING_ACTIONS`) recorded more than
    ``older_than_days`` days before ``now``; returns the number per action (deleted by this call, not
    by a purge running beside it; or that would be with ``dry_run``). ``0`` keeps them forever (nothing is deleted).

    The one deliberate exception to the append-only log (retention; docs/security.md): it bypasses
    :class:`audit.models.AuditEventQuerySet`'s refusal, and only for decision and login rows. When it deletes
    anything it appends a ``purge`` record, once its batches (:data:`PURGE_BATCH`) are done, that says how many rows of
    each action went and the cut-off; never which ones. Administrative records are never deleted.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 (keep forever) or more")
    if older_than_days == 0:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    expired = AuditEvent.objects.filter(action__in=EXPIRING_ACTIONS, at__lt=cutoff)
    counts = dict(expired.order_by().values("action").annotate(n=Count("id")).values_list("action", "n"))
    if dry_run or not sum(counts.values()):
        return counts
    # in batches, each its own short transaction: a backlog (the first purge, a shortened period)
    # deleted in one statement held SQLite's write lock for seconds (1.3 million rows: 12 s), and
    # kiosks' check-ins waiting on it failed "database is locked"
    # A batch's rows are locked as they are read, and a purge running at the same time (beat and
    # cron, a retry) skips them for others: each deletes its own rows and counts exactly those. Both
    # counted every expired row before, and the log said twice as many had gone. (SQLite takes no
    # row locks; its purges do not overlap: IMMEDIATE transactions take turns.)
    deleted, gone, known = 0, Counter(), True
    while True:
        with transaction.atomic():
            batch = list(expired.order_by("id").select_for_update(skip_locked=True)
                         .values_list("id", "action")[:PURGE_BATCH])
            # deliberately models.QuerySet.delete: AuditEventQuerySet.delete refuses every other caller
            n = models.QuerySet.delete(AuditEvent.objects.filter(pk__in=[pk for pk, _ in batch]))[0] if batch else 0
        deleted += n
        if n == len(batch):
            gone.update(action for _, action in batch)
        else:   # not expected under the locks: the total stands, the breakdown is not known
            known = False
        if len(batch) < PURGE_BATCH:
            break
    if not deleted:
        return {}
    breakdown = (", ".join(f"{action} {gone[action]}" for action in sorted(gone)) if known
                 else "breakdown unknown (rows were deleted by something else at the same time)")
    audit_record(actor=None, action=AuditEvent.Action.PURGE, object_type="audit.auditevent",
                 summary=f"retention: deleted {deleted} decision and login records older than {older_than_days} days "
                         f"(before {cutoff.astimezone(UTC):%Y-%m-%d %H:%M} UTC): {breakdown}")
    return dict(gone) if known else {"unknown": deleted}
