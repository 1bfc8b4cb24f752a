"""No biometric data in logs or error messages (issue 7).

Realistic paths run with every logger at DEBUG and Django's ``DEBUG`` on (as in development, where
Django would log each SQL statement): photo uploads refused and accepted through
``enrollment.services.photo_add`` with a real photo and the real engine, an index rebuild, a kiosk
socket checking a masked face in with snapshots on, kiosk frames refused, a kiosk frame that fails
inside the engine (an index of another model's dimension), and a rebuild that fails (a photo file
gone, the index folder unwritable). No log record (message, arguments, traceback) and no error
message shown or stored (refusals, kiosk answers, the run's error, the photo's embedding error)
may contain image bytes (raw, escaped, hex or base64), embedding vectors (8 or more numbers in a
row, numpy reprs) or face templates (the stored template bytes).

Loggers that the project's ``LOGGING`` setting configures keep that level (it is the product's
decision, e.g. ``django.db.backends`` at INFO: SQL parameters hold templates and snapshots); every
other logger, the root included, is set to DEBUG.
"""

from __future__ import annotations

import base64
import logging
import re

import cv2
import numpy as np
import pytest
from asgiref.sync import async_to_sync

from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion, PhotoTemplates, TrainingRun
from recognition import consumers
from recognition.engine.index import Index
from recognition.models import CheckIn

from ..test_fuzz_decode import png_claiming
from . import faces
from .conftest import open_kiosk

pytestmark = [pytest.mark.models, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

# image bytes: JPEG/PNG magic escaped (bytes repr), raw (latin-1) or hex; base64 of a JPEG or PNG,
# or any long base64 run
IMAGE_PATTERNS = [re.compile(p) for p in (
    r"\\x[fF]{2}\\x[dD]8\\x[fF]{2}", "\xff\xd8\xff", r"(?i)ffd8ff", r"\\x89PNG", "\x89PNG\r\n", r"(?i)89504e470d0a1a0a",
    r"/9j/[A-Za-z0-9+/]{16}", r"iVBORw0KGgo", r"[A-Za-z0-9+/]{120,}")]
# embedding vectors: 8 or more numbers with decimals in a row (list, tuple or numpy repr), or a numpy repr
NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?"
VECTOR_PATTERNS = [re.compile(rf"(?:{NUMBER}[\s,;\]\[]+){{7,}}{NUMBER}"), re.compile(r"array\("),
                   re.compile(r"dtype=(?:float|uint8)")]


class Collector(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def all_logs(settings):
    """Every logger at DEBUG (except those the project's LOGGING sets), all records collected."""
    import masknet_site.asgi  # noqa: F401 - its first import runs django.setup(), which reconfigures logging
    configured = set((settings.LOGGING or {}).get("loggers", {}))
    handler = Collector()
    root = logging.getLogger()
    levels = [(root, root.level)]
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    extra_handlers = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        if not any(name == c or name.startswith(c + ".") for c in configured):
            levels.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(handler)
            extra_handlers.append(logger)
    yield handler
    root.removeHandler(handler)
    for logger in extra_handlers:
        logger.removeHandler(handler)
    for logger, level in levels:
        logger.setLevel(level)


def rendered(record: logging.LogRecord) -> str:
    """Everything a log handler could write for the record: message, traceback, stack."""
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return text + " " + repr(record.args)


def leaks(text: str, secrets: list[bytes]) -> list[str]:
    """What in ``text`` looks like image bytes, a vector or one of the ``secrets`` (raw biometric
    blobs: template bytes, snapshots, photos) in any spelling."""
    found = [p.pattern for p in IMAGE_PATTERNS + VECTOR_PATTERNS if p.search(text)]
    for blob in secrets:
        head = blob[:24]
        spellings = [repr(head)[2:-1], head.hex(), head.hex().upper(), base64.b64encode(head).decode()[:24],
                     head.decode("latin-1")]
        found += [f"secret {s[:16]!r}" for s in spellings if s in text]
    return found


def jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def other_model_index(tmp_path) -> IndexVersion:
    """An active index of 8-dimensional templates (as if built by another embedding model)."""
    index = Index(8)
    index.add("1", np.random.default_rng(1).normal(size=(2, 8)))
    sha = index.save(tmp_path / "index" / "index-other-model.npz")
    IndexVersion.objects.filter(is_active=True).update(is_active=False)
    return IndexVersion.objects.create(path="index-other-model.npz", sha256=sha, people_count=1,
                                       template_count=2, dim=8, model_version="other", is_active=True)


def test_no_biometric_data_in_logs_or_error_messages(engine, astronaut_bgr, person, paired, all_logs, settings,
                                                     tmp_path, monkeypatch):
    settings.DEBUG = True                      # development: Django would log SQL with its parameters
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MASKNET_INDEX_DIR = tmp_path / "index"
    settings.MASKNET_CHECKIN_SNAPSHOTS = True
    monkeypatch.setattr(consumers, "LOST_AFTER_S", 0.0)
    monkeypatch.setattr(consumers, "LOST_AFTER_INTERVALS", 0.0)
    photo = jpeg(astronaut_bgr)
    shown: list[str] = []                      # every error message a user sees or the database keeps

    # enrollment: refusals, an accepted photo (templates computed now), a duplicate
    refused = {"file_type": np.random.default_rng(0).bytes(3000), "unreadable": photo[: len(photo) // 3],
               "no_face": jpeg(faces.empty_room()[0]), "too_large": png_claiming(30000, 30000)}
    for code, data in refused.items():
        with pytest.raises(enrollment.PhotoRefused) as refusal:
            enrollment.photo_add(person=person, data=data, actor=None, filename="upload.jpg", schedule_rebuild=False)
        assert refusal.value.code == code
        shown += [str(refusal.value), repr(refusal.value), refusal.value.message]
    enrollment.photo_add(person=person, data=photo, actor=None, embed=True, schedule_rebuild=False)
    with pytest.raises(enrollment.PhotoRefused) as refusal:
        enrollment.photo_add(person=person, data=photo, actor=None, schedule_rebuild=False)
    shown.append(refusal.value.message)
    run = enrollment.index_rebuild(run_id=None)
    assert run.state == TrainingRun.State.SUCCEEDED
    shown.append(run.message)

    # the kiosk: a masked face checked in (snapshot kept), then refused frames
    masked = faces.with_mask(engine, astronaut_bgr, seed=3)
    m, _ = faces.kiosk_view(engine, masked)
    clip = [jpeg(f) for f in faces.frames(masked, m, 5, seed=1)]

    async def visit(frames_to_send: list[bytes | str]) -> list[dict]:
        comm = await open_kiosk(paired[1])
        answers = []
        for data in frames_to_send:
            await (comm.send_to(text_data=data) if isinstance(data, str) else comm.send_to(bytes_data=data))
            answers.append(await comm.receive_json_from(timeout=60))
        await comm.disconnect()
        return answers

    answers = async_to_sync(visit)([*clip, clip[0][:2000], "hello", b"\xff\xd8\xff" + b"\0" * 600_000])
    assert "checked_in" in [a.get("state") for a in answers], answers
    assert [a.get("code") for a in answers[-3:]] == ["unreadable_image", "binary_expected", "frame_too_large"]
    shown += [str(a) for a in answers]

    # an active index of another model's dimension (made before an upgrade): answered "updating"
    real = IndexVersion.objects.current()
    other_model_index(tmp_path)
    updating = async_to_sync(visit)(clip[:2])
    assert [a.get("code") for a in updating] == ["updating", "updating"], updating
    shown += [str(a) for a in updating]

    # a frame that fails inside the engine (an unexpected error while searching the real index)
    IndexVersion.objects.filter(is_active=True).update(is_active=False)
    IndexVersion.objects.filter(pk=real.pk).update(is_active=True)

    def broken_search(self, query, *args, **kwargs):
        raise RuntimeError(f"search failed for a query of shape {np.shape(query)}")

    with monkeypatch.context() as patch:
        patch.setattr(Index, "search", broken_search)
        failed = async_to_sync(visit)(clip[:2])
    assert [a.get("code") for a in failed] == ["internal", "internal"], failed
    shown += [str(a) for a in failed]

    # a rebuild that fails: one photo's file is gone (its embedding fails), the index folder is a file
    second = enrollment.photo_add(person=person, data=jpeg(cv2.flip(astronaut_bgr, 1)), actor=None,
                                  schedule_rebuild=False)
    second.image.storage.delete(second.image.name)
    (tmp_path / "not-a-folder").write_text("")
    settings.MASKNET_INDEX_DIR = tmp_path / "not-a-folder"
    with pytest.raises(OSError):
        enrollment.index_rebuild(run_id=None)
    failed_run = TrainingRun.objects.order_by("-id").first()
    assert failed_run.state == TrainingRun.State.FAILED and failed_run.error
    embedding_error = FacePhoto.objects.get(pk=second.pk).embedding_error
    assert embedding_error
    shown += [failed_run.error, failed_run.message, embedding_error]

    # the biometric data did flow through those paths, so their absence below means something
    templates = [bytes(v) for v in PhotoTemplates.objects.values_list("vectors", flat=True)]
    snapshots = [bytes(s) for s in CheckIn.objects.exclude(snapshot=None).values_list("snapshot", flat=True)]
    assert templates and snapshots and snapshots[0].startswith(b"\xff\xd8\xff")
    secrets = [*templates, *snapshots, photo, photo[200:], *clip]

    records = all_logs.records
    loggers = {r.name for r in records}
    assert any(r.levelno == logging.DEBUG for r in records), "nothing was logged at DEBUG"
    assert any(r.name == "recognition.consumers" and r.exc_info for r in records), loggers
    assert any(r.name.startswith("enrollment.services.") and r.exc_info for r in records), loggers
    assert not any(r.name.startswith("django.db.backends") for r in records), "SQL statements were logged"

    # a face object, should one ever reach a log line or an exception, shows no pixels or vectors
    face = engine.analyze(astronaut_bgr)[0]
    assert face.embedding is not None and not leaks(repr(face), [face.embedding.tobytes()]), repr(face)
    shown.append(repr(face))

    for record in records:
        text = rendered(record)
        assert not leaks(text, secrets), (record.name, leaks(text, secrets), text[:500])
    for message in shown:
        assert not leaks(message, secrets), (leaks(message, secrets), message[:500])
