"""Subject access (GDPR art. 15 and 20): :func:`person_export`, a ZIP of what the site holds
about one person, with a README of what each file is."""

from __future__ import annotations

import io
import json
import re
import textwrap
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from masknet_site.csv_export import csv_chunks
from recognition.engine.gallery import SYNTHETIC_MASK, UNMASKED
from recognition.exports import CHECKIN_CSV_HEADER, checkin_csv_rows

from ..models import FacePhoto, Person, PhotoTemplates
from .common import Action, EnrollmentError, amount, counted
from .people import admin_history

EXPORT_README = """\
What this site (MaskNet, face check-in) holds about person #{pk}, exported {at}.

person.json     The person's record: name, staff id, department, notes, whether they may check
                in (active), whether check-ins may add photos (gallery_adaptation), when the
                record was created and last changed, and when they were deactivated
                (deactivated_at; null while active, or when not known); inactive_periods:
                each earlier time they were inactive, from a deactivation (null when not
                known) to the reactivation that ended it, oldest first (attendance counts
                them on none of its days).
photos/         Each enrollment photo, byte for byte as stored. The site strips metadata (EXIF,
                GPS position, camera) from photos when they are added, so these hold the picture
                only. Named by the photo's id.
photos.json     Each photo's facts: when it was added and how (upload: the admin page or the API;
                webcam: captured on the admin page; import: a bulk import; check-in: kept by
                gallery adaptation from a confident check-in at a kiosk), the face box found in
                it, its quality and whether it shows a mask, and whether the recognizer has made
                face templates of it (embedding_state).
templates.json  The face templates: lists of numbers the recognizer computed from each photo
                (one per photo, plus, for a photo without a mask, one of the photo with drawn-on
                masks; a photo showing a mask has its own alone), named with the
                recognizer and its version. They are what kiosks compare faces with. They are
                derived from the photos above and mean nothing without the same recognizer.
                "template_version" names the exact models and settings that made them. The
                site's index files hold the same numbers (or their mean), labelled with the
                person's id only.
checkins.csv    Every check-in: local time (ISO 8601, with the offset from UTC), local date,
                site, kiosk, whether a mask was worn, the match score and how many camera frames
                confirmed it; how it was recorded (source: kiosk, or manual when a staff member
                recorded it by hand) and the reason given for one recorded by hand.
snapshots/      The face snapshot a kiosk kept of a check-in, where one was kept (only when the
                site keeps them, and for a limited time), named by the check-in's id.
admin_history.csv
                The site's administration pages' own history of this person's record, photos
                and check-ins: when a staff member (named by user id) added, changed or deleted
                one of them there, and which fields a change touched. The audit log
                (audit.csv, below) records the same acts, and those made other ways (imports,
                integrations).
audit.csv       The records of the site's audit log that concern this person: who did what,
                and when (staff and integrations are named by their user id, not by name): the
                record created or changed, photos added or removed, check-ins accepted or
                deleted, face searches that named this person, earlier exports. Other people's
                ids read "#other". This export's own record is not in it, nor records from
                before the person's record was created (they are of someone who had the same id
                before).

If this person's data is erased (at their request), all of the above is deleted from the
site; the audit log keeps its records, which name the person by number only. The site then
also keeps their staff id as a keyed digest alone: a code computed from the staff id with the
site's secret key, from which the staff id cannot be read back, and the date of the erasure,
with no name or number. It is kept so that a later import of the staff photo folder, which
may still hold their photos, does not enrol them again, and only until they ask to be
enrolled again (an administrator then lifts it). It is in no file of this export: there is
none for a person still enrolled.
"""

# kinds of template (recognition.engine.gallery), as templates.json names them; a masked kind in a
# set without an unmasked one is the photo's own face, which shows a mask (none drawn on it)
_TEMPLATE_KINDS = {UNMASKED: "photo", SYNTHETIC_MASK: "photo with drawn-on masks (mean)"}
_MASKED_PHOTO_KIND = "photo (wearing a mask)"
# a person's id in an audit summary: "person #12", and the later ids of a face search's list
# "(person #12 0.812, #7 0.701)"
_PERSON_MENTION = re.compile(r"(?<=person #)\d+|(?<=, #)\d+(?= -?\d)")
AUDIT_EXPORT_HEADER = ["time", "action", "actor", "object_type", "object_id", "summary"]
ADMIN_HISTORY_EXPORT_HEADER = ["time", "action", "actor", "object_type", "object_id", "object", "change"]
_ADMIN_ACTIONS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}


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
        own_masked = UNMASKED not in {int(k) for k in kind}   # as the set was made, not the photo's flag now
        templates = [{"kind": _MASKED_PHOTO_KIND if own_masked and int(k) == SYNTHETIC_MASK
                      else _TEMPLATE_KINDS.get(int(k), str(int(k))), "vector": [float(str(v)) for v in vec]}
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


def _admin_history_rows(pk: int, since: datetime) -> Iterator[list[object]]:
    """admin_history.csv rows, oldest first: Django's admin history of the person, their photos and
    check-ins (:func:`.people.admin_history`, what an erasure deletes), from ``since`` (the person's
    creation) on, as audit.csv; staff by user id."""
    rows = (admin_history(person_id=pk).filter(action_time__gte=since).select_related("content_type")
            .order_by("action_time", "id"))
    for entry in rows.iterator(chunk_size=1000):
        yield [timezone.localtime(entry.action_time).isoformat(timespec="seconds"),
               _ADMIN_ACTIONS.get(entry.action_flag, str(entry.action_flag)), f"user #{entry.user_id}",
               f"{entry.content_type.app_label}.{entry.content_type.model}" if entry.content_type else "",
               entry.object_id or "", entry.object_repr, entry.get_change_message()]


def person_export(*, person: Person, actor: object | None) -> bytes:
    """A ZIP of what the site holds about ``person`` (the right of access, GDPR art. 15, in the
    portable form art. 20 asks for): README.txt (what each file is), person.json, photos/ (each
    file as stored: metadata was stripped on upload), photos.json, templates.json, checkins.csv
    (the attendance export's columns and writer, formulas neutralised), snapshots/ (check-in face
    snapshots, where kept), admin_history.csv (Django's admin history of them, their photos and
    check-ins, which an erasure deletes too) and audit.csv (audit records that concern them; this
    export's own record excluded). Audited as "exported person #id's data".

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
        "created_at": person.created_at.isoformat(), "updated_at": person.updated_at.isoformat(),
        "deactivated_at": person.deactivated_at.isoformat() if person.deactivated_at else None,
        "inactive_periods": [{"deactivated_at": start.isoformat() if start else None, "reactivated_at": end.isoformat()}
                             for start, end in person.inactive_periods.order_by("reactivated_at", "pk")
                             .values_list("deactivated_at", "reactivated_at")]}))
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
    archive.add_text("admin_history.csv", csv_chunks(ADMIN_HISTORY_EXPORT_HEADER, _admin_history_rows(
        pk, person.created_at)))
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
