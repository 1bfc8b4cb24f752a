"""enrollment.services: people, photos (every refusal reason), audit rows, queued rebuilds."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import recognizer, services
from enrollment.models import FacePhoto, Person, PersonInactivePeriod, PhotoTemplates, TrainingRun
from enrollment.services import index as index_services
from enrollment.services import photos as photo_services

from .conftest import jpeg


def test_person_create_audits_without_personal_data(db):
    person = services.person_create(actor=None, full_name=" Jane Doe ", staff_id="S-9", department="Ops")
    assert person.full_name == "Jane Doe"
    event = AuditEvent.objects.get(action="create", object_type="enrollment.person")
    assert event.object_id == str(person.pk) and event.actor == "system"
    assert "Jane" not in event.summary and "S-9" not in event.summary


def test_person_create_refuses_duplicate_staff_id(person):
    with pytest.raises(ValidationError):
        services.person_create(actor=None, full_name="Someone Else", staff_id=person.staff_id)


def test_staff_ids_are_unique_ignoring_letter_case(person):
    """``E-1`` and ``e-1`` were two people, listed apart by attendance and its CSVs."""
    from django.db import IntegrityError, connection, transaction

    with pytest.raises(ValidationError) as taken:
        services.person_create(actor=None, full_name="Someone Else", staff_id="e-1")
    assert "letter case" in " ".join(taken.value.message_dict["staff_id"])
    other = services.person_create(actor=None, full_name="Other", staff_id="X-1")
    with pytest.raises(ValidationError) as taken:
        services.person_update(person=other, actor=None, staff_id="e-1")
    assert "staff_id" in taken.value.message_dict
    # a person may change the case of their own id
    services.person_update(person=person, actor=None, staff_id="e-1")
    assert Person.objects.get(pk=person.pk).staff_id == "e-1"
    # the database holds it too, whatever saves the row: a unique key Django's migrations know of
    with pytest.raises(IntegrityError), transaction.atomic():
        Person.objects.create(full_name="Raw", staff_id="E-1")
    assert Person._meta.get_field("staff_key").unique
    # the Kelvin sign is "K" itself once stored in one Unicode form (NFC), on either database
    assert services.person_create(actor=None, full_name="Kelvin", staff_id="\u212a-7").staff_id == "K-7"
    with pytest.raises(ValidationError):
        services.person_create(actor=None, full_name="Kay", staff_id="k-7")
    # and a migration over a table that already has such a pair says which (0008)
    from importlib import import_module

    from django.apps import apps
    from django.core.management.base import CommandError

    migration = import_module("enrollment.migrations.0008_person_staff_id_unique_ignoring_case")
    with transaction.atomic():
        # rows as before the key (rolled back with the test): written past save(), without a key
        def raw(staff_id: str) -> None:
            made = Person.objects.create(full_name="Raw", staff_id=f"raw {Person.objects.count()}")
            Person.objects.filter(pk=made.pk).update(staff_id=staff_id, staff_key=None)

        raw("X-1".lower())
        with pytest.raises(CommandError) as refused:
            migration.refuse_case_duplicates(apps, None)
        assert f"'X-1' (person #{other.pk}) and 'x-1'" in str(refused.value)
        # compared with the database's LOWER, as 0008's unique index compared them (Python's lower()
        # differs: PostgreSQL lowers the Kelvin sign to "k", SQLite does not)
        raw("\u212a-8")
        raw("k-8")
        from enrollment.upgrade import staff_id_case_clashes

        kelvin_pair = [c for c in staff_id_case_clashes(connection) if "k-8" in c]
        assert bool(kelvin_pair) == (connection.vendor == "postgresql"), kelvin_pair
        transaction.set_rollback(True)


def test_person_update_lists_changed_fields_and_rebuilds_on_active_change(person, superuser, enqueued,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.person_update(person=person, actor=superuser, department="Ground", notes="n")
    event = AuditEvent.objects.filter(action="update").get()
    assert event.summary.endswith("department, notes") and event.actor == "root"
    assert enqueued == []  # no change of who is in the index
    with django_capture_on_commit_callbacks(execute=True):
        services.person_update(person=person, actor=superuser, active=False)
    assert len(enqueued) == 1
    person.refresh_from_db()
    assert person.active is False and person.department == "Ground"


def test_person_update_without_changes_writes_nothing(person):
    services.person_update(person=person, actor=None, full_name=person.full_name)
    assert not AuditEvent.objects.filter(action="update").exists()


NFC, NFD = unicodedata.normalize("NFC", "Zo\u00eb"), unicodedata.normalize("NFD", "Zo\u00eb")


def test_a_staff_id_in_another_unicode_form_is_the_same_persons(db):
    """"Zoë" composed (NFC, U+00EB) and decomposed (NFD, "e" + U+0308, a Mac's folder name) were two
    staff ids: a second person whose id looked the same. Names and staff ids are stored NFC."""
    zoe = services.person_create(actor=None, full_name=f"{NFD} Adams", staff_id=f"{NFD.upper()}-1",
                                 department=f"{NFD} Lab")
    assert (zoe.full_name, zoe.staff_id, zoe.department) == (f"{NFC} Adams", f"{NFC.upper()}-1", f"{NFC} Lab")
    assert Person.objects.get(pk=zoe.pk).staff_id == "ZO\u00cb-1"
    with pytest.raises(ValidationError) as taken:
        services.person_create(actor=None, full_name="Other", staff_id=f"{NFD.upper()}-1")
    assert "staff_id" in taken.value.message_dict and Person.objects.count() == 1
    other = services.person_create(actor=None, full_name="Other", staff_id="O-1")
    with pytest.raises(ValidationError):
        services.person_update(person=other, actor=None, staff_id=f"{NFD.upper()}-1")
    # the same text in the other form is no change: nothing written, nothing audited
    services.person_update(person=zoe, actor=None, full_name=f"{NFD} Adams", staff_id=f"{NFD.upper()}-1")
    assert not AuditEvent.objects.filter(action="update").exists()
    # found whichever form the query uses
    assert Person.objects.with_staff_id(f"{NFD.upper()}-1").get() == zoe
    assert list(Person.objects.search(NFD)) == list(Person.objects.search(NFC)) == [zoe]


# a staff id stored, and one typed otherwise that is the same id: letter case outside ASCII (SQLite's
# LOWER left "\xcb" as it was), full-width forms (a Japanese keyboard), runs of spaces, "\xdf"; the
# dashes HR's spreadsheets and Word paste for "-" (non-breaking hyphen, hyphen, figure dash, en dash,
# minus sign), either way round; a Turkish keyboard's capital dotted I
SAME_STAFF_IDS = [("ZO\u00cb-1", "zo\u00eb-1"), ("ZOE-1", "\uff3a\uff2f\uff25-1"),
                  ("ZOE-1", "\uff5a\uff4f\uff45\uff0d\uff11"), ("A 100", "A  100"),
                  ("A 100", "a\u3000\u3000100"), ("STRASSE-1", "Stra\u00dfe-1"), ("\u0394-2", "\u03b4-2"),
                  ("A-100", "A\u2011100"), ("A-100", "a\u2010100"), ("A-100", "A\u2012100"), ("A-100", "A\u2013100"),
                  ("A-100", "A\u2212100"), ("A\u2011100", "A-100"), ("A\u2013B-1", "a\u2212b\u20111"),
                  ("ID-5", "\u0130D-5"), ("\u0130D-5", "id-5"), ("K\u0130M-1", "Ki\u0307m-1")]


@pytest.mark.parametrize(("stored", "typed"), SAME_STAFF_IDS)
def test_a_staff_id_is_one_whatever_its_case_width_or_spaces_on_either_database(db, stored, typed):
    """Staff ids were unique by the database's LOWER: "ZO\xcb-1" and "zo\xeb-1" were two people on
    SQLite (ASCII letters only), one on PostgreSQL; and on both, a full-width "\uff3a\uff2f\uff25-1" or
    "A  100" with two spaces looked the same as another's id and was a second person. A key
    computed in Python (enrollment.text.staff_id_key) decides now, alike on both; the staff id
    is shown as it was typed."""
    from django.db import IntegrityError, transaction

    from enrollment.models import STAFF_ID_TAKEN
    from enrollment.text import staff_id_key, staff_id_normal

    first = services.person_create(actor=None, full_name="First Person", staff_id=stored)
    assert staff_id_key(stored) == staff_id_key(typed) == first.staff_key
    with pytest.raises(ValidationError) as taken:
        services.person_create(actor=None, full_name="Second", staff_id=typed)
    assert taken.value.message_dict["staff_id"] == [STAFF_ID_TAKEN]
    other = services.person_create(actor=None, full_name="Other", staff_id="O-1")
    with pytest.raises(ValidationError) as taken:
        services.person_update(person=other, actor=None, staff_id=typed)
    assert taken.value.message_dict["staff_id"] == [STAFF_ID_TAKEN] and Person.objects.count() == 2
    # found in any of those forms, by the exact lookup and by the search
    assert Person.objects.with_staff_id(typed).get() == first
    assert list(Person.objects.search(typed)) == [first]
    # the database holds it too, whatever saves the row
    with pytest.raises(IntegrityError), transaction.atomic():
        Person.objects.create(full_name="Raw", staff_id=typed)
    # the person may write their own id otherwise: shown as typed (NFC), the key unchanged
    services.person_update(person=first, actor=None, staff_id=typed)
    first.refresh_from_db()
    assert (first.staff_id, first.staff_key) == (staff_id_normal(typed), staff_id_key(stored))
    assert Person.objects.with_staff_id(stored).get() == first


def test_a_staff_id_key_is_idempotent_and_keeps_what_tells_ids_apart(db):
    from enrollment.text import staff_id_key

    for _, typed in SAME_STAFF_IDS:
        assert staff_id_key(staff_id_key(typed)) == staff_id_key(typed)
    assert staff_id_key("\u200b ZO\u00cb\u00a0 1\t") == "zo\u00eb 1"
    assert len({staff_id_key(t) for t in ("A-1", "A1", "A-10", "A 1", "\u00c5-1", "A\u2010 1")}) == 6
    # an em dash (twice as wide; Word's for two hyphens), two hyphens, a script's own hyphen (Armenian,
    # the Hebrew maqaf), the dotless i: each its own id
    apart = ("A-1", "A\u20141", "A--1", "A\u20151", "A\u058a1", "A\u05be1", "I-1", "\u0131-1", "A\u2013 1")
    assert len({staff_id_key(t) for t in apart}) == len(apart)
    assert staff_id_key("\u0130\u0301-1") == "\u00ed-1"   # the dot gone, the accent kept: "\xed"
    assert staff_id_key("\u200b\ufeff") == ""


@pytest.mark.parametrize("typed", ["\u200bA-100", "A-100\u00a0", "A-\u200b100", "\ufeffA-100\u2060", "A-1\u00ad00",
                                   "\tA-100\n", "A-100\u200e"])
def test_invisible_characters_and_spaces_around_a_staff_id_are_dropped(db, typed):
    """A zero-width space, a no-break space or a byte-order mark pasted with a staff id made another
    id that looks the same (and one with it inside, too)."""
    first = services.person_create(actor=None, full_name="Ann Bee", staff_id=typed)
    assert first.staff_id == "A-100"
    with pytest.raises(ValidationError):
        services.person_create(actor=None, full_name="Other", staff_id="A-100")
    assert Person.objects.with_staff_id(typed).get() == first


def test_names_keep_the_invisible_characters_that_write_them(db):
    """Inside a name, a zero-width non-joiner (Persian) or joiner (Indic scripts) is part of the
    writing and stays; a zero-width space, a no-break space (a plain space then) and whatever is at
    either end do not. A name or staff id of invisible characters alone is blank, refused."""
    from enrollment.text import name_normal, staff_id_normal

    assert name_normal("\u200b Mi\u200cnoo\u00a0Ka\u200bri\u200d ") == "Mi\u200cnoo Kari"
    assert staff_id_normal("Mi\u200cnoo\u00a0K") == "Minoo K"
    for text in ("Zo\u00eb A", "\u200b Zoe\u0308\u00a0A\ufeff"):
        assert name_normal(name_normal(text)) == name_normal(text) == "Zo\u00eb A"
        assert staff_id_normal(staff_id_normal(text)) == staff_id_normal(text) == "Zo\u00eb A"
    with pytest.raises(ValidationError) as blank:
        services.person_create(actor=None, full_name="\u200b\u00a0", staff_id="\ufeff")
    assert {"full_name", "staff_id"} <= set(blank.value.message_dict)


def test_person_deactivate_queues_a_rebuild_on_commit(person, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.person_deactivate(person=person, actor=None)
        assert enqueued == []  # nothing before the commit
    for cb in callbacks:
        cb()
    assert len(enqueued) == 1 and enqueued[0]["force"] is False
    assert not Person.objects.active().filter(pk=person.pk).exists()
    assert AuditEvent.objects.filter(action="deactivate", object_id=str(person.pk)).exists()


def test_every_deactivation_says_when_and_a_reactivation_clears_it(person):
    """``deactivated_at``, which attendance's past days go by: set by ``person_deactivate`` (kept by a
    second one: the first is when they left), by ``person_update``'s ``active`` (the admin's box, the
    API's PATCH) and by creating someone inactive; cleared by a reactivation."""
    services.person_deactivate(person=person, actor=None)
    person.refresh_from_db()
    left = person.deactivated_at
    assert left is not None and not person.active
    services.person_deactivate(person=Person.objects.get(pk=person.pk), actor=None)
    services.person_update(person=person, actor=None, active=False)
    assert Person.objects.get(pk=person.pk).deactivated_at == left
    services.person_update(person=person, actor=None, active=True)
    assert Person.objects.get(pk=person.pk).deactivated_at is None and person.deactivated_at is None
    services.person_update(person=person, actor=None, active=False, department="Ops")
    assert Person.objects.get(pk=person.pk).deactivated_at > left
    created = services.person_create(actor=None, full_name="Left Before", staff_id="L-0", active=False)
    assert Person.objects.get(pk=created.pk).deactivated_at is not None
    assert services.person_create(actor=None, full_name="Here", staff_id="H-0").deactivated_at is None


def test_a_reactivation_keeps_the_period_it_ends(person):
    """The date a reactivation clears is kept as a past inactive period, to the reactivation's time
    (attendance counts none of its days); a deactivation, or a change of something else, keeps none;
    a reactivation of someone whose deactivation was never dated keeps one without a start."""
    services.person_deactivate(person=person, actor=None)
    services.person_update(person=person, actor=None, department="Ops")
    assert not PersonInactivePeriod.objects.exists()
    left = Person.objects.get(pk=person.pk).deactivated_at
    before = timezone.now()
    services.person_update(person=person, actor=None, active=True)
    (period,) = PersonInactivePeriod.objects.filter(person=person)
    assert period.deactivated_at == left and before <= period.reactivated_at <= timezone.now()
    services.person_update(person=person, actor=None, active=True)   # no change: nothing more
    Person.objects.filter(pk=person.pk).update(active=False, deactivated_at=None)   # as before 0019
    services.person_update(person=Person.objects.get(pk=person.pk), actor=None, active=True)
    assert [p.deactivated_at for p in PersonInactivePeriod.objects.filter(person=person)] == [left, None]


def test_requests_are_debounced_into_one_run(person, enqueued, settings, django_capture_on_commit_callbacks):
    settings.MASKNET_REBUILD_DEBOUNCE_S = 5.0
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(4):
            services.index_rebuild_request(actor=None, reason=f"change {i}")
    run = TrainingRun.objects.get()
    assert run.state == "queued" and run.requests == 4
    assert {c["run_id"] for c in enqueued} == {run.pk} and enqueued[-1]["countdown"] == 5.0
    # an early message finds the run not yet due and does nothing; the last one (or force) runs it
    assert services.index_rebuild(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.state == "queued"


# ------------------------------------------------------------------------------------------ photos


def _refusal(person, data: bytes) -> str:
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=data, actor=None)
    return info.value.code


def test_refuses_files_that_are_not_images(person):
    assert _refusal(person, b"hello, this is text") == "file_type"
    assert not FacePhoto.objects.exists()


def test_refuses_animated_images_but_takes_a_phones_multi_picture_jpeg(person, astronaut_bgr, engine):
    """An animated WebP was stored as its first frame, the others (maybe someone else) dropped
    without a word. A JPEG with several pictures (a phone's MPO: the photo and a preview or depth
    map) is a still photo, and is not refused as animated."""
    from PIL import Image

    frames = [Image.fromarray(astronaut_bgr[:, :, ::-1]), Image.fromarray(astronaut_bgr[::-1, :, ::-1])]
    for fmt in ("WEBP", "PNG"):
        out = io.BytesIO()
        frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100)
        with pytest.raises(services.PhotoRefused) as refused:
            services.photo_add(person=person, data=out.getvalue(), actor=None)
        assert refused.value.code == "file_type" and "animated" in refused.value.message, fmt
    mpo = io.BytesIO()
    frames[0].save(mpo, "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(mpo.getvalue())).n_frames == 2
    assert services.photo_inspect(data=mpo.getvalue(), engine=engine).ok


def test_refuses_a_file_costly_to_read_before_pillow_reads_its_header(astronaut_jpeg, monkeypatch):
    """8 MiB of empty JPEG comments took Pillow 3 s to open, holding the GIL (the process's kiosk
    sockets waited), before the decoder's own check could refuse it: refused first, as unreadable."""
    import time

    from PIL import Image

    def pillow_reads(*args, **kwargs):
        raise AssertionError("Pillow read the file")

    monkeypatch.setattr(Image, "open", pillow_reads)
    data = astronaut_jpeg[:2] + b"\xff\xfe\x00\x02" * ((8 * 2**20 - len(astronaut_jpeg)) // 4) + astronaut_jpeg[2:]
    started = time.perf_counter()
    inspection = services.photo_inspect(data=data)
    assert inspection.code == "unreadable" and time.perf_counter() - started < 0.5


def test_refuses_files_over_the_size_limit(person, astronaut_jpeg, settings):
    settings.MASKNET_MAX_PHOTO_BYTES = 1000
    assert _refusal(person, astronaut_jpeg) == "too_large"


def test_a_file_over_the_size_limit_is_told_what_to_do(person, astronaut_jpeg, settings):
    """As the pixel limit's refusal says to scale the photo down, the size limit's says how to get the
    photo in (it named the limit alone, beside an 8.8 MB PNG that a JPEG of it would pass)."""
    settings.MASKNET_MAX_PHOTO_BYTES = 1000
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=astronaut_jpeg, actor=None)
    assert info.value.message == (f"The file is too large. It is {len(astronaut_jpeg):,} bytes; at most 1,000 "
                                  f"bytes. Scale it down or save it as a smaller JPEG."), info.value.message


def test_refuses_images_over_the_pixel_limit_and_says_so(person, astronaut_jpeg, settings):
    """A 5000x5000 JPEG can be a small file: the reason names pixels, not the file's size (an
    administrator compressing the file would not get it in)."""
    settings.MASKNET_MAX_PIXELS = 100 * 100
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=astronaut_jpeg, actor=None)
    assert info.value.code == "too_large"
    assert info.value.message == ("The file is too large. It is 512×512 pixels; at most 10,000 pixels (e.g. "
                                  "100×100): scale it down (compressing the file would not help).")


def test_a_header_over_pillows_own_limit_is_refused_with_its_pixel_count(person):
    """A 20000×20000 header stops Pillow before the site's own check reads the size: the refusal said
    "At most 16,777,216 pixels" without saying how many the photo has (a bad-input review)."""
    from tests.test_decode import png_header_only

    inspection = services.photo_inspect(data=png_header_only(20_000, 20_000))
    assert inspection.code == "too_large"
    assert "It is 400,000,000 pixels; at most 16,777,216 pixels" in inspection.message, inspection.message


def test_a_photo_within_raised_limits_is_not_refused_by_the_engines_own(settings):
    """``MASKNET_MAX_PHOTO_BYTES`` (or ``MASKNET_MAX_PIXELS``) raised above the engine's defaults
    (8 MiB, 40 Mpx): a photo within the site's limits passed their checks, then the engine's decode
    refused it by its own, as "too_large" with "it is 2000×1500 pixels; at most 64,000,000 pixels".
    The engine the site loads (``engine_config``) takes what the site's limits take."""
    from recognition.engine import EngineConfig
    from tests.upload_fuzz import NoFaceEngine

    settings.MASKNET_MAX_PHOTO_BYTES, settings.MASKNET_MAX_PIXELS = 32 * 2**20, 64_000_000

    class SiteEngine(NoFaceEngine):   # the product's decoder with the limits get_engine loads it with
        config = recognizer.engine_config()

    noise = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    data = cv2.imencode(".png", noise, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()
    assert 8 * 2**20 < len(data) < settings.MASKNET_MAX_PHOTO_BYTES
    inspection = services.photo_inspect(data=data, engine=SiteEngine())
    assert (inspection.code, inspection.width, inspection.height) == ("no_face", 2000, 1500), inspection
    assert SiteEngine.config.max_pixels >= settings.MASKNET_MAX_PIXELS
    # the defaults are the engine's own: the same engine (and cached models) as before
    settings.MASKNET_MAX_PHOTO_BYTES, settings.MASKNET_MAX_PIXELS = 8 * 2**20, 4096 * 4096
    assert recognizer.engine_config() == EngineConfig.for_descriptor(settings.MASKNET_DESCRIPTOR)


@pytest.mark.models
def test_refuses_truncated_images(person, astronaut_jpeg, engine):
    assert _refusal(person, astronaut_jpeg[:400]) == "unreadable"


@pytest.mark.models
def test_an_upside_down_photo_is_taken_turned_upright_and_an_upright_masked_one_as_it_is(person, astronaut_bgr,
                                                                                         engine):
    """Upside down, every check passed and the mask head called the face masked: it was enrolled as
    a masked template that matched nobody, then refused as upside down. Turned half a circle, it
    shows an unmasked face: taken so, as it will be stored (its box the upright photo's). A masked
    face upright, turned, shows no unmasked face: taken as it is."""
    from recognition.engine.detect import box_iou
    from tests.recognition.faces import with_mask

    turned = services.photo_inspect(data=jpeg(cv2.rotate(astronaut_bgr, cv2.ROTATE_180)), engine=engine)
    assert (turned.ok, turned.turned, turned.masked) == (True, 180, False), turned
    upright = services.photo_inspect(data=jpeg(astronaut_bgr), engine=engine)
    assert upright.ok and upright.turned == 0 and box_iou(turned.box, upright.box) > 0.8, (turned, upright)
    masked = services.photo_inspect(data=jpeg(with_mask(engine, astronaut_bgr)), engine=engine)
    assert masked.ok and masked.masked and masked.turned == 0, masked


@pytest.mark.models
@pytest.mark.parametrize(("name", "turn", "as_it_was", "stored"), [
    ("Adam_Mair", cv2.ROTATE_180, "no_face", 180),
    ("Aaron_Pena", cv2.ROTATE_180, "unclear_face", 180),
    # on its side, no clear face as it is nor a quarter turn to read: half a circle shows it on
    # its other side, whose eyes say which quarter more
    ("Abdullah_al-Attiyah", cv2.ROTATE_90_CLOCKWISE, "unclear_face", 270),
])
def test_a_photo_without_a_face_as_it_is_is_tried_upside_down(person, engine, shared_data, name, turn, as_it_was,
                                                               stored):
    """LFW photos upside down without EXIF orientation were refused as no face, or no clear face
    (their face not read as masked, which tried half a turn already): 15 of 60. Half a turn is tried
    once the photo as it is fails so, and the photo taken turned upright."""
    from recognition.engine import NoFaceFound

    photo = cv2.imread(str(shared_data / "lfw" / "images_deepfunneled" / name / f"{name}_0001.jpg"))
    sent = cv2.rotate(photo, turn)
    try:
        found = recognizer.choose_face(engine.analyze(sent)).reason
    except NoFaceFound:
        found = "no_face"
    assert found == as_it_was   # what the photo as it is was refused for
    inspection = services.photo_inspect(data=cv2.imencode(".png", sent)[1].tobytes(), engine=engine)
    assert (inspection.ok, inspection.turned, inspection.masked) == (True, stored, False), inspection
    assert (inspection.width, inspection.height) == photo.shape[1::-1]


def test_a_photo_without_a_face_is_tried_upside_down_without_tiles():
    """The half turn costs a photo without a face one detection more, not the tiles a large photo
    where nobody is found is searched again in (0.4 to 0.6 s for 12 megapixels)."""
    from tests.upload_fuzz import NoFaceEngine

    searched = []

    class Counting(NoFaceEngine):
        def analyze(self, image, **kwargs):
            searched.append(kwargs.get("search_tiles", True))
            return super().analyze(image, **kwargs)

    data = cv2.imencode(".png", np.full((1500, 2000, 3), 128, np.uint8))[1].tobytes()
    assert services.photo_inspect(data=data, engine=Counting()).code == "no_face"
    assert searched == [True, False]


@pytest.mark.models
def test_a_photo_on_its_side_called_masked_is_refused_but_a_masked_one_on_its_side_is_taken(
        person, astronaut_bgr, engine, shared_data):
    """An LFW photo turned a quarter without EXIF, its face misread and called masked: it was
    enrolled as a masked template. Turned back it is an unmasked face: refused as on its side. A
    masked face on its side is still masked turned back: taken."""
    from tests.recognition.faces import with_mask

    name = "Sean_Patrick_OMalley"
    photo = cv2.imread(str(shared_data / "lfw" / "images_deepfunneled" / name / f"{name}_0001.jpg"))
    # lossless: this face is called masked on its side at every JPEG quality from 75 to 95 too
    on_its_side = cv2.imencode(".png", cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE))[1].tobytes()
    sideways = services.photo_inspect(data=on_its_side, engine=engine)
    assert (sideways.ok, sideways.code, sideways.masked) == (False, "sideways", True), sideways
    assert "on its side" in sideways.message
    upright = services.photo_inspect(data=jpeg(photo), engine=engine)
    assert upright.ok and not upright.masked, upright
    for turn in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE):
        masked = services.photo_inspect(data=jpeg(cv2.rotate(with_mask(engine, astronaut_bgr), turn)), engine=engine)
        assert masked.ok and masked.masked, masked


@pytest.mark.models
def test_refuses_a_photo_without_a_face(person, gradient_png, engine):
    assert _refusal(person, gradient_png) == "no_face"


@pytest.mark.models
def test_a_photo_too_small_for_any_face_says_so(person, astronaut_bgr, engine):
    """A 40x40 thumbnail of a face was "no face found": the detector finds none that small, and the
    person looked for a better face rather than a larger photo."""
    face = astronaut_bgr[20:220, 150:350]        # Eileen Collins' face, 200 px square
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=jpeg(cv2.resize(face, (40, 40), interpolation=cv2.INTER_AREA)),
                           actor=None)
    assert info.value.code == "too_small" and "40x40 pixels" in info.value.message
    assert services.photo_inspect(data=jpeg(face)).ok   # the same face, large enough


@pytest.mark.models
@pytest.mark.parametrize("picture", ["coffee", "chelsea"])
def test_refuses_a_false_face_the_detector_finds(person, engine, picture):
    """scikit-image's cup of coffee and its cat: the detector finds a "face" in each that passes the
    quality gate and the masked/unmasked head calls masked; enrolled, it would match that object."""
    from skimage import data

    rgb = getattr(data, picture)()
    faces = engine.analyze(np.ascontiguousarray(rgb[:, :, ::-1]))
    assert faces[0].quality.ok and faces[0].face_flag < 0.1          # what the gate alone let through
    assert _refusal(person, jpeg(np.ascontiguousarray(rgb[:, :, ::-1]))) == "unclear_face"
    assert services.REFUSALS["unclear_face"].startswith("No clear face")


@pytest.mark.models
def test_refuses_a_group_photo(person, group_jpeg, engine):
    assert _refusal(person, group_jpeg) == "several_faces"


@pytest.mark.models
@pytest.mark.parametrize("change, reason", [
    (lambda a: cv2.resize(a, (160, 160)), "too_small"),
    (lambda a: (a * 0.15).astype("uint8"), "too_dark"),
    (lambda a: cv2.convertScaleAbs(a, alpha=1.0, beta=140), "too_bright"),
    (lambda a: cv2.GaussianBlur(a, (0, 0), 3), "blurry"),
    (lambda a: a[:, 205:], "partial"),   # the photo's edge through her right eye
])
def test_refuses_poor_quality_with_the_reason(person, astronaut_bgr, engine, change, reason):
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=jpeg(change(astronaut_bgr)), actor=None)
    assert info.value.code == reason
    assert info.value.message == services.REFUSALS[reason]


@pytest.mark.models
def test_an_enrolment_photo_must_be_lit_as_before_though_a_kiosk_frame_may_be_dimmer(person, astronaut_bgr, engine):
    # the kiosk's gate passes faces from a skin brightness of 30 (bench/light.py measured dim
    # probes against a well-lit gallery); an enrolment photo, every later frame's reference, from 45
    dim = (astronaut_bgr * 0.28).astype("uint8")
    quality = engine.analyze(jpeg(dim))[0].quality
    assert 30 <= quality.brightness < 45 and quality.ok
    with pytest.raises(services.PhotoRefused) as info:
        services.photo_add(person=person, data=jpeg(dim), actor=None)
    assert info.value.code == "too_dark"
    inspection = services.photo_inspect(data=jpeg(dim))
    assert (inspection.ok, inspection.code, inspection.quality_verdict) == (False, "too_dark", "too_dark")


@pytest.mark.models
def test_refuses_a_turned_face(person, astronaut_jpeg, engine, monkeypatch):
    # a real turned face cannot be made from the test photos: the gate's verdict is forced
    real = engine.analyze

    def turned(image, **kw):
        faces = real(image, **kw)
        return [dataclasses.replace(f, quality=dataclasses.replace(f.quality, reason="pose")) for f in faces]

    monkeypatch.setattr(engine, "analyze", turned)
    assert _refusal(person, astronaut_jpeg) == "pose"


@pytest.mark.models
def test_photo_add_stores_the_verdict_and_the_file(person, astronaut_jpeg, engine, settings, enqueued,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        photo = services.photo_add(person=person, data=astronaut_jpeg, filename="eileen.jpg", actor=None)
    assert (photo.width, photo.height) == (512, 512)
    x1, y1, x2, y2 = photo.box
    assert 150 < (x1 + x2) / 2 < 260 and photo.quality_verdict == "ok" and 0 < photo.quality_score <= 1
    assert photo.masked is False and photo.embedding_state == "pending"
    path = Path(photo.image.path)
    assert path.is_file() and path.is_relative_to(Path(settings.MEDIA_ROOT))
    assert "eileen" not in path.parent.name and path.read_bytes() == astronaut_jpeg
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700   # the services' user only
    assert AuditEvent.objects.filter(action="photo_add", object_id=str(photo.pk)).exists()
    assert len(enqueued) == 1
    assert _refusal(person, astronaut_jpeg) == "duplicate"
    # the same file for someone else: one photo under two identities would make the index confuse them
    other = services.person_create(actor=None, full_name="Someone Else", staff_id="S-2")
    assert _refusal(other, astronaut_jpeg) == "enrolled_elsewhere"


@pytest.mark.models
def test_a_phone_photo_is_stored_without_its_location(person, astronaut_bgr, engine, enqueued):
    """A phone's EXIF (GPS position, time, camera) is not kept with the face; the photo is stored
    upright, its box fits the stored pixels, and the same upload is still known as a duplicate."""
    from PIL import Image

    exif = Image.Exif()
    # stored on its side (turned a quarter anticlockwise): orientation 6 says "turn it clockwise to
    # show it upright" (8, here before, turned it upside down: refused as such since 2026-12-05)
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}    # where it was taken
    sideways = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut_bgr[:, :, ::-1], k=1))).save(
        sideways, "JPEG", quality=95, exif=exif.tobytes())
    upload = sideways.getvalue()
    photo = services.photo_add(person=person, data=upload, filename="IMG_0001.jpg", actor=None)
    stored = Path(photo.image.path).read_bytes()
    with Image.open(io.BytesIO(stored)) as img:
        assert img.format == "JPEG" and "exif" not in img.info and not img.getexif()
        assert img.size == (photo.width, photo.height) == (512, 512)
    upright = engine.decode(stored)
    assert np.abs(upright.astype(int) - astronaut_bgr).mean() < 8   # the photo as it was taken
    again = engine.analyze(upright)[0]
    assert np.allclose(again.box, photo.box, atol=6)      # the same face, where the box says
    assert photo.sha256 == hashlib.sha256(upload).hexdigest()
    assert _refusal(person, upload) == "duplicate"


@pytest.mark.models
def test_a_photo_whose_templates_fail_after_it_is_stored_is_left_to_the_rebuild(person, portrait_png, engine,
                                                                                 monkeypatch):
    """``embed``: the templates are made after the photo's transaction; a failure there keeps the
    photo (pending: the next rebuild embeds it) and does not stop an import."""
    from recognition.engine import EngineError

    def broken(*args, **kwargs):
        raise EngineError("the model failed")

    monkeypatch.setattr(recognizer, "face_templates", broken)
    photo = services.photo_add(person=person, data=portrait_png, actor=None, embed=True, schedule_rebuild=False)
    photo.refresh_from_db()
    assert photo.embedding_state == "pending" and not PhotoTemplates.objects.exists()


@pytest.mark.models
def test_photo_add_with_embed_caches_templates(person, portrait_png, engine):
    photo = services.photo_add(person=person, data=portrait_png, actor=None, embed=True, schedule_rebuild=False)
    row = PhotoTemplates.objects.get(photo=photo)
    vectors, kinds = row.arrays()
    assert row.template_version == recognizer.template_version() and vectors.shape[1] == engine.dim
    expected = 1 + (recognizer.N_MASKED_TEMPLATES if recognizer.synthetic_masks_available() else 0)
    assert len(vectors) == expected and kinds[0] == 0 and (kinds[1:] == 1).all()
    photo.refresh_from_db()
    assert photo.embedding_state == "embedded"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stored_photos_and_their_folders_are_readable_by_the_services_user_only(person, make_photo):
    """Photos are written 0600 in folders made 0700, as the index files are, whatever the umask
    (Django's defaults: 0644 files, folders as the umask says)."""
    previous = os.umask(0o022)
    try:
        path = Path(make_photo(person).image.path)
    finally:
        os.umask(previous)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700 and _mode(path.parent.parent) == 0o700   # faces/<id>/ and faces/


def test_photo_remove_deletes_file_templates_and_queues_rebuild(person, make_photo, enqueued,
                                                                django_capture_on_commit_callbacks):
    photo = make_photo(person)
    path = Path(photo.image.path)
    assert path.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        services.photo_remove(photo=photo, actor=None)
    assert not path.exists()
    assert not FacePhoto.objects.exists() and not PhotoTemplates.objects.exists()
    assert AuditEvent.objects.filter(action="photo_remove").exists() and len(enqueued) == 1


def test_a_photo_removed_twice_is_recorded_and_rebuilt_once(person, make_photo, enqueued,
                                                              django_capture_on_commit_callbacks):
    """Two administrators (or one and an erasure) removing the same photo: the second finds it gone
    and records nothing, queues nothing (its record would also feed the index prune a removal time)."""
    photo = make_photo(person)
    stale = FacePhoto.objects.get(pk=photo.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.photo_remove(photo=photo, actor=None)
        services.photo_remove(photo=stale, actor=None)
    assert AuditEvent.objects.filter(action="photo_remove").count() == 1 and len(enqueued) == 1


def test_a_file_that_cannot_be_deleted_does_not_stop_the_rebuild(person, make_photo, enqueued, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    """The file goes after commit, best effort: a storage error there is logged (the daily sweep
    retries) and the after-commit work behind it, the rebuild hand-off, still happens."""
    from django.core.files.storage import default_storage

    photo = make_photo(person)

    def refuse(name):
        raise PermissionError(name)

    monkeypatch.setattr(default_storage, "delete", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        services.photo_remove(photo=photo, actor=None)
    assert not FacePhoto.objects.exists() and len(enqueued) == 1


def test_the_sweep_deletes_photo_files_no_row_names(person, make_photo, settings):
    """Files of an upload whose transaction rolled back (the admin saves a person and their photos
    in one transaction) or that a failed delete left: deleted once an hour old; the rows' files and
    files still being written are kept."""
    import os
    import time

    kept = Path(make_photo(person).image.path)
    orphan, young = kept.parent / "rolled-back.jpg", kept.parent.parent / "999" / "uploading.jpg"
    young.parent.mkdir(parents=True)
    for f in (orphan, young):
        f.write_bytes(b"biometric")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    assert services.photo_files_sweep(dry_run=True) == 1 and orphan.exists()
    assert services.photo_files_sweep() == 1
    assert not orphan.exists() and kept.exists() and young.exists()
    assert services.photo_files_sweep(now=time.time() + 7200) == 1 and not young.parent.exists()


def test_the_sweep_refuses_a_media_folder_that_is_not_this_databases(person, make_photo, settings):
    """A restore that put the media back before the database's rows (or a node pointed at another
    database) would have had every enrolment photo deleted by the next daily purge: far more files
    than rolled-back uploads leave are refused, nothing is deleted, and the purge fails."""
    import os
    import time

    from django.core.management import call_command
    from django.core.management.base import CommandError

    kept = Path(make_photo(person).image.path)
    restored = [kept.parent.parent / str(1000 + i) / "photo.jpg" for i in range(services.ORPHAN_SWEEP_FLOOR + 1)]
    for f in restored:
        f.parent.mkdir(parents=True)
        f.write_bytes(b"an enrolment photo")
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    failed: list[str] = []
    assert services.photo_files_sweep(failed=failed) == 0 and len(failed) == len(restored)
    failed, refused = [], []
    assert services.photo_files_sweep(failed=failed, refused=refused) == 0
    assert failed == [] and len(refused) == len(restored)
    assert all(f.exists() for f in restored) and kept.exists()
    # said as what it is: not a permission to fix and a run to repeat (an operator review), dry run or not
    for dry_run in (True, False):
        out = io.StringIO()
        with pytest.raises(CommandError) as info:
            call_command("purge_expired", *(["--dry-run"] if dry_run else []), stdout=out)
        said = str(info.value)
        assert f"refused {len(restored)} photo files" in said and "is DATABASE_URL this media folder's" in said
        assert "could not be deleted" not in said and "permissions" not in said, said
        assert f"none deleted, {len(restored)} refused" in out.getvalue()
    from recognition.tasks import PurgeIncomplete, purge_expired_task

    result = purge_expired_task.apply()   # beat's daily run fails as the command does, saying the same
    assert isinstance(result.result, PurgeIncomplete) and "is DATABASE_URL this media folder's" in str(result.result)
    assert all(f.exists() for f in restored)
    restored[0].unlink()     # as many as rolled-back uploads leave: swept as before
    for f in restored[1:-3]:
        f.unlink()
    assert services.photo_files_sweep() == 3 and kept.exists()


def test_the_daily_purge_marks_photos_whose_file_is_gone_and_clears_the_mark_when_it_is_back(
        person, make_photo, caplog):
    """A photo embedded for the current recognizer whose file was then deleted (a disk restore,
    someone cleaning the media folder) was marked ``file_missing`` only when a new recognizer needed
    it again; meanwhile its thumbnail answered 404 and the person's export lacked its file. The
    daily purge's photo sweep marks it from the listing it makes anyway (no stat per photo), a
    whole person folder gone included, and clears the mark once the file is back."""
    import logging
    import shutil

    from django.core.files.storage import default_storage

    from recognition.services import retention_purge

    other = services.person_create(actor=None, full_name="Other Person", staff_id="O-1")
    kept, gone, cleaned = make_photo(person), make_photo(person), make_photo(other)
    data = Path(gone.image.path).read_bytes()
    Path(gone.image.path).unlink()
    shutil.rmtree(Path(cleaned.image.path).parent)   # the person's whole folder
    uploading = Path(kept.image.path).parent / "uploading.jpg"   # no row yet: its age is asked for
    uploading.write_bytes(b"biometric")
    stats = []
    real_stat = default_storage.get_modified_time
    default = type(default_storage._wrapped)

    def counted_stat(self, name):
        stats.append(name)
        return real_stat(name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(default, "get_modified_time", counted_stat)
        assert services.photo_files_sweep(dry_run=True) == 0   # a dry run marks nothing
        assert not FacePhoto.objects.filter(file_missing=True).exists()
        with caplog.at_level(logging.INFO, logger="enrollment.services.photos"):
            assert retention_purge().orphan_files == 0
    # the rows' files are found in the listing, not asked for one by one (a file no row names is)
    assert stats == [f"faces/{person.pk}/uploading.jpg"] * 2 and uploading.exists()
    marked = dict(FacePhoto.objects.values_list("pk", "file_missing"))
    assert marked == {kept.pk: False, gone.pk: True, cleaned.pk: True}
    assert set(FacePhoto.objects.values_list("embedding_state", flat=True)) == {"embedded"}   # still in the index
    assert f"2 photo files missing from storage (photos #{gone.pk}, #{cleaned.pk})" in caplog.text, caplog.text
    caplog.clear()
    Path(gone.image.path).write_bytes(data)   # restored
    with caplog.at_level(logging.INFO, logger="enrollment.services.photos"):
        services.photo_files_sweep()
    assert dict(FacePhoto.objects.values_list("pk", "file_missing")) == {kept.pk: False, gone.pk: False,
                                                                           cleaned.pk: True}
    assert f"1 photo file back in storage (photos #{gone.pk})" in caplog.text, caplog.text


def old_orphan_beside(photo: FacePhoto) -> Path:
    """A file no photo row names, in ``photo``'s folder, two hours old (one the sweep deletes)."""
    import os
    import time

    orphan = Path(photo.image.path).parent / "rolled-back.jpg"
    orphan.write_bytes(b"biometric")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    return orphan


def test_a_person_erased_while_the_sweep_lists_the_folders_does_not_stop_it(
        person, make_photo, monkeypatch, django_capture_on_commit_callbacks):
    """An erasure deletes the person's folder after it commits: one committed between the sweep's
    listing of ``faces`` and of that folder made ``listdir`` raise ``FileNotFoundError``, which
    stopped the sweep (and the daily purge) before it deleted or marked anything."""

    from django.core.files.storage import default_storage

    erased = services.person_create(actor=None, full_name="Erased Person", staff_id="X-1")
    make_photo(erased)
    kept, gone = make_photo(person), make_photo(person)
    Path(gone.image.path).unlink()
    orphan = old_orphan_beside(kept)
    real_listdir = default_storage.listdir

    def erased_meanwhile(path: str):
        listing = real_listdir(path)
        if path == "faces" and Person.objects.filter(pk=erased.pk).exists():
            with django_capture_on_commit_callbacks(execute=True):   # its files go after commit
                services.person_erase(person=erased, actor=None)
        return listing

    monkeypatch.setattr(default_storage, "listdir", erased_meanwhile)
    assert services.photo_files_sweep() == 1 and not orphan.exists()
    assert not Path(kept.image.path).parent.parent.joinpath(str(erased.pk)).exists()
    assert dict(FacePhoto.objects.values_list("pk", "file_missing")) == {kept.pk: False, gone.pk: True}


def test_a_file_another_sweep_deletes_meanwhile_is_no_failure(person, make_photo, monkeypatch):
    """Two sweeps at once (a cron purge_expired beside beat's): a file the other deleted after this
    one listed its folder was counted a failure, and the purge told the operator to check the
    folders' permissions. Found by a helper's review."""

    from django.core.files.storage import default_storage

    orphan = old_orphan_beside(make_photo(person))
    real_listdir = default_storage.listdir

    def other_sweep_meanwhile(path: str):
        listing = real_listdir(path)
        if orphan.exists() and path.startswith("faces/"):
            orphan.unlink()
        return listing

    monkeypatch.setattr(default_storage, "listdir", other_sweep_meanwhile)
    failed: list[str] = []
    assert services.photo_files_sweep(failed=failed) == 0 and failed == []


def test_the_sweep_marks_no_photo_from_a_media_folder_that_is_not_this_databases(person, make_photo):
    """When the sweep judges the listing another database's (far more files than rows name), it
    deletes nothing, and marks nothing either: it had marked every photo of the rows file_missing
    from that listing, telling staff to restore or remove photos whose files are elsewhere."""
    import os
    import time

    photos = [make_photo(person) for _ in range(3)]
    elsewhere = Path(photos[0].image.path).parent.parent
    for photo in photos:
        Path(photo.image.path).unlink()
    for i in range(services.ORPHAN_SWEEP_FLOOR + 1):   # this media folder's own photos
        f = elsewhere / str(1000 + i) / "photo.jpg"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"an enrolment photo")
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    assert services.photo_files_sweep() == 0
    assert not FacePhoto.objects.filter(file_missing=True).exists()


def test_the_sweep_marks_nothing_when_the_whole_faces_folder_is_gone(person, make_photo, caplog):
    """No faces folder at all while photos exist is more likely a media volume not mounted on this
    node than every file deleted: said in the log, and no photo marked."""
    import shutil

    photo = make_photo(person)
    shutil.rmtree(Path(photo.image.path).parent.parent)
    assert services.photo_files_sweep() == 0
    assert not FacePhoto.objects.get(pk=photo.pk).file_missing
    assert "no faces folder in the media storage, for 1 photo:" in caplog.text, caplog.text


def test_the_daily_purge_audits_the_photo_files_it_sweeps(person, make_photo):
    """Deleting face photos is on record, like every other purge."""
    import os
    import time

    from audit.models import AuditEvent
    from recognition.services import retention_purge

    orphan = Path(make_photo(person).image.path).parent / "rolled-back.jpg"
    orphan.write_bytes(b"biometric")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    assert retention_purge().orphan_files == 1 and not orphan.exists()
    (event,) = AuditEvent.objects.filter(action="purge", object_type="enrollment.facephoto")
    assert "deleted 1 photo files" in event.summary


def test_the_daily_purge_deletes_index_files_no_version_names(db, settings):
    """A killed rebuild's file (it may hold a person erased since) goes within a day even when no
    rebuild runs; a young one (a rebuild still writing it) stays."""
    import os
    import time

    from audit.models import AuditEvent
    from recognition.services import retention_purge

    folder = Path(settings.MASKNET_INDEX_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stale, young = folder / "index-000007-deadbeef00.npz", folder / "index-000008-cafebabe00.npz"
    for f in (stale, young):
        f.write_bytes(b"templates")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    retention_purge()
    assert not stale.exists() and young.exists()
    assert AuditEvent.objects.filter(action="purge", object_type="enrollment.indexversion").count() == 1


def test_purge_expired_fails_when_it_could_not_delete_an_index_file(db, settings, monkeypatch):
    """An index file left behind holds face templates (perhaps an erased person's): as for a photo
    file, cron must see it, and the run does not count as completed (/healthz's overdue)."""
    import io
    import os
    import time

    from django.core.management import CommandError, call_command

    from recognition.services import retention_purge_status

    folder = Path(settings.MASKNET_INDEX_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / "index-000007-deadbeef00.npz"
    stale.write_bytes(b"templates")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    unlink = Path.unlink

    def refuse(path, missing_ok=False):
        if path.name == stale.name:
            raise PermissionError(str(path))
        return unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(CommandError, match="1 photo or index files could not be deleted"):
        call_command("purge_expired", stdout=io.StringIO())
    assert stale.exists() and retention_purge_status()[0] is None


@pytest.mark.models
def test_a_picture_too_dark_to_find_a_face_in_is_said_too_dark(db, engine):
    """The capture page's checks of a dark room flipped between "No face found" and "Too dark" (an admin
    UX review: the detector found the dark face in some frames, not in others): where nobody is found
    and the whole picture is darker than the kiosk's own limit for a face, the refusal is the light."""
    x = np.linspace(0, 1, 320, dtype=np.float32)
    room = np.stack([np.tile(x, (240, 1)), np.tile(x[::-1], (240, 1)), np.full((240, 320), 0.5, np.float32)], -1)
    dark = cv2.imencode(".png", (room * 40).astype(np.uint8))[1].tobytes()      # mean 20 of 255, nobody
    inspection = services.photo_inspect(data=dark)
    assert inspection.code == "too_dark" and inspection.message == services.REFUSALS["too_dark"], inspection
    lit = cv2.imencode(".png", (room * 255).astype(np.uint8))[1].tobytes()      # the same room lit: nobody
    assert services.photo_inspect(data=lit).code == "no_face"


@pytest.mark.models
def test_photo_inspect_explains_without_saving(db, astronaut_jpeg, gradient_png, engine):
    good = services.photo_inspect(data=astronaut_jpeg)
    assert good.ok and good.faces == 1 and good.as_json()["masked"] is False
    bad = services.photo_inspect(data=gradient_png)
    assert not bad.ok and bad.code == "no_face" and bad.box is None
    assert not FacePhoto.objects.exists()


@pytest.mark.parametrize("field", ["flip_tta", "upper_face_weight", "upper_face_cut", "resnet_weight",
                                   "resnet_upper_weight", "mesh_min_confidence", "eye_distance", "eye_y",
                                   "masked_threshold"])
def test_the_template_version_follows_every_setting_that_shapes_a_template(monkeypatch, tmp_path, field):
    """Templates made under other matching settings must not be reused: changing any of them (e.g. the
    ResNet's upper-face weight of masked faces) changes the version, so a rebuild re-embeds."""
    from recognition.engine import EngineConfig

    recognizer._version.cache_clear()
    base = recognizer._version(str(tmp_path), True, "faceres+resnet")
    value = getattr(EngineConfig(), field)
    changed = EngineConfig().with_(**{field: (not value) if isinstance(value, bool) else value / 2 if value else 0.3})
    monkeypatch.setattr(recognizer.EngineConfig, "for_descriptor", lambda descriptor: changed)
    recognizer._version.cache_clear()
    try:
        assert recognizer._version(str(tmp_path), True, "faceres+resnet") != base
    finally:
        recognizer._version.cache_clear()


def test_a_queued_run_whose_message_was_lost_is_started_again(db, enqueued, monkeypatch,
                                                              django_capture_on_commit_callbacks):
    """The embedded runner's queue dies with its process: a run queued before a restart (say, a
    deactivation's) is handed over again once overdue, when a kiosk loads the index or an admin page
    opens; not while young, not while another rebuild is alive, at most once a minute."""
    from datetime import timedelta

    from django.utils import timezone

    old = TrainingRun.objects.create(reason="before the restart")
    TrainingRun.objects.filter(pk=old.pk).update(requested_at=timezone.now() - timedelta(minutes=10))
    TrainingRun.objects.create(reason="just now")
    monkeypatch.setattr(index_services, "_resume_checked", 0.0)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.index_rebuild_resume() == 1
        assert services.index_rebuild_resume() == 0            # checked a moment ago
    assert [c["run_id"] for c in enqueued] == [old.pk]
    # Celery beat's task looks whenever its schedule says (a process's last look does not hold it back)
    from enrollment.tasks import resume_rebuilds_task

    with django_capture_on_commit_callbacks(execute=True):
        assert resume_rebuilds_task() == 1
    assert [c["run_id"] for c in enqueued] == [old.pk, old.pk]
    monkeypatch.setattr(index_services, "_resume_checked", 0.0)
    TrainingRun.objects.create(reason="alive", state="running", heartbeat_at=timezone.now())
    assert services.index_rebuild_resume() == 0


def test_beats_resume_on_a_database_not_migrated_yet_says_so_in_a_line(db, caplog):
    """Workers and beat started before `migrate` (the install order allows it) logged an ERROR with a
    traceback every minute. Found by a helper's review."""
    from django.db import connection

    from enrollment.tasks import resume_rebuilds_task

    with connection.cursor() as cursor:   # undone with the test's transaction
        cursor.execute("ALTER TABLE enrollment_trainingrun RENAME TO enrollment_trainingrun_away")
    caplog.set_level("WARNING", logger="enrollment.tasks")
    assert resume_rebuilds_task() == 0
    said = [r.getMessage() for r in caplog.records if r.name == "enrollment.tasks"]
    assert len(said) == 1 and said[0].startswith("rebuilds not resumed: the database is not migrated yet")


def test_a_run_whose_worker_died_with_its_process_is_started_again(db, enqueued, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    """Embedded mode: the rebuild thread dies with its process (a restart) and nothing delivers the
    run's message again, as a broker would: a running run whose heartbeat went stale is handed
    over (its claim takes it over), unless its worker already stopped MAX_ATTEMPTS times."""
    from datetime import timedelta

    from django.utils import timezone

    stale = timezone.now() - services.stale_after() - timedelta(seconds=5)
    dead = TrainingRun.objects.create(reason="killed", state="running", heartbeat_at=stale, attempts=1)
    exhausted = TrainingRun.objects.create(reason="killed 3 times", state="running", heartbeat_at=stale,
                                           attempts=services.MAX_ATTEMPTS)
    monkeypatch.setattr(index_services, "_resume_checked", 0.0)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.index_rebuild_resume() == 1
    assert [c["run_id"] for c in enqueued] == [dead.pk]
    # not started again, and not left "running" either (nothing else would end it in embedded mode)
    exhausted.refresh_from_db()
    assert exhausted.state == "failed" and exhausted.finished_at and "stopped 3 times" in exhausted.error


def test_the_template_version_follows_the_mask_head(monkeypatch, tmp_path):
    """The masked/unmasked head decides which templates a photo gets: a retrained head
    (``train_mask_classifier``) makes a new version, so a rebuild re-embeds."""
    recognizer._version.cache_clear()
    base = recognizer._version(str(tmp_path), True, "faceres+resnet")
    head = tmp_path / "mask_classifier.npz"
    head.write_bytes(recognizer.DEFAULT_MASK_CLASSIFIER.read_bytes() + b"retrained")
    monkeypatch.setattr(recognizer, "DEFAULT_MASK_CLASSIFIER", head)
    recognizer._version.cache_clear()
    try:
        assert recognizer._version(str(tmp_path), True, "faceres+resnet") != base
    finally:
        recognizer._version.cache_clear()


def test_the_engine_is_loaded_by_one_thread_at_a_time(monkeypatch):
    """A kiosk's pool, a rebuild and the API can all ask for the engine while it loads: they wait
    for the one load instead of loading the models again beside it."""
    import threading
    import time

    active, most = [0], [0]
    lock = threading.Lock()

    def slow_load(models_dir, config):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return object()

    monkeypatch.setattr(recognizer, "load_engine", slow_load)
    threads = [threading.Thread(target=recognizer.get_engine) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert most[0] == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_photo_sent_twice_at_once_is_stored_once(monkeypatch):
    """A double submit: both requests pass the early duplicate check while the other is still being
    inspected; the second to reach the database is refused as a duplicate (PostgreSQL row lock)."""
    import threading

    from django.db import close_old_connections, connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    person = services.person_create(actor=None, full_name="Twice", staff_id="T2")
    both_inspecting = threading.Barrier(2, timeout=10)

    def inspect(*, data, engine=None):
        both_inspecting.wait()
        return services.PhotoInspection(ok=True, code=None, message="", width=8, height=8, box=[1.0, 1.0, 7.0, 7.0],
                                        quality_score=0.9, quality_verdict="ok")

    monkeypatch.setattr(photo_services, "photo_inspect", inspect)
    monkeypatch.setattr(recognizer, "get_engine", lambda: None)
    same = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()   # a real (tiny) JPEG
    outcomes: list[str] = []

    def submit():
        try:
            services.photo_add(person=person, data=same, actor=None, schedule_rebuild=False)
            outcomes.append("stored")
        except services.PhotoRefused as exc:
            outcomes.append(exc.code)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(outcomes) == ["duplicate", "stored"]
    assert FacePhoto.objects.filter(person=person).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_file_sent_to_two_people_at_once_is_stored_once(monkeypatch):
    """``enrolled_elsewhere`` checked and the photo stored take turns for one file whoever it is for:
    each person's row lock serialised adds to that person only, and two uploads of one file to two
    people at the same instant both passed the check, each before the other had stored its row. The
    first add to store its row waits here (up to 3 s) for the other to store its own too: without
    the turns both do, and both commit (PostgreSQL; SQLite's transactions take its write lock when
    they begin, so there the second waits for the first's commit anyway)."""
    import threading

    from audit.services import audit_record

    from .conftest import in_thread

    people = [services.person_create(actor=None, full_name=f"Racer {i}", staff_id=f"R{i}") for i in range(2)]
    both_inspecting, both_stored = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=3)

    def inspect(*, data, engine=None):
        both_inspecting.wait()   # both past the early check, neither stored yet
        return services.PhotoInspection(ok=True, code=None, message="", width=8, height=8, box=[1.0, 1.0, 7.0, 7.0],
                                        quality_score=0.9, quality_verdict="ok")

    def audit_after_storing(**kwargs):
        if kwargs.get("action") == AuditEvent.Action.PHOTO_ADD:
            try:
                both_stored.wait()   # the row inserted, not committed
            except threading.BrokenBarrierError:
                pass   # the other add waits for this one's turn to end
        return audit_record(**kwargs)

    monkeypatch.setattr(photo_services, "photo_inspect", inspect)
    monkeypatch.setattr(photo_services, "audit_record", audit_after_storing)
    monkeypatch.setattr(recognizer, "get_engine", lambda: None)
    same = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()   # a real (tiny) JPEG
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def submit(person: Person):
        try:
            services.photo_add(person=person, data=same, actor=None, schedule_rebuild=False)
            outcomes.append("stored")
        except services.PhotoRefused as exc:
            outcomes.append(exc.code)

    threads = [in_thread(errors, lambda p=p: submit(p)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(outcomes) == ["enrolled_elsewhere", "stored"]
    assert FacePhoto.objects.filter(sha256=hashlib.sha256(same).hexdigest()).count() == 1


def test_notes_written_before_their_limit_do_not_block_other_changes(db):
    from enrollment.models import NOTES_MAX

    person = Person.objects.create(full_name="Old Notes", staff_id="O-N", notes="n" * (NOTES_MAX + 10))
    services.person_update(person=person, actor=None, department="Lab")     # notes untouched: accepted
    with pytest.raises(ValidationError):
        services.person_update(person=person, actor=None, notes="m" * (NOTES_MAX + 1))


def _face_at(box: tuple[float, float, float, float], ok: bool = True):
    from types import SimpleNamespace

    return SimpleNamespace(box=box, width=box[2] - box[0], face_flag=1.0,
                           quality=SimpleNamespace(ok=ok, reason=None if ok else "too_dark", brightness=128.0,
                                                   sharpness=100.0))


def test_an_enrolment_photo_must_be_as_sharp_as_before_by_the_raw_figure():
    # the gate judges a kiosk frame's blur by its focus; an enrolment photo also by the Laplacian's
    # raw variance, as before (soft photos the focus lets through changed the gallery)
    from recognition.engine.gallery import ENROL_MIN_SHARPNESS, usable_face

    soft = _face_at((100, 100, 200, 220))
    soft.quality.sharpness = ENROL_MIN_SHARPNESS - 1
    assert usable_face([soft]) == (None, "blurry")
    soft.quality.brightness = 70.0   # sharp by the gate's focus, dim by the raw figure: more light fixes it
    assert usable_face([soft]) == (None, "too_dark")
    soft.quality.sharpness = ENROL_MIN_SHARPNESS
    assert usable_face([soft]) == (soft, None)


def test_a_rebuild_finds_the_enrolled_face_again_or_refuses_the_photo():
    """The face chosen at enrolment, found again by its box; else the photo's one usable face as
    enrolment chooses it; never a bystander in the person's place (the largest face, before)."""
    from recognition.engine import NoFaceFound

    enrolled, bystander = _face_at((100, 100, 200, 220)), _face_at((300, 80, 460, 260))
    faces = [bystander, enrolled]                               # largest first, as the engine lists them
    assert recognizer.face_near(faces, [104, 98, 198, 224]) is enrolled
    assert recognizer.face_near([bystander], None) is bystander   # no box recorded: the one usable face
    with pytest.raises(NoFaceFound, match="several_faces"):
        recognizer.face_near(faces, [600, 600, 700, 700])       # the enrolled face is gone: two others
    with pytest.raises(NoFaceFound, match="too_dark"):
        recognizer.face_near([_face_at((300, 80, 460, 260), ok=False)], [100, 100, 200, 220])


def test_purge_expired_fails_when_it_could_not_delete_a_photo_file(person, make_photo, monkeypatch):
    """Biometric data kept against the retention must reach cron's mail: a non-zero exit."""
    import io
    import os
    import time

    from django.core.files.storage import default_storage
    from django.core.management import CommandError, call_command

    orphan = Path(make_photo(person).image.path).parent / "rolled-back.jpg"
    orphan.write_bytes(b"biometric")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))

    def refuse(name):
        raise PermissionError(name)

    monkeypatch.setattr(default_storage, "delete", refuse)
    with pytest.raises(CommandError, match="1 photo or index files could not be deleted"):
        call_command("purge_expired", stdout=io.StringIO())
    assert orphan.exists()


def test_a_photo_scaled_down_to_fit_keeps_its_face_box_on_the_face():
    """``without_metadata`` may scale a photo down to keep it under the size limit: the size and face
    box recorded from the upload are fitted to the stored pixels (the box picks the face again at
    every rebuild)."""
    from PIL import Image

    stored = io.BytesIO()
    Image.new("RGB", (200, 150)).save(stored, "JPEG")
    photo = FacePhoto(width=400, height=300, box=[40.0, 30.0, 200.0, 150.0])
    photo_services._scale_to_stored(photo, stored.getvalue())
    assert (photo.width, photo.height, photo.box) == (200, 150, [20.0, 15.0, 100.0, 75.0])


def test_the_run_a_kept_check_in_photo_queues_does_not_name_the_person(db, monkeypatch, enqueued):
    """Enrollers see rebuild runs, with their times, but not check-ins: a run "photo added to person
    #P" queued seconds after P's check-in (gallery adaptation) told them when P checked in."""
    person = services.person_create(actor=None, full_name="Kept", staff_id="K-7")
    inspected = services.PhotoInspection(ok=True, code=None, message="", width=8, height=8,
                                         box=[1.0, 1.0, 7.0, 7.0], quality_score=0.9, quality_verdict="ok")
    monkeypatch.setattr(recognizer, "get_engine", lambda: None)
    data = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()   # a real (tiny) JPEG
    services.photo_add(person=person, data=data, actor=None, source=FacePhoto.Source.CHECKIN, inspection=inspected,
                       check_lookalike=False)
    reasons = list(TrainingRun.objects.values_list("reason", flat=True))
    assert reasons and not any(f"#{person.pk}" in reason for reason in reasons), reasons


@pytest.mark.django_db
def test_the_changes_to_many_people_take_every_batch_and_skip_those_already_so(monkeypatch):
    """``people_locked``'s batches (two people here, 500 on a site): deactivating, reactivating and
    setting gallery adaptation for people over several batches, given in any order and twice, change each
    person once, skip those already so, and are audited once a person."""
    from enrollment.services import common

    monkeypatch.setattr(common, "BULK_BATCH", 2)
    people = [services.person_create(actor=None, full_name=f"Bulk {i}", staff_id=f"B-{i}") for i in range(7)]
    ids = [p.pk for p in people]
    services.person_deactivate(person=people[3], actor=None)
    given = [*reversed(ids), ids[0]]
    done = services.people_deactivate(people=given, actor=None)
    assert done == sorted(set(ids) - {ids[3]})
    assert not Person.objects.filter(pk__in=ids, active=True).exists()
    assert AuditEvent.objects.filter(action="deactivate", object_type="enrollment.person").count() == 7

    services.person_update(person=Person.objects.get(pk=ids[5]), actor=None, active=True)
    done, refused = services.people_reactivate(people=given, actor=None)
    assert done == sorted(set(ids) - {ids[5]}) and refused == {}
    assert Person.objects.filter(pk__in=ids, active=True).count() == 7
    assert PersonInactivePeriod.objects.filter(person_id__in=ids).count() == 7

    services.people_gallery_adaptation_set(people=[ids[1]], on=False, actor=None)
    stopped = services.people_gallery_adaptation_set(people=given, on=False, actor=None)
    assert stopped == sorted(set(ids) - {ids[1]})
    assert not Person.objects.filter(pk__in=ids, gallery_adaptation=True).exists()
    assert services.people_gallery_adaptation_set(people=given, on=True, actor=None) == sorted(ids)
