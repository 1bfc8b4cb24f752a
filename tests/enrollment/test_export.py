"""Subject access: ``person_export``'s archive holds the person's data and nobody else's, is
audited, bounded in size, and only superusers (``export_person``) get it, in the admin and the API."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from enrollment import services
from enrollment.models import FacePhoto, Person, PersonInactivePeriod, PhotoTemplates
from enrollment.services.export import ADMIN_HISTORY_EXPORT_HEADER
from recognition import services as recognition

pytestmark = pytest.mark.django_db


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def rows(text: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.decode())))


@pytest.fixture
def two_people(make_photo, settings, superuser):
    """Ann (two photos, two check-ins, one with a snapshot) and Bob (a photo, a check-in) at one kiosk;
    the audit log holds records of both, also records that name Ann's id beside Bob's."""
    settings.MASKNET_CHECKIN_SNAPSHOTS = True
    ann = services.person_create(actor=superuser, full_name="=HYPERLINK(\"x\")", staff_id="A-1", department="Ops")
    bob = services.person_create(actor=superuser, full_name="Bob Other", staff_id="B-2", department="Secret dept")
    ann_photos = [make_photo(ann), make_photo(ann)]
    bob_photo = make_photo(bob)
    kiosk, _ = recognition.kiosk_create(actor=None, name="Front door", location="Lobby")
    now = timezone.now()
    for person, at, snapshot in ((ann, now - timedelta(days=1), b"\xff\xd8\xff ann's face"), (ann, now, None),
                                 (bob, now, b"\xff\xd8\xff bob's face")):
        recognition.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.81, threshold=0.5, masked=True,
                                   frames=4, index_version=None, snapshot=snapshot, at=at)
    # a look-alike check of Ann's new photo that named Bob, and one of Bob's that named Ann
    audit_record(actor=None, action=AuditEvent.Action.API_IDENTIFY, object_type="enrollment.facephoto",
                 object_id=ann_photos[1].pk, summary=f"admin photo upload: looks like person #{bob.pk} 0.612")
    audit_record(actor=None, action=AuditEvent.Action.API_IDENTIFY, object_type="enrollment.facephoto",
                 object_id=bob_photo.pk, summary=f"photo upload: looks like person #{ann.pk} 0.598")
    # a face search that matched both; and a record of another id that begins with Ann's ("#12" in "#120")
    audit_record(actor=superuser, action=AuditEvent.Action.API_IDENTIFY, object_type="enrollment.indexversion",
                 object_id=1, summary=f"identify: 2 faces, 2 matched (person #{bob.pk} 0.801, #{ann.pk} 0.700), "
                                      "index v1")
    audit_record(actor=None, action=AuditEvent.Action.UPDATE, object_type="enrollment.person",
                 object_id=f"{ann.pk}0", summary=f"updated person #{ann.pk}0: department")
    return ann, bob, ann_photos, bob_photo


def test_the_archive_holds_the_persons_data_and_nobody_elses(two_people, superuser):
    ann, bob, ann_photos, bob_photo = two_people
    kept, removed = ann_photos[0], ann_photos[1].pk
    services.photo_remove(photo=ann_photos[1], actor=superuser)
    services.person_export(person=ann, actor=superuser)   # an earlier export: in the next one's audit.csv
    files = unzip(services.person_export(person=ann, actor=superuser))

    assert {"README.txt", "person.json", "photos.json", "templates.json", "checkins.csv", "audit.csv"} <= set(files)
    assert "person.json" in files["README.txt"].decode()
    person = json.loads(files["person.json"])
    assert (person["id"], person["full_name"], person["staff_id"]) == (ann.pk, ann.full_name, "A-1")
    # the photo as stored, byte for byte; its facts; its templates as numbers
    stored = Path(kept.image.name).suffix
    assert files[f"photos/{kept.pk}{stored}"] == default_storage.open(kept.image.name).read()
    assert [n for n in files if n.startswith("photos/")] == [f"photos/{kept.pk}{stored}"]
    (facts,) = json.loads(files["photos.json"])
    assert (facts["id"], facts["how"], facts["embedding_state"], facts["templates"]) == (kept.pk, "upload",
                                                                                         "embedded", 1)
    templates = json.loads(files["templates.json"])
    (tset,) = templates["sets"]
    vectors, kinds = PhotoTemplates.objects.get(photo=kept).arrays()
    assert tset["photo"] == kept.pk and len(tset["templates"]) == len(vectors)
    assert np.array_equal(np.array([t["vector"] for t in tset["templates"]], np.float32), vectors)
    assert tset["templates"][0]["kind"] == "photo" and templates["recognizer"]
    # check-ins: Ann's two, oldest first, formulas neutralised; her snapshot, not Bob's
    checkins = rows(files["checkins.csv"])
    assert [c["checkin_id"] for c in checkins] == [str(c) for c in ann.checkins.order_by("at").values_list("pk",
                                                                                                        flat=True)]
    assert {c["staff_id"] for c in checkins} == {"A-1"} and checkins[0]["name"] == "'" + ann.full_name
    assert checkins[0]["kiosk"] == "Front door" and checkins[0]["masked"] == "yes" and checkins[0]["score"] == "0.810"
    snapshot = [n for n in files if n.startswith("snapshots/")]
    assert snapshot == [f"snapshots/checkin-{checkins[0]['checkin_id']}.jpg"]
    assert files[snapshot[0]] == b"\xff\xd8\xff ann's face"
    # audit: Ann's records (created, photos, check-ins, searches naming her, the earlier export),
    # other ids as "#other", never Bob's own records; this export's record is not in it
    audit = rows(files["audit.csv"])
    actions = [r["action"] for r in audit]
    assert actions.count("create") == 1 and actions.count("photo_remove") == 1
    assert actions.count("checkin_accepted") == 2
    assert actions.count("export") == 1 and actions.count("api_identify") == 3
    summaries = " | ".join(r["summary"] for r in audit)
    assert set(re.findall(r"person #(\w+)", summaries)) == {str(ann.pk), "other"}
    assert f"#{ann.pk}0" not in summaries   # the other id that begins with Ann's
    assert "looks like person #other 0.612" in summaries and f"(person #other 0.801, #{ann.pk} 0.700)" in summaries
    assert f"looks like person #{ann.pk} 0.598" in summaries
    assert {r["object_id"] for r in audit if r["object_type"] == "enrollment.facephoto"} == {
        str(removed), ""}   # the removed photo's records (the look-alike check of it too); Bob's photo is not named
    assert {r["actor"] for r in audit} == {"system", f"user #{superuser.pk}"}
    everything = b" ".join(files.values())
    assert b"Bob Other" not in everything and b"B-2" not in everything and b"Secret dept" not in everything
    assert b"bob's face" not in everything


def test_a_masked_photos_own_template_is_not_called_drawn_on(person, make_photo, superuser):
    """A photo showing a mask has one template, its own face (the masked kind): it was labelled "photo
    with drawn-on masks (mean)", which the README says of a bare photo's synthetic-mask template."""
    bare, masked = make_photo(person), make_photo(person, masked_templates=0)
    PhotoTemplates.objects.filter(photo=masked).update(kinds=np.array([1], np.int8).tobytes())
    FacePhoto.objects.filter(pk=masked.pk).update(masked=True)
    files = unzip(services.person_export(person=person, actor=superuser))
    kinds = {t["photo"]: [k["kind"] for k in t["templates"]] for t in json.loads(files["templates.json"])["sets"]}
    assert kinds[masked.pk] == ["photo (wearing a mask)"]
    assert kinds[bare.pk][0] == "photo" and set(kinds[bare.pk][1:]) == {"photo with drawn-on masks (mean)"}
    assert "a photo showing a mask has its own alone" in files["README.txt"].decode()


def test_a_deleted_check_in_is_in_its_persons_audit_records(two_people, superuser):
    """An administrator's deletion of a check-in was recorded as "deleted check-in #id" alone, so the
    person's export held the check-in's acceptance and never its deletion; by ids, no name."""
    ann, bob, *_ = two_people
    for person in (ann, bob):
        recognition.checkin_delete(checkin=person.checkins.order_by("at").first(), actor=superuser)
    audit = rows(unzip(services.person_export(person=ann, actor=superuser))["audit.csv"])
    (deleted,) = [r for r in audit if r["action"] == "delete"]
    assert deleted["object_type"] == "recognition.checkin" and deleted["actor"] == f"user #{superuser.pk}"
    assert deleted["summary"] == f"deleted check-in #{deleted['object_id']} of person #{ann.pk}"
    assert not ann.checkins.filter(pk=deleted["object_id"]).exists() and ann.checkins.count() == 1
    (record,) = AuditEvent.objects.filter(action="delete", object_id=deleted["object_id"])
    assert ann.full_name not in record.summary and "A-1" not in record.summary


def test_the_persons_inactive_periods_are_in_person_json(two_people, superuser):
    """When they were away (deactivated, then reactivated) is theirs: each period, oldest first, in
    ``person.json``; Bob's are not; none is an empty list."""
    ann, bob, *_ = two_people
    assert json.loads(unzip(services.person_export(person=ann, actor=superuser))["person.json"])[
        "inactive_periods"] == []
    for who in (ann, bob, ann):
        services.person_deactivate(person=who, actor=superuser)
        services.person_update(person=who, actor=superuser, active=True)
    person = json.loads(unzip(services.person_export(person=ann, actor=superuser))["person.json"])
    assert person["inactive_periods"] == [{"deactivated_at": p.deactivated_at.isoformat(),
                                           "reactivated_at": p.reactivated_at.isoformat()}
                                          for p in PersonInactivePeriod.objects.filter(person=ann)]
    assert len(person["inactive_periods"]) == 2 and person["deactivated_at"] is None


def test_the_export_is_audited_by_id_alone(two_people, superuser):
    ann, *_ = two_people
    before = AuditEvent.objects.count()
    data = services.person_export(person=ann, actor=superuser)
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.get(action="export")
    assert (event.object_type, event.object_id, event.actor) == ("enrollment.person", str(ann.pk), "root")
    assert event.summary.startswith(f"exported person #{ann.pk}'s data: 2 photos, 2 check-ins, ")
    assert f"{len(data)} bytes" in event.summary and "A-1" not in event.summary and "HYPERLINK" not in event.summary


def test_an_archive_over_the_limit_is_refused_and_not_audited(two_people, superuser, settings):
    ann, *_ = two_people
    size = len(services.person_export(person=ann, actor=superuser))
    settings.MASKNET_EXPORT_MAX_BYTES = size // 2
    with pytest.raises(services.ExportTooLarge, match="MASKNET_EXPORT_MAX_BYTES"):
        services.person_export(person=ann, actor=superuser)
    assert AuditEvent.objects.filter(action="export").count() == 1   # the first one only
    settings.MASKNET_EXPORT_MAX_BYTES = size + 4096   # the audit.csv grew by the first export's record
    assert unzip(services.person_export(person=ann, actor=superuser))


def test_a_photo_file_gone_from_the_disk_is_said_not_fatal(person, make_photo, superuser):
    photo = make_photo(person)
    default_storage.delete(photo.image.name)
    files = unzip(services.person_export(person=person, actor=superuser))
    assert json.loads(files["photos.json"])[0]["file"] is None
    assert not [n for n in files if n.startswith("photos/")]


# --------------------------------------------------------------------------------------------
# admin


def export_url(person: Person) -> str:
    return reverse("admin:enrollment_person_export", args=[person.pk])


def test_admin_export_asks_then_downloads_on_post(su_client, two_people):
    ann, *_ = two_people
    change = su_client.get(reverse("admin:enrollment_person_change", args=[ann.pk])).content.decode()
    assert export_url(ann) in change and "Export personal data" in change
    page = su_client.get(export_url(ann))
    assert page.status_code == 200 and b'method="post"' in page.content and b"csrfmiddlewaretoken" in page.content
    assert not AuditEvent.objects.filter(action="export").exists()   # a GET changes nothing
    response = su_client.post(export_url(ann))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="person-{ann.pk}-data.zip"'
    assert "no-store" in response["Cache-Control"]
    assert json.loads(unzip(response.content)["person.json"])["id"] == ann.pk
    assert AuditEvent.objects.filter(action="export", object_id=str(ann.pk)).count() == 1


def test_admin_export_needs_csrf(superuser, two_people):
    from django.test import Client

    ann, *_ = two_people
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert client.post(export_url(ann)).status_code == 403
    assert not AuditEvent.objects.filter(action="export").exists()


def test_admin_export_too_large_says_so(su_client, two_people, settings):
    ann, *_ = two_people
    settings.MASKNET_EXPORT_MAX_BYTES = 1000
    response = su_client.post(export_url(ann), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:enrollment_person_change", args=[ann.pk])
    assert "MASKNET_EXPORT_MAX_BYTES" in response.content.decode()


def test_enrollers_cannot_export(enroller_client, two_people):
    ann, *_ = two_people
    change = enroller_client.get(reverse("admin:enrollment_person_change", args=[ann.pk])).content.decode()
    assert "Export personal data" not in change
    assert enroller_client.get(export_url(ann)).status_code == 403
    assert enroller_client.post(export_url(ann)).status_code == 403
    assert not AuditEvent.objects.filter(action="export").exists()


def test_only_superusers_hold_the_permission(enroller, superuser):
    assert superuser.has_perm("enrollment.export_person") and not enroller.has_perm("enrollment.export_person")


def test_records_of_an_earlier_holder_of_the_id_are_not_in_it(make_photo, superuser):
    """A restore sets the id sequence back, and ``manage.py reapply_erasures`` expects ids handed out
    again: the records of whoever held the id before this person was created (their photos, their
    erasure) are someone else's data, not this person's."""
    gone = services.person_create(actor=superuser, full_name="Gone Before", staff_id="G-1")
    services.photo_remove(photo=make_photo(gone), actor=superuser)
    services.person_erase(person=gone, actor=superuser)
    # the id handed out again, as after a restore that set the sequence back
    reused = Person.objects.create(pk=gone.pk, full_name="Comes After", staff_id="C-1")
    audit_record(actor=superuser, action=AuditEvent.Action.UPDATE, obj=reused,
                 summary=f"updated person #{reused.pk}: notes")
    audit = rows(unzip(services.person_export(person=reused, actor=superuser))["audit.csv"])
    assert [(r["action"], r["summary"]) for r in audit] == [("update", f"updated person #{reused.pk}: notes")]


@pytest.mark.parametrize(("limit", "said"), [(500_000, "500,000 bytes"), (3 * 2**19, "1.5 MiB"),
                                            (64 * 2**20, "64 MiB")])
def test_the_limit_reads_right_at_any_size(su_client, two_people, settings, limit, said):
    """Rounded to whole MiB, a limit below 1 MiB read "0 MiB" and 1.5 MiB "2 MiB": the project's byte
    amounts (``services.amount``) read right at any size; the default 64 MiB read "64.0 MiB"."""
    ann, *_ = two_people
    settings.MASKNET_EXPORT_MAX_BYTES = limit
    assert f"of {said} (MASKNET_EXPORT_MAX_BYTES)" in str(services.ExportTooLarge(limit))
    page = su_client.get(export_url(ann)).content.decode()
    assert f"Exports larger than {said} are refused" in page


def test_many_templates_take_no_memory_past_the_limit(person, superuser, settings):
    """templates.json is written one template set at a time, the size checked after each: built
    whole first, 600 templates took 41 MiB of memory to be refused at a limit of 1 MiB (now 2.4:
    the archive's buffer, copied as it grows, and one chunk of rows)."""
    import tracemalloc

    from enrollment.models import FacePhoto

    rng = np.random.default_rng(3)
    photos = FacePhoto.objects.bulk_create(
        FacePhoto(person=person, image=f"faces/{person.pk}/gone-{i}.png", sha256=f"{i:064x}") for i in range(300))
    PhotoTemplates.objects.bulk_create(
        PhotoTemplates(photo=photo, template_version="v1", dim=512, count=2, kinds=bytes([0, 1]),
                       vectors=rng.normal(size=(2, 512)).astype(np.float32).tobytes()) for photo in photos)
    settings.MASKNET_EXPORT_MAX_BYTES = 2**20
    tracemalloc.start()
    try:
        with pytest.raises(services.ExportTooLarge):
            services.person_export(person=person, actor=superuser)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_the_admin_history_is_the_persons_alone(two_people, su_client, superuser):
    """admin_history.csv: Django's admin history of the person, their photos and check-ins (a photo and
    a check-in deleted in the admin, a change of their record), oldest first, staff by user id, and
    nothing of anyone else's history, nor rows of the id from before the person was created (an earlier
    holder's, as after a restore). Bob has the same history: the inventory test's person alone had
    any, so no test said whose rows the file took."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    ann, bob, ann_photos, bob_photo = two_people
    for person, photo in ((ann, ann_photos[1]), (bob, bob_photo)):
        checkin = person.checkins.order_by("at").first()
        for obj, admin_name in ((photo, "enrollment_facephoto"), (checkin, "recognition_checkin")):
            response = su_client.post(reverse(f"admin:{admin_name}_delete", args=[obj.pk]), {"post": "yes"})
            assert response.status_code == 302
        LogEntry.objects.create(user=superuser, content_type=ContentType.objects.get_for_model(Person),
                                object_id=str(person.pk), object_repr=f"person #{person.pk}", action_flag=CHANGE,
                                change_message='[{"changed": {"fields": ["Notes"]}}]')
    earlier = LogEntry.objects.create(user=superuser, content_type=ContentType.objects.get_for_model(Person),
                                      object_id=str(ann.pk), object_repr="Earlier Holder (E-9)", action_flag=CHANGE)
    LogEntry.objects.filter(pk=earlier.pk).update(action_time=ann.created_at - timedelta(days=1))

    files = unzip(services.person_export(person=ann, actor=superuser))
    history = rows(files["admin_history.csv"])
    assert list(history[0]) == ADMIN_HISTORY_EXPORT_HEADER
    assert [(h["action"], h["object_type"], h["object"]) for h in history] == [
        ("deleted", "enrollment.facephoto", f"photo #{ann_photos[1].pk} of person #{ann.pk}"),
        ("deleted", "recognition.checkin", history[1]["object"]),
        ("changed", "enrollment.person", f"person #{ann.pk}")]
    assert history[1]["object"].startswith(f"check-in #{history[1]['object_id']} of person #{ann.pk} at ")
    assert history[2]["change"] == "Changed Notes." and {h["actor"] for h in history} == {f"user #{superuser.pk}"}
    # README.txt points from it to audit.csv, described after it (it said "the audit log above")
    readme = files["README.txt"].decode()
    assert "(audit.csv, below)" in readme and readme.index("\nadmin_history.csv") < readme.index("\naudit.csv ")
    text = files["admin_history.csv"].decode()
    assert set(re.findall(r"person #(\d+)", text)) == {str(ann.pk)} and "Earlier Holder" not in text
