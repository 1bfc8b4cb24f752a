"""The API with a full media or index storage (``storage_full`` fixture: ``ENOSPC`` from the
kernel): 507 ``storage_full`` in the API's error shape, nothing stored or erased."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion, Person

from .conftest import jpeg
from .helpers import fake_photo

pytestmark = pytest.mark.django_db


@pytest.mark.models
def test_a_photo_upload_into_a_full_media_storage_answers_507(client_for, person, engine, astronaut_bgr,
                                                              storage_full):
    """It answered 500 ``server_error`` ("it was logged. Try again later"), and left the file it began."""
    storage_full(django_settings.MEDIA_ROOT)
    answer = client_for("token:read+enrol").post(f"/api/v1/people/{person.pk}/photos",
                                                 {"image": SimpleUploadedFile("e.jpg", jpeg(astronaut_bgr))},
                                                 format="multipart")
    assert answer.status_code == 507, answer.content
    body = answer.json()
    assert body["error"] == "storage_full" and "storage for photos is full" in body["detail"]
    assert not FacePhoto.objects.exists()
    assert not [p for p in django_settings.MEDIA_ROOT.rglob("*") if p.is_file()]


def test_an_erasure_that_does_not_fit_the_index_storage_answers_507_and_erases_nothing(client_for, person,
                                                                                        make_fake_index, storage_full):
    """Erasing rewrites the active index without the person: it answered 500 ``server_error``."""
    fake_photo(person)
    other = enrollment.person_create(actor=None, full_name="Tom Hanks", staff_id="T-1")
    make_fake_index(person, other)
    storage_full(django_settings.MASKNET_INDEX_DIR)
    answer = client_for("token:admin").post(f"/api/v1/people/{person.pk}/erase")
    assert answer.status_code == 507, answer.content
    body = answer.json()
    assert body["error"] == "storage_full" and "recognition index is full" in body["detail"]
    assert Person.objects.filter(pk=person.pk).exists() and FacePhoto.objects.filter(person=person).exists()
    assert IndexVersion.objects.count() == 1 and IndexVersion.objects.get().path == "index-test.npz"
    assert sorted(p.name for p in django_settings.MASKNET_INDEX_DIR.iterdir()) == ["index-test.npz"]


def test_a_write_into_a_full_database_answers_507_and_changes_nothing(client_for, person, database_full, caplog):
    """It answered 500 ``server_error`` ("it was logged. Try again later") with a traceback in the log."""
    api = client_for("token:read+enrol")
    with database_full("enrollment_person"), caplog.at_level("ERROR", logger="django.request"):
        answer = api.post("/api/v1/people", {"full_name": "Ann Bee", "staff_id": "A-1"}, format="json")
    assert answer.status_code == 507, answer.content
    assert answer.json() == {"error": "storage_full",
                             "detail": enrollment.STORAGE_FULL_MESSAGES["database"]}
    assert list(Person.objects.values_list("staff_id", flat=True)) == [person.staff_id]
    assert [r.getMessage() for r in caplog.records if not r.exc_info and "API database full: POST /api/v1/people"
            in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info] and "Ann Bee" not in caplog.text
    assert api.post("/api/v1/people", {"full_name": "Ann Bee", "staff_id": "A-1"}, format="json").status_code == 201
