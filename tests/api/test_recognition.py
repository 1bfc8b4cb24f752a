"""``POST /api/v1/identify`` and ``/api/v1/verify`` with the real engine and an index built by
the enrollment services: Eileen (the astronaut photo) enrolled; a masked probe of her drawn by the
product's mask renderer is identified and verified; the Tom Hanks portrait is not."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from enrollment import services as enrollment
from recognition.engine.masks import render_mask

from .conftest import jpeg, png

pytestmark = pytest.mark.django_db


def image(data: bytes, name: str = "probe.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.fixture
def enrolled(engine, astronaut_bgr, person):
    """Eileen enrolled from the astronaut photo, the index built here (synchronously)."""
    enrollment.photo_add(person=person, data=jpeg(astronaut_bgr, 92), actor=None, schedule_rebuild=False)
    run = enrollment.index_rebuild(run_id=None)
    assert run.state == "succeeded"
    return person


@pytest.fixture(scope="module")
def masked_eileen(engine, astronaut_bgr) -> bytes:
    face = engine.analyze(astronaut_bgr)[0]
    return jpeg(render_mask(astronaut_bgr, face.landmarks, np.random.default_rng(11)))


@pytest.mark.models
def test_identify_and_verify_decisions(client_for, enrolled, masked_eileen, registry_photos):
    api = client_for("token:recognise")
    found = api.post("/api/v1/identify", {"image": image(masked_eileen)}, format="multipart")
    assert found.status_code == 200, found.content
    body = found.json()
    assert body["index_version"] and body["width"] == 512 and len(body["faces"]) == 1
    face = body["faces"][0]
    assert face["masked"] is True and face["decision"] == "match", face
    assert face["person"] == {"id": enrolled.pk, "staff_id": "E-1", "full_name": "Eileen Collins"}
    assert face["score"] >= face["threshold"] and len(face["box"]) == 4

    tom = png(registry_photos["Tom_Hanks_54745.png"])
    stranger = api.post("/api/v1/identify", {"image": image(tom, "tom.png")}, format="multipart").json()
    assert [f["decision"] for f in stranger["faces"]] == ["no_match"], stranger
    assert stranger["faces"][0]["person"] is None and stranger["faces"][0]["score"] < stranger["faces"][0]["threshold"]

    yes = api.post("/api/v1/verify", {"image": image(masked_eileen), "person": enrolled.pk}, format="multipart")
    assert yes.status_code == 200, yes.content
    assert yes.json()["match"] is True and yes.json()["masked"] is True and yes.json()["person"] == enrolled.pk
    no = api.post("/api/v1/verify", {"image": image(tom, "tom.png"), "person": enrolled.pk}, format="multipart")
    assert no.status_code == 200 and no.json()["match"] is False and no.json()["score"] < no.json()["threshold"]

    assert AuditEvent.objects.filter(action="api_identify").count() == 2
    assert AuditEvent.objects.filter(action="api_verify", object_id=str(enrolled.pk)).count() == 2
    assert "Eileen" not in " ".join(AuditEvent.objects.values_list("summary", flat=True))


@pytest.mark.models
def test_recognition_errors(client_for, enrolled, masked_eileen):
    api = client_for("token:recognise")
    empty = np.full((240, 320, 3), 90, np.uint8)
    nobody = api.post("/api/v1/identify", {"image": image(jpeg(empty))}, format="multipart")
    assert nobody.status_code == 200 and nobody.json()["faces"] == []
    no_face = api.post("/api/v1/verify", {"image": image(jpeg(empty)), "person": enrolled.pk}, format="multipart")
    assert no_face.status_code == 422 and no_face.json()["error"] == "no_face"
    broken = api.post("/api/v1/identify", {"image": image(b"\xff\xd8\xff broken")}, format="multipart")
    assert broken.status_code == 400 and broken.json()["error"] == "unreadable_image"
    other = enrollment.person_create(actor=None, full_name="Not Enrolled", staff_id="N-1")
    missing = api.post("/api/v1/verify", {"image": image(masked_eileen), "person": other.pk}, format="multipart")
    assert missing.status_code == 409 and missing.json()["error"] == "not_in_index"
    unknown = api.post("/api/v1/verify", {"image": image(masked_eileen), "person": 999999}, format="multipart")
    assert unknown.status_code == 400 and "person" in unknown.json()["fields"]
    no_image = api.post("/api/v1/identify", {}, format="multipart")
    assert no_image.status_code == 400 and "image" in no_image.json()["fields"]


def test_identify_without_an_index_says_so(client_for, person):
    api = client_for("token:recognise")
    response = api.post("/api/v1/identify", {"image": image(b"\xff\xd8\xff")}, format="multipart")
    assert response.status_code == 409 and response.json()["error"] == "no_index"


def test_too_large_images_are_refused_before_decoding(client_for, person, make_fake_index, settings):
    make_fake_index(person)
    settings.MASKNET_MAX_PHOTO_BYTES = 1000
    response = client_for("token:recognise").post("/api/v1/identify", {"image": image(b"\xff\xd8\xff" * 500)},
                                                  format="multipart")
    assert response.status_code == 413 and response.json()["error"] == "frame_too_large"


def test_an_index_of_an_earlier_recognizer_version_asks_for_a_rebuild_once(client_for, person, make_fake_index,
                                                                           monkeypatch):
    """An API-only site (no kiosk connected) also asks for the rebuild after an upgrade."""
    from enrollment import dispatch
    from enrollment.models import TrainingRun

    queued: list[int] = []
    monkeypatch.setattr(dispatch, "enqueue_rebuild", lambda run_id, **kwargs: queued.append(run_id))
    make_fake_index(person, model_version="made-by-an-earlier-version")
    api = client_for("token:recognise")
    for _ in range(2):
        response = api.post("/api/v1/identify", {"image": image(b"\xff\xd8\xff")}, format="multipart")
        assert response.status_code == 400       # a broken JPEG, refused as usual: requests are not held up
    (run,) = TrainingRun.objects.all()
    assert run.reason == enrollment.OUTDATED_REASON and queued == [run.pk]


@pytest.mark.models
def test_an_index_of_another_embedding_size_is_refused_until_rebuilt(client_for, person, make_fake_index,
                                                                      masked_eileen):
    """An index whose vectors are not this engine's size (made before an upgrade) answers 409
    no_index with the reason, not a server error."""
    make_fake_index(person)   # 8-d vectors
    response = client_for("token:recognise").post("/api/v1/identify", {"image": image(masked_eileen)},
                                                  format="multipart")
    assert response.status_code == 409 and response.json()["error"] == "no_index"
    assert "being rebuilt" in response.json()["detail"]
