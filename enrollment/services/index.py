"""Every write of the enrollment app: people, photos, erasure and index rebuilds.

Functions are ``<entity>_<action>`` with keyword-only, typed arguments. Each runs in one
transaction; file deletions and queued rebuilds happen only after that transaction commits.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Cast
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from audit.models import AuditEvent
from audit.services import audit_record
from masknet_site.csv_export import csv_chunks
from masknet_site.unique import save_unique
from recognition.engine import Engine, EngineError, Face, FrameTooLarge, NoFaceFound, UnreadableImage
from recognition.engine.decode import refuse_costly, without_metadata
from recognition.engine.gallery import (
    SYNTHETIC_MASK,
    UNMASKED,
    Decision,
    Templates,
    fit_thresholds,
    identify,
    person_templates,
)
from recognition.engine.index import Index
from recognition.engine.quality import BLURRY, TOO_DARK
from recognition.exports import CHECKIN_CSV_HEADER, checkin_csv_rows

from .. import dispatch, events, recognizer
from ..models import (
    FacePhoto,
    IndexVersion,
    Person,
    PhotoTemplates,
    TrainingRun,
    TrainingRunQuerySet,
    index_cache_clear,
)

log = logging.getLogger(__name__)

Action = AuditEvent.Action

# Refusal codes of photo_add, with the sentence shown to the administrator.
REFUSALS = {
    "empty": "The file is empty (0 bytes).",
    "file_type": "Not a JPEG, PNG or WebP image.",
    "too_large": "The file is too large.",
    "unreadable": "The image cannot be decoded (damaged or truncated file).",
    "no_face": "No face found in the photo.",
    "several_faces": "More than one usable face: use a photo of this person alone.",
    # a masked face is often accepted, but not always (a mask up to the eyes lowers FaceMesh's
    # confidence): the advice that always works is a photo without one
    "unclear_face": "No clear face: this may not be a face, or too much of it is covered or turned away. Use a "
                    "photo without a mask if you can (masked check-ins are matched against masks drawn on it).",
    "too_small": "The face is too small: come closer or use a larger photo.",
    "partial": "Part of the face is outside the photo: use one that shows the whole face.",
    "upside_down": "The photo is upside down: turn it upright and add it again.",
    "sideways": "The photo is on its side: turn it upright and add it again.",
    "too_dark": "Too dark: add light in front of the face.",
    "too_bright": "Too bright: the face is overexposed.",
    "blurry": "Blurry: hold still or use a sharper photo.",
    "pose": "The face is turned away: look straight at the camera.",
    "quality": "The face is not good enough to recognise.",
    "duplicate": "This photo is already enrolled for this person.",
    "enrolled_elsewhere": "This photo is already enrolled for another person.",
    "enough_photos": "This person already has as many photos as allowed here.",
    "adaptation_stopped": "Gallery adaptation was stopped for this person, or they were deactivated.",
    "not_stored": "The photo could not be stored (the server's storage or database failed): try it again.",
}
_MAGIC = ((b"\xff\xd8\xff", "JPEG", ".jpg"), (b"\x89PNG\r\n\x1a\n", "PNG", ".png"))
BUSY_RETRY_S = 10


class EnrollmentError(Exception):
    """Base class of the enrollment app's refusals."""


class PhotoRefused(EnrollmentError):
    """A photo that cannot be enrolled; ``code`` is a key of :data:`REFUSALS`."""

    def __init__(self, code: str, detail: str = "", message: str | None = None) -> None:
        self.code = code
        self.message = (message or REFUSALS.get(code, code)) + (f" ({detail})" if detail else "")
        super().__init__(self.message)


class RunTakenOver(EnrollmentError):
    """This worker's run was taken over by another (its heartbeat went stale): stop, write nothing."""


class RebuildBusy(EnrollmentError):
    """Another rebuild is running; try again in ``retry_after`` seconds."""

    def __init__(self, run_id: int, retry_after: float = BUSY_RETRY_S, locked: bool = False) -> None:
        # locked: no rebuild runs, a run's row was only held for a moment (a change joining a queued run)
        self.run_id, self.retry_after, self.locked = run_id, retry_after, locked
        super().__init__(f"another index rebuild is running; retry in {retry_after:.0f} s" if not locked
                         else "the training runs are being updated; retry in a moment")


# --------------------------------------------------------------------------------------------
# people


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``3 photos``; ``plural`` where adding an s is wrong (``person``, ``people``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def person_create(*, actor: object | None, full_name: str, staff_id: str, department: str = "",
                  notes: str = "", active: bool = True) -> Person:
    """Create a person (validated like the admin form: unique staff id, lengths)."""
    person = Person(full_name=full_name.strip(), staff_id=staff_id.strip(), department=department.strip(),
                    notes=notes, active=active)
    person.full_clean()
    with transaction.atomic():
        save_unique(person, "staff_id", ignoring_case=True)
        audit_record(actor=actor, action=Action.CREATE, obj=person, summary=f"created person #{person.pk}")
    return person


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
                  active: bool | None = None) -> Person:
    """Change the given fields (``None``: unchanged). A change of ``active`` queues a rebuild."""
    new = {"full_name": full_name, "staff_id": staff_id, "department": department, "notes": notes,
           "active": active}
    with transaction.atomic():
        # compared with the row as it is, locked: a change committed since it was read stays
        stored = Person.objects.select_for_update().get(pk=person.pk)
        changed = [name for name, value in new.items() if value is not None and getattr(stored, name) != value]
        for name in changed:
            setattr(person, name, new[name])
        if not changed:
            return person
        # notes written before their limit existed do not block changes to the other fields
        person.full_clean(exclude=[] if "notes" in changed else ["notes"])
        save_unique(person, "staff_id", ignoring_case=True, update_fields=[*changed, "updated_at"])
        summary = f"updated person #{person.pk}: {', '.join(changed)}"
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


def person_deactivate(*, person: Person, actor: object | None) -> Person:
    """Leave a person enrolled but out of the index (queues a rebuild)."""
    if not person.active:
        return person
    with transaction.atomic():
        # by the row as it is now: someone else may have deactivated or erased the person since it
        # was read (an admin action's list); that is no error, and nothing more to record
        now = timezone.now()
        changed = Person.objects.filter(pk=person.pk, active=True).update(active=False, updated_at=now)
        person.active = False
        if not changed:
            return person
        person.updated_at = now
        audit_record(actor=actor, action=Action.DEACTIVATE, obj=person, summary=f"deactivated person #{person.pk}")
        index_rebuild_request(actor=actor, reason=f"person #{person.pk} deactivated")
    return person


def person_erase(*, person: Person, actor: object | None, note: str = "") -> bool:
    """Delete a person with every photo (files included), cached template and index entry.

    Index versions that contain the person are rewritten (the active one: a new version without
    them, switched atomically) or deleted (inactive ones), and Django's admin history of the person,
    their photos and their check-ins goes too. Only an audit record with the person's id remains
    (``note``, if given, ends its summary). Photo and index files are deleted once the transaction
    commits. Returns ``False`` when the person had been erased meanwhile by someone else (nothing to do).
    """
    pk, label = person.pk, str(person.pk)
    with transaction.atomic():
        # first the lock a rebuild's switch takes too: a switch that read the person as active commits
        # before this goes on, and the scrub below, a later statement, sees the version it made
        # (locking only in the scrub, PostgreSQL's snapshot of that one statement could miss it; a
        # lock on the active version's row could be on a row another erasure deleted meanwhile)
        _index_writers_take_turns()
        # then the photos: a template store in flight (it locks its photo) commits first, and the
        # delete below takes its templates too (else its insert breaks this commit's foreign keys)
        names = list(FacePhoto.objects.select_for_update().filter(person_id=pk).values_list("image", flat=True))
        # then the person (after the photos, in the order a photo removal takes them): a check-in
        # being recorded (it locks the person) commits first and its row goes with the others,
        # rather than being inserted after the cascade read them and failing this commit
        list(Person.objects.select_for_update().filter(pk=pk).values_list("pk"))
        embedded = FacePhoto.objects.filter(person_id=pk, templates__isnull=False).distinct().count()
        history = _admin_history_delete(person_id=pk)   # before the cascade: it finds rows by their objects' ids
        _, deleted = Person.objects.filter(pk=pk).delete()  # cascades to photos, cached templates and check-ins
        if not deleted.get(Person._meta.label):
            return False   # erased meanwhile by someone else, whose erasure recorded and scrubbed it
        scrubbed = _index_scrub(label=label, photos=embedded)
        checkins = deleted.get("recognition.CheckIn", 0)
        audit_record(actor=actor, action=Action.ERASE, object_type="enrollment.person", object_id=pk,
                     summary=f"erased person #{pk}: {len(names)} photos, their templates, {checkins} check-ins "
                             f"(their snapshots), {history} admin history entries, {scrubbed} index versions "
                             "rewritten or deleted" + (f"; {note}" if note else ""))
        transaction.on_commit(lambda: _delete_media(names, folder=f"faces/{pk}", everything=True))
        transaction.on_commit(index_cache_clear)
        index_rebuild_request(actor=actor, reason=f"person #{pk} erased")
    return True


class Reapplied(models.TextChoices):
    """What :func:`person_erasure_reapply` found (and did) for one erased person's id."""

    ERASED = "erased", "erased again"
    ABSENT = "absent", "already absent"
    REUSED = "reused", "left alone: the id now names someone enrolled after the erasure"


def person_erasure_reapply(*, person_id: int, erased_at: datetime, erased_by: str, actor: object | None,
                           dry_run: bool = False) -> Reapplied:
    """Apply again an erasure that a restored backup undid (``manage.py reapply_erasures``).

    ``erased_at``/``erased_by``: the time and actor of the erasure's audit record (the latest one of
    this id). A person of that id created before then is the one erased, brought back by the
    restore: erased again by :func:`person_erase`, whose audit record notes the first erasure. A
    person created after it holds an id handed out again (a sequence the restore set back) and is
    left alone. When nobody has the id, the erasure's record is written again if the restored log
    lacks it (the restore lost it), so that the log still says who erased person #N, when. The
    log holds it when it has an erase record of the id from ``erased_at`` on: the record itself
    (the same time), or one written since the restore (by an earlier run). An older erase record
    of the id is of an earlier holder (an id the first restore handed out again), not this one.
    ``dry_run``: nothing is written; the answer says what would be done.
    """
    first = f"again after a restore (first erased {erased_at.isoformat()} by {erased_by or 'system'})"
    person = Person.objects.filter(pk=person_id).first()
    if person is not None and person.created_at > erased_at:
        return Reapplied.REUSED
    if person is not None and (dry_run or person_erase(person=person, actor=actor, note=first)):
        return Reapplied.ERASED
    if not dry_run and not AuditEvent.objects.for_object("enrollment.person", person_id).filter(
            action=Action.ERASE, at__gte=erased_at).exists():
        audit_record(actor=actor, action=Action.ERASE, object_type="enrollment.person", object_id=person_id,
                     summary=f"erasure of person #{person_id} recorded {first}: nothing of them was restored")
    return Reapplied.ABSENT


def _admin_history_delete(*, person_id: int) -> int:
    """Delete Django's admin history (``django_admin_log``) of a person, of their photos and of their
    check-ins; call it before they are deleted. Rows of the person held their name before the
    admin kept only ids; rows of photos and check-ins name the person's id ("photo #3 of person
    #12", "check-in #7 of person #12 at …"), with attendance times: those of photos and check-ins
    removed earlier are found by that text, exactly (not "person #123"). Returns the rows deleted."""
    from recognition.models import CheckIn  # here: recognition's models import enrollment's

    def about(model: type[models.Model]) -> Q:
        ids = (model.objects.filter(person_id=person_id)
               .annotate(object_id=Cast("pk", models.CharField())).values("object_id"))   # object_id is text
        named = (Q(object_repr__endswith=f" of person #{person_id}")
                 | Q(object_repr__contains=f" of person #{person_id} at "))
        return Q(content_type=ContentType.objects.get_for_model(model)) & (Q(object_id__in=ids) | named)

    person = Q(content_type=ContentType.objects.get_for_model(Person), object_id=str(person_id))
    return LogEntry.objects.filter(person | about(FacePhoto) | about(CheckIn)).delete()[0]


# --------------------------------------------------------------------------------------------
# subject access (GDPR art. 15 and 20): a copy of what the site holds about one person

EXPORT_README = """\
What this site (MaskNet, face check-in) holds about person #{pk}, exported {at}.

person.json     The person's record: name, staff id, department, notes, whether they may check
                in (active), whether check-ins may add photos (gallery_adaptation), when the
                record was created and last changed.
photos/         Each enrollment photo, byte for byte as stored. The site strips metadata (EXIF,
                GPS position, camera) from photos when they are added, so these hold the picture
                only. Named by the photo's id.
photos.json     Each photo's facts: when it was added and how (upload: the admin page or the API;
                webcam: captured on the admin page; import: a bulk import; check-in: kept by
                gallery adaptation from a confident check-in at a kiosk), the face box found in
                it, its quality and whether it shows a mask, and whether the recognizer has made
                face templates of it (embedding_state).
templates.json  The face templates: lists of numbers the recognizer computed from each photo
                (one per photo, plus one of the photo with drawn-on masks), named with the
                recognizer and its version. They are what kiosks compare faces with. They are
                derived from the photos above and mean nothing without the same recognizer.
                "template_version" names the exact models and settings that made them. The
                site's index files hold the same numbers (or their mean), labelled with the
                person's id only.
checkins.csv    Every check-in: local time (ISO 8601, with the offset from UTC), local date,
                site, kiosk, whether a mask was worn, the match score and how many camera frames
                confirmed it.
snapshots/      The face snapshot a kiosk kept of a check-in, where one was kept (only when the
                site keeps them, and for a limited time), named by the check-in's id.
audit.csv       The records of the site's audit log that concern this person: who did what,
                and when (staff and integrations are named by their user id, not by name): the
                record created or changed, photos added or removed, check-ins accepted, face
                searches that named this person, earlier exports. Other people's ids read
                "#other". This export's own record is not in it, nor records from before the
                person's record was created (they are of someone who had the same id before).
"""

# kinds of template (recognition.engine.gallery), as templates.json names them
_TEMPLATE_KINDS = {UNMASKED: "photo", SYNTHETIC_MASK: "photo with drawn-on masks (mean)"}
# a person's id in an audit summary: "person #12", and the later ids of a face search's list
# "(person #12 0.812, #7 0.701)"
_PERSON_MENTION = re.compile(r"(?<=person #)\d+|(?<=, #)\d+(?= -?\d)")
AUDIT_EXPORT_HEADER = ["time", "action", "actor", "object_type", "object_id", "summary"]


class ExportTooLarge(EnrollmentError):
    """The person's archive would be larger than ``MASKNET_EXPORT_MAX_BYTES``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The export is larger than the limit of {amount(limit, 'bytes')} (MASKNET_EXPORT_MAX_BYTES): "
                         f"raise it for this export, or answer the request by hand.")


class _BoundedZip:
    """A ZIP written in memory that raises :class:`ExportTooLarge` once it outgrows ``limit``
    bytes, checked after each piece (a photo, 64 KiB of CSV, one template set): memory stays near
    the limit (the buffer is copied as it grows) and one piece."""

    def __init__(self, limit: int) -> None:
        self.limit, self.buffer = limit, io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w")
        self.stamp = timezone.localtime().timetuple()[:6]

    def _info(self, name: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.stamp)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED   # JPEGs do not shrink
        info.external_attr = 0o600 << 16
        return info

    def _check(self) -> None:
        if self.buffer.tell() > self.limit:
            raise ExportTooLarge(self.limit)

    def add(self, name: str, data: bytes | str, *, compress: bool = True) -> None:
        """One file of ``data``."""
        self.zip.writestr(self._info(name, compress), data)
        self._check()

    def add_text(self, name: str, pieces: Iterable[str]) -> None:
        """One text file written piece by piece (a long CSV is never whole in memory)."""
        with self.zip.open(self._info(name, True), "w", force_zip64=True) as out:
            for piece in pieces:
                out.write(piece.encode())
                self._check()

    def close(self) -> bytes:
        """The archive's bytes."""
        self.zip.close()
        self._check()
        return self.buffer.getvalue()


def _tallied(rows: Iterable[list[object]], tally: list[int]) -> Iterator[list[object]]:
    """``rows``, counting them in ``tally[0]`` as they pass (what an audit summary says was written)."""
    for row in rows:
        tally[0] += 1
        yield row


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def _export_photos(archive: _BoundedZip, photos: list[FacePhoto]) -> list[dict]:
    """Each photo's file into ``photos/``, and its facts for photos.json."""
    counts = dict(PhotoTemplates.objects.filter(photo__in=photos).values("photo_id")
                  .annotate(n=models.Count("id")).values_list("photo_id", "n"))
    facts = []
    for photo in photos:
        name = f"photos/{photo.pk}{Path(photo.image.name).suffix.lower() or '.jpg'}"
        try:
            with default_storage.open(photo.image.name, "rb") as f:
                archive.add(name, f.read(), compress=False)
        except OSError:   # deleted from the disk (file_missing), or removed meanwhile
            name = None
        facts.append({"id": photo.pk, "file": name, "added_at": photo.created_at.isoformat(),
                      "how": photo.source, "width": photo.width, "height": photo.height,
                      "sha256_of_upload": photo.sha256, "face_box": photo.box, "quality_score": photo.quality_score,
                      "quality_verdict": photo.quality_verdict, "masked": photo.masked,
                      "masked_probability": photo.masked_prob, "embedding_state": photo.embedding_state,
                      "embedding_error": photo.embedding_error, "templates": counts.get(photo.pk, 0)})
    return facts


def _export_templates(photos: list[FacePhoto]) -> Iterator[str]:
    """templates.json, one template set (a photo's templates of one version) at a time: every cached
    template of the photos, as numbers (float32, shortest form). A person with many templates is
    never whole in memory: :meth:`_BoundedZip.add_text` checks the size after each piece."""
    rows = (PhotoTemplates.objects.filter(photo__in=photos).order_by("photo_id", "template_version")
            .values_list("photo_id", "template_version", "dim", "count", "vectors", "kinds"))
    yield f'{{\n  "recognizer": {json.dumps(settings.MASKNET_DESCRIPTOR, ensure_ascii=False)},\n  "sets": ['
    separator = "\n"
    for photo_id, version, dim, count, vectors, kinds in rows.iterator(chunk_size=100):
        vecs, kind = PhotoTemplates.unpack(dim, count, vectors, kinds)
        templates = [{"kind": _TEMPLATE_KINDS.get(int(k), str(int(k))), "vector": [float(str(v)) for v in vec]}
                     for vec, k in zip(vecs, kind, strict=True)]
        one = {"photo": photo_id, "template_version": version, "dimensions": dim, "templates": templates}
        yield separator + textwrap.indent(json.dumps(one, indent=2, ensure_ascii=False), "    ")
        separator = ",\n"
    yield ("]" if separator == "\n" else "\n  ]") + "\n}\n"   # as json.dumps(indent=2) writes the whole


def _audit_export_rows(pk: int, photo_ids: set[str], since: datetime) -> Iterator[list[object]]:
    """audit.csv rows, oldest first: records about the person, about their photos (``photo_ids``,
    and those removed earlier, which records name as theirs), and records whose summary names the
    person's id. Other people's ids in them read ``#other``, and an object that is another person's
    (their photo, named by a look-alike check) is left out. Only records from ``since`` (the
    person's creation) on: earlier ones of the id are of someone else who held it (a restore sets
    the id sequence back: ``manage.py reapply_erasures``), their photos and erasure included."""
    own = str(pk)
    # "person #12" as a whole number, in the database: "#12" alone is in every "kiosk #12",
    # "check-in #1234"... (200,000 records read and dropped here took 20 s); LIKE first, then the regex
    # (on SQLite a Python function), on what LIKE let through; the exact test is below
    mentioned = AuditEvent.objects.filter(summary__contains=f"#{pk}", summary__regex=rf"(person #|, #){pk}([^0-9]|$)",
                                          at__gte=since)
    theirs = re.compile(rf"photo #(\d+)[^#]*person #{own}(?!\d)")   # "removed photo #3 of person #12"
    named = mentioned.filter(summary__contains="photo #").values_list("summary", flat=True)
    photo_ids = photo_ids | {m for text in named.iterator() for m in theirs.findall(text)}
    found = AuditEvent.objects.filter(Q(object_type="enrollment.person", object_id=own)
                                      | Q(object_type="enrollment.facephoto", object_id__in=sorted(photo_ids))
                                      | Q(pk__in=mentioned.values("pk")), at__gte=since)
    for event in found.order_by("at", "id").iterator(chunk_size=1000):
        about = (event.object_type == "enrollment.person" and event.object_id == own) or (
            event.object_type == "enrollment.facephoto" and event.object_id in photo_ids)
        if not about and own not in _PERSON_MENTION.findall(event.summary):
            continue
        others = event.object_type in ("enrollment.person", "enrollment.facephoto") and not about
        summary = _PERSON_MENTION.sub(lambda m: m[0] if m[0] == own else "other", event.summary)
        actor = f"user #{event.actor_id}" if event.actor_id is not None else event.actor or "system"
        yield [timezone.localtime(event.at).isoformat(timespec="seconds"), event.action, actor,
               event.object_type, "" if others else event.object_id, summary]


def person_export(*, person: Person, actor: object | None) -> bytes:
    """A ZIP of what the site holds about ``person`` (the right of access, GDPR art. 15, in the
    portable form art. 20 asks for): README.txt (what each file is), person.json, photos/ (each
    file as stored: metadata was stripped on upload), photos.json, templates.json, checkins.csv
    (the attendance export's columns and writer, formulas neutralised), snapshots/ (check-in face
    snapshots, where kept) and audit.csv (audit records that concern them; this export's own
    record excluded). Audited as "exported person #id's data".

    The face templates are included, as numbers with the recognizer's name and version: they are
    biometric data the site processes about the person (art. 15 covers derived data), and the
    archive holds the photos they are computed from anyway, so leaving them out would protect
    nothing while answering less than was asked.

    Built in memory, at most ``MASKNET_EXPORT_MAX_BYTES``: :class:`ExportTooLarge` beyond (nothing
    audited then). ``Person.DoesNotExist`` when the person is erased before it is done.
    """
    from recognition.models import CheckIn  # here: recognition's models import enrollment's

    pk = person.pk
    person = Person.objects.get(pk=pk)   # as stored now
    photos = list(FacePhoto.objects.filter(person_id=pk).order_by("pk"))
    archive = _BoundedZip(settings.MASKNET_EXPORT_MAX_BYTES)
    archive.add("README.txt", EXPORT_README.format(pk=pk, at=timezone.localtime().isoformat(timespec="seconds")))
    archive.add("person.json", _json({
        "id": pk, "full_name": person.full_name, "staff_id": person.staff_id, "department": person.department,
        "active": person.active, "notes": person.notes, "gallery_adaptation": person.gallery_adaptation,
        "created_at": person.created_at.isoformat(), "updated_at": person.updated_at.isoformat()}))
    archive.add("photos.json", _json(_export_photos(archive, photos)))
    archive.add_text("templates.json", _export_templates(photos))
    checkins, audited = [0], [0]
    archive.add_text("checkins.csv", csv_chunks(CHECKIN_CSV_HEADER, _tallied(
        checkin_csv_rows(CheckIn.objects.filter(person_id=pk)), checkins)))
    snapshots = CheckIn.objects.filter(person_id=pk, snapshot__isnull=False).order_by("pk").values_list("pk", flat=True)
    for checkin_id in list(snapshots):   # one at a time: each is read only when its turn comes
        data = CheckIn.objects.filter(pk=checkin_id).values_list("snapshot", flat=True).first()
        if data:
            archive.add(f"snapshots/checkin-{checkin_id}.jpg", bytes(data), compress=False)
    archive.add_text("audit.csv", csv_chunks(AUDIT_EXPORT_HEADER, _tallied(
        _audit_export_rows(pk, {str(photo.pk) for photo in photos}, person.created_at), audited)))
    data = archive.close()
    with transaction.atomic():
        # erased while the archive was being made: nothing is handed out about someone erased
        Person.objects.select_for_update().get(pk=pk)
        audit_record(actor=actor, action=Action.EXPORT, object_type="enrollment.person", object_id=pk,
                     summary=f"exported person #{pk}'s data: {counted(len(photos), 'photo')}, "
                             f"{counted(checkins[0], 'check-in')}, {counted(audited[0], 'audit record')}, "
                             f"{len(data)} bytes")
    return data


# --------------------------------------------------------------------------------------------
# photos


@dataclass(frozen=True)
class PhotoInspection:
    """What the engine says of a candidate photo.

    ``ok``: usable for enrollment; else ``code``/``message`` say why (see :data:`REFUSALS`).
    ``box``: chosen face ``[x1, y1, x2, y2]`` (pixels; for a refusal, the largest face, if any).
    ``width``/``height``: image size in pixels. ``faces``: faces detected.
    """

    ok: bool
    code: str | None
    message: str
    width: int = 0
    height: int = 0
    faces: int = 0
    box: list[float] | None = None
    quality_score: float | None = None
    quality_verdict: str = ""
    masked: bool = False
    masked_prob: float | None = None
    face: Face | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict:
        """JSON-safe view (no embedding, no pixels)."""
        return {"ok": self.ok, "code": self.code, "message": self.message, "width": self.width,
                "height": self.height, "faces": self.faces, "box": self.box, "quality_score": self.quality_score,
                "quality_verdict": self.quality_verdict, "masked": self.masked, "masked_prob": self.masked_prob}


def _refusal(code: str, message: str | None = None, **kwargs) -> PhotoInspection:
    return PhotoInspection(ok=False, code=code, message=message or REFUSALS[code], **kwargs)


def amount(n: float, unit: str) -> str:
    """``n`` of ``unit`` as people read it: bytes from 1 MiB on in MiB to a tenth ("1.5 MiB"), else
    the whole number with thousands separators ("524,288 bytes", "40,000,000 pixels")."""
    return f"{n / 2**20:.1f} MiB" if unit == "bytes" and n >= 2**20 else f"{n:,.0f} {unit}"


def _too_many_pixels(width: int | None = None, height: int | None = None) -> PhotoInspection:
    """``too_large`` for the pixel limit, saying so: compressing the file (the size limit's cure)
    would not help."""
    limit = settings.MASKNET_MAX_PIXELS
    size = f"It is {width}×{height} pixels; at most" if width and height else "At most"
    side = math.isqrt(limit)
    square = f" (e.g. {side}×{side})" if side * side == limit else ""   # a size an editor's resize box takes
    return _refusal("too_large", f"{REFUSALS['too_large']} {size} {amount(limit, 'pixels')}{square}: "
                                 f"scale it down (compressing the file would not help).",
                    width=width, height=height)


def _sniff(data: bytes) -> str | None:
    """The extension of a JPEG, PNG or WebP file, from its magic bytes."""
    for magic, _fmt, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def photo_inspect(*, data: bytes, engine: Engine | None = None) -> PhotoInspection:
    """Check a candidate photo without saving anything: type, size, exactly one usable face,
    quality. Used by :func:`photo_add` and the capture page's live feedback."""
    limit = settings.MASKNET_MAX_PHOTO_BYTES
    if len(data) > limit:
        # the callers read at most the limit and one byte: that much says "more than", not the size
        size = f"more than {amount(limit, 'bytes')}" if len(data) == limit + 1 else amount(len(data), "bytes")
        return _refusal("too_large", f"{REFUSALS['too_large']} It is {size}; at most {amount(limit, 'bytes')}.")
    if not data:
        return _refusal("empty")
    if _sniff(data) is None:
        return _refusal("file_type")
    try:
        refuse_costly(data)   # before Pillow reads the header: see recognition.engine.decode
    except UnreadableImage:
        return _refusal("unreadable")
    try:
        # Pillow raises DecompressionBombError (not an OSError) above 179 Mpx while reading the
        # header (its warning above 89 Mpx is ignored: recognition.engine.decode); both are
        # answered by the pixel limit below
        header = Image.open(io.BytesIO(data))
        width, height = header.size
        # an animated WebP (or APNG) is several pictures, maybe of several people: the first alone
        # was kept, the others dropped without a word. Not a JPEG's: a phone's MPO file holds its
        # photo and a preview or depth map as "frames", and is a still photo
        animated = header.format in ("WEBP", "PNG") and getattr(header, "n_frames", 1) > 1
    except Image.DecompressionBombError:
        return _too_many_pixels()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return _refusal("unreadable")
    if width * height > settings.MASKNET_MAX_PIXELS:
        return _too_many_pixels(width, height)
    if animated:
        return _refusal("file_type", message="An animated image: use a still photo (JPEG, PNG or WebP).",
                        width=width, height=height)
    engine = engine or recognizer.get_engine()
    try:
        image = engine.decode(data)
        height, width = image.shape[:2]  # after EXIF rotation, like the boxes
        faces = engine.analyze(image)
    except FrameTooLarge:
        return _too_many_pixels(width, height)
    except UnreadableImage:
        return _refusal("unreadable", width=width, height=height)
    except NoFaceFound:
        if min(width, height) < engine.config.min_face_px:
            # no room for a face the gate would take: "no face found" sent people looking for a
            # better face rather than a larger photo
            return _refusal("too_small", message=f"{REFUSALS['too_small']} This photo is {width}x{height} "
                                                 f"pixels; a face needs {engine.config.min_face_px} at least.",
                            width=width, height=height)
        return _refusal("no_face", width=width, height=height)
    chosen = recognizer.choose_face(faces)
    face = chosen.face or faces[0]
    # the gate's verdict, or enrolment's own (too dark or blurred for a reference photo, though a
    # kiosk frame would pass: gallery.ENROL_MIN_BRIGHTNESS / ENROL_MIN_SHARPNESS)
    verdict = face.quality.reason or (chosen.reason if chosen.reason in (TOO_DARK, BLURRY) else "ok")
    facts = {"width": width, "height": height, "faces": chosen.faces, "box": [round(float(v), 1) for v in face.box],
             "quality_score": round(face.quality.score, 3), "quality_verdict": verdict,
             "masked": face.masked, "masked_prob": round(face.masked_prob, 3)}
    if chosen.reason:
        return PhotoInspection(ok=False, code=chosen.reason, message=REFUSALS.get(chosen.reason, chosen.reason),
                               **facts)
    turned = _turned_upright(engine, image, face) if face.masked else None
    if turned:
        return _refusal(turned, **facts)
    return PhotoInspection(ok=True, code=None, message="Good photo.", face=face, **facts)


def photo_choose(*, photos: Iterable[bytes], engine: Engine | None = None) -> tuple[int | None, list[PhotoInspection]]:
    """The best of a burst (the capture page's frames of one moment): each photo inspected
    (:func:`photo_inspect`), and the position of the one with the highest quality score among those
    that pass every check (the first of equals), or ``None`` when none passes. A burst's frames are
    nearly identical and count about as one photo (docs/enrollment.md): one is all that is worth
    storing. Saves nothing; pass the chosen inspection to :func:`photo_add`, which then does not
    analyse the face again. A frame identical to an earlier one (a frozen camera sends the same
    picture again) gets that one's inspection, not another analysis."""
    seen: dict[bytes, PhotoInspection] = {}
    inspections = []
    for data in photos:
        digest = hashlib.sha256(data).digest()
        if digest not in seen:
            seen[digest] = photo_inspect(data=data, engine=engine)
        inspections.append(seen[digest])
    good = [i for i, inspection in enumerate(inspections) if inspection.ok]
    best = max(good, key=lambda i: inspections[i].quality_score or 0.0, default=None)
    return best, inspections


def _turned_upright(engine: Engine, image: np.ndarray, face: Face) -> str | None:
    """``"upside_down"`` or ``"sideways"`` when ``image`` turned half a circle or, for a face not level,
    a quarter either way shows a usable face without a mask; else ``None``. Asked of faces the mask
    head called masked alone (one more analysis each, three for a face not level).

    An upside-down photo (its EXIF orientation lost by an editor, a scan fed the wrong way) passes
    every check, and the mask head calls its face masked (192 of 193 LFW photos turned so; 6 of 199
    upright): it was enrolled as a masked template that matches nobody. An engine review's rule: 61
    of 62 such photos refused, none of 47 real masked photos nor 92 upright ones. The alignment
    reads an upside-down face as upright (its roll within 16 degrees of level), so that turn is
    tried whatever the roll.

    A photo on its side is mostly analysed as if upright (FaceMesh stands the face up), but a few
    are called masked and were enrolled as such a template (LFW DevTest, 150 people's first photos
    turned a quarter each way, JPEG 90: 4 of 300 taken as masked; this rule refuses 2 of them and
    none of the upright photos). Those the alignment misread, so the roll says neither that they
    lie on their side nor which way (-24 degrees for one turned clockwise): both quarter turns are
    tried once the roll passes 20 degrees (upright and upside-down LFW photos: within 16). None of
    94 real masked photos (RWMFD) the engine takes is refused by any of the three turns (2026-12-05)."""
    roll = math.degrees(math.atan2(face.align_matrix[1][0], face.align_matrix[0][0]))
    turns = [("upside_down", cv2.ROTATE_180)]
    if abs(roll) > 20:
        turns += [("sideways", cv2.ROTATE_90_CLOCKWISE), ("sideways", cv2.ROTATE_90_COUNTERCLOCKWISE)]
    for code, turn in turns:
        try:
            turned = recognizer.choose_face(engine.analyze(cv2.rotate(image, turn)))
        except NoFaceFound:
            continue
        if turned.face is not None and not turned.reason and not turned.face.masked:
            return code
    return None


def photo_add(*, person: Person, data: bytes, actor: object | None, filename: str = "photo.jpg",
              source: str = FacePhoto.Source.UPLOAD, embed: bool = False,
              schedule_rebuild: bool = True, why: str = "", inspection: PhotoInspection | None = None,
              check_lookalike: bool = True, max_photos: int | None = None,
              while_adapting: bool = False) -> FacePhoto:
    """Validate and store one enrollment photo; raises :class:`PhotoRefused` with the reason, or
    ``Person.DoesNotExist`` when the person was erased (or deleted) meanwhile.

    ``embed``: also compute and cache its templates now (bulk imports; otherwise the rebuild
    does it). ``schedule_rebuild``: queue a (debounced) index rebuild after commit. ``why``: added
    to the audit record's summary. ``inspection``: :func:`photo_inspect`'s of these very bytes, when
    the caller has it. ``check_lookalike``: look for another person with this face (below).
    ``max_photos``: refuse (``enough_photos``) when the person already has that many photos, checked
    where adds to one person take turns, so that two adds at once cannot both pass it.
    ``while_adapting`` (gallery adaptation): refuse (``adaptation_stopped``) unless the person is
    still active with adaptation on, read there too (an administrator may have stopped it, removed
    a kept photo or deactivated them while the face was checked).
    """
    sha = hashlib.sha256(data).hexdigest()
    _refuse_known(person, sha)
    engine = recognizer.get_engine()
    inspection = inspection or photo_inspect(data=data, engine=engine)
    if not inspection.ok:
        raise PhotoRefused(inspection.code, message=inspection.message)
    photo = FacePhoto(person=person, source=source, sha256=sha, width=inspection.width, height=inspection.height,
                      box=inspection.box, quality_score=inspection.quality_score,
                      quality_verdict=inspection.quality_verdict, masked=inspection.masked,
                      masked_prob=inspection.masked_prob,
                      added_by=actor if getattr(actor, "is_authenticated", False) else None)
    # kept without its metadata (a phone photo's EXIF holds where and when it was taken); the
    # duplicate checks go by the upload's digest
    stored = without_metadata(data, max_bytes=settings.MASKNET_MAX_PHOTO_BYTES, max_pixels=settings.MASKNET_MAX_PIXELS)
    if stored is not data:
        _scale_to_stored(photo, stored)
    try:
        # inside the try: a write that fails (a full disk) is the caller's error like any other; a
        # partial file it leaves has no row and goes with photo_files_sweep
        photo.image.save(Path(filename).stem[:40] + _sniff(stored), ContentFile(stored), save=False)
        with transaction.atomic():
            # adds to one person take turns from here (PostgreSQL): the same photo sent twice at
            # once (a double submit) is refused as a duplicate instead of stored twice
            # (FOR NO KEY UPDATE: a check-in of the person, which locks the row the same way,
            # waits a moment, and neither waits for the other's foreign keys); an erasure
            # that committed while the photo was inspected left no row to add it to (its insert
            # would break the foreign key at commit)
            row = (Person.objects.select_for_update(no_key=True).filter(pk=person.pk)
                   .values_list("active", "gallery_adaptation").first())
            if row is None:
                raise Person.DoesNotExist(f"person #{person.pk} was erased while their photo was being added")
            # and adds of this file take turns whoever they are for, until the photo is stored:
            # the person's lock alone let one file sent to two people at once pass both checks
            _photo_digest_take_turns(sha)
            _refuse_known(person, sha)
            if max_photos is not None and FacePhoto.objects.filter(person_id=person.pk).count() >= max_photos:
                raise PhotoRefused("enough_photos")
            if while_adapting and not all(row):
                raise PhotoRefused("adaptation_stopped")
            photo.save()
            audit_record(actor=actor, action=Action.PHOTO_ADD, obj=photo,
                         summary=f"added photo #{photo.pk} ({source}) to person #{person.pk}"
                                 + (f": {why}" if why else ""))
            if schedule_rebuild:
                # a kept check-in photo's run does not name the person: the runs' times, which
                # Enrollers see, would tell them when that person checked in
                index_rebuild_request(actor=actor, reason="a photo kept from a check-in (gallery adaptation)"
                                      if source == FacePhoto.Source.CHECKIN else f"photo added to person #{person.pk}")
    except BaseException as exc:
        if photo.image.name:
            # the person gone: their folder too, which this file made again after the erasure emptied it
            gone = isinstance(exc, Person.DoesNotExist)
            _delete_media([photo.image.name], folder=str(Path(photo.image.name).parent) if gone else None)
        raise
    if embed:  # after the photo's transaction (embedding takes a second): a failure leaves it to the rebuild
        try:
            _templates_store(photo=photo, templates=recognizer.face_templates(engine, inspection.face, seed=photo.pk),
                             version=recognizer.template_version())
        except (*EMBED_ERRORS, DatabaseError) as exc:
            log.warning("photo #%s stored; its templates were not (the next rebuild makes them): %s", photo.pk, exc)
    photo.lookalike = None
    try:   # advice only: the photo is stored, whatever happens here
        if check_lookalike:
            photo.lookalike = photo_lookalike(person=person, face=inspection.face, engine=engine)
    except Exception:  # noqa: BLE001 - photo.lookalike stays None
        log.warning("photo #%s stored; the look-alike check failed", photo.pk, exc_info=True)
    return photo


def _scale_to_stored(photo: FacePhoto, stored: bytes) -> None:
    """Fit ``photo``'s size and face box (the upload's) to ``stored``, which :func:`without_metadata`
    scaled down to keep under the size limit (the box picks the face again at each rebuild)."""
    with Image.open(io.BytesIO(stored)) as img:
        width, height = img.size
    if (width, height) == (photo.width, photo.height):
        return
    sx, sy = width / photo.width, height / photo.height
    photo.box = [round(v * s, 1) for v, s in zip(photo.box, (sx, sy, sx, sy), strict=True)]
    photo.width, photo.height = width, height


def photo_lookalike(*, person: Person, face: Face, engine: Engine) -> tuple[Person, float] | None:
    """Another active person whom this enrolment face matches in the active index, as a kiosk would
    decide it (the site's thresholds), with the score; ``None`` when nobody else or no usable index.
    The same face under two people (a photo filed under the wrong person, someone enrolled twice)
    would send check-ins to either: the admin says so when the photo is added."""
    decision = _index_decision(face, engine)
    if (decision is None or not decision.accepted or not decision.label or not decision.label.isdigit()
            or decision.label == str(person.pk)):
        return None
    other = Person.objects.active().filter(pk=int(decision.label)).first()
    return (other, float(decision.score)) if other is not None else None


def photo_lookalike_shown(*, photo: FacePhoto, actor: object, may_search: bool,
                          via: str) -> tuple[Person, float] | None:
    """The other person a just-added photo's face matches (:func:`photo_lookalike`), for a caller
    who may search faces (``may_search``: ``enrollment.recognise_face``, or the API's scope
    ``recognise``); the answer is a face search's, so it is on record as identify's are (``via``
    says where: "photo upload", "admin photo upload"). ``None`` when nobody else, or for a caller
    who may not search faces: they are told only that the face matches someone."""
    found = getattr(photo, "lookalike", None)
    if found is None or not may_search:
        return None
    other, score = found
    audit_record(actor=actor, action=Action.API_IDENTIFY, object_type="enrollment.facephoto", object_id=photo.pk,
                 summary=f"{via}: looks like person #{other.pk} {score:.3f}")
    return other, score


def _index_decision(face: Face, engine: Engine) -> Decision | None:
    """``face`` identified in the active index as a kiosk would decide it (the site's thresholds);
    ``None`` without a usable index (none, made by another recognizer, whose scores mean nothing
    here, unreadable, empty or of another size) or without an embedding."""
    version = IndexVersion.objects.current()
    if version is None or version.outdated or face.embedding is None:
        return None
    try:
        index = version.load()
    except EngineError:    # a damaged index file: the kiosks answer "unavailable" meanwhile
        return None
    if index is None or not len(index) or index.dim != engine.dim:
        return None
    return identify(engine, face, index, version.site_thresholds())


def person_gallery_adaptation_stop(*, person: Person, actor: object | None) -> Person:
    """Gallery adaptation adds no more photos of this person (their photos stay); audited."""
    with transaction.atomic():
        if Person.objects.filter(pk=person.pk, gallery_adaptation=True).update(gallery_adaptation=False):
            audit_record(actor=actor, action=Action.UPDATE, obj=person,
                         summary=f"stopped gallery adaptation for person #{person.pk}")
    person.gallery_adaptation = False
    return person


def photo_add_from_checkin(*, person_id: int, data: bytes, checkin_id: int) -> FacePhoto | None:
    """Gallery adaptation (``MASKNET_GALLERY_ADAPT``): keep the face of a confident check-in as one
    more photo of the person checked in (source ``checkin``), so that someone enrolled from one
    photo soon has two, which masked recognition needs most (docs/accuracy.md, "Gallery adaptation").

    ``data``: the JPEG the kiosk cut around the face (:func:`recognition.consumers.face_photo`).
    The photo is checked again as it will be stored, and kept only if every condition holds: the
    setting is on; the person is active, has fewer than ``MASKNET_GALLERY_ADAPT_MAX_PHOTOS`` photos
    (counted again as the photo is stored, so that two kiosks at once cannot both pass it)
    and adaptation was not stopped for them (``Person.gallery_adaptation``); the photo passes
    enrolment's checks (:func:`photo_inspect`, not a duplicate) unmasked; the active index (current,
    made by this recognizer) names this person for it, accepted; and it scores at least
    ``MASKNET_GALLERY_ADAPT_MARGIN`` above that threshold against the person's own photos that were
    *not* kept this way (so that a wrong photo kept once cannot make the next one easier). Anything
    else returns ``None`` and keeps nothing (an INFO log line says why, without names or pixels,
    except when the first look finds the setting off, adaptation stopped or enough photos: the
    usual cases). The photo's audit record names the check-in; the admin lists it among the
    person's photos, where removing it stops adaptation for that person (:func:`photo_remove`).
    """
    def skip(why: str) -> None:
        log.info("check-in #%s: its face was not added to person #%s's photos: %s", checkin_id, person_id, why)

    if not settings.MASKNET_GALLERY_ADAPT:
        return None
    person = Person.objects.active().filter(pk=person_id).first()
    if person is None:
        return skip("not an active person")
    if not person.gallery_adaptation or person.photos.count() >= settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS:
        return None
    engine = recognizer.get_engine()
    inspection = photo_inspect(data=data, engine=engine)
    if not inspection.ok:
        return skip(f"refused as an enrolment photo ({inspection.code})")
    face = inspection.face
    if inspection.masked or face is None or face.embedding is None:
        return skip("masked" if inspection.masked else "no embedding")
    decision = _index_decision(face, engine)
    if decision is None:
        return skip("no current index to confirm the identity with")
    if decision.label != str(person.pk) or not decision.accepted:
        return skip(f"the index names another identity or nobody (score {decision.score:.3f})")
    needed = decision.threshold + settings.MASKNET_GALLERY_ADAPT_MARGIN
    own = _own_unmasked_score(person, face.embedding)
    if own is None or own < needed:
        return skip("not confirmed by their own enrolment photos (score "
                    + ("none" if own is None else f"{own:.3f}") + f", {needed:.3f} needed)")
    try:
        return photo_add(person=person, data=data, actor=None, filename=f"checkin-{checkin_id}.jpg",
                         source=FacePhoto.Source.CHECKIN, inspection=inspection, check_lookalike=False,
                         max_photos=settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS, while_adapting=True,
                         why=f"gallery adaptation from check-in #{checkin_id} (score {own:.3f})")
    except PhotoRefused as exc:    # the same crop twice (a duplicate), or another site's kept first
        return skip(f"refused ({exc.code})")
    except Person.DoesNotExist:
        return skip("erased meanwhile")


def _own_unmasked_score(person: Person, embedding: np.ndarray) -> float | None:
    """``embedding``'s score against the person's unmasked template made from their photos that
    gallery adaptation did not add (their cached templates for this recognizer, combined as the
    index combines a person's photos: :func:`gallery.person_templates`, its margin taken off);
    ``None`` when none of those photos has an unmasked template yet."""
    rows = (PhotoTemplates.objects.filter(photo__person=person, template_version=recognizer.template_version())
            .exclude(photo__source=FacePhoto.Source.CHECKIN)
            .values_list("dim", "count", "vectors", "kinds", "photo__quality_score"))
    photos, qualities = [], []
    for d, count, blob, kind_blob, quality in rows:
        photos.append(Templates(*PhotoTemplates.unpack(d, count, blob, kind_blob)))
        qualities.append(quality)
    combined = person_templates(photos, qualities)
    unmasked = combined.kinds == UNMASKED
    if not unmasked.any() or combined.vectors.shape[1] != len(embedding):
        return None
    return float((combined.vectors[unmasked] @ embedding - combined.margins[unmasked]).max())


# PostgreSQL advisory lock class of photo files (below): "face" in ASCII. The two-key form: a key
# space apart from INDEX_WRITERS_LOCK's single 64-bit key
PHOTO_FILE_LOCK = 0x66616365


def _photo_digest_take_turns(sha: str) -> None:
    """Make this transaction's add of the file whose SHA-256 is ``sha`` wait for any other add of it
    to commit, whoever it is for, so that :func:`_refuse_known` then sees its row: two uploads of one
    file to two people at once each checked ``enrolled_elsewhere`` before the other had stored its
    photo, and both were stored. PostgreSQL: an advisory lock on the digest's first 32 bits, held to
    the end of the transaction (the rest of a short one: the face was inspected and the file
    written before it began; files that share those bits take turns for nothing, a moment); taken by
    photo adds alone, after the person's row and before anything else, so it waits on none of the
    rebuild's locks. SQLite runs one writer at a time anyway (its transactions take the write lock
    when they begin: ``transaction_mode`` ``IMMEDIATE``, settings)."""
    if connection.vendor == "postgresql":
        key = int(sha[:8], 16)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           [PHOTO_FILE_LOCK, key - 2**32 if key >= 2**31 else key])


def _refuse_known(person: Person, sha: str) -> None:
    """The same file again for this person (``duplicate``), or one enrolled for someone else
    (``enrolled_elsewhere``: one photo under two identities would make the index confuse them)."""
    owners = set(FacePhoto.objects.filter(sha256=sha).values_list("person_id", flat=True))
    if person.pk in owners:
        raise PhotoRefused("duplicate")
    if owners:
        raise PhotoRefused("enrolled_elsewhere")


def photo_remove(*, photo: FacePhoto, actor: object | None) -> None:
    """Delete a photo, its file (after commit) and its cached templates; queues a rebuild."""
    pk, person_id, name = photo.pk, photo.person_id, photo.image.name
    adapted = photo.source == FacePhoto.Source.CHECKIN
    with transaction.atomic():
        if not FacePhoto.objects.select_for_update().filter(pk=pk).exists():   # locked: see person_erase
            return   # removed meanwhile (another administrator, an erasure): nothing to record
        photo.delete()
        # a photo kept by gallery adaptation that an administrator removes was a wrong one, or one
        # they did not want: adaptation stops for this person rather than keep another the next day
        stopped = adapted and Person.objects.filter(pk=person_id, gallery_adaptation=True).update(
            gallery_adaptation=False)
        audit_record(actor=actor, action=Action.PHOTO_REMOVE, object_type="enrollment.facephoto", object_id=pk,
                     summary=f"removed photo #{pk} of person #{person_id}"
                             + ("; gallery adaptation stopped for them" if stopped else ""))
        transaction.on_commit(lambda: _delete_media([name]))
        index_rebuild_request(actor=actor, reason=f"photo removed from person #{person_id}", photo_removed=True)


def photos_embed_again(*, photos: Iterable[FacePhoto], actor: object | None) -> tuple[int, TrainingRun | None]:
    """Have the next rebuild try again the ``photos`` that rebuilds of this recognizer version leave
    out (failed for a cause of their own: ``embed_failed_version``), e.g. once the cause is known to
    be gone; audited one by one, and a rebuild is queued as for other enrolment changes. Photos
    not left out (not failed, failed under other models, a file missing or unreadable: every
    rebuild tries those) are left as they are. Returns how many were marked, and the run queued
    (``None`` when none was)."""
    version = recognizer.template_version()
    done = 0
    with transaction.atomic():
        for photo in photos:
            # conditional: one embedded, removed or already asked for meanwhile is not counted twice
            if not FacePhoto.objects.filter(pk=photo.pk, embedding_state=FacePhoto.Embedding.FAILED,
                                            embed_failed_version=version).update(embed_failed_version="",
                                                                                 embed_attempts=0):
                continue
            done += 1
            # it stays "failed" (its error kept) until the rebuild's outcome: counted "failed before"
            audit_record(actor=actor, action=Action.UPDATE, obj=photo,
                         summary=f"photo #{photo.pk} of person #{photo.person_id} to be tried again at the next "
                                 f"rebuild (left out after: {photo.embedding_error})")
        run = index_rebuild_request(actor=actor, reason=f"{counted(done, 'photo')} to try again") if done else None
    return done, run


# photos one transaction of the purge deletes: each row takes its templates and an audit record with it
# (the decision records' PURGE_BATCH, 10,000, would hold SQLite's write lock past a kiosk's timeout)
ADAPTED_PURGE_BATCH = 200


def adapted_photo_expiry(photo: FacePhoto) -> date | None:
    """The day the retention purge deletes ``photo`` (:func:`adapted_photos_purge`; local time), for
    a photo kept by gallery adaptation while ``MASKNET_RETENTION_ADAPTED_DAYS`` is set; else ``None``."""
    days = int(settings.MASKNET_RETENTION_ADAPTED_DAYS)
    if photo.source != FacePhoto.Source.CHECKIN or days <= 0 or photo.created_at is None:
        return None
    # the purge runs daily: it deletes the photo on the first run after this day's moment
    return timezone.localdate(photo.created_at + timedelta(days=days))


def adapted_photos_purge(*, older_than_days: int, now: datetime | None = None, dry_run: bool = False,
                         failed: list[str] | None = None) -> int:
    """Retention of the photos gallery adaptation kept (source ``checkin``;
    ``MASKNET_RETENTION_ADAPTED_DAYS``): delete those kept more than ``older_than_days`` days before
    ``now``, with their templates and files; returns how many (would be) deleted; ``0`` keeps them as
    long as the person's other photos. Run by the daily retention purge.

    In batches of :data:`ADAPTED_PURGE_BATCH`. Unlike an administrator's removal (:func:`photo_remove`),
    adaptation goes on for the person: the next confident check-in may keep a newer face, so that a
    kept photo stays a recent one. Each photo's removal is audited as a removal (which makes the next
    rebuild delete the older index versions that hold its templates, :func:`_index_prune`) and one
    rebuild is queued per batch. Files are deleted once their rows are; those that could not be go to
    ``failed`` (and the photo sweep tries them again)."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 (keep forever) or more")
    if older_than_days == 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    expired = FacePhoto.objects.filter(source=FacePhoto.Source.CHECKIN, created_at__lt=cutoff)
    if dry_run:
        return expired.count()
    removed = 0
    while True:   # in short batches (SQLite's write lock), each its own transaction
        with transaction.atomic():
            # locked as photo_remove locks one: an erasure or removal meanwhile waits, or went first
            rows = list(expired.select_for_update().order_by("id").values_list("id", "person_id", "image")
                        [:ADAPTED_PURGE_BATCH])
            if rows:
                FacePhoto.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
                for pk, person_id, _ in rows:
                    audit_record(actor=None, action=Action.PHOTO_REMOVE, object_type="enrollment.facephoto",
                                 object_id=pk, summary=f"removed photo #{pk} of person #{person_id}: retention, "
                                                       f"kept from a check-in more than {older_than_days} days ago")
                index_rebuild_request(actor=None, reason="retention: photos kept from check-ins expired",
                                      photo_removed=True)
        for _, _, name in rows:
            try:
                default_storage.delete(name)
            except OSError as exc:
                log.warning("could not delete expired photo file %s: %s", name, exc)
                if failed is not None:
                    failed.append(name)
        for folder in {str(Path(name).parent) for _, _, name in rows}:
            _delete_media([], folder=folder)   # the person's folder, once empty
        removed += len(rows)
        if len(rows) < ADAPTED_PURGE_BATCH:
            return removed


def _delete_media(names: list[str], folder: str | None = None, everything: bool = False) -> None:
    """Delete the files ``names``, then ``folder`` if empty. ``everything`` (erasure): every file in
    ``folder`` too, also files no row names (an upload whose transaction rolled back after its file
    was written)."""
    # runs after commit, best effort: an error here must not skip the other after-commit work (the
    # rebuild hand-off, the index cache); a file left behind is found by photo_files_sweep
    try:
        for name in names:
            if name:
                default_storage.delete(name)
        if folder and everything and default_storage.exists(folder):
            for name in default_storage.listdir(folder)[1]:
                default_storage.delete(f"{folder}/{name}")
        if folder:
            path = Path(settings.MEDIA_ROOT) / folder
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    except OSError as exc:
        log.error("could not delete photo files (%s): %s; the daily purge deletes them", folder or names, exc)


ORPHAN_AGE_S = 3600  # a photo file no row names is deleted once this old (it may be mid-upload)


# the sweep deletes at most this many files, or a tenth of the photos if more: beyond, it refuses
ORPHAN_SWEEP_FLOOR = 50


def photo_files_sweep(*, now: float | None = None, dry_run: bool = False, failed: list[str] | None = None) -> int:
    """Delete the photo files (``faces/<person>/…``) that no photo row names, once an hour old:
    files of an upload whose transaction rolled back (a photo's file is stored before its row
    commits), or that a failed delete left behind (erasure included). Returns how many
    (would be) deleted; the paths it could not delete are appended to ``failed``. Run by the
    daily retention purge."""
    if not default_storage.exists("faces"):
        return 0
    known = set(FacePhoto.objects.values_list("image", flat=True))
    cutoff = (now if now is not None else time.time()) - ORPHAN_AGE_S
    folders, orphans = default_storage.listdir("faces")[0], []
    for folder in folders:
        for name in default_storage.listdir(f"faces/{folder}")[1]:
            path = f"faces/{folder}/{name}"
            try:
                if path not in known and default_storage.get_modified_time(path).timestamp() < cutoff:
                    orphans.append(path)
            except OSError as exc:
                log.warning("could not sweep photo file %s: %s", path, exc)
                if failed is not None:
                    failed.append(path)
    if len(orphans) > max(ORPHAN_SWEEP_FLOOR, len(known) // 10):
        # far more than rolled-back uploads leave: this media folder is not this database's (a
        # restore that put the files back before the rows, a node pointed at another database):
        # deleting would lose enrolment photos for good. Nothing is deleted; the purge fails
        log.error("photo sweep refused: %d photo files that no photo row names against %d rows; is "
                  "DATABASE_URL this media folder's database? (docs/deployment.md, Backup and restore)",
                  len(orphans), len(known))
        if failed is not None:
            failed.extend(orphans)
        return 0
    swept = 0
    for path in orphans:
        try:
            if not dry_run:
                default_storage.delete(path)
            swept += 1
        except OSError as exc:
            log.warning("could not sweep photo file %s: %s", path, exc)
            if failed is not None:
                failed.append(path)
    if not dry_run:
        for folder in folders:
            _delete_media([], folder=f"faces/{folder}")  # the folder, once empty
    if swept and not dry_run:
        log.warning("deleted %d photo files that no photo row named", swept)
    return swept


def _templates_store(*, photo: FacePhoto, templates: Templates, version: str) -> bool:
    """Cache a photo's templates, computed beforehand: no transaction is held open while a face is
    embedded (on SQLite a write after a second-long read transaction fails with "database is
    locked" when anyone else wrote meanwhile). ``False`` when the photo was removed meanwhile."""
    vectors = np.ascontiguousarray(templates.vectors, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        usable = vectors.ndim == 2 and len(vectors) and np.isfinite(vectors).all() \
            and (np.linalg.norm(vectors, axis=1) > 1e-6).all()
    if not usable:
        # never cached: an index holding such a row is refused when written, so every later rebuild
        # would fail on it (the engine makes none; a failed computation could)
        raise EngineError("the face's templates are not finite, non-zero vectors")
    try:
        with transaction.atomic():
            # the photo row locked: an erasure or removal now waits, then takes the templates too
            if not FacePhoto.objects.select_for_update().filter(pk=photo.pk).exists():
                return False
            PhotoTemplates.objects.update_or_create(
                photo=photo, template_version=version,
                defaults={"dim": vectors.shape[1], "count": len(vectors), "vectors": vectors.tobytes(),
                          "kinds": np.ascontiguousarray(templates.kinds, np.int8).tobytes()})
            FacePhoto.objects.filter(pk=photo.pk).update(embedding_state=FacePhoto.Embedding.EMBEDDED,
                                                         embedding_error="", embed_attempts=0,
                                                         embed_failed_version="", file_missing=False)
    except IntegrityError:  # removed between the check and the insert (a database without row locks)
        return False
    return True


# --------------------------------------------------------------------------------------------
# index rebuilds


def index_rebuild_request(*, actor: object | None, reason: str, force: bool = False,
                          photo_removed: bool = False) -> TrainingRun:
    """Ask for a rebuild once the current transaction commits.

    Debounced: requests join the newest queued run and push its start back by
    ``MASKNET_REBUILD_DEBOUNCE_S``, so a burst of changes leads to one rebuild. ``force``
    (the admin action, the command) starts it without waiting. ``photo_removed``: the run is
    marked ``drops_older`` (:func:`_index_prune`).
    """
    now = timezone.now()
    flag = {"drops_older": True} if photo_removed else {}
    with transaction.atomic():
        run = TrainingRun.objects.queued().order_by("-id").first()
        joined = run is not None and TrainingRun.objects.filter(pk=run.pk, state=TrainingRun.State.QUEUED).update(
            requested_at=now, requests=F("requests") + 1, **flag) == 1
        if not joined:
            run = TrainingRun.objects.create(
                reason=reason[:200], requested_at=now,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None, **flag)
        if force:
            # asked for by hand (admin, API, command): who asked is kept even when the request
            # joins a queued run (the run keeps only its first requester); changes that queue a
            # rebuild are audited themselves
            audit_record(actor=actor, action=Action.REBUILD, obj=run,
                         summary=f"rebuild requested ({reason[:120]}): run #{run.pk}{', joined' if joined else ''}")
        dispatch.enqueue_rebuild(run.pk, countdown=0.0 if force else settings.MASKNET_REBUILD_DEBOUNCE_S,
                                 force=force)
    return run


OUTDATED_REASON = "the active index was made by an earlier recognizer version"
OUTDATED_ASK_AGAIN_S = 60   # after a run that a worker of another version found "nothing to do"
OUTDATED_ASKS = 3           # ... and at most this many such runs for one index version


def index_refresh_if_outdated() -> TrainingRun | None:
    """Ask for a rebuild when the active index was made by other models or another template scheme
    (an upgrade): the kiosks would otherwise match new embeddings against old templates. Asks once
    per version: nothing when any rebuild was requested since that version was made (one that
    failed is left to the administrator, whom the admin's status bar tells), except one that a
    worker of another version found "nothing to do" (a worker not yet restarted in an upgrade took
    the request: the kiosks then said "updating" for good); asked again a minute after such a run.
    Returns the run asked for, or ``None``."""
    current = IndexVersion.objects.current()
    if current is None or not current.outdated:
        return None
    since = TrainingRun.objects.filter(created_at__gte=current.created_at)
    nothing_done = Q(state=TrainingRun.State.SUCCEEDED, index_version__isnull=True)
    # a few times only: a node still on the earlier release sees the new index as outdated too, and
    # the new workers' "nothing to do" would otherwise make it ask every minute while it runs
    if since.exclude(nothing_done).exists() or since.filter(nothing_done).count() >= OUTDATED_ASKS or since.filter(
            nothing_done, finished_at__gte=timezone.now() - timedelta(seconds=OUTDATED_ASK_AGAIN_S)).exists():
        return None
    log.warning("index v%s was made by recognizer version %s, this one is %s: rebuilding", current.pk,
                current.model_version, recognizer.template_version())
    return index_rebuild_request(actor=None, reason=OUTDATED_REASON)


RESUME_AFTER_S = 60   # a queued run this much past its debounce has lost its message
_resume_checked = 0.0


def index_rebuild_resume_due() -> bool:
    """Whether :func:`index_rebuild_resume` would look now (no database access: callers on an event
    loop skip the thread hop when it would not)."""
    return time.monotonic() - _resume_checked >= RESUME_AFTER_S


def index_rebuild_resume(*, now: bool = False) -> int:
    """Hand the queued runs whose start is overdue, and the running runs whose worker stopped
    beating (below MAX_ATTEMPTS), to the runner again; returns how many. Their message was lost:
    the embedded runner's queue and thread die with its process (a restart), a broker can lose
    one. A deactivation waiting in such a run would otherwise keep the person recognisable until
    the next change. Nothing while a rebuild is alive (queued runs wait for it on their own);
    checked at most once a minute per process (kiosks loading the index, admin pages call it),
    unless ``now`` (Celery beat's task, whose schedule is the rhythm)."""
    global _resume_checked
    if not now and not index_rebuild_resume_due():
        return 0
    _resume_checked = time.monotonic()
    if TrainingRun.objects.alive().exists():
        return 0
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.MASKNET_REBUILD_DEBOUNCE_S + RESUME_AFTER_S)
    overdue = list(TrainingRun.objects.queued().filter(requested_at__lt=cutoff).values_list("pk", flat=True))
    # a run whose worker died with it (the embedded runner's process restarted; nothing delivers its
    # message again, as a broker does): taken over by its claim, at most MAX_ATTEMPTS times
    overdue += list(TrainingRun.objects.running().filter(heartbeat_at__lt=now - stale_after(),
                                                         attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True))
    for pk in overdue:
        log.warning("training run #%s was left queued or running by a lost message or worker: starting it", pk)
        dispatch.enqueue_rebuild(pk, countdown=0.0, force=True)   # best effort with a broker away (dispatch)
    # one whose worker died MAX_ATTEMPTS times is not started again, but must not stay "running"
    # (in embedded mode nothing else would end it until the next rebuild's claim)
    exhausted = TrainingRun.objects.running().filter(heartbeat_at__lt=now - stale_after(), attempts__gte=MAX_ATTEMPTS)
    for pk in exhausted.values_list("pk", flat=True):
        with transaction.atomic():
            run = exhausted.select_for_update().filter(pk=pk).first()
            if run is not None:
                log.warning("training run #%s: its worker stopped %s times; recorded failed", pk, run.attempts)
                _run_give_up(run, now)
    return len(overdue)


def index_rebuild(*, run_id: int | None = None, actor: object | None = None, force: bool = False,
                  on_progress: Callable[[int, str], None] | None = None,
                  new_if_finished: bool = False) -> TrainingRun | None:
    """Run one rebuild: embed photos without cached templates (but those this recognizer version
    failed to embed for a cause of their own: :func:`_photo_embed`), assemble every active person's
    templates, fit the site thresholds, write a new immutable index file and switch the active
    version atomically.

    ``run_id``: the queued run to claim (``None``: a new run, started now, e.g. by a command).
    Returns the finished run, or ``None`` when there is nothing to do for this message (already
    done, running elsewhere, or debounced: a later message will start it). Raises
    :class:`RebuildBusy` while another rebuild runs. A failure marks the run failed, leaves the
    previous version active and re-raises. ``new_if_finished``: a ``run_id`` already recorded
    failed (on a lost database connection) is replaced by a new run; one still queued or running is
    claimed (a retry after the database came back, which must not leave it queued); one that
    succeeded meanwhile is done.
    """
    if run_id is not None and new_if_finished and TrainingRun.objects.filter(
            pk=run_id, state=TrainingRun.State.FAILED).exists():
        run = TrainingRun.objects.create(reason=f"run #{run_id} again after a lost database connection")
        audit_record(actor=None, action=Action.REBUILD, obj=run,
                     summary=f"rebuild run #{run.pk}: run #{run_id} again after a lost database connection")
        run_id, force = run.pk, True
    if run_id is None:
        run = TrainingRun.objects.create(
            reason="started by hand", requested_by=actor if getattr(actor, "is_authenticated", False) else None)
        audit_record(actor=actor, action=Action.REBUILD, obj=run, summary=f"rebuild started by hand: run #{run.pk}")
        run_id, force = run.pk, True
    _engine_warm()
    run = _run_claim(run_id=run_id, force=force)
    if run is None:
        return None
    progress = _Progress(run, on_progress)
    try:
        _rebuild(run, progress)
    except RunTakenOver as exc:  # the run is another worker's now: it records the outcome
        log.warning("%s; this copy stops", exc)
        return None
    except KeyboardInterrupt as exc:
        # Ctrl-C on `rebuild_index --wait`: recorded at once; left running, the run blocked every
        # rebuild until its heartbeat went stale (MASKNET_REBUILD_STALE_S, 2 minutes)
        _run_fail(run, exc)
        raise
    except Exception as exc:
        log.exception("index rebuild (run #%s) failed", run.pk)
        _run_fail(run, exc)
        raise
    return run


def _engine_warm() -> None:
    """Load this process's recognizer before a rebuild that will embed photos claims its run.

    Loading the models can outlast ``MASKNET_REBUILD_STALE_S`` on a busy machine, and a run whose
    heartbeat is silent that long is taken over by another worker: both would then build it. A
    failure is left to the rebuild, which meets it again inside the run and records it there."""
    if not FacePhoto.objects.for_index().to_embed(recognizer.template_version()).exists():
        return
    try:
        recognizer.get_engine()
    except Exception:  # noqa: BLE001 - recorded by the run that needs the engine
        log.warning("could not load the recognizer before the rebuild", exc_info=True)


def stale_after() -> timedelta:
    """A running rebuild whose heartbeat is older than this was killed (``MASKNET_REBUILD_STALE_S``)."""
    return timedelta(seconds=settings.MASKNET_REBUILD_STALE_S)


MAX_ATTEMPTS = 3  # a run whose worker stopped this many times is not taken over again


def _still_ours(run: TrainingRun) -> TrainingRunQuerySet:
    """The run's row while it is still this worker's claim (no other worker took it over since)."""
    return TrainingRun.objects.filter(pk=run.pk, attempts=run.attempts, state=TrainingRun.State.RUNNING)


def _lock_not_available(exc: DatabaseError) -> bool:
    """Whether ``exc`` is PostgreSQL's "could not obtain lock" (SQLSTATE 55P03) of a NOWAIT."""
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "55P03"


def _run_claim(*, run_id: int, force: bool) -> TrainingRun | None:
    now = timezone.now()
    stale = stale_after()
    with transaction.atomic():
        # claims take turns: every queued and running run is locked, so two claims of different runs
        # cannot both find nobody running and both start (PostgreSQL). NOWAIT: a claim that waited
        # here (on a queued run a long admin save holds) would hold up the running run's heartbeat
        # and then find it stale; a row held elsewhere means "busy, try again" instead
        pending = (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING)
        try:
            list(TrainingRun.objects.select_for_update(nowait=True).filter(state__in=pending)
                 .order_by("pk").values_list("pk"))
            run = TrainingRun.objects.select_for_update(nowait=True).filter(pk=run_id).first()
        except DatabaseError as exc:
            if not _lock_not_available(exc):
                raise
            raise RebuildBusy(run_id, retry_after=1.0, locked=True) from exc
        if run is None or run.state in (TrainingRun.State.SUCCEEDED, TrainingRun.State.FAILED):
            return None
        if run.state == TrainingRun.State.RUNNING and run.heartbeat_at and now - run.heartbeat_at < stale:
            # Another copy of this run's message: a duplicate while it runs, or the message of a
            # worker that died moments ago, delivered again (acks_late, reject_on_worker_lost,
            # the broker's visibility timeout). Wait: when the run has finished this copy does
            # nothing; when its heartbeat has gone stale, this copy takes the run over.
            wait = (run.heartbeat_at + stale - now).total_seconds() + 1.0
            raise RebuildBusy(run.pk, retry_after=max(1.0, min(wait, stale.total_seconds())))
        debounce = timedelta(seconds=settings.MASKNET_REBUILD_DEBOUNCE_S)
        if (run.state == TrainingRun.State.QUEUED and not force
                and run.requested_at + debounce - timedelta(seconds=0.5) > now):
            return None  # more changes came in: the message queued with the last one starts it
        if TrainingRun.objects.alive(stale).exclude(pk=run.pk).exists():
            raise RebuildBusy(run.pk)
        if run.state == TrainingRun.State.RUNNING and run.attempts >= MAX_ATTEMPTS:
            # its worker stopped that many times (killed while embedding, out of memory...): taking
            # it over again would only stop the next worker too; a new request starts a new run
            _run_give_up(run, now)
            return None
        interrupted = list(TrainingRun.objects.running().exclude(pk=run.pk).values_list("pk", flat=True))
        TrainingRun.objects.filter(pk__in=interrupted).update(
            state=TrainingRun.State.FAILED, finished_at=now, message="interrupted",
            error="the worker stopped during the rebuild (killed or restarted); the previous index stayed active")
        for pk in interrupted:
            audit_record(actor=None, action=Action.REBUILD, object_type="enrollment.trainingrun", object_id=pk,
                         summary=f"run #{pk} failed (interrupted: its worker stopped); taken over by run #{run.pk}")
        # the admin pages showing them "running" hear that they ended
        for stopped in TrainingRun.objects.filter(pk__in=interrupted):
            transaction.on_commit(partial(events.training_progress, stopped))
        run.state, run.started_at, run.heartbeat_at = TrainingRun.State.RUNNING, now, now
        run.attempts += 1
        run.progress, run.message, run.error = 0, "starting", ""
        run.save(update_fields=["state", "started_at", "heartbeat_at", "attempts", "progress", "message", "error"])
    events.training_progress(run)
    return run


def _run_give_up(run: TrainingRun, now: datetime) -> None:
    """Record ``run`` (locked, running) failed for good: its worker stopped ``MAX_ATTEMPTS`` times.
    Audited, and told to the admin pages once the caller's transaction commits."""
    run.state, run.finished_at, run.message = TrainingRun.State.FAILED, now, "interrupted"
    run.error = (f"its worker stopped {run.attempts} times during the rebuild; the previous index "
                 "stayed active (see the workers' logs)")
    run.save(update_fields=["state", "finished_at", "message", "error"])
    audit_record(actor=None, action=Action.REBUILD, obj=run,
                 summary=f"run #{run.pk} failed: its worker stopped {run.attempts} times")
    transaction.on_commit(partial(events.training_progress, run))


def index_rebuild_now(*, on_progress: Callable[[int, str], None] | None = None,
                      patience_s: float = 30.0) -> TrainingRun | None:
    """A rebuild started here and now (the commands): like :func:`index_rebuild` with a new run,
    waiting up to ``patience_s`` while the runs' rows are only held for a moment (a change joining
    a queued run); raises :class:`RebuildBusy` when another rebuild runs, its own run recorded as
    not started."""
    deadline, run_id = time.monotonic() + patience_s, None
    while True:
        try:
            return index_rebuild(run_id=run_id, force=True, on_progress=on_progress)
        except RebuildBusy as exc:
            run_id = exc.run_id
            if not exc.locked or time.monotonic() + exc.retry_after > deadline:
                index_rebuild_abandon(run_id=exc.run_id, reason=str(exc))
                raise
            time.sleep(exc.retry_after)


def index_rebuild_abandon(*, run_id: int, reason: str) -> None:
    """Record a run that was created to start now but never started (another rebuild held the
    slot): failed, with ``reason``, instead of queued for good. A run that a change joined meanwhile
    (``requests`` > 1) stays queued: that change's own message starts it (failed, the change would
    wait for the next one)."""
    with transaction.atomic():
        if TrainingRun.objects.filter(pk=run_id, state=TrainingRun.State.QUEUED, requests=1).update(
                state=TrainingRun.State.FAILED, finished_at=timezone.now(), message="not started",
                error=reason[:2000]):
            run = TrainingRun.objects.get(pk=run_id)
            audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                         summary=f"run #{run_id} not started: {reason}"[:300])
            # the admin's pages showing it "queued" hear it (they do not poll)
            transaction.on_commit(partial(events.training_progress, run))


def _run_fail(run: TrainingRun, exc: BaseException) -> None:
    try:
        run.state, run.finished_at = TrainingRun.State.FAILED, timezone.now()
        run.message = "failed: the previous index stays active"
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        # only while the run is still this worker's: a stalled copy must not fail the new owner's run
        if not _still_ours(run).update(
                state=run.state, finished_at=run.finished_at, message=run.message, error=run.error):
            log.warning("run #%s: not recorded failed (%s): it is no longer this worker's running claim", run.pk,
                        run.error)
            return
        # as stored: a success record that failed in the switch's transaction (rolled back with it)
        # had filled these in, and the pages would hear of a failed run naming an index at 100 %
        run.refresh_from_db(fields=["progress", "stats", "index_version"])
        events.training_progress(run)
        audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                     summary=f"run #{run.pk} failed ({type(exc).__name__}): the previous index stays active")
    except Exception:  # noqa: BLE001 - the database may be what failed
        log.exception("could not mark run #%s failed", run.pk)


class _Progress:
    """Writes progress (and the heartbeat) to the run at most twice a second and publishes it."""

    def __init__(self, run: TrainingRun, callback: Callable[[int, str], None] | None) -> None:
        self.run, self.callback, self.last = run, callback, 0.0

    def __call__(self, percent: int, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback:
            self.callback(percent, message)
        if not force and now - self.last < 0.5:
            return
        self.last = now
        run = self.run
        run.progress, run.message, run.heartbeat_at = max(0, min(100, percent)), message[:300], timezone.now()
        # only while the run is still this worker's: one that stalled past MASKNET_REBUILD_STALE_S
        # (and was taken over: attempts moved on) must stop before it switches an index
        if not _still_ours(run).update(
                progress=run.progress, message=run.message, heartbeat_at=run.heartbeat_at):
            raise RunTakenOver(f"run #{run.pk} was taken over by another worker (attempt {run.attempts} stalled)")
        events.training_progress(run)


def _rebuild(run: TrainingRun, progress: _Progress) -> None:
    started = time.monotonic()
    version_key = recognizer.template_version()
    current = IndexVersion.objects.current()
    if run.reason == OUTDATED_REASON and run.requests == 1 and current and current.model_version == version_key:
        # asked by a node still running the earlier version (a rolling upgrade): the index is
        # current for this worker, and another version would only make that node ask again
        run.state, run.finished_at, run.progress = TrainingRun.State.SUCCEEDED, timezone.now(), 100
        run.message = f"nothing to do: index v{current.pk} is already of this recognizer version"
        with transaction.atomic():
            run.save(update_fields=["state", "finished_at", "progress", "message"])
            audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                         summary=f"run #{run.pk}: {run.message}")
        events.training_progress(run)
        return
    pending = list(FacePhoto.objects.for_index().to_embed(version_key).order_by("id"))
    again = sum(photo.embedding_state == FacePhoto.Embedding.FAILED for photo in pending)
    left_out = FacePhoto.objects.for_index().failed_for(version_key).count()
    progress(2, _to_embed_line(new=len(pending) - again, again=again, left_out=left_out), force=True)
    engine = recognizer.get_engine() if pending else None
    embedded, failed, failed_ids = 0, 0, []
    t0 = time.monotonic()
    for i, photo in enumerate(pending):
        if _photo_embed(photo=photo, engine=engine, version=version_key):
            embedded += 1
        else:
            failed += 1
            failed_ids.append(photo.pk)
        progress(5 + int(80 * (i + 1) / len(pending)), f"embedded {i + 1}/{len(pending)} photos")
    embed_s = time.monotonic() - t0
    # left out of this version's index: marked failed for it, before this run or by it (a file storage
    # could not give is not: the next rebuild tries it again)
    not_embeddable = FacePhoto.objects.for_index().failed_for(version_key).count() if failed else left_out
    # of this run's failures, those not marked failed for this version (their file missing, or
    # unreadable), read by their ids: a difference of counts also moved with the photos removed, or
    # people deactivated or reactivated, while the run embedded
    retried = FacePhoto.objects.filter(pk__in=failed_ids).exclude(embed_failed_version=version_key)
    missing = retried.filter(file_missing=True).count() if failed else 0
    to_retry = retried.filter(file_missing=False).count() if failed else 0
    progress(86, "assembling the index", force=True)
    index, photo_count, photo_templates = _index_assemble(version_key=version_key, engine=engine)
    progress(90, "fitting thresholds", force=True)
    thresholds = _thresholds_fit(index, photo_templates)
    progress(95, "writing and switching the index", force=True)
    # embedded_new: embedded by this run; embed_retried: of those it tried, the photos an earlier run
    # failed to embed (their file unreadable then); embed_left_out: not tried, failed for this version
    # embed_file_missing: of its failures, the photos whose file is gone from storage (tried again)
    metrics = {"thresholds": thresholds, "embedded_new": embedded, "embed_failed": failed,
               "embed_retried": again, "embed_left_out": left_out, "embed_file_missing": missing,
               "embed_seconds": round(embed_s, 2),
               "photos_per_second": round(embedded / embed_s, 2) if embedded else None,
               "synthetic_masks": recognizer.synthetic_masks_available()}

    def succeeded(version: IndexVersion) -> None:   # in the switch's transaction
        seconds = round(time.monotonic() - started, 2)
        run.state, run.finished_at, run.progress = TrainingRun.State.SUCCEEDED, timezone.now(), 100
        run.stats = {**metrics, "seconds": seconds, "people": len(index.identities), "templates": len(index),
                     "photos": photo_count}
        run.index_version = version
        run.message = (f"index v{version.pk} active: {counted(version.people_count, 'person', 'people')}, "
                       f"{counted(version.template_count, 'template')}, {counted(embedded, 'photo')} embedded, "
                       + (f"{counted(not_embeddable, 'photo')} left out (not embeddable), " if not_embeddable else "")
                       + (f"{counted(missing, 'photo file')} missing from storage (restore or remove), "
                          if missing else "")
                       + (f"{counted(to_retry, 'photo')} to try again (unreadable), " if to_retry else "")
                       + f"{seconds:.1f} s")
        run.save(update_fields=["state", "finished_at", "progress", "message", "stats", "index_version"])
        audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                     summary=f"run #{run.pk}: {run.message}")

    version = _index_switch(run=run, index=index, version_key=version_key, photo_count=photo_count,
                            metrics=metrics, record=succeeded)
    events.training_progress(run)
    events.index_updated(version)


def _to_embed_line(*, new: int, again: int, left_out: int) -> str:
    """The progress line of a rebuild's start: ``2 new photos to embed``, ``1 new photo and 1 that
    failed before to embed; 3 left out (failed for this recognizer)``."""
    parts = [counted(new, "new photo")] if new or not again else []
    if again:
        parts.append(f"{again if parts else counted(again, 'photo')} that failed before")
    line = " and ".join(parts) + " to embed"
    return line + (f"; {left_out} left out (failed for this recognizer)" if left_out else "")


# what one photo's embedding may raise without stopping a rebuild: the engine's errors, an unreadable
# file, and a computation that fails on this photo alone (OpenCV or numpy in the mask renderer);
# a database error is not one of them (the run fails and is retried)
EMBED_ERRORS = (EngineError, OSError, ValueError, ArithmeticError, cv2.error)
# a photo whose embedding the worker never finished this many times (killed by the kernel for its
# memory, a crash in native code) is left out, or every later rebuild would stop on it as well
PHOTO_MAX_ATTEMPTS = 2


def _embed_failure_passes(exc: BaseException) -> bool:
    """Whether a photo's failed embedding may well succeed at the next rebuild: a file storage could
    not give (``OSError``), or OpenCV out of memory (the machine's state, not the photo's). Any
    other failure is the photo's own and recurs at every rebuild of the recognizer version."""
    return isinstance(exc, OSError) or (isinstance(exc, cv2.error) and getattr(exc, "code", None) == cv2.Error.StsNoMem)


class _FileMissing(OSError):
    """Storage has no file of that name (a ``FileNotFoundError`` on opening it: not one raised later,
    by a model or mask file the engine loads)."""


def _photo_read(photo: FacePhoto) -> bytes:
    """A photo's file; :class:`_FileMissing` when storage has none."""
    try:
        with photo.image.open("rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise _FileMissing(str(exc)) from exc


def _photo_embed(*, photo: FacePhoto, engine: Engine, version: str) -> bool:
    """Compute and cache one photo's templates; a bad photo is marked failed, never fatal. The
    attempt is counted before it begins and cleared when it ends either way, so a photo that takes
    its worker down is marked failed instead of being tried again by every run.

    A failure of the photo's own (no face found, an unreadable image, a computation that fails on
    it, the worker taken down twice) is the same at every rebuild of this recognizer ``version``:
    the photo is marked failed for it (``embed_failed_version``), and those rebuilds leave it out
    (:meth:`~enrollment.models.FacePhotoQuerySet.to_embed`) rather than analyse it again and
    count it to embed; another version (other models, another template scheme) tries it again. A
    file that cannot be read from storage (``OSError``: a share that hiccupped) is marked failed
    alone, and the next rebuild tries it again.

    So is a file missing from storage (``FileNotFoundError``), marked ``file_missing`` so that the
    admin and the run's message tell it apart from a file that could not be read this time (it
    says "restore or remove", not "to try again"). Every rebuild still tries it, on purpose: a try
    costs one failed open (the photo is never analysed), and from here a file deleted for good
    looks the same as a volume not mounted on this worker or a restore under way, after which the
    photos would come back by themselves; left out instead, every photo added meanwhile would stay
    out of the index until an administrator asked for each again. It leaves that state when a
    rebuild embeds it (the file restored) or fails on it for another cause, or when it is removed."""
    if photo.embed_attempts >= PHOTO_MAX_ATTEMPTS:
        # attempts cleared: another version may try it (and count its own)
        FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embed_failed_version=version, embed_attempts=0,
            file_missing=False,
            embedding_error=f"the worker stopped {photo.embed_attempts} times while embedding this photo; "
                            "left out (remove it, or add another photo)")
        return False
    FacePhoto.objects.filter(pk=photo.pk).update(embed_attempts=F("embed_attempts") + 1)
    try:
        data = _photo_read(photo)
        faces = engine.analyze(engine.decode(data))
        face = recognizer.face_near(faces, photo.box)
        return _templates_store(photo=photo, templates=recognizer.face_templates(engine, face, seed=photo.pk),
                                version=version)
    except _FileMissing:
        FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embed_attempts=0, embed_failed_version="", file_missing=True,
            embedding_error=f"file missing from storage: {photo.image.name}"[:200])
        return False
    except EMBED_ERRORS as exc:
        FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embedding_error=f"{type(exc).__name__}: {exc}"[:200],
            embed_attempts=0, embed_failed_version="" if _embed_failure_passes(exc) else version, file_missing=False)
        return False
    except (DatabaseError, KeyboardInterrupt, SystemExit):
        # not the photo's doing (the database away, a stop asked for: Ctrl-C, a shutdown): the
        # attempt does not count (two such stops left the photo out for good). Anything else the
        # photo raises every time (a time limit on it, an error in native code) counts, as does a
        # worker killed outright, which never gets here: else every later rebuild stopped on it
        try:
            FacePhoto.objects.filter(pk=photo.pk, embed_attempts__gt=0).update(embed_attempts=F("embed_attempts") - 1)
        except DatabaseError:
            pass   # the database is away: counted, as if the worker had died
        raise


def _index_assemble(*, version_key: str, engine: Engine | None) -> tuple[Index, int, Index]:
    """The index of every active person's cached templates (labels: person ids as strings), the
    number of photos, and every photo's own templates (what probes look like, for the threshold
    fit). A person with several photos is represented in the index by their quality-weighted mean
    templates (``gallery.person_templates``)."""
    rows = (PhotoTemplates.objects.filter(template_version=version_key, photo__person__active=True)
            .order_by("photo__person_id", "photo_id")
            .values_list("photo__person_id", "dim", "count", "vectors", "kinds", "photo__quality_score"))
    people: dict[int, tuple[list[Templates], list[float | None]]] = {}
    dim, photos = None, 0
    for person_id, d, count, blob, kind_blob, quality in rows.iterator(chunk_size=500):
        dim = dim or d
        t = Templates(*PhotoTemplates.unpack(d, count, blob, kind_blob))
        entry = people.setdefault(person_id, ([], []))
        entry[0].append(t)
        entry[1].append(quality)
        photos += 1
    if dim is None:
        current = IndexVersion.objects.current()
        dim = current.dim if current and current.dim else (engine or recognizer.get_engine()).dim
    index, photo_templates = Index(dim), Index(dim)
    if people:
        pv = np.concatenate([t.vectors for ts, _ in people.values() for t in ts])
        photo_templates.vectors = pv / np.maximum(np.linalg.norm(pv, axis=1, keepdims=True), 1e-12)
        photo_templates.labels = np.array([str(pid) for pid, (ts, _) in people.items() for t in ts
                                           for _ in range(len(t.vectors))], dtype=object)
        photo_templates.kinds = np.concatenate([t.kinds for ts, _ in people.values() for t in ts]).astype(np.int8)
        vectors, labels, kinds, margins = [], [], [], []
        for person_id, (templates, qualities) in people.items():
            p = person_templates(templates, qualities)
            vectors.append(p.vectors)
            kinds.append(p.kinds)
            margins.append(p.margins)
            labels.extend([str(person_id)] * len(p.vectors))
        # one concatenation (Index.add per person would copy the matrix once per person)
        v = np.concatenate(vectors)
        index.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        index.labels = np.array(labels, dtype=object)
        index.kinds = np.concatenate(kinds).astype(np.int8)
        m = np.concatenate(margins).astype(np.float32)
        index.margins = m if m.any() else None
        # a template that is not a finite unit vector (a degenerate embedding) would make every
        # kiosk refuse the whole index: it is left out, and said
        for ix, what in ((index, "index"), (photo_templates, "photo")):
            dropped = ix.keep(ix.unit_rows())
            if dropped:
                log.warning("left %d %s templates out of the index: not finite unit vectors", dropped, what)
    return index, photos, photo_templates


def _thresholds_fit(index: Index, probes: Index | None = None, max_templates: int = 2000) -> dict:
    """Site thresholds (:func:`gallery.fit_thresholds`) over the engine's, ``MASKNET_THRESHOLD_OFFSET``
    included and recorded; ``probes`` default to the index itself. Kept in the version's metrics."""
    cfg = recognizer.engine_config()
    fitted = fit_thresholds(index, index if probes is None else probes,
                                    {"unmasked": cfg.threshold_unmasked, "masked": cfg.threshold_masked},
                                    max_templates)
    return {**fitted, "offset": settings.MASKNET_THRESHOLD_OFFSET}


def _index_name(run_id: int | None) -> str:
    """A new index file's name (in ``MASKNET_INDEX_DIR``)."""
    return f"index-{run_id or 0:06d}-{uuid.uuid4().hex[:10]}.npz"


def _index_save(index: Index, name: str) -> str:
    """Write ``index`` as ``name``; returns its SHA-256."""
    return index.save(Path(settings.MASKNET_INDEX_DIR) / name)


def _index_switch(*, run: TrainingRun, index: Index, version_key: str, photo_count: int,
                  metrics: dict, record: Callable[[IndexVersion], None]) -> IndexVersion:
    """Write the file and make it the active version in one transaction, with ``record(version)``:
    the run's success and its audit record (a switch committed alone, by a worker that then died
    or lost the database, was an active index whose run said it failed or was still running).

    Always this run's: runs take turns (a claim refuses while another run is alive and records an
    older running one failed, whose switch then finds the run no longer its own), so the active
    version was read before this run was. (Dropping a result whose run had a lower id than the
    active version's lost the changes that joined a queued run while a ``rebuild_index`` ran.)"""
    name, committed = None, []
    try:
        with transaction.atomic():
            # first of the after-commit callbacks: one of them failing later does not mean the
            # switch failed (the clean-up below would delete the new active version's file)
            transaction.on_commit(lambda: committed.append(True))
            _index_writers_take_turns()
            if not _still_ours(run).select_for_update().exists():   # locked: no takeover until it commits
                raise RunTakenOver(f"run #{run.pk} was taken over by another worker before its switch")
            # people erased or deactivated while this run was embedding must not come back
            live = {str(pk) for pk in Person.objects.active().values_list("pk", flat=True)}
            for label in index.identities - live:
                index.remove(label)
            # named first: a save that fails after writing (reading it back for its digest) leaves
            # no file holding everyone behind
            name = _index_name(run.pk)
            sha = _index_save(index, name)
            version = IndexVersion.objects.create(
                path=name, sha256=sha, people_count=len(index.identities), photo_count=photo_count,
                template_count=len(index), dim=index.dim, model_version=version_key, metrics=metrics,
                built_by=run)
            _activate(version)
            _index_prune(run)
            record(version)
        return version
    except BaseException:
        if name and not committed:
            (Path(settings.MASKNET_INDEX_DIR) / name).unlink(missing_ok=True)
        raise


# PostgreSQL advisory lock key of the index writers (below): "mask" in ASCII
INDEX_WRITERS_LOCK = 0x6D61736B


def _index_writers_take_turns() -> None:
    """Make this transaction's index writes (a rebuild's switch, an erasure's scrub) wait for any
    other's to commit, on one lock that does not move with the active version: a row lock on the
    active version alone let a second erasure wait on a version the first one deleted, lock
    nothing, and miss the version a third writer made meanwhile, which kept its person. PostgreSQL
    only; SQLite runs one writer at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INDEX_WRITERS_LOCK])


def _activate(version: IndexVersion) -> None:
    IndexVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    IndexVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def _index_prune(run: TrainingRun | None = None) -> None:
    """Keep the active version and ``MASKNET_INDEX_KEEP`` older ones; delete the rest (files after
    commit), and index files no row refers to (left by killed runs) once they are an hour old,
    temporary files of :meth:`Index.save` included (a process killed while writing one).

    Not kept either: older versions read before a photo was removed. They hold its templates (in
    its person's mean), which removing a photo promises to delete; the version this switch made
    was read after the removal that queued it, or a later switch deletes it in turn. Told without
    clocks by the runs a removal marked (``drops_older``: claimed only after the removal committed,
    as its request joined or made them): every version built by an earlier run goes; and at the
    switch of ``run`` itself, if so marked, every other version (a forced run made while the
    removal was not yet committed, so that it did not join it, read the photo and can have
    switched before). The time rule beside it compared a worker's clock with a web node's, which a
    skew of seconds defeated."""
    if run is not None and TrainingRun.objects.filter(pk=run.pk, drops_older=True).exists():   # as it is now
        old = list(IndexVersion.objects.filter(is_active=False))
    else:
        old = list(IndexVersion.objects.filter(is_active=False).order_by("-id")[settings.MASKNET_INDEX_KEEP:])
    marked = TrainingRun.objects.filter(drops_older=True).aggregate(last=models.Max("pk"))["last"]
    if marked is not None:
        read_before_marked = Q(built_by_id__lt=marked) | Q(built_by__isnull=True)
        old += list(IndexVersion.objects.filter(read_before_marked, is_active=False)
                    .exclude(pk__in=[v.pk for v in old]))
    removed_at = (AuditEvent.objects.filter(action=Action.PHOTO_REMOVE).order_by("-at")
                  .values_list("at", flat=True).first())
    if removed_at is not None:
        read_before = (Q(built_by__started_at__lte=removed_at)
                       | Q(built_by__started_at__isnull=True, created_at__lte=removed_at))
        old += list(IndexVersion.objects.filter(read_before, is_active=False).exclude(pk__in=[v.pk for v in old]))
    names = [v.path for v in old]
    IndexVersion.objects.filter(pk__in=[v.pk for v in old]).delete()
    names += _unreferenced_index_files(time.time())
    transaction.on_commit(lambda: _delete_index_files(names))


def _unreferenced_index_files(now: float) -> list[str]:
    """Index files no version names (left by killed runs: they may hold an erased person's
    templates), temporary files of :meth:`Index.save` included, once an hour old (younger ones may
    be a rebuild's, still being written or committed)."""
    known = set(IndexVersion.objects.values_list("path", flat=True))
    folder = Path(settings.MASKNET_INDEX_DIR)
    if not folder.is_dir():
        return []
    return [p.name for pattern in ("index-*.npz", "*.tmp") for p in folder.glob(pattern)
            if p.name not in known and _mtime(p) < now - 3600]


def index_files_sweep(*, now: float | None = None, dry_run: bool = False, failed: list[str] | None = None) -> int:
    """Delete the index files no version names, once an hour old (:func:`_unreferenced_index_files`);
    returns how many (would be) deleted; ``failed`` gets the names of those that could not be (face
    templates kept against an erasure: the purge then fails, as for photo files). Run by the daily
    retention purge, so that such a file outlives an erasure by a day at most even when no rebuild
    runs."""
    names = _unreferenced_index_files(time.time() if now is None else now)
    if not dry_run:
        _delete_index_files(names, failed)
    return len(names)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone meanwhile (another node's prune): nothing to delete
        return float("inf")


def _delete_index_files(names: list[str], failed: list[str] | None = None) -> None:
    """Best effort, never raising: this runs when a switch commits, and an error escaping it would
    be taken for the switch's own failure (whose clean-up deletes the new active version's file).
    ``failed`` gets the names that could not be deleted."""
    for name in names:
        try:
            (Path(settings.MASKNET_INDEX_DIR) / name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete old index file %s: %s", name, exc)
            if failed is not None:
                failed.append(name)


def _index_scrub(*, label: str, photos: int) -> int:
    """Remove ``label`` from every stored index version (see :func:`person_erase`); returns how
    many versions were rewritten or deleted."""
    touched, doomed = 0, []
    for version in IndexVersion.objects.select_for_update().order_by("id"):
        try:
            index = Index.load(version.file)
        except EngineError:
            index = None
        if index is not None and label not in index.identities:
            continue
        # an unreadable file (the active one too) is deleted, not skipped: read again later (a share
        # that hiccupped) it would still hold the person. Until the rebuild the erasure queues is
        # active, kiosks have no index ("temporarily unavailable")
        touched += 1
        if version.is_active and index is not None:
            index.remove(label)
            # a rolled-back erasure leaves this file unreferenced; _index_prune deletes it later
            name = _index_name(version.built_by_id)
            sha = _index_save(index, name)
            replacement = IndexVersion.objects.create(
                path=name, sha256=sha, people_count=len(index.identities),
                photo_count=max(0, version.photo_count - photos), template_count=len(index), dim=version.dim,
                model_version=version.model_version, adapter_version=version.adapter_version,
                metrics={**version.metrics, "rewritten_from": version.pk}, built_by_id=version.built_by_id)
            IndexVersion.objects.filter(pk=version.pk).update(is_active=False)
            _activate(replacement)
            transaction.on_commit(lambda v=replacement: events.index_updated(v))
        elif version.is_active:
            # other processes may still hold a copy they read before: they drop it on hearing this
            transaction.on_commit(events.index_withdrawn)
        doomed.append(version)
    IndexVersion.objects.filter(pk__in=[v.pk for v in doomed]).delete()
    # and every file no version names, whatever its age (the prune waits an hour: it may be a
    # rebuild's, not yet committed): a switch killed before its commit left one holding everyone,
    # the person too, for up to a day; none can be a writer's in flight, as the writers' turn is ours
    names = sorted({v.path for v in doomed} | set(_unreferenced_index_files(float("inf"))))
    transaction.on_commit(lambda: _delete_index_files(names))
    return touched
