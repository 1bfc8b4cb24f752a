"""Revocations applied again after a restored backup undid them (``manage.py reapply_erasures``, which
applies the erasures again too; docs/deployment.md, *Backup and restore*).

A restore brings back every row as it was at the backup: a kiosk device, an API token, a staff
account or a right revoked since works again. The audit log's CSV export, taken before the restore,
says what was taken away since. Each object's latest revocation in it is applied again unless the
restored log holds it (a record of the object's revocation from its time on that the export holds
too: the backup was taken after it; or one naming it: an earlier run applied it), through the
services that revoke it in the first place (the audit record notes "again after a restore (first
revoked <time> by <actor>)"); the other revocations the restored log lacks are written back, as
erasures are, so that the log still says who took which access away, when. Only what was taken away
is applied: what was granted since the backup is lost with it, and stays lost.

What counts as a revocation (:data:`KINDS`), all of it access: a kiosk's device revoked, its unused
pairing link voided, the kiosk deactivated or deleted, or another device paired in its place (a
device paired before could check people in again); an API token revoked; a photo removed (a wrong
person's face, or one kept from a check-in past its retention, would be matched again); a check-in
deleted (someone else recognised: a wrong attendance record, and its snapshot of that face); a person
deactivated (the kiosks and the API's identify, which an access-control gateway may act on, would
know them again); a staff account deleted, deactivated or
given fewer rights (staff, superuser, groups, permissions); a group given fewer permissions or
deleted; a password changed or disabled since the backup (the restore brings back the one it replaced,
which may be the reason for the change: its new hash is not in the log, so password login is disabled
again, until ``manage.py changepassword`` sets one).

Staff sessions are not in the log: a session ended since the backup (a logout, above all) is a row of
the restored ``django_session`` again, and its cookie logs in again. :func:`restored_sessions_end`
ends every session the restored database holds (the restore runs with the web processes stopped, so
each of them is the backup's): everyone logs in again.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.db import models, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from api.models import ApiToken
from api.services import api_token_revoke
from enrollment.models import FacePhoto, Person
from enrollment.services import person_deactivate, person_gallery_adaptation_stop, photo_remove
from enrollment.services.photos import ADAPTATION_RESUMED, ADAPTATION_STOPPED, ADAPTATION_STOPPED_BY_REMOVAL
from recognition.models import CheckIn, Kiosk
from recognition.services import checkin_delete, kiosk_delete, kiosk_unpair, kiosk_update

from .management.actor import SUPERUSER
from .models import AuditEvent
from .services import audit_record, roles_diff, user_roles

Action = AuditEvent.Action


@dataclass(frozen=True, order=True)
class Record:
    """One row of the audit log's CSV export, about an object with a numeric id."""

    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: int
    summary: str

    def again(self) -> str:
        """How a revocation applied or recorded again names this one (:func:`_on_record` finds it)."""
        return f"again after a restore (first revoked {self.at.isoformat()} by {self.actor or 'system'})"


class Revoked(models.TextChoices):
    """What :func:`revocation_reapply` found (and did) for one object's revocations."""

    REVOKED = "revoked", "revoked again"
    ALREADY = "already", "already revoked"
    REUSED = "reused", "left alone: the id now names one created after the revocation"


# ---------------------------------------------------------------------------------------------
# What each kind of revocation takes away, applied again to the restored row: True when something
# was (or, ``dry_run``, would be) taken away, the service writing its audit record ending with
# ``note``. ``record``: the object's latest revocation; ``history``: every record of the object in
# the export, oldest first; ``actor``: whom the records name (``None``: the system).

Revoke = Callable[[int, Record, list[Record], str, bool, object | None], bool]


def _noted(summary: str, note: str) -> str:
    """``summary; note``, cut to the log's 300 characters at the summary's end (the note is what
    finds the record again)."""
    return f"{summary[:300 - len(note) - 2]}; {note}"


def _reactivated_since(record: Record, history: list[Record]) -> bool:
    """Whether the export says the object was activated again after ``record`` (the services write
    an update record ending "; reactivated")."""
    return any(h.at > record.at and h.action == Action.UPDATE and h.summary.endswith("; reactivated") for h in history)


def _kiosk_revoke(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                  actor: object | None) -> bool:
    """A device paired, or a pairing link issued, before the revocation is void again (a device
    paired since is another one); a kiosk deactivated (and not activated again since) is deactivated
    again, a deleted one deleted."""
    kiosk = Kiosk.objects.filter(pk=pk).first()
    if kiosk is None:
        return False
    if record.action == Action.DELETE:
        if not dry_run:
            kiosk_delete(kiosk=kiosk, actor=actor, note=note)
        return True
    if record.summary.startswith("deactivated kiosk") and kiosk.active and not _reactivated_since(record, history):
        if not dry_run:
            kiosk_update(kiosk=kiosk, actor=actor, active=False, note=note)   # which unpairs it too
        return True
    ttl = timedelta(seconds=settings.MASKNET_KIOSK_PAIRING_TTL_S)   # a link's expiry less the TTL: when it was issued
    device = bool(kiosk.token_hash) and (kiosk.paired_at is None or kiosk.paired_at <= record.at)
    link = (bool(kiosk.pairing_hash) and kiosk.pairing_expires_at is not None
            and kiosk.pairing_expires_at - ttl <= record.at)
    if not (device or link):
        return False
    if not dry_run:
        kiosk_unpair(kiosk=kiosk, actor=actor, note=note)
    return True


# when the export says gallery adaptation was resumed for each person (by id): set by
# revocation_records for the revocations applied after it, whose photo removals read it (a
# removal's own records are the photo's, a resume is the person's)
_RESUMED: ContextVar[dict[int, list[datetime]] | None] = ContextVar("masknet_adaptation_resumed", default=None)


def _person_named(record: Record) -> int | None:
    """The person's id a record's summary names as ``… of person #12`` (a photo's or a check-in's
    record), else ``None``."""
    found = re.search(r" of person #(\d+)", record.summary)
    return int(found.group(1)) if found else None


def _photo_remove(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                  actor: object | None) -> bool:
    """A photo removed since the backup (a wrong person's face, one its person asked to have
    removed, one kept from a check-in past its retention) is removed again, with its file and its
    templates; the rebuild this queues takes it out of the index. Adaptation is stopped again where
    the removal stopped it, unless an administrator resumed it for the person after the removal
    (the export's records of the person: :data:`_RESUMED`)."""
    photo = FacePhoto.objects.filter(pk=pk).first()
    # gallery adaptation stopped again only where the first removal stopped it (an administrator's;
    # the retention purge's does not, and applied again it turned adaptation off for good), and not
    # resumed since (a restore re-stopped what the administrator had turned back on: a review)
    person_id = _person_named(record)
    stopped = ADAPTATION_STOPPED_BY_REMOVAL in record.summary and not any(
        at > record.at for at in (_RESUMED.get() or {}).get(person_id, ()))
    if photo is None:
        # the face kept after the backup, so not restored: the stop its removal made is still undone
        # (the restore turned adaptation back on), and the person's next check-in kept a face again
        person = person_id if stopped else None
        found = person and Person.objects.filter(pk=person, gallery_adaptation=True,
                                                 created_at__lte=record.at).first()
        if not found:
            return False
        if not dry_run:
            person_gallery_adaptation_stop(person=found, actor=actor, note=note)
        return True
    if not dry_run:
        photo_remove(photo=photo, actor=actor, note=note, stop_adaptation=stopped)
    return True


def _adaptation_stop(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                     actor: object | None) -> bool:
    """Gallery adaptation stopped for a person since the backup (the people list's action) is stopped
    again: the restore turned it back on, and their next confident check-in kept a face again. Not
    when an administrator resumed it after the stop (a resume itself is never applied again: one
    since the backup of a stop before it is lost, and adaptation stays off until resumed again)."""
    person = Person.objects.filter(pk=pk, gallery_adaptation=True).first()
    if person is None or any(h.at > record.at and h.summary.startswith(ADAPTATION_RESUMED) for h in history):
        return False
    if not dry_run:
        person_gallery_adaptation_stop(person=person, actor=actor, note=note)
    return True


def _checkin_delete(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                    actor: object | None) -> bool:
    """A check-in deleted since the backup (a correction: someone else recognised, with that face's
    snapshot) is deleted again: the one of the record's person, recorded for a time before the record
    (an id the restore handed out again names another)."""
    person = _person_named(record)
    checkin = CheckIn.objects.filter(pk=pk, at__lte=record.at).first()
    if checkin is None or person is None or checkin.person_id != person:
        return False
    if not dry_run:
        checkin_delete(checkin=checkin, actor=actor, note=note)
    return True


def _token_revoke(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                  actor: object | None) -> bool:
    token = ApiToken.objects.filter(pk=pk, revoked_at__isnull=True).first()
    if token is None:
        return False
    if not dry_run:
        api_token_revoke(token=token, actor=actor, note=note)
    return True


def _person_deactivate(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                       actor: object | None) -> bool:
    person = Person.objects.filter(pk=pk, active=True).first()
    if person is None or _reactivated_since(record, history):
        return False
    if not dry_run:
        person_deactivate(person=person, actor=actor, note=note, at=record.at)   # when they were first
    return True


_FLAGS = {"staff": "is_staff", "superuser": "is_superuser", "active": "is_active"}
_FLAG = re.compile(r"(?:^|; )(staff|superuser|active): (?:True|False|None) -> (True|False)")
_LIST = re.compile(r"(?:^|; )(groups|permissions): (\[[^\]]*\]) -> (\[[^\]]*\])")


def _lists_changed(summary: str) -> list[tuple[str, set[str], set[str]]]:
    """``(name, before, after)`` of the groups and permissions a user's role-change record gives; a
    list cut short by the summary's length limit (or a name with a bracket) is left out: unknown."""
    changed = []
    for name, before, after in _LIST.findall(summary):
        try:
            values = ast.literal_eval(before), ast.literal_eval(after)
        except (ValueError, SyntaxError):
            continue
        if all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in values):
            changed.append((name, set(values[0]), set(values[1])))
    return changed


def _user_reduced(record: Record) -> bool:
    """Whether a user's role-change record (:func:`audit.services.roles_diff`'s text, ``"staff: True ->
    False; groups: ['a', 'b'] -> ['a']"``) took a right away."""
    return (any(after == "False" for _, after in _FLAG.findall(record.summary))
            or any(before - after for _, before, after in _lists_changed(record.summary)))


def _user_revoke(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                 actor: object | None) -> bool:
    """A deleted account is deleted again (deactivated, if rows refer to it now). Otherwise each
    role the export's role-change records leave off (the latest record naming it) and the restored
    account has is taken away; what they grant is not given."""
    user = User.objects.filter(pk=pk).first()
    if user is None:
        return False
    if record.action == Action.DELETE:
        if not dry_run:
            _user_delete(user, note, actor)
        return True
    flags: dict[str, bool] = {}
    lists: dict[str, set[str]] = {}
    for h in history:
        if h.action == Action.ROLE_CHANGE:
            flags.update((name, after == "True") for name, after in _FLAG.findall(h.summary))
            lists.update((name, after) for name, _, after in _lists_changed(h.summary))
    before = user_roles(user)
    off = [name for name, on in flags.items() if not on and before[name]]
    groups = set(before["groups"]) - lists.get("groups", set(before["groups"]))
    permissions = set(before["permissions"]) - lists.get("permissions", set(before["permissions"]))
    if not (off or groups or permissions):
        return False
    if not dry_run:
        for name in off:
            setattr(user, _FLAGS[name], False)
        user.save(update_fields=[_FLAGS[name] for name in off])
        user.groups.remove(*Group.objects.filter(name__in=groups))
        user.user_permissions.remove(*user.user_permissions.filter(codename__in=permissions))
        audit_record(actor=actor, action=Action.ROLE_CHANGE, obj=user,
                     summary=_noted(roles_diff(before, user_roles(user)), note))
    return True


def _user_delete(user: User, note: str, actor: object | None) -> None:
    pk = user.pk
    try:
        with transaction.atomic():
            user.delete()
            audit_record(actor=actor, action=Action.DELETE, object_type="auth.user", object_id=pk,
                         summary=f"deleted user #{pk}; {note}")
    except ProtectedError:   # rows the admin's deletion did not meet refer to it now: it cannot log in, at least
        before = user_roles(user)
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action=Action.ROLE_CHANGE, obj=user,
                     summary=_noted(f"{roles_diff(before, user_roles(user))} (not deleted: rows refer to the account)",
                                    note))


def _group_reduced(record: Record) -> bool:
    return record.summary.startswith("deleted group") or "; removed " in record.summary


def _group_revoke(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                  actor: object | None) -> bool:
    """A deleted group is deleted again; otherwise the permissions the export's records removed
    last (not added back since) are removed."""
    group = Group.objects.filter(pk=pk).first()
    if group is None:
        return False
    if record.summary.startswith("deleted group"):
        if not dry_run:
            group.delete()
            audit_record(actor=actor, action=Action.ROLE_CHANGE, object_type="auth.group", object_id=pk,
                         summary=f"deleted group #{pk}; {note}")
        return True
    kept: dict[str, bool] = {}   # codename: whether the latest record naming it added it
    for h in history:
        for part in h.summary.split("; ") if h.action == Action.ROLE_CHANGE else ():
            verb, _, names = part.partition(" ")
            if verb in ("added", "removed"):
                kept.update((name, verb == "added") for name in names.split(", "))
    removed = sorted(set(group.permissions.filter(codename__in=[c for c, on in kept.items() if not on])
                         .values_list("codename", flat=True)))
    if not removed:
        return False
    if not dry_run:
        group.permissions.remove(*group.permissions.filter(codename__in=removed))
        audit_record(actor=actor, action=Action.ROLE_CHANGE, obj=group,
                     summary=_noted(f"changed group #{pk}; removed {', '.join(removed)}", note))
    return True


PASSWORD_NOUN = "password of user"   # the kind whose revocation leaves a user without a password
PASSWORD_CHANGES = ("set the password of user #", "changed their own password (user #",
                    "disabled password login for user #")


def _password_changed(record: Record) -> bool:
    return record.summary.startswith(PASSWORD_CHANGES)


def _password_disable(pk: int, record: Record, history: list[Record], note: str, dry_run: bool,
                      actor: object | None) -> bool:
    """The restored password is the one the change replaced: password login is disabled (sessions
    that the old password opened end with it) until ``manage.py changepassword`` sets a new one."""
    user = User.objects.filter(pk=pk).first()
    if user is None or not user.has_usable_password():
        return False
    if not dry_run:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        audit_record(actor=actor, action=Action.UPDATE, obj=user,
                     summary=f"disabled password login for user #{pk} (the password changed since the backup); {note}")
    return True


def _created(model: type[models.Model], field: str) -> Callable[[int], datetime | None]:
    return lambda pk: model.objects.filter(pk=pk).values_list(field, flat=True).first()


@dataclass(frozen=True)
class Kind:
    """One kind of revocation: the export's records of it (``object_type``, ``actions``, and
    ``matches``), what applying it again does (``revoke``), and when the restored object of an id
    was created (``created``; ``None``: unknown, or no such object)."""

    noun: str
    object_type: str
    actions: tuple[str, ...]
    revoke: Revoke
    created: Callable[[int], datetime | None]
    matches: Callable[[Record], bool] = lambda record: True
    mentions: str = ""   # the restored log's records of this kind contain this (a user's updates: not all passwords)
    permissions: tuple[str, ...] = ()   # what the admin asks of whoever takes this away (``--actor``'s user)

    def of(self, record: Record) -> bool:
        return record.object_type == self.object_type and record.action in self.actions and self.matches(record)


KINDS: tuple[Kind, ...] = (
    # (unpairing and unticking "active" need pair_kiosk in the admin, besides changing or deleting it)
    # a device paired since the backup replaced the one paired before, which the restore brings back
    Kind("kiosk", "recognition.kiosk", (Action.DEACTIVATE, Action.DELETE, Action.UPDATE), _kiosk_revoke,
         _created(Kiosk, "created_at"),
         lambda record: record.action != Action.UPDATE or record.summary.startswith("paired a device with kiosk"),
         permissions=("recognition.change_kiosk", "recognition.delete_kiosk", "recognition.pair_kiosk")),
    Kind("API token", "api.apitoken", (Action.DEACTIVATE,), _token_revoke, _created(ApiToken, "created_at"),
         permissions=(SUPERUSER,)),   # the tokens' admin is for superusers alone
    Kind("person", "enrollment.person", (Action.DEACTIVATE,), _person_deactivate, _created(Person, "created_at"),
         permissions=("enrollment.change_person",)),
    Kind("photo", "enrollment.facephoto", (Action.PHOTO_REMOVE,), _photo_remove, _created(FacePhoto, "created_at"),
         permissions=("enrollment.delete_facephoto",)),
    Kind("gallery adaptation", "enrollment.person", (Action.UPDATE,), _adaptation_stop, _created(Person, "created_at"),
         lambda record: record.summary.startswith(ADAPTATION_STOPPED), permissions=("enrollment.change_person",)),
    Kind("check-in", "recognition.checkin", (Action.DELETE,), _checkin_delete, lambda pk: None,
         permissions=("recognition.delete_checkin",)),
    # groups before users: a group deleted again is gone from its members' roles
    Kind("group", "auth.group", (Action.ROLE_CHANGE,), _group_revoke, lambda pk: None, _group_reduced,
         permissions=("auth.change_group", "auth.delete_group")),
    Kind("user", "auth.user", (Action.DELETE, Action.ROLE_CHANGE), _user_revoke, _created(User, "date_joined"),
         lambda record: record.action == Action.DELETE or _user_reduced(record),
         permissions=("auth.change_user", "auth.delete_user")),
    Kind(PASSWORD_NOUN, "auth.user", (Action.UPDATE,), _password_disable, _created(User, "date_joined"),
         _password_changed, mentions="password", permissions=("auth.change_user",)),
)


def revocation_reapply(*, kind: Kind, object_id: int, records: list[Record], history: list[Record],
                       dry_run: bool = False, actor: object | None = None) -> Revoked:
    """Apply again the latest of ``records`` (the export's revocations of one object of ``kind``, any
    order) unless the restored log holds it; write back the others it lacks (``history``: every
    record of the object in the export, oldest first). An object of the id created after the latest
    revocation is another one, the id handed out again (a sequence the restore set back): left alone,
    nothing written. ``dry_run``: nothing is written; the answer says what would be done. ``actor``:
    whom the audit records name (``None``: the system)."""
    records = sorted(set(records))
    latest, last = records[-1], len(records) - 1
    created = kind.created(object_id)
    if created is not None and created > latest.at:
        return Revoked.REUSED
    with transaction.atomic():
        # read before anything is written: what is written below is from now, after every revocation
        missing = [i for i in range(len(records)) if not _on_record(kind, object_id, records, i, history[-1].at)]
        if dry_run:
            return Revoked.REVOKED if last in missing and kind.revoke(object_id, latest, history, "", True, actor) \
                else Revoked.ALREADY
        done = last in missing and kind.revoke(object_id, latest, history, latest.again(), False, actor)
        for i in missing:
            if i != last or not done:
                audit_record(actor=actor, action=records[i].action, object_type=kind.object_type, object_id=object_id,
                             summary=f"recorded {records[i].again()}, nothing left to take away: "
                                     f"{records[i].summary}")
    return Revoked.REVOKED if done else Revoked.ALREADY


def _on_record(kind: Kind, object_id: int, records: list[Record], i: int, exported: datetime) -> bool:
    """Whether the restored log holds the revocation ``records[i]``: the latest one, when it has a
    record of the object's revocation of this kind from its time until ``exported`` (the export's
    last record of the object: the backup's records are all in the export, so a later one was made
    since the restore, by whoever the restore gave access back to, a leaked password's holder
    changing it, a demoted administrator editing their own account); an older one, when it has one
    from its time until the next one's; either, when it has one written again naming it ("first
    revoked <its time> by")."""
    at = records[i].at
    found = AuditEvent.objects.for_object(kind.object_type, object_id).filter(action__in=kind.actions)
    if kind.mentions:
        found = found.filter(summary__contains=kind.mentions)
    until = records[i + 1].at if i < len(records) - 1 else None
    held = Q(at__gte=at, at__lt=until) if until is not None else Q(at__gte=at, at__lte=exported)
    return found.filter(held | Q(summary__contains=f"(first revoked {at.isoformat()} by ")).exists()


def revocation_records(rows: list[Record]) -> list[tuple[Kind, int, list[Record], list[Record]]]:
    """The revocations in an export's records, per object: ``(kind, id, its revocations, every record
    of the object)``, in :data:`KINDS`' order, then by id. Also notes, for the revocations applied
    next, when gallery adaptation was resumed for each person (:data:`_RESUMED`)."""
    resumed: dict[int, list[datetime]] = {}
    for row in rows:
        if row.object_type == "enrollment.person" and row.summary.startswith(ADAPTATION_RESUMED):
            resumed.setdefault(row.object_id, []).append(row.at)
    _RESUMED.set(resumed)
    history: dict[tuple[str, int], list[Record]] = {}
    for row in rows:
        history.setdefault((row.object_type, row.object_id), []).append(row)
    found = []
    for kind in KINDS:
        for (object_type, pk), records in sorted(history.items()):
            revocations = [r for r in records if kind.of(r)] if object_type == kind.object_type else []
            if revocations:
                found.append((kind, pk, revocations, sorted(records)))
    return found


def rights_taken_from(user: User, found: list[tuple[Kind, int, list[Record], list[Record]]]) -> list[str]:
    """The objects of ``found`` (:func:`revocation_records`) whose revocation, applied again, would
    take rights away from ``user``: their account, or a group of theirs (``"user #4"``). The restored
    row still holds them, so it cannot tell what ``user`` may do (a password disabled takes none)."""
    groups = set(user.groups.values_list("pk", flat=True))
    return [f"{kind.noun} #{pk}" for kind, pk, revocations, history in found
            if (kind.noun == "user" and pk == user.pk or kind.noun == "group" and pk in groups)
            and revocation_reapply(kind=kind, object_id=pk, records=revocations, history=history,
                                   dry_run=True) == Revoked.REVOKED]


SESSIONS = "sessions.session"   # the object type of the record of the sessions a restore ended


def restored_sessions_end(*, exported: datetime | None, dry_run: bool = False,
                          actor: object | None = None) -> tuple[int, AuditEvent | None]:
    """End every staff session in the restored database, one audit record saying how many; returns
    that number (``dry_run``: the number it would end) and ``None``, or ``0`` and the record of an
    earlier run after the same restore, which ended them: nothing is done again.

    Run before the web processes start again (docs/deployment.md), every session row is the
    backup's, among them those ended since (a logout, which the log does not let one tell apart):
    all end, everyone logs in again. ``exported``, the audit export's latest record (``None``: it
    has none), tells the runs after this restore: their record names it and is newer (an earlier
    restore's, in the backup, was read into that export, which is later than it), so a second run,
    even one after the web processes started, leaves the sessions opened since alone. Without
    ``exported`` each run ends every session there is, recording it when there was one.
    ``actor``: whom the record names (``None``: the system)."""
    marker = f"after the restore that the audit export up to {exported.astimezone(UTC).isoformat()} " \
             "preceded" if exported is not None else "after a restore"
    if exported is not None:
        earlier = (AuditEvent.objects.filter(object_type=SESSIONS, action=Action.DELETE, at__gt=exported,
                                             summary__contains=marker).order_by("at").first())
        if earlier is not None:
            return 0, earlier
    # the database sessions the site runs on (SESSION_ENGINE's default): the rows the restore brought back
    sessions = Session.objects.all()
    if dry_run:
        return sessions.count(), None
    with transaction.atomic():
        ended, _ = sessions.delete()
        if ended or exported is not None:
            once = ", once: a second run ends none" if exported is not None else ""
            audit_record(actor=actor, action=Action.DELETE, object_type=SESSIONS,
                         summary=f"ended {ended} staff session{'' if ended == 1 else 's'} {marker}: every session "
                                 f"the restored database held (the backup's, logged out since or not); everyone logs "
                                 f"in again{once}")
    return ended, None


def local(at: datetime) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M}"
