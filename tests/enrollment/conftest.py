"""Fixtures of the enrollment tests: users of each role, people, photos (real, for the engine,
and generated with cached templates, for engine-free tests), isolated media and index folders."""

from __future__ import annotations

import threading
import uuid

import cv2
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from enrollment import dispatch, services
from enrollment.models import FacePhoto, PhotoTemplates
from enrollment.recognizer import N_MASKED_TEMPLATES, template_version
from enrollment.roles import enrollers_group_ensure

FAKE_DIM = 1024


def jpeg(img_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def png(img_bgr: np.ndarray) -> bytes:
    """PNG bytes of a BGR image."""
    ok, buf = cv2.imencode(".png", img_bgr)
    assert ok
    return buf.tobytes()


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test gets its own media and index folders (files are what erasure tests inspect)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MASKNET_INDEX_DIR = tmp_path / "index"
    settings.MASKNET_REBUILD_DEBOUNCE_S = 0.0
    return tmp_path


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    """Rebuild requests handed to the runner, recorded (after commit, as the real dispatcher does)
    instead of run; tests of the runners themselves use ``real_dispatch``."""
    calls: list[dict] = []

    def record(run_id: int, *, countdown: float, force: bool = False) -> None:
        transaction.on_commit(lambda: calls.append({"run_id": run_id, "countdown": countdown, "force": force}))

    monkeypatch.setattr(dispatch, "enqueue_rebuild", record)
    return calls


@pytest.fixture
def real_dispatch(monkeypatch):
    """Undo ``enqueued``: requests go to the configured runner."""
    monkeypatch.undo()


@pytest.fixture
def roles(db):
    """The Enrollers group with its permissions (a flushed database loses the migration's row)."""
    return enrollers_group_ensure()


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def enroller(roles) -> User:
    user = User.objects.create_user("enroller", password="pw", is_staff=True)
    user.groups.add(roles)
    return user


@pytest.fixture
def plain_staff(db) -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def su_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def enroller_client(client, enroller):
    client.force_login(enroller)
    return client


@pytest.fixture
def person(db):
    return services.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1", department="Flight")


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut_bgr) -> bytes:
    return jpeg(astronaut_bgr)


@pytest.fixture(scope="session")
def gradient_png() -> bytes:
    """A generated picture without a face."""
    x = np.linspace(0, 255, 320, dtype=np.float32)
    img = np.stack([np.tile(x, (240, 1)), np.tile(x[::-1], (240, 1)), np.full((240, 320), 128, np.float32)], -1)
    return png(img.astype(np.uint8))


@pytest.fixture(scope="session")
def group_jpeg(registry_photos) -> bytes:
    return jpeg(registry_photos["t1.jpg"])


@pytest.fixture(scope="session")
def portrait_png(registry_photos) -> bytes:
    return png(registry_photos["Tom_Hanks_54745.png"])


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def make_photo(db):
    """A photo with cached templates for the current template version, without the engine:
    a generated image file and vectors near ``centre`` (random when not given)."""
    rng = np.random.default_rng(7)

    def make(person, *, centre: np.ndarray | None = None, masked_templates: int = N_MASKED_TEMPLATES) -> FacePhoto:
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        name = default_storage.save(f"faces/{person.pk}/{uuid.uuid4().hex}.png", ContentFile(png(img)))
        photo = FacePhoto.objects.create(person=person, image=name, sha256=uuid.uuid4().hex, width=64, height=64,
                                         box=[8.0, 8.0, 56.0, 56.0], quality_score=0.9,
                                         embedding_state=FacePhoto.Embedding.EMBEDDED)
        base = centre if centre is not None else rng.normal(size=FAKE_DIM)
        vectors = unit(base + 0.3 * rng.normal(size=(1 + masked_templates, FAKE_DIM)))
        kinds = np.array([0] + [1] * masked_templates, np.int8)
        PhotoTemplates.objects.create(photo=photo, template_version=template_version(), dim=FAKE_DIM,
                                      count=len(vectors), vectors=vectors.tobytes(), kinds=kinds.tobytes())
        return photo

    return make


def in_thread(errors: list[BaseException], fn) -> threading.Thread:
    """A thread running ``fn`` on its own database connection; what it raises goes to ``errors``."""
    from django.db import close_old_connections, connection

    def body():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()
    return threading.Thread(target=body)
