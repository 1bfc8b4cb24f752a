"""The curl examples of docs/api.md, replayed with Django's test client: each must succeed (each
runs in its own rolled-back transaction, so they do not depend on each other's order)."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone

from enrollment import services as enrollment
from enrollment.models import FacePhoto, Person
from recognition.engine.masks import render_mask

from .conftest import jpeg
from .helpers import make_world

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
NEEDS_ENGINE = re.compile(r"/identify|/verify|-F \"image=@.*?/photos")

pytestmark = pytest.mark.django_db


def curl_lines() -> list[str]:
    """Every ``curl`` command in the doc's ``sh`` blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("curl ")]


def replay(line: str, variables: dict[str, str], files: dict[str, bytes]):
    """Run one curl command with the test client; returns the response."""
    for name, value in variables.items():
        line = line.replace(f"${name}", value)
    args = shlex.split(line)[1:]
    method, headers, body, form, url = None, {}, None, {}, None
    it = iter(args)
    for arg in it:
        if arg == "-X":
            method = next(it)
        elif arg == "-H":
            key, value = next(it).split(":", 1)
            headers[key.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            body = next(it)
        elif arg == "-F":
            key, value = next(it).split("=", 1)
            form[key] = SimpleUploadedFile(value[1:], files[value[1:]]) if value.startswith("@") else value
        elif arg == "-o":
            next(it)
        else:
            assert not arg.startswith("-"), f"the replay does not know curl's {arg}"
            url = arg
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    method = (method or ("POST" if body or form else "GET")).lower()
    content_type = headers.pop("Content-Type", None)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    client = Client()
    if form:
        return client.post(path, form, **extra)
    if body is not None:
        return getattr(client, method)(path, body, content_type=content_type or "application/x-www-form-urlencoded",
                                       **extra)
    return getattr(client, method)(path, **extra)


def _run(lines: list[str], variables: dict[str, str], files: dict[str, bytes]) -> None:
    assert lines
    for line in lines:
        with transaction.atomic():
            response = replay(line, variables, files)
            transaction.set_rollback(True)
        assert response.status_code < 400, (line, response.status_code, response.content[:300])


@pytest.fixture
def variables(make_token) -> dict[str, str]:
    world = make_world()
    return {"MASKNET": "http://testserver", "TOKEN": make_token(["admin"], name="docs"),
            "PERSON": str(world.person.pk), "PHOTO": str(world.photo.pk), "KIOSK": str(world.kiosk.pk),
            "RUN": str(world.run.pk),
            # a time for a check-in by hand: yesterday's (the world's person is checked in today)
            "AT": (timezone.now() - timedelta(days=1)).isoformat()}


def test_doc_examples_without_the_engine(variables):
    lines = [line for line in curl_lines() if not NEEDS_ENGINE.search(line)]
    assert len(lines) >= 14
    _run(lines, variables, {})


@pytest.mark.models
def test_doc_examples_with_the_engine(variables, engine, astronaut_bgr):
    person = Person.objects.get(pk=int(variables["PERSON"]))
    FacePhoto.objects.filter(person=person).delete()  # the world's photo has no face
    enrollment.photo_add(person=person, data=jpeg(astronaut_bgr, 92), actor=None, schedule_rebuild=False)
    assert enrollment.index_rebuild(run_id=None).state == "succeeded"
    face = engine.analyze(astronaut_bgr)[0]
    files = {"eileen.jpg": jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1])),
             "probe.jpg": jpeg(render_mask(astronaut_bgr, face.landmarks, np.random.default_rng(5)))}
    lines = [line for line in curl_lines() if NEEDS_ENGINE.search(line)]
    assert len(lines) == 3
    _run(lines, variables, files)
