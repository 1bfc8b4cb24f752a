"""Fixtures of the kiosk tests: people, paired kiosks, a scripted stand-in for the engine and
helpers that drive ``KioskConsumer`` through the real ASGI application."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone

import masknet_site.asgi  # noqa: F401  (its django.setup() reconfigures logging: here, not in a test, where it dropped caplog's handler)
from enrollment import dispatch
from enrollment import services as enrollment
from recognition import consumers, services
from recognition.consumers import FrameAnalysis
from recognition.engine.gallery import Decision

JPEG_MAGIC = b"\xff\xd8\xff"


def earlier_today(minutes: float) -> datetime:
    """``minutes`` before now, but not before today's local midnight (``TIME_ZONE``): a check-in a
    test means for today's window (the kiosk's cooldown, the day's page) that a run in the first
    minutes after midnight put in yesterday's (tests failed at 00:00-00:47, say a nightly CI run)."""
    now = timezone.now()
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    return max(now - timedelta(minutes=minutes), midnight)


def frame(script: str) -> bytes:
    """A "JPEG" whose body tells the scripted engine what it sees (see :class:`ScriptedEngine`)."""
    return JPEG_MAGIC + script.encode()


@pytest.fixture(autouse=True)
def no_background_rebuilds(monkeypatch):
    """Enrollment changes queue index rebuilds; these tests build indexes themselves."""
    queued: list[int] = []
    monkeypatch.setattr(dispatch, "enqueue_rebuild", lambda run_id, **kwargs: queued.append(run_id))
    return queued


@pytest.fixture
def person(transactional_db):
    return enrollment.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1", department="Flight")


@pytest.fixture
def other_person(transactional_db):
    return enrollment.person_create(actor=None, full_name="Tom Hanks", staff_id="T-1", department="Film")


def make_paired_kiosk(name: str = "Front door", site: str = "main"):
    """A kiosk and the device token its pairing link gave."""
    _kiosk, code = services.kiosk_create(actor=None, name=name, location="Main entrance", site=site)
    return services.kiosk_pair(code=code)


@pytest.fixture
def paired(transactional_db):
    """``(kiosk, device token)``."""
    return make_paired_kiosk()


@pytest.fixture
def every_day_working(settings):
    """Every day a working day (``MASKNET_WORKING_DAYS``): for tests that count today's or yesterday's
    missing, whatever weekday the suite runs on (nobody is missing on a day off:
    tests/recognition/test_attendance_days_off.py)."""
    settings.MASKNET_WORKING_DAYS = "mon-sun"
    return settings


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


class ScriptedEngine:
    """Stands in for :func:`recognition.consumers.analyze_frame`. A frame's body is a script:

    ``none`` (no face), ``several`` (two people side by side), ``quality:<reason>``,
    ``face:<label>:<score>:<m|u>[:<score against the person welcomed>]`` (a usable face;
    accepted at 0.38 masked / 0.42 unmasked; against the person welcomed, when they are not
    ``label``, no score unless given), ``corrupt`` (undecodable). A ``hold|`` prefix
    makes the analysis wait until :meth:`release` (to test bursts).
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.indexes: list[tuple[object, dict]] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def release(self) -> None:
        self.gate.set()

    def __call__(self, data: bytes, index, thresholds: dict, snapshot: bool = False,
                 adapt_margin: float | None = None, search_edges: bool = True,
                 welcome: str | None = None, background: tuple = ()) -> FrameAnalysis:
        script = data[len(JPEG_MAGIC):].decode()
        if script.startswith("hold|"):
            script = script[5:]
            self.started.set()
            assert self.gate.wait(10), "the test never released the held frame"
        self.seen.append(script)
        self.indexes.append((index, thresholds))
        size = (640, 480)
        if script == "corrupt":
            return FrameAnalysis(error="unreadable_image")
        if script == "none":
            return FrameAnalysis(size=size, ms=5)
        aligned = np.zeros((8, 8, 3), np.uint8)
        if script == "several":   # two people side by side: nobody embedded
            face = SimpleNamespace(box=(100.0, 120.0, 220.0, 260.0), masked=False, aligned=aligned, embedding=None,
                                   across_edge=False, quality=SimpleNamespace(ok=True, reason=None))
            return FrameAnalysis(size=size, face=face, several=True, ms=5)
        if script.startswith("quality:"):
            # as analyze_frame leaves it: not embedded, so not classified masked either
            face = SimpleNamespace(box=(200.0, 120.0, 260.0, 190.0), masked=False, aligned=aligned, embedding=None,
                                   across_edge=False, quality=SimpleNamespace(ok=False, reason=script.split(":", 1)[1]))
            return FrameAnalysis(size=size, face=face, ms=5)
        _, label, score, m, *against = script.split(":")
        masked = m == "m"
        threshold = 0.38 if masked else 0.42
        face = SimpleNamespace(box=(256.0, 144.0, 384.0, 300.0), masked=masked, aligned=aligned, across_edge=False,
                               embedding=np.ones(8, np.float32), quality=SimpleNamespace(ok=True, reason=None))
        decision = Decision(label, float(score), threshold, float(score) >= threshold, masked)
        welcomed = None
        if welcome is not None:
            welcomed = (welcome, float(score) if label == welcome else float(against[0]) if against else None)
        return FrameAnalysis(size=size, face=face, decision=decision, ms=5,
                             snapshot=b"\xff\xd8\xffsnapshot" if snapshot else None, welcomed=welcomed)


@pytest.fixture
def engine_script(monkeypatch) -> ScriptedEngine:
    """The consumer with a scripted engine (no models), no warm-up, and presences that end at the
    first frame without a face (no waiting for real seconds)."""
    scripted = ScriptedEngine()
    monkeypatch.setattr(consumers, "analyze_frame", scripted)
    monkeypatch.setattr(consumers, "LOST_AFTER_S", 0.0)
    monkeypatch.setattr(consumers, "LOST_AFTER_INTERVALS", 0.0)
    yield scripted
    scripted.release()


def communicator(token: str | None, origin: bytes | None = b"http://testserver",
                 more_cookies: str = "", host: bytes = b"testserver", scheme: str | None = "ws",
                 more_headers: tuple[tuple[bytes, bytes], ...] = ()) -> WebsocketCommunicator:
    """A client of the real ASGI application (origin check, cookies, router) at the kiosk socket;
    ``more_cookies``: others the browser sends along (``"sessionid=..."``); ``origin`` None: no
    Origin header; ``scheme``: the scope's, ``"wss"`` for a socket that arrived over TLS, None for
    none at all (Daphne's WebSocket scopes)."""
    from masknet_site.asgi import application

    headers = [(b"host", host), *more_headers] + ([(b"origin", origin)] if origin is not None else [])
    cookies = "; ".join(c for c in (f"{consumers.KIOSK_COOKIE}={token}" if token else "", more_cookies) if c)
    if cookies:
        headers.append((b"cookie", cookies.encode()))
    comm = WebsocketCommunicator(application, "/ws/kiosk/", headers=headers)
    if scheme is not None:
        comm.scope["scheme"] = scheme   # read when the application starts, at the first message
    return comm


async def open_kiosk(token: str) -> WebsocketCommunicator:
    """A connected kiosk socket, past its ``hello``."""
    comm = communicator(token)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    hello = await comm.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return comm


async def ask(comm: WebsocketCommunicator, script: str) -> dict:
    """Send one frame and return its answer (the page's one-frame-in-flight rhythm)."""
    await comm.send_to(bytes_data=frame(script))
    return await comm.receive_json_from(timeout=5)
