"""Gallery adaptation (``MASKNET_GALLERY_ADAPT``): a confident unmasked check-in's face becomes one
more photo of the person, only when every condition holds; the real engine and a real index."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from enrollment import services
from enrollment.models import FacePhoto, Person
from enrollment.services import photos as photo_services
from recognition.consumers import face_photo
from tests.recognition import faces

pytestmark = [pytest.mark.models, pytest.mark.django_db]


@pytest.fixture
def gallery(engine, astronaut_jpeg, portrait_png, settings):
    """Eileen and Tom enrolled from one photo each, the index built; adaptation on."""
    settings.MASKNET_GALLERY_ADAPT = True
    eileen = services.person_create(actor=None, full_name="Eileen Collins", staff_id="E1")
    tom = services.person_create(actor=None, full_name="Tom Hanks", staff_id="T1")
    services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    assert services.index_rebuild(run_id=None).state == "succeeded"
    return eileen, tom


def kiosk_crop(engine, image_bgr, seed: int = 0) -> bytes:
    """What the kiosk hands over: a 640x480 frame of the photo, cut around the face."""
    m, _ = faces.kiosk_view(engine, image_bgr)
    frame = faces.frames(image_bgr, m, 1, seed=seed)[0]
    crop = face_photo(frame, engine.analyze(frame)[0].box)
    assert crop is not None
    return crop


def test_a_confident_unmasked_check_in_becomes_a_photo_of_that_person(gallery, engine, astronaut_bgr, enqueued,
                                                                      django_capture_on_commit_callbacks):
    eileen, _ = gallery
    crop = kiosk_crop(engine, astronaut_bgr)
    with django_capture_on_commit_callbacks(execute=True):
        photo = services.photo_add_from_checkin(person_id=eileen.pk, data=crop, checkin_id=41)
    assert photo is not None and photo.person_id == eileen.pk and photo.source == FacePhoto.Source.CHECKIN
    assert not photo.masked and photo.get_source_display() == "check-in"
    assert photo.kept_from_checkin == 41   # the check-in's deletion points to it (recognition.admin)
    event = AuditEvent.objects.filter(action=AuditEvent.Action.PHOTO_ADD, object_id=str(photo.pk)).get()
    assert "check-in #41" in event.summary and "Eileen" not in event.summary
    assert enqueued, "the new photo asks for a rebuild"
    # the same crop again is a duplicate: nothing more is kept
    assert services.photo_add_from_checkin(person_id=eileen.pk, data=crop, checkin_id=42) is None
    assert eileen.photos.count() == 2
    # an administrator removing it stops adaptation for her: the next check-in keeps nothing
    pk = photo.pk
    services.photo_remove(photo=photo, actor=None)
    eileen.refresh_from_db()
    assert not eileen.gallery_adaptation
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PHOTO_REMOVE, object_id=str(pk),
                                     summary__contains="gallery adaptation stopped").exists()
    other = kiosk_crop(engine, astronaut_bgr, seed=5)
    assert services.photo_add_from_checkin(person_id=eileen.pk, data=other, checkin_id=43) is None
    assert eileen.photos.count() == 1


def test_a_wrong_photo_kept_once_does_not_make_the_next_one_easier(gallery, engine, astronaut_bgr,
                                                                   registry_photos, caplog):
    """Confirmation is against the person's own photos that adaptation did not add: a stranger's
    face kept as someone's (forced here) does not vouch for that stranger's next check-in."""
    eileen, tom = gallery
    services.person_erase(person=tom, actor=None)
    toms = registry_photos["Tom_Hanks_54745.png"]
    services.photo_add(person=eileen, data=faces.jpeg(toms, 90), actor=None, source=FacePhoto.Source.CHECKIN)
    assert services.index_rebuild(run_id=None).state == "succeeded"
    with caplog.at_level("INFO", logger="enrollment.services"):
        kept = services.photo_add_from_checkin(person_id=eileen.pk, data=kiosk_crop(engine, toms, seed=3),
                                               checkin_id=11)
    assert kept is None
    said = [r.getMessage() for r in caplog.records if "not added" in r.getMessage()]
    # the index, whose template of her is the mean of both photos, accepts him as her; her own photo does not
    assert len(said) == 1 and "not confirmed by their own enrolment photos" in said[0], said
    # her own face still is
    assert services.photo_add_from_checkin(person_id=eileen.pk, data=kiosk_crop(engine, astronaut_bgr),
                                           checkin_id=12) is not None


def test_adaptation_can_be_stopped_for_one_person(gallery, engine, astronaut_bgr):
    eileen, _ = gallery
    services.person_gallery_adaptation_stop(person=eileen, actor=None)
    assert AuditEvent.objects.filter(summary=f"stopped gallery adaptation for person #{eileen.pk}").exists()
    assert services.photo_add_from_checkin(person_id=eileen.pk, data=kiosk_crop(engine, astronaut_bgr),
                                           checkin_id=1) is None


def test_nothing_is_kept_unless_every_condition_holds(gallery, engine, astronaut_bgr, registry_photos, settings,
                                                    caplog):
    eileen, tom = gallery
    crop = kiosk_crop(engine, astronaut_bgr)

    def refused(data: bytes, why: str | None) -> None:
        caplog.clear()
        with caplog.at_level("INFO", logger="enrollment.services"):
            assert services.photo_add_from_checkin(person_id=eileen.pk, data=data, checkin_id=9) is None
        said = [r.getMessage() for r in caplog.records if "not added" in r.getMessage()]
        assert (said == []) if why is None else (len(said) == 1 and why in said[0]), said

    # Tom's face offered as Eileen's (a kiosk's mistake would look like this): the index disagrees
    refused(kiosk_crop(engine, registry_photos["Tom_Hanks_54745.png"]), "another identity or nobody")
    # a masked face is never an enrolment photo by adaptation
    refused(kiosk_crop(engine, faces.with_mask(engine, astronaut_bgr, seed=2)), "masked")
    # a frame without a face, a broken JPEG
    refused(faces.jpeg(faces.empty_room()[0]), "(no_face)")
    refused(crop[:300], "(unreadable)")
    # a margin no score reaches
    settings.MASKNET_GALLERY_ADAPT_MARGIN = 1.0
    refused(crop, "not confirmed by their own enrolment photos")
    settings.MASKNET_GALLERY_ADAPT_MARGIN = 0.1
    # enough photos already; the setting off (the default): nothing said
    settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS = 1
    refused(crop, None)
    settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS = 3
    settings.MASKNET_GALLERY_ADAPT = False
    refused(crop, None)
    settings.MASKNET_GALLERY_ADAPT = True
    # someone no longer active
    services.person_deactivate(person=eileen, actor=None)
    refused(crop, "not an active person")
    assert FacePhoto.objects.filter(source=FacePhoto.Source.CHECKIN).count() == 0


def test_the_photo_limit_holds_when_another_site_keeps_one_meanwhile(gallery, engine, astronaut_bgr, settings,
                                                                    monkeypatch, caplog):
    """Two kiosks checking the same person in at once: the second add finds the first's photo when
    it counts again, inside the person's lock, and keeps nothing."""
    eileen, _ = gallery
    settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS = 2
    first, second = kiosk_crop(engine, astronaut_bgr, seed=1), kiosk_crop(engine, astronaut_bgr, seed=7)
    confirm = photo_services._own_unmasked_score

    def confirmed_while_another_site_adds(person, embedding):
        score = confirm(person, embedding)
        monkeypatch.setattr(photo_services, "_own_unmasked_score", confirm)
        # the other site's add lands between this one's early count and its insert
        assert services.photo_add_from_checkin(person_id=eileen.pk, data=first, checkin_id=50) is not None
        return score

    monkeypatch.setattr(photo_services, "_own_unmasked_score", confirmed_while_another_site_adds)
    with caplog.at_level("INFO", logger="enrollment.services"):
        assert services.photo_add_from_checkin(person_id=eileen.pk, data=second, checkin_id=51) is None
    assert eileen.photos.count() == 2
    assert any("(enough_photos)" in r.getMessage() for r in caplog.records)
    with pytest.raises(services.PhotoRefused) as refused:
        services.photo_add(person=eileen, data=second, actor=None, max_photos=2)
    assert refused.value.code == "enough_photos"


@pytest.mark.parametrize("meanwhile", ["adaptation stopped", "deactivated"])
def test_nothing_is_kept_when_adaptation_stops_while_a_face_is_checked(gallery, engine, astronaut_bgr, monkeypatch,
                                                                       caplog, meanwhile):
    """An administrator who stops adaptation for the person (or removes a kept photo, which stops
    it) or deactivates them while a check-in's face is being checked: the add reads the person
    again where adds take turns, and keeps nothing."""
    eileen, _ = gallery
    before = eileen.photos.count()
    confirm = photo_services._own_unmasked_score

    def confirmed_while_the_admin_acts(person, embedding):
        if meanwhile == "deactivated":
            services.person_deactivate(person=Person.objects.get(pk=person.pk), actor=None)
        else:
            Person.objects.filter(pk=person.pk).update(gallery_adaptation=False)
        return confirm(person, embedding)

    monkeypatch.setattr(photo_services, "_own_unmasked_score", confirmed_while_the_admin_acts)
    with caplog.at_level("INFO", logger="enrollment.services"):
        assert services.photo_add_from_checkin(person_id=eileen.pk, data=kiosk_crop(engine, astronaut_bgr, seed=3),
                                               checkin_id=60) is None
    assert eileen.photos.count() == before
    assert any("(adaptation_stopped)" in r.getMessage() for r in caplog.records)
