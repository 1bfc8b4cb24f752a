"""Objects the API tests share: a small world of every kind of row, made without the engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from enrollment import services as enrollment
from enrollment.models import FacePhoto, Person, TrainingRun
from recognition import services as recognition
from recognition.models import CheckIn, Kiosk

from .conftest import png


def fake_photo(person: Person) -> FacePhoto:
    """A stored photo row with a generated file (no engine involved)."""
    img = np.random.default_rng(person.pk).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    name = default_storage.save(f"faces/{person.pk}/{uuid.uuid4().hex}.png", ContentFile(png(img)))
    return FacePhoto.objects.create(person=person, image=name, sha256=uuid.uuid4().hex, width=64, height=64,
                                    box=[8.0, 8.0, 56.0, 56.0], quality_score=0.9)


@dataclass
class World:
    """One of each: person with a photo, kiosk, rebuild run, check-in."""

    person: Person
    photo: FacePhoto
    kiosk: Kiosk
    run: TrainingRun
    checkin: CheckIn


def make_world() -> World:
    """Rows for the permission matrix."""
    person = enrollment.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1", department="Flight")
    photo = fake_photo(person)
    kiosk, _code = recognition.kiosk_create(actor=None, name="Front door", location="Main entrance")
    run = enrollment.index_rebuild_request(actor=None, reason="test")
    outcome = recognition.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.7, threshold=0.5, masked=True,
                                         frames=4, index_version=None)
    return World(person, photo, kiosk, run, outcome.checkin)
