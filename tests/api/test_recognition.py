"""``POST /api/v1/identify`` and ``/api/v1/verify`` with the real engine and an index built by
the enrollment services: Eileen (the astronaut photo) enrolled; a masked probe of her drawn by the
product's mask renderer is identified and verified; the Tom Hanks portrait is not."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api import services as api_services
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
    # who each identify named (ids and scores, never names)
    told = AuditEvent.objects.filter(action="api_identify").order_by("id").first().summary
    assert f"1 matched (person #{enrolled.pk} {face['score']:.3f})" in told, told
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
    # a recognise-only token learns nothing of which ids exist: the same answer as "not enrolled"...
    assert unknown.status_code == 409 and unknown.json()["error"] == "not_in_index"
    # a probe of ids leaves a trace: each refusal about a person id is audited
    assert AuditEvent.objects.filter(action="api_verify", object_id="999999").count() == 1
    assert unknown.json()["detail"].replace("999999", "N") == missing.json()["detail"].replace(str(other.pk), "N")
    # ...and nothing without a real face: the image is checked before the person
    probe = api.post("/api/v1/verify", {"image": image(b"\xff\xd8\xff broken"), "person": other.pk},
                     format="multipart")
    assert probe.status_code == 400 and probe.json()["error"] == "unreadable_image"
    not_an_id = api.post("/api/v1/verify", {"image": image(masked_eileen), "person": "one"}, format="multipart")
    assert not_an_id.status_code == 400 and "person" in not_an_id.json()["fields"]
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


def test_an_animated_image_is_refused_as_an_upload_refuses_it(client_for, person, make_fake_index):
    """Identify and verify answered the first picture of an animated WebP alone, the others unsaid,
    where an upload refuses it ("An animated image")."""
    import io

    from PIL import Image

    make_fake_index(person)
    frames = [Image.fromarray(np.full((64, 64, 3), shade, np.uint8)) for shade in (40, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    api = client_for("token:recognise")
    for path, extra in (("/api/v1/identify", {}), ("/api/v1/verify", {"person": person.pk})):
        answer = api.post(path, {"image": image(buf.getvalue(), "a.webp"), **extra}, format="multipart")
        assert answer.status_code == 400 and answer.json()["error"] == "unreadable_image", answer.content
        assert "animated" in answer.json()["detail"]


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


@pytest.mark.models
@pytest.mark.parametrize("how", ["deactivated", "deleted"])
def test_people_out_of_the_gallery_are_not_recognised_before_the_rebuild(client_for, enrolled, masked_eileen, how):
    """A person deactivated (or whose row is gone) stays in the active index until the rebuild it
    queued finishes; meanwhile identify answers no match and verify 409 ``not_in_index``, as the
    kiosks refuse them (``recognition.services.checkin_record``)."""
    from enrollment.models import IndexVersion, Person

    if how == "deactivated":
        enrollment.person_deactivate(person=enrolled, actor=None)
    else:   # not person_erase: that rewrites the index; this is a row gone by another path
        Person.objects.filter(pk=enrolled.pk).delete()
    assert str(enrolled.pk) in IndexVersion.objects.current().load().identities   # the rebuild is only queued
    api = client_for("token:recognise")
    found = api.post("/api/v1/identify", {"image": image(masked_eileen)}, format="multipart")
    assert found.status_code == 200, found.content
    (face,) = found.json()["faces"]
    assert face["decision"] == "no_match" and face["person"] is None, face
    # their score is not the answer's: "no_match" at 0.99 above a threshold of 0.43 contradicted itself,
    # and told a recognise-only caller the face was still enrolled (found by a helper's review)
    assert face["score"] is None, face
    assert AuditEvent.objects.get(action="api_identify").summary.startswith("identify: 1 faces, 0 matched")
    if how == "deactivated":
        verify = api.post("/api/v1/verify", {"image": image(masked_eileen), "person": enrolled.pk}, format="multipart")
        assert verify.status_code == 409 and verify.json()["error"] == "not_in_index", verify.content
        assert "inactive" in verify.json()["detail"]
        refusal = AuditEvent.objects.get(action="api_verify")   # no comparison, but the refusal is on record
        assert refusal.summary.startswith(f"verify person #{enrolled.pk}: not in the gallery")


@pytest.mark.models
def test_verify_says_when_the_face_fails_the_quality_gate(client_for, enrolled, astronaut_bgr):
    """A face refused by the quality gate never matches, and verify says why (as identify does)."""
    api = client_for("token:recognise")
    good = api.post("/api/v1/verify", {"image": image(jpeg(astronaut_bgr)), "person": enrolled.pk},
                    format="multipart").json()
    assert good["match"] is True and good["quality_ok"] is True and good["quality_reason"] is None, good
    dark = jpeg((astronaut_bgr * 0.15).astype(np.uint8))
    answer = api.post("/api/v1/verify", {"image": image(dark), "person": enrolled.pk}, format="multipart")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["match"] is False and body["quality_ok"] is False and body["quality_reason"] == "too_dark", body


@pytest.fixture
def upload_spies(monkeypatch) -> dict[str, list]:
    """What the recognition views receive: the class of each uploaded file they read, and every
    temporary upload file Django creates (the view's own code path, only observed)."""
    from django.core.files import uploadedfile

    from api import views

    seen: dict[str, list] = {"read": [], "temporary": []}
    real_read, real_init = views._upload_bytes, uploadedfile.TemporaryUploadedFile.__init__

    def read(upload):
        seen["read"].append(type(upload))
        return real_read(upload)

    def temporary(self, *args, **kwargs):
        seen["temporary"].append(args[:1])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(views, "_upload_bytes", read)
    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", temporary)
    return seen


@pytest.mark.models
def test_identify_and_verify_images_stay_in_memory_up_to_the_size_limit(client_for, enrolled, astronaut_bgr,
                                                                        upload_spies, settings):
    """docs/security.md: API identify/verify images are held in memory only. One over Django's
    default 2.5 MiB (FILE_UPLOAD_MAX_MEMORY_SIZE) was written to a temporary file."""
    from django.core.files.uploadedfile import InMemoryUploadedFile

    canvas = np.random.default_rng(5).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)   # noise: PNG can't shrink it
    canvas[294:806, 294:806] = astronaut_bgr
    data = png(canvas)
    assert 2.5 * 2**20 < len(data) <= settings.MASKNET_MAX_PHOTO_BYTES
    api = client_for("token:recognise")
    found = api.post("/api/v1/identify", {"image": image(data, "big.png")}, format="multipart")
    assert found.status_code == 200, found.content
    assert enrolled.pk in [f["person"]["id"] for f in found.json()["faces"] if f["person"]], found.json()
    verify = api.post("/api/v1/verify", {"image": image(data, "big.png"), "person": enrolled.pk}, format="multipart")
    assert verify.status_code == 200 and verify.json()["match"] is True, verify.content
    assert upload_spies == {"read": [InMemoryUploadedFile] * 2, "temporary": []}


def test_recognition_bodies_too_large_for_memory_are_refused_not_spooled(client_for, person, make_fake_index,
                                                                         upload_spies, settings, enroller):
    """A body over FILE_UPLOAD_MAX_MEMORY_SIZE to identify or verify answers a JSON 413 without
    touching the disk, also from a staff session (whose CSRF check reads the form before the view
    does); photo uploads for enrollment may still use a temporary file."""
    from rest_framework.test import APIClient

    make_fake_index(person)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    api = client_for("token:recognise+enrol")
    staff = APIClient(enforce_csrf_checks=True)
    staff.force_login(enroller)
    staff.get("/admin/")  # its logout form sets the csrftoken cookie
    csrf = {"HTTP_X_CSRFTOKEN": staff.cookies["csrftoken"].value}
    big = image(b"\xff\xd8\xff" + bytes(100 * 1024))
    for client, headers in ((api, {}), (staff, csrf)):
        for url, extra in (("/api/v1/identify", {}), ("/api/v1/verify", {"person": person.pk})):
            big.seek(0)
            response = client.post(url, {"image": big, **extra}, format="multipart", **headers)
            assert response.status_code == 413, (url, response.content[:300])
            assert response.json()["error"] == "request_too_large" and "65536" in response.json()["detail"]
    assert upload_spies == {"read": [], "temporary": []}
    small = staff.post("/api/v1/identify", {"image": image(b"\xff\xd8\xff broken")}, format="multipart", **csrf)
    assert small.status_code == 400 and small.json()["error"] == "unreadable_image"   # the session may identify
    big.seek(0)
    photo = api.post(f"/api/v1/people/{person.pk}/photos", {"image": big}, format="multipart")
    assert photo.status_code == 422 and photo.json()["reason"] == "unreadable", photo.content[:300]
    assert len(upload_spies["temporary"]) == 1


def test_the_api_applies_the_fitted_percentile_not_the_thresholds_as_built(person, make_fake_index):
    """As the kiosks: a version's ``fitted`` percentile is passed on (a lowered offset acts at once)."""
    from enrollment.models import IndexVersion
    from recognition.engine.gallery import MIN_FIT_PEOPLE

    make_fake_index(person)
    version = IndexVersion.objects.current()
    version.metrics = {**(version.metrics or {}), "thresholds": {
        "masked": 0.95, "unmasked": 0.9, "source": "site", "fitted": {"unmasked": 0.7, "masked": None}}}
    version.people_count = MIN_FIT_PEOPLE   # a gallery large enough to be fitted (a fake one here)
    version.save(update_fields=["metrics", "people_count"])
    _, _, thresholds = api_services._active_index()
    assert thresholds["fitted"] == {"unmasked": 0.7, "masked": None} and thresholds["unmasked"] == 0.9


@pytest.mark.models
def test_verify_against_a_person_with_no_template_of_the_faces_kind_has_no_score(client_for, enrolled,
                                                                                 astronaut_bgr, settings):
    """Someone enrolled only masked (their unmasked templates gone here), an unmasked photo: nothing
    was compared, which the answer said as a score of -1.0 ("surely someone else")."""
    from enrollment.models import IndexVersion

    version = IndexVersion.objects.current()
    index = version.load()
    index.keep(index.kinds != 0)   # only the synthetic-mask templates left
    sha = index.save(settings.MASKNET_INDEX_DIR / "index-masked-only.npz")
    IndexVersion.objects.filter(pk=version.pk).update(path="index-masked-only.npz", sha256=sha)
    answer = client_for("token:recognise").post(
        "/api/v1/verify", {"image": image(jpeg(astronaut_bgr)), "person": enrolled.pk}, format="multipart")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["masked"] is False and body["match"] is False and body["score"] is None, body
    assert "no comparable template" in AuditEvent.objects.filter(action="api_verify").latest("id").summary
