"""Erasure against the inventory of docs/security.md ("What is stored", "Erasure on request"): one
person made to touch every store of a person's data the site has, through the paths staff and
integrations use (the admin, the API with a token, the services the kiosk and the purge call),
without the face models: their record with notes naming them, inactive periods, photos of every
source (upload, webcam, import, and one kept by gallery adaptation) uploaded under file names that
name them, templates, two index versions and the index loaded in this process, kiosk check-ins
with a snapshot and check-ins recorded by hand with reasons naming them, decision records,
administrative records by a staff user and by an API token's service account, Django's admin
history, list exports filtered to them, a subject-access export, staff sessions, the cache and the
logs. Then they are erased (by the API) and every table's columns (sessions decoded), the media,
index and temporary folders, the cache and the log are searched for their id (a number nothing
else in the test holds, looked for whole anywhere), name, staff id and file names: anything found
that the docs do not list as kept fails.

What the real engine, a kiosk socket and other processes add (vectors close to their templates in
any blob, the kiosk greeting them, the channel layer) is
``tests/recognition/test_erasure_end_to_end.py``'s."""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.color import no_style
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api import services as api_services
from audit.models import AuditEvent
from enrollment import models as enrollment_models
from enrollment import recognizer
from enrollment import services as enrollment
from enrollment.models import ErasedStaffId, FacePhoto, IndexVersion, Person, PhotoTemplates
from enrollment.services import photos as photo_services
from enrollment.tasks import rebuild_index_task
from recognition import services as recognition
from recognition.models import CheckIn
from tests.enrollment.conftest import FAKE_DIM, png, unit

from ..erasure_traces import Traces, database_traces, folder_traces

pytestmark = pytest.mark.django_db

# distinctive, so that each is looked for anywhere: no other row, count, size or time of the test
# holds the id, and nothing else says the name
PK = 7_919_347
NAME, STAFF_ID = "Philippa Quenneville-Ardent", "QV-58213"
NOTES = "Philippa uses the side door (Quenneville)"
REASON = "Quenneville-Ardent's badge failed"

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
# what docs/security.md says an erasure keeps of the person that names them by id alone, each
# (table, column) with the docs' words for it: the erase record and their earlier administrative
# records, decision records until their retention, all in the audit log (summary, and the id
# itself as the object's). Their staff id's keyed digest (ErasedStaffId) holds none of these words,
# and is checked on its own below.
DECLARED_KEPT = {
    ("audit_auditevent", "summary"): "the audit record \"erased person #id\"",
    ("audit_auditevent", "object_id"): "the audit log's earlier records of that id",
}


def inspection_ok(*, data: bytes, engine: object = None) -> enrollment.PhotoInspection:
    """What the engine says of a good unmasked photo, without the engine."""
    return enrollment.PhotoInspection(ok=True, code=None, message="Good photo.", width=64, height=64, faces=1,
                                      box=[8.0, 8.0, 56.0, 56.0], quality_score=0.9, quality_verdict="ok",
                                      masked=False, masked_prob=0.02)


def picture(seed: int) -> bytes:
    return png(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def next_person_id(pk: int) -> None:
    """Make ``pk`` the id the next person gets (SQLite's AUTOINCREMENT, PostgreSQL's sequence, which
    a test's rollback leaves where it was: call it before any other person is made)."""
    Person.objects.create(pk=pk - 1, full_name="placeholder", staff_id="placeholder")
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Person]):
            cursor.execute(sql)
    Person.objects.filter(pk=pk - 1).delete()


def templates_store(person_id: int) -> None:
    """Each of their photos' templates, as a rebuild stores them (vectors near one centre)."""
    rng = np.random.default_rng(PK)
    centre = rng.normal(size=FAKE_DIM)
    for photo in FacePhoto.objects.filter(person_id=person_id):
        vectors = unit(centre + 0.3 * rng.normal(size=(1 + recognizer.N_MASKED_TEMPLATES, FAKE_DIM)))
        kinds = np.array([0] + [1] * recognizer.N_MASKED_TEMPLATES, np.int8)
        PhotoTemplates.objects.create(photo=photo, template_version=recognizer.template_version(), dim=FAKE_DIM,
                                      count=len(vectors), vectors=vectors.tobytes(), kinds=kinds.tobytes())
    FacePhoto.objects.filter(person_id=person_id).update(embedding_state=FacePhoto.Embedding.EMBEDDED)


def rebuild() -> None:
    run = enrollment.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(run.pk, force=True)


def ok(response, *codes: int):
    assert response.status_code in (codes or (200, 201, 204, 302)), response.content.decode()[:2000]
    return response


def person_form(person: Person, **extra) -> dict:
    person = Person.objects.get(pk=person.pk)
    data = {"full_name": person.full_name, "staff_id": person.staff_id, "department": person.department,
            "notes": person.notes, "seen": person.updated_at.isoformat(), **({"active": "on"} if person.active else {}),
            **extra}
    return {k: v for k, v in data.items() if v not in ("", None)}


@dataclass
class Everywhere:
    """The person of :data:`PK` in every store, and who put them there."""

    person: Person
    other: Person
    admin: Client
    api: APIClient
    temporary: Path


@pytest.fixture
def everywhere(settings, tmp_path, monkeypatch, caplog, make_photo) -> Everywhere:
    """:data:`PK` made to touch every store of a person's data (the module's docstring)."""
    settings.MASKNET_CHECKIN_SNAPSHOTS = True
    settings.MASKNET_GALLERY_ADAPT = True
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(temporary)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))   # any temporary file of the site's lands here
    # photos checked as the engine would pass them, without loading it
    monkeypatch.setattr(recognizer, "get_engine", object)
    monkeypatch.setattr(photo_services, "photo_inspect", inspection_ok)
    monkeypatch.setattr(photo_services, "photo_repeats", lambda **kwargs: None)   # advice, needs the engine
    caplog.set_level(logging.DEBUG)
    cache.clear()

    su = User.objects.create_superuser("root", "root@example.com", "pw")
    admin = Client()
    admin.force_login(su)
    token, secret = api_services.api_token_create(actor=su, name="hr-system", scopes=["admin"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    kiosk, code = recognition.kiosk_create(actor=None, name="Front door", location="Main entrance")
    kiosk = recognition.kiosk_pair(code=code)[0]
    next_person_id(PK)

    # the record: added in the admin (its history, its message), changed by the API's token
    ok(admin.post(reverse("admin:enrollment_person_add"),
                  {"full_name": NAME, "staff_id": STAFF_ID, "department": "Flight", "notes": NOTES, "active": "on"}))
    person = Person.objects.get(staff_id=STAFF_ID)
    assert person.pk == PK
    other = enrollment.person_create(actor=None, full_name="Tom Hanks", staff_id="T-1")   # after: the sequence
    make_photo(other)
    etag = ok(api.get(f"/api/v1/people/{PK}"))["ETag"]
    ok(api.patch(f"/api/v1/people/{PK}", {"department": "Ground"}, format="json", HTTP_IF_MATCH=etag))
    # an inactive period: deactivated in the admin, reactivated by the API
    ok(admin.post(reverse("admin:enrollment_person_changelist"), {"action": "deactivate", "_selected_action": [PK]}))
    etag = ok(api.get(f"/api/v1/people/{PK}"))["ETag"]
    ok(api.patch(f"/api/v1/people/{PK}", {"active": True}, format="json", HTTP_IF_MATCH=etag))
    assert person.inactive_periods.count() == 1

    # photos of every source, under file names that name them
    ok(admin.post(reverse("admin:enrollment_person_change", args=[PK]), person_form(
        person, photos=[SimpleUploadedFile(f"{NAME}.png", picture(1), content_type="image/png")])))
    ok(api.post(f"/api/v1/people/{PK}/photos",
                {"image": SimpleUploadedFile(f"{STAFF_ID}.png", picture(2), content_type="image/png")}), 201)
    ok(admin.post(reverse("admin:enrollment_person_capture_save", args=[PK]),
                  {"photos": [SimpleUploadedFile("webcam.png", picture(3), content_type="image/png")]}))
    enrollment.photo_add(person=person, data=picture(4), actor=None, filename=f"{STAFF_ID} Quenneville.png",
                         source=FacePhoto.Source.IMPORT, check_lookalike=False)
    # check-ins: a kiosk's with its snapshot, then the face it kept (gallery adaptation's own add)
    accepted = recognition.checkin_record(person_id=PK, kiosk=kiosk, score=0.81, threshold=0.5, masked=False,
                                          frames=4, index_version=None, snapshot=picture(5)).checkin
    enrollment.photo_add(person=person, data=picture(6), actor=None, filename=f"checkin-{accepted.pk}.jpg",
                         source=FacePhoto.Source.CHECKIN, check_lookalike=False, while_adapting=True,
                         why=f"gallery adaptation from check-in #{accepted.pk} (score 0.810)")
    assert set(FacePhoto.objects.filter(person_id=PK).values_list("source", flat=True)) == set(FacePhoto.Source)
    # ... and by hand, with reasons naming them: in the admin, and by the API's token
    yesterday = timezone.localtime() - timedelta(days=1)
    ok(admin.post(reverse("admin:recognition_checkin_add"), {
        "person": PK, "at_0": f"{yesterday:%Y-%m-%d}", "at_1": "09:00", "site": "main", "reason": REASON}))
    ok(api.post("/api/v1/checkins", {"person": PK, "at": (yesterday - timedelta(days=1)).isoformat(),
                                     "reason": f"{NAME} came by the loading bay"}, format="json"), 201)
    assert CheckIn.objects.filter(person_id=PK).count() == 3

    # templates and two index versions holding them, the active one loaded in this process
    templates_store(PK)
    rebuild()
    rebuild()
    assert IndexVersion.objects.filter(people_count=2).count() == 2
    assert str(PK) in IndexVersion.objects.current().load().identities

    # reads on record: lists filtered to them (API, attendance page, admin) and their own export
    ok(api.get("/api/v1/checkins/csv", {"person": PK}))
    ok(admin.get(reverse("attendance-person", args=[PK]), {"format": "csv"}))
    ok(admin.get(reverse("admin:recognition_checkin_export"), {"q": NAME, "person__id__exact": PK}))
    export = ok(admin.post(reverse("admin:enrollment_person_export", args=[PK])))
    assert NAME in zipfile.ZipFile(io.BytesIO(export.content)).read("person.json").decode()
    # staff browsing them (pages that name them, and the admin's messages after each save)
    for page in (reverse("admin:enrollment_person_change", args=[PK]), reverse("attendance-person", args=[PK]),
                 reverse("admin:enrollment_person_changelist") + f"?q={STAFF_ID}"):
        ok(admin.get(page))
    return Everywhere(person=person, other=other, admin=admin, api=api, temporary=temporary)


def test_erasure_leaves_only_what_the_docs_keep_of_every_store(
        everywhere, settings, caplog, enqueued, django_capture_on_commit_callbacks):
    person, other, api, temporary = everywhere.person, everywhere.other, everywhere.api, everywhere.temporary

    traces = Traces(person, bare_id=True, texts=(*NAME.split(), NOTES, REASON))
    traces.collect()
    assert len(traces.files) == 5 and traces.snapshots
    # the search finds each kind of copy before the erasure
    before = {(table, column) for table, column, _ in database_traces(traces)}
    assert {("enrollment_person", "full_name"), ("enrollment_person", "notes"),
            ("enrollment_personinactiveperiod", "person_id"), ("enrollment_facephoto", "image"),
            ("enrollment_phototemplates", "vectors"), ("recognition_checkin", "reason"),
            ("recognition_checkin", "snapshot"), ("django_admin_log", "object_id"),
            ("enrollment_trainingrun", "reason"), ("audit_auditevent", "summary")} <= before, before
    assert any("index label" in what for _, what in folder_traces(traces, Path(settings.MASKNET_INDEX_DIR)))
    assert {"their media folder", f"#{PK}"} <= {what for _, what in folder_traces(traces, Path(settings.MEDIA_ROOT))}
    # nothing of the export, or of any upload, stayed on a disk
    assert not list(temporary.rglob("*")), "temporary files"

    with django_capture_on_commit_callbacks(execute=True):
        ok(api.post(f"/api/v1/people/{PK}/erase"))
    # the rebuild the erasure queued, as a worker runs it
    rebuild_index_task(enqueued[-1]["run_id"])

    leftovers = database_traces(traces)
    undeclared = [t for t in leftovers if (t[0], t[1]) not in DECLARED_KEPT]
    assert not undeclared, undeclared
    assert all(what == f"#{PK}" for _, _, what in leftovers), leftovers   # the id alone, nothing else of them
    erased = AuditEvent.objects.get(action="erase", object_id=str(PK))
    assert erased.actor == "api:hr-system"
    assert {(table, column) for table, column, _ in leftovers} == set(DECLARED_KEPT)
    text = DOCS.read_text()
    assert all(words in text for words in DECLARED_KEPT.values())
    # their staff id, kept as a keyed digest alone (docs: "Erased staff ids"), with nothing else
    assert list(ErasedStaffId.objects.matching([STAFF_ID])) == [STAFF_ID] and ErasedStaffId.objects.count() == 1
    for folder in (settings.MEDIA_ROOT, settings.MASKNET_INDEX_DIR, temporary):
        assert not folder_traces(traces, Path(folder)), folder
    assert IndexVersion.objects.current().load().identities == {str(other.pk)}
    cached = enrollment_models._index_cached
    assert cached is None or str(PK) not in cached[1].identities
    store = getattr(cache, "_cache", {})
    assert not [k for k, v in store.items() if traces.in_text(str(k)) or traces.in_bytes(
        bytes(v) if isinstance(v, bytes) else str(v).encode())]
    # logs (kept by the operator's log system, out of the erasure's reach) never held their name,
    # staff id or words (their id may be there: "check-in #7 of person #12")
    logged = "\n".join(caplog.messages)
    assert not [t for t in traces.in_text(logged) if t != f"#{PK}" and t != "their media folder"], logged


def test_the_subject_access_export_holds_every_store_erasure_removes(everywhere):
    """Each store an erasure removes (docs/security.md, "Erasure on request") is in the person's
    export (docs/security.md, "Access on request"), and nothing of the other person is."""
    export = ok(everywhere.api.get(f"/api/v1/people/{PK}/export"))
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    names = archive.namelist()

    def csv_rows(name: str) -> list[dict]:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))

    record = json.loads(archive.read("person.json"))
    assert (record["full_name"], record["staff_id"], record["notes"], record["department"]) == (
        NAME, STAFF_ID, NOTES, "Ground")
    assert len(record["inactive_periods"]) == 1
    photos = json.loads(archive.read("photos.json"))
    assert {p["how"] for p in photos} == set(FacePhoto.Source) and len(photos) == 5
    assert len([n for n in names if n.startswith("photos/")]) == 5
    assert {s["photo"] for s in json.loads(archive.read("templates.json"))["sets"]} == {p["id"] for p in photos}
    checkins = csv_rows("checkins.csv")
    assert len(checkins) == 3 and {REASON, f"{NAME} came by the loading bay"} <= {c["reason"] for c in checkins}
    assert len([n for n in names if n.startswith("snapshots/")]) == 1
    audited = {r["action"] for r in csv_rows("audit.csv")}
    assert {"create", "update", "deactivate", "photo_add", "checkin_accepted", "checkin_manual", "list_export",
            "export"} <= audited, audited
    # Django's admin history of them, their photos and check-ins (which erasure deletes)
    history = csv_rows("admin_history.csv")
    assert {(h["object_type"], h["action"]) for h in history} >= {
        ("enrollment.person", "added"), ("enrollment.person", "changed"), ("recognition.checkin", "added")}, history
    assert all(h["actor"].startswith("user #") for h in history)
    assert "admin_history.csv" in archive.read("README.txt").decode()
    everything = b"".join(archive.read(n) for n in names).decode(errors="replace")
    assert "Tom Hanks" not in everything and f"person #{everywhere.other.pk}" not in everything
