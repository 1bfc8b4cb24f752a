"""People: create, lock, update, deactivate, erase (GDPR art. 17: the person, their photos,
templates, check-ins, admin history and every index entry; their staff id kept as a keyed digest
alone, so that the next import does not enrol them again), erased staff ids lifted, and erasures
applied again after a restored backup undid them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, audit_records
from masknet_site.unique import save_unique

from ..models import (
    ErasedStaffId,
    FacePhoto,
    Person,
    PersonInactivePeriod,
    TrainingRun,
    index_cache_clear,
    secret_fingerprint,
    staff_id_digest,
)
from ..text import person_text_normal, staff_id_key
from .common import Action, EnrollmentError, counted, people_locked
from .index import _index_scrub, _index_writers_take_turns, index_rebuild_request
from .photos import _delete_media


class StaffIdErased(EnrollmentError):
    """The staff id is an erased person's (:class:`~enrollment.models.ErasedStaffId`): creating a
    person of it would undo their erasure unless they asked to be enrolled again (``enrol_erased``)."""

    def __init__(self, staff_id: str, entry: ErasedStaffId) -> None:
        self.staff_id, self.entry = staff_id, entry
        super().__init__(f"{staff_id}: erased on {entry.erased_on} at the person's request")


def person_create(*, actor: object | None, full_name: str, staff_id: str, department: str = "",
                  notes: str = "", active: bool = True, enrol_erased: bool = False) -> Person:
    """Create a person (validated like the admin form: unique staff id, lengths). Names and staff id
    are stored in one Unicode form, without invisible characters or spaces at their ends
    (:mod:`enrollment.text`): the same id written otherwise is the same person's.

    A staff id whose person was erased (:class:`~enrollment.models.ErasedStaffId`) raises
    :class:`StaffIdErased`, unless ``enrol_erased`` (they asked to be enrolled again, or the id is
    someone else's now): the entry is then lifted (:func:`erased_staff_id_lift`) and the creation's
    audit record says so."""
    text = person_text_normal({"full_name": full_name, "staff_id": staff_id, "department": department})
    person = Person(**text, notes=notes, **_activity(active, timezone.now()))
    person.full_clean()
    with transaction.atomic():
        erased = _staff_id_erased(person.staff_id, enrol_erased=enrol_erased)
        save_unique(person, "staff_id", key="staff_key")
        again = ""
        if erased is not None:
            lifted = erased_staff_id_lift(entry=erased, actor=actor, note=f"on enrolling person #{person.pk} again")
            again = f"; enrolled again after an erasure on {erased.erased_on} (erased staff id #{lifted} lifted)"
        audit_record(actor=actor, action=Action.CREATE, obj=person, summary=f"created person #{person.pk}{again}")
    return person


def _staff_id_erased(staff_id: str, *, enrol_erased: bool) -> ErasedStaffId | None:
    """The entry of ``staff_id`` if it is an erased person's, for the caller to lift once the person
    holding it is saved; ``None`` if it is nobody's. Raises :class:`StaffIdErased` for one unless
    ``enrol_erased``: a person created with it, or given it, would undo that erasure unasked."""
    erased = ErasedStaffId.objects.matching([staff_id]).get(staff_id)
    if erased is not None and not enrol_erased:
        raise StaffIdErased(staff_id, erased)
    return erased


def erased_staff_id_lift(*, entry: ErasedStaffId, actor: object | None, note: str = "") -> int:
    """Lift an erased staff id: the person asked to be enrolled again, or the id is someone else's
    now. ``entry`` alone is deleted (whichever secret key, or key before enrollment 0020, it was made
    under) and the lift audited, once: an entry lifted meanwhile by someone else is nothing more to
    record. An entry holds a digest, not the staff id, so another entry of the same id cannot be told
    from it: the admin lifts the row it lists, the services and ``import_people`` the one
    :meth:`~enrollment.models.ErasedStaffIdQuerySet.matching` found, which is the id's only entry
    once it was erased under today's keys (:func:`_staff_id_suppress` replaces its earlier ones).
    Returns ``entry``'s id."""
    pk, erased_on = entry.pk, entry.erased_on
    with transaction.atomic():
        if not ErasedStaffId.objects.filter(pk=pk).delete()[0]:
            return pk
        audit_record(actor=actor, action=Action.DELETE, object_type="enrollment.erasedstaffid", object_id=pk,
                     summary=f"lifted erased staff id #{pk} (an erasure on {erased_on}): imports and the admin "
                             f"enrol that staff id again" + (f"; {note}" if note else ""))
    return pk


# the columns of an erased staff ids file (export_audit --erased-ids, reapply_erasures --erased-ids)
ERASED_IDS_COLUMNS = ("digest", "key_id", "erased_at")


def erased_staff_ids_rows() -> list[tuple[str, str, str]]:
    """Every erased staff id as ``(digest, key_id, erased_at ISO 8601)``, oldest first: what a
    restore of an older backup is to be given again (:func:`erased_staff_ids_replace`). Digests alone:
    no staff id can be read from them without the site's secret key."""
    return [(digest, key_id, at.isoformat()) for digest, key_id, at in
            ErasedStaffId.objects.order_by("erased_at", "pk").values_list("digest", "key_id", "erased_at")]


def erased_staff_ids_replace(rows: Sequence[tuple[str, str, datetime]], *, actor: object | None,
                             since: datetime, dry_run: bool = False, source: str = "") -> tuple[int, int]:
    """After a restore: make the erased staff ids those of ``rows`` (:func:`erased_staff_ids_rows`,
    taken before the restore, at ``since``): a person enrolled after the backup and erased since left
    no entry in the backup, and the next ``import_people`` of HR's folder enrolled them again; an
    entry lifted since the backup is lifted again. An entry made after ``since`` (a person this
    restore's ``reapply_erasures`` erased again, maybe under another key) is kept. Returns ``(added,
    lifted)``; audited once (``source``: the file's name) when anything changed. ``dry_run``:
    counted, nothing changed."""
    wanted = {digest: (key_id, at) for digest, key_id, at in rows}
    with transaction.atomic():
        held = dict(ErasedStaffId.objects.select_for_update().values_list("digest", "erased_at"))
        added = [d for d in wanted if d not in held]
        lifted = [d for d, at in held.items() if d not in wanted and at <= since]
        if dry_run or not (added or lifted):
            return len(added), len(lifted)
        ErasedStaffId.objects.filter(digest__in=lifted).delete()
        ErasedStaffId.objects.bulk_create([ErasedStaffId(digest=d, key_id=wanted[d][0], erased_at=wanted[d][1])
                                           for d in added])
        audit_record(actor=actor, action=Action.UPDATE, object_type="enrollment.erasedstaffid",
                     summary=f"erased staff ids set again after a restore{f' from {source}' if source else ''}: "
                             f"{len(added)} erased since the backup added, {len(lifted)} lifted since removed"[:300])
    return len(added), len(lifted)


def person_lock(pk: object, *, photos: bool = False) -> None:
    """Lock a person's row until the caller's transaction ends (nothing for an id that is no
    person's). A request that checks the row it reads next against the copy its client edited (an
    admin form's, an API ``If-Match``) and then writes keeps the check true until the write: a
    change committed in between would otherwise be undone without anyone being told.

    ``photos``: their photos' rows first, for a caller that may go on to remove some (the admin's
    form): the order an erasure and a photo removal take them in (photos, then the person), else
    one of two such transactions is aborted as a deadlock (PostgreSQL)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("person_lock outside a transaction locks nothing")
    try:
        if photos:
            list(FacePhoto.objects.select_for_update().filter(person_id=pk).order_by("pk").values_list("pk", flat=True))
        list(Person.objects.select_for_update().filter(pk=pk).values_list("pk", flat=True))
    except (ValueError, TypeError, ValidationError):   # not an id: the caller's lookup answers 404
        pass


def person_update(*, person: Person, actor: object | None, full_name: str | None = None,
                  staff_id: str | None = None, department: str | None = None, notes: str | None = None,
                  active: bool | None = None, enrol_erased: bool = False) -> Person:
    """Change the given fields (``None``: unchanged). A change of ``active`` queues a rebuild and sets
    ``deactivated_at`` (now, or ``None`` once reactivated), as :func:`person_deactivate` does; a
    reactivation keeps the time it ends as a :class:`~enrollment.models.PersonInactivePeriod` (from
    the ``deactivated_at`` it clears to now), which attendance goes by. Names
    and staff id are stored as :func:`person_create` stores them (the same text in another Unicode
    form is no change).

    A new staff id (other than the person's own written otherwise) that is an erased person's raises
    :class:`StaffIdErased` unless ``enrol_erased``, as :func:`person_create` does: the entry is then
    lifted and the change's audit record says so."""
    new = person_text_normal({"full_name": full_name, "staff_id": staff_id, "department": department,
                              "notes": notes, "active": active})
    with transaction.atomic():
        # compared with the row as it is, locked: a change committed since it was read stays
        stored = Person.objects.select_for_update().get(pk=person.pk)
        changed = [name for name, value in new.items() if value is not None and getattr(stored, name) != value]
        for name in changed:
            setattr(person, name, new[name])
        if not changed:
            return person
        written = [*changed, "updated_at"]
        if "active" in changed:
            now = timezone.now()
            for name, value in _activity(new["active"], now).items():
                setattr(person, name, value)
            written.append("deactivated_at")
            if new["active"]:   # the date it clears is kept as a period's (unknown: NULL)
                PersonInactivePeriod.objects.create(person_id=person.pk, deactivated_at=stored.deactivated_at,
                                                    reactivated_at=now)
        # notes written before their limit existed do not block changes to the other fields
        person.full_clean(exclude=[] if "notes" in changed else ["notes"])
        erased = None
        if "staff_id" in changed and staff_id_key(person.staff_id) != staff_id_key(stored.staff_id):
            erased = _staff_id_erased(person.staff_id, enrol_erased=enrol_erased)
        save_unique(person, "staff_id", key="staff_key", update_fields=written)
        summary = f"updated person #{person.pk}: {', '.join(changed)}"
        if erased is not None:
            lifted = erased_staff_id_lift(entry=erased, actor=actor,
                                          note=f"on giving person #{person.pk} that staff id")
            summary += f"; staff id of a person erased on {erased.erased_on} (erased staff id #{lifted} lifted)"
        if "active" in changed and not active:
            # unticked on the form or PATCHed: a deactivation as the admin action's is
            audit_record(actor=actor, action=Action.DEACTIVATE, obj=person,
                         summary=f"deactivated person #{person.pk}; {summary}"[:300])
        else:
            audit_record(actor=actor, action=Action.UPDATE, obj=person,
                         summary=summary + ("; reactivated" if "active" in changed else ""))
        if "active" in changed:
            index_rebuild_request(actor=actor, reason=f"person #{person.pk} {'activated' if active else 'deactivated'}")
    return person


def _activity(active: bool, now: datetime) -> dict[str, object]:
    """The fields every change of ``active`` writes (a creation's, :func:`person_update`'s,
    :func:`person_deactivate`'s): ``deactivated_at`` is when they were deactivated (``now``), ``None``
    while active. A reactivation clears it, and :func:`person_update` keeps the time as a past
    inactive period: attendance counts the person on none of its days (recognition.attendance)."""
    return {"active": active, "deactivated_at": None if active else now}


def person_deactivate(*, person: Person, actor: object | None, note: str = "",
                      at: datetime | None = None) -> Person:
    """Leave a person enrolled but out of the index (queues a rebuild; ``note``, if given, ends the
    audit record's summary); ``deactivated_at`` says when: ``at``, now by default (a deactivation
    taken away by a restored backup and made again gives the first one's time: attendance's days
    between them are not missing)."""
    if not person.active:
        return person
    with transaction.atomic():
        # by the row as it is now: someone else may have deactivated or erased the person since it
        # was read (an admin action's list); that is no error, and nothing more to record
        now = timezone.now()
        fields = _activity(False, at or now)
        changed = Person.objects.filter(pk=person.pk, active=True).update(**fields, updated_at=now)
        person.active = False
        if not changed:
            return person
        person.updated_at, person.deactivated_at = now, fields["deactivated_at"]
        audit_record(actor=actor, action=Action.DEACTIVATE, obj=person,
                     summary=f"deactivated person #{person.pk}" + (f"; {note}" if note else ""))
        index_rebuild_request(actor=actor, reason=f"person #{person.pk} deactivated")
    return person


def people_deactivate(*, people: Sequence[int], actor: object | None) -> list[int]:
    """:func:`person_deactivate` of each of ``people`` (ids) still active, in one transaction with one
    rebuild request: the admin's action, a person at a time, took 20 s and 12,000 queries for a
    department of 1,716 people (a scale review). Returns the ids deactivated here (not those
    inactive already, deactivated or erased by someone else meanwhile)."""
    now = timezone.now()
    done: list[int] = []
    with transaction.atomic():
        for batch in people_locked(people, active=True):
            ids = list(batch.values_list("pk", flat=True))
            if not ids:
                continue
            _people_switched(ids, active=False, now=now, actor=actor)
            done += ids
        _people_rebuild(done, "deactivated", actor=actor)
    return done


def people_reactivate(*, people: Sequence[int], actor: object | None) -> tuple[list[int], dict[int, str]]:
    """``person_update(active=True)`` of each of ``people`` (ids) still inactive, in one transaction
    with one rebuild request (see :func:`people_deactivate`): each one's time away kept as a
    :class:`~enrollment.models.PersonInactivePeriod`, each audited. Returns the ids reactivated
    here, and those refused with why: a record an earlier release let in that the form now refuses
    (correct it on their page)."""
    now = timezone.now()
    done: list[int] = []
    refused: dict[int, str] = {}
    with transaction.atomic():
        for batch in people_locked(people, active=False):
            back = []
            for person in batch:
                if person.staff_key is None:
                    # a row from before staff ids were keyed (let in while a migration ran): the
                    # one-person path, which keys it and refuses an id another person holds written
                    # otherwise; unchecked, the bulk path reactivated such a twin (a review)
                    try:
                        person_update(person=person, actor=actor, active=True)
                    except ValidationError as exc:
                        refused[person.pk] = " ".join(exc.messages)
                    else:
                        done.append(person.pk)
                    continue
                away_since, person.active, person.deactivated_at = person.deactivated_at, True, None
                try:   # as person_update checks a change (its staff id unchanged, checked unique when saved)
                    person.full_clean(exclude=["notes"], validate_unique=False, validate_constraints=False)
                except ValidationError as exc:
                    refused[person.pk] = " ".join(exc.messages)
                    continue
                back.append((person.pk, away_since))
            if not back:
                continue
            ids = [pk for pk, _ in back]
            PersonInactivePeriod.objects.bulk_create([PersonInactivePeriod(person_id=pk, deactivated_at=since,
                                                                           reactivated_at=now) for pk, since in back])
            _people_switched(ids, active=True, now=now, actor=actor)
            done += ids
        _people_rebuild(done, "activated", actor=actor)
    return done, refused


def _people_switched(ids: list[int], *, active: bool, now: datetime, actor: object | None) -> None:
    """Write ``active`` for the people ``ids`` (locked), each audited as the one-person changes are."""
    Person.objects.filter(pk__in=ids).update(**_activity(active, now), updated_at=now)
    audit_records(actor=actor, action=Action.UPDATE if active else Action.DEACTIVATE, object_type="enrollment.person",
                  rows=[(pk, f"updated person #{pk}: active; reactivated" if active else f"deactivated person #{pk}")
                        for pk in ids])


def _people_rebuild(done: list[int], change: str, *, actor: object | None) -> None:
    """One rebuild request for the people ``done`` (none: nothing changed), named as one person's is."""
    if done:
        index_rebuild_request(actor=actor, reason=f"person #{done[0]} {change}" if len(done) == 1
                              else f"{counted(len(done), 'person', 'people')} {change}")


def person_erase(*, person: Person, actor: object | None, note: str = "") -> bool:
    """Delete a person with every photo (files included), cached template and index entry.

    Index versions that contain the person are rewritten (the active one: a new version without
    them, switched atomically) or deleted (inactive ones), and Django's admin history of the person,
    their photos and their check-ins goes too. Only an audit record with the person's id remains
    (``note``, if given, ends its summary). Photo and index files are deleted once the transaction
    commits. Returns ``False`` when the person had been erased meanwhile by someone else (nothing to do).
    :class:`StorageFull` when the index folder has no room for the rewritten active version: nothing
    is erased (the transaction rolls back), and the erasure can be made again once there is.
    """
    return bool(people_erase(people=[person.pk], actor=actor, note=note))


def people_erase(*, people: Sequence[int], actor: object | None, note: str = "") -> list[int]:
    """:func:`person_erase` of each of ``people`` (ids), in one transaction whose index versions are
    rewritten once for them all: the admin's action erased one at a time, each rewriting the active
    index (a 30 MB file at 20,000 people) and telling every kiosk to load it again, 100 times for a
    batch of 100 (a scale review). Each erasure is audited as :func:`person_erase`'s is; one rebuild
    is asked for. Returns the ids erased here (not those erased meanwhile by someone else).
    :class:`StorageFull`: nobody is erased (the transaction rolls back)."""
    erased: dict[int, tuple[list[str], int, int, int]] = {}
    embedded = 0
    with transaction.atomic():
        # first the lock a rebuild's switch takes too: a switch that read the people as active commits
        # before this goes on, and the scrub below, a later statement, sees the version it made
        # (locking only in the scrub, PostgreSQL's snapshot of that one statement could miss it; a
        # lock on the active version's row could be on a row another erasure deleted meanwhile)
        _index_writers_take_turns()
        ids = sorted(set(people))
        # every photo of them at once, in id order as the adapted-photo purge locks them (a person at
        # a time, this held one person's photos while waiting for the next one's: a cycle with the purge)
        list(FacePhoto.objects.select_for_update().filter(person_id__in=ids).order_by("pk").values_list("pk"))
        for pk in ids:
            # then the photos: a template store in flight (it locks its photo) commits first, and the
            # delete below takes its templates too (else its insert breaks this commit's foreign keys)
            names = list(FacePhoto.objects.select_for_update().filter(person_id=pk).values_list("image", flat=True))
            # then the person (after the photos, in the order a photo removal takes them): a check-in
            # being recorded (it locks the person) commits first and its row goes with the others,
            # rather than being inserted after the cascade read them and failing this commit
            staff_id = Person.objects.select_for_update().filter(pk=pk).values_list("staff_id", flat=True).first()
            photos = FacePhoto.objects.filter(person_id=pk, templates__isnull=False).distinct().count()
            history = _admin_history_delete(person_id=pk)   # before the cascade: it finds rows by their objects' ids
            _, deleted = Person.objects.filter(pk=pk).delete()  # cascades to photos, cached templates and check-ins
            if not deleted.get(Person._meta.label):
                continue   # erased meanwhile by someone else, whose erasure recorded and scrubbed it
            _staff_id_suppress(staff_id=staff_id)
            erased[pk] = (names, deleted.get("recognition.CheckIn", 0), history, photos)
            embedded += photos
        if not erased:
            return []
        scrubbed = _index_scrub(labels={str(pk) for pk in erased}, photos=embedded)
        for pk, (names, checkins, history, _) in erased.items():
            reasons = _rebuild_reasons_scrub(person_id=pk)
            said = (f"erased person #{pk}: {counted(len(names), 'photo')}, their templates, "
                    f"{counted(checkins, 'check-in')} (their snapshots), "
                    f"{counted(history, 'admin history entry', 'admin history entries')}, "
                    f"{counted(scrubbed[str(pk)], 'index version')} rewritten or deleted, "
                    f"{counted(reasons, 'rebuild reason')} no longer naming them; staff id kept as a keyed digest")
            # the note whole, the counts cut instead: the log keeps 300 characters, and a note naming a
            # long username lost its end, which reapply_erasures reads the first erasure from
            audit_record(actor=actor, action=Action.ERASE, object_type="enrollment.person", object_id=pk,
                         summary=f"{said[:300 - len(note) - 2]}; {note}" if note else said)
            transaction.on_commit(lambda names=names, pk=pk: _delete_media(names, folder=f"faces/{pk}",
                                                                           everything=True))
        transaction.on_commit(index_cache_clear)
        index_rebuild_request(actor=actor, reason=ERASED_REASON)
    return list(erased)


def _staff_id_suppress(*, staff_id: str) -> ErasedStaffId:
    """Keep an erased person's staff id as a keyed digest alone, with the time: imports skip it
    (an earlier entry of the id, under this key or an older one, is replaced: one erasure's date)."""
    ErasedStaffId.objects.of(staff_id).delete()
    return ErasedStaffId.objects.create(digest=staff_id_digest(staff_id), key_id=secret_fingerprint(),
                                        erased_at=timezone.now())


# what a rebuild's reason says of an erased person (the audit log keeps their id: it is the record
# of the erasure; the runs, which Enrollers read, are not)
ERASED_REASON = "a person erased"


def _rebuild_reasons_scrub(*, person_id: int) -> int:
    """Reword the index rebuilds' reasons that name ``person_id`` ("photo added to person #12",
    "person #12 deactivated") to name nobody ("photo added to an erased person"): with the id they
    told Enrollers, who read the runs, when each of an erased person's photos was added or removed
    and when they were deactivated, for as long as the runs are kept (for good). Whole numbers only
    ("person #12" is not "person #120"). Returns how many were reworded."""
    named = re.compile(rf"person #{person_id}(?!\d)")
    runs = TrainingRun.objects.filter(Q(reason__endswith=f"person #{person_id}")
                                      | Q(reason__contains=f"person #{person_id} "))
    changed = 0
    for run_id, reason in runs.values_list("pk", "reason"):
        if named.search(reason):
            changed += TrainingRun.objects.filter(pk=run_id).update(
                reason=named.sub("an erased person", reason)[:200])
    return changed


class Reapplied(models.TextChoices):
    """What :func:`person_erasure_reapply` found (and did) for one erased person's id."""

    ERASED = "erased", "erased again"
    ABSENT = "absent", "already absent"
    REUSED = "reused", "left alone: the id now names someone enrolled after the erasure"


def person_erasure_reapply(*, person_id: int, erased_at: datetime, erased_by: str, actor: object | None,
                           dry_run: bool = False, earlier: Sequence[tuple[datetime, str]] = ()) -> Reapplied:
    """Apply again an erasure that a restored backup undid (``manage.py reapply_erasures``).

    ``erased_at``/``erased_by``: the time and actor of the latest erase record of this id in the
    export; ``earlier``: ``(time, actor)`` of its older ones (the id handed out again after an earlier
    restore, and that holder erased too). A person of that id created after the latest erasure holds
    an id handed out again (a sequence the restore set back) and is left alone, nothing written. One
    created before it is a holder erased then, brought back by the restore: erased again by
    :func:`person_erase`, whose audit record notes that holder's first erasure (the first one after
    their creation). Every other erasure of the id is written again if the restored log lacks it
    (the restore lost it), so that the log still says who erased person #N, when. The log holds the
    latest one when it has an erase record of the id from its time on (the record itself, or one
    written since the restore by an earlier run); an older one, when it has an erase record from its
    time until the next erasure's, or one written again naming it ("first erased <its time> by").
    ``dry_run``: nothing is written; the answer says what would be done.
    """
    records = sorted({*earlier, (erased_at, erased_by)})
    person = Person.objects.filter(pk=person_id).first()
    if person is not None and person.created_at > records[-1][0]:
        return Reapplied.REUSED
    if dry_run:
        return Reapplied.ERASED if person is not None else Reapplied.ABSENT
    # the holder brought back was erased by the first erasure after their creation
    held = next((i for i, (at, _) in enumerate(records) if at >= person.created_at), None) if person else None
    with transaction.atomic():
        # read before anything is written: the erasure below and the records written back are from now,
        # which is after the latest erasure
        missing = [i for i in range(len(records)) if i != held and not _erasure_on_record(person_id, records, i)]
        outcome = Reapplied.ABSENT
        if held is not None and person_erase(person=person, actor=actor, note=_again(*records[held])):
            outcome = Reapplied.ERASED
        for i in missing:
            audit_record(actor=actor, action=Action.ERASE, object_type="enrollment.person", object_id=person_id,
                         summary=f"erasure of person #{person_id} recorded {_again(*records[i])}: nothing of them "
                                 "was restored")
    return outcome


def _again(erased_at: datetime, erased_by: str) -> str:
    """How an erasure applied or recorded again names the first one (:func:`_erasure_on_record` finds it)."""
    return f"again after a restore (first erased {erased_at.isoformat()} by {erased_by or 'system'})"


def erasure_lost(*, person_id: int, erased_at: datetime) -> bool:
    """Whether the audit log lacks the erasure of ``person_id`` at ``erased_at`` (no erase record of
    the id from then on): a restored backup older than it. Such a person's erased staff id went with
    it (``reapply_erasures`` says what that leaves to do)."""
    return not _erasure_on_record(person_id, [(erased_at, "")], 0)


def _erasure_on_record(person_id: int, records: list[tuple[datetime, str]], i: int) -> bool:
    """Whether the audit log holds the erasure ``records[i]`` of ``person_id`` (``records``: the export's
    erasures of the id, oldest first): see :func:`person_erasure_reapply`."""
    at = records[i][0]
    found = AuditEvent.objects.for_object("enrollment.person", person_id).filter(action=Action.ERASE)
    if i == len(records) - 1:
        return found.filter(at__gte=at).exists()
    return found.filter(Q(at__gte=at, at__lt=records[i + 1][0])
                        | Q(summary__contains=f"(first erased {at.isoformat()} by ")).exists()


def _admin_history_delete(*, person_id: int) -> int:
    """Delete Django's admin history of a person (:func:`admin_history`); call it before they are
    deleted. Returns the rows deleted."""
    return admin_history(person_id=person_id).delete()[0]


def admin_history(*, person_id: int) -> models.QuerySet[LogEntry]:
    """Django's admin history (``django_admin_log``) of a person, of their photos and of their
    check-ins, while they exist: what an erasure deletes and a subject-access export hands out.
    Rows of the person held their name before the admin kept only ids; rows of photos and check-ins
    name the person's id ("photo #3 of person #12", "check-in #7 of person #12 at …"), with
    attendance times: those of photos and check-ins removed earlier are found by that text, exactly
    (not "person #123")."""
    from recognition.models import CheckIn  # here: recognition's models import enrollment's

    def about(model: type[models.Model]) -> Q:
        ids = (model.objects.filter(person_id=person_id)
               .annotate(object_id=Cast("pk", models.CharField())).values("object_id"))   # object_id is text
        named = (Q(object_repr__endswith=f" of person #{person_id}")
                 | Q(object_repr__contains=f" of person #{person_id} at "))
        return Q(content_type=ContentType.objects.get_for_model(model)) & (Q(object_id__in=ids) | named)

    person = Q(content_type=ContentType.objects.get_for_model(Person), object_id=str(person_id))
    return LogEntry.objects.filter(person | about(FacePhoto) | about(CheckIn))
