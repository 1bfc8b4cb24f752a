"""The kiosk socket: binary JPEG frames in, one small JSON answer per frame out.

One :class:`KioskConsumer` per open kiosk page (design §1):

* authenticates the kiosk by its device cookie (set by the pairing link), else refuses the
  handshake (close code 4401); revocation closes an open socket at once (4403);
* bounds each message (``MASKNET_MAX_FRAME_BYTES``) and checks the image type before any work;
* limits each socket to ``MASKNET_KIOSK_MAX_FPS`` messages a second (a token bucket holding two
  seconds' worth, so short bursts pass); messages beyond it are answered ``rate_limited`` unread,
  and a socket that goes on sending with its bucket empty (:data:`FLOOD_BURSTS` bursts' worth
  refused in a row, and at least :data:`FLOOD_MIN_REFUSED`: no kiosk page does) is closed with 4429;
* keeps only the newest frame: a frame that arrives while another is being analysed replaces
  the waiting one, which is answered ``{"type": "dropped"}`` and never analysed;
* runs the engine in a thread pool shared by all kiosks (``MASKNET_KIOSK_WORKERS`` threads;
  each socket has at most one frame there), never on the event loop;
* hands each analysis to the socket's :class:`recognition.presence.Presence`, the state machine
  that votes over recent frames (:mod:`recognition.voting`) and keeps the outcome on screen while
  the same face stays in front of the camera (a welcome goes once two frames in a row are matched
  to someone else: the next person in a queue), and writes what it asks for (a check-in, an audit
  row);
* reloads the gallery index when the ``kiosks`` group hears ``index.updated``.

Answers (JSON text messages)::

    {"type": "hello", "kiosk": "Front door", "location": "...", "site": "main", "language": "pt",
     "build": "3f2a9c01d4e5", "ready": bool}   (ready false: the models are still loading, the first
     answer takes a few seconds; language: the screen's, a page loaded in another reloads)
    {"type": "kiosk", "kiosk": "Front door", "location": "...", "site": "main", "language": "pt"}
     (renamed, moved or given another language since)
    {"type": "result", "frame": 12, "state": "searching" | "adjust" | "recognising" |
     "checked_in" | "already" | "unknown", "reason": "too_small" | "partial" | "too_dark" |
     "too_bright" | "blurry" | "pose" | "several" (two people side by side) | null,
     "box": [x1, y1, x2, y2] (0-1 of the frame) | null,
     "masked": bool | null, "name": the greeting's name | null, "time": "08:59" | null,
     "progress": 0-1, "ms": engine milliseconds, "server_ms": milliseconds from the frame's arrival
     to this answer (waiting behind the frame before it, the engine, the database)}
    {"type": "dropped", "frame": 11}
    {"type": "error", "frame": 13, "code": "frame_too_large" | "not_an_image" |
     "unreadable_image" | "binary_expected" | "rate_limited" | "unavailable" | "updating" |
     "models_missing" | "model_conversion_error" | "engine_error" | "internal", "message": "..."}
    {"type": "revoked"}
    {"type": "replaced"}      (then close 4409: a newer socket of the same kiosk opened)

Close codes: 4401 no paired kiosk's cookie (at the handshake), 4403 revoked, 4409 replaced, 4013 the
database away at the handshake, 4429 a flood of messages past the rate limit.

``unavailable``: the server cannot reach its database for now (a frame that needs it is answered
with this; a socket opened meanwhile gets it and is closed with 4013, "try again later"). Nothing
is lost: the vote that would have been recorded is taken again from the next frames, and service
resumes by itself when the database answers again. ``updating``: the active index was made by an
earlier version of the recognizer whose vectors do not fit this one's (after an upgrade that changes
the embedding); the rebuild it asks for replaces it, and frames are answered normally again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import cv2
import numpy as np
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils import timezone

from enrollment import events, recognizer
from enrollment.models import FacePhoto, IndexVersion, index_cache_clear
from enrollment.recognizer import engine_loaded, get_engine
from enrollment.services import (
    StorageFull,
    database_full,
    index_rebuild_resume,
    index_rebuild_resume_due,
    index_refresh_if_outdated,
    photo_add_from_checkin,
)
from masknet_site.channel_layer import outage_epoch
from masknet_site.logfilters import error_first_line
from recognition.engine import EngineError, Face, Index, NoFaceFound
from recognition.engine.decode import decode_image, image_extension
from recognition.engine.detect import box_area, box_overlap
from recognition.engine.gallery import identify, probe_threshold, score_for
from recognition.engine.quality import BLURRY

from . import services
from .kiosk_page import page_build
from .models import Kiosk
from .presence import (  # the rules' constants stay importable from here (tests, bench/voting.py; see _new_presence)
    CHECK_IN,
    EDGE_SEARCH_EVERY_S,
    EDGE_STILL_IOU,  # noqa: F401
    EDGE_STILL_S,
    LOST_AFTER_INTERVALS,
    LOST_AFTER_S,
    QUALITY_AUDIT_FRAMES,  # noqa: F401
    SCORED_WHEN_REFUSED,
    SEVERAL,  # noqa: F401
    SEVERAL_HOLD_FRAMES,  # noqa: F401
    VOTE_GAP_INTERVALS,
    VOTE_MAX_GAP_CAP_S,
    VOTE_MAX_GAP_S,
    WELCOME_DOUBT_MARGIN,  # noqa: F401
    WELCOME_FAR_FRAMES,  # noqa: F401
    WELCOME_FAR_MARGIN,  # noqa: F401
    WELCOME_OTHER_FRAMES,  # noqa: F401
    WELCOMES,  # noqa: F401
    FrameAnalysis,
    Presence,
    Step,
    Timing,
    let_go,
    unit_box,
)
from .voting import Verdict, Voter

log = logging.getLogger(__name__)

KIOSK_COOKIE = "masknet_kiosk"
CLOSE_UNAUTHORIZED = 4401
CLOSE_REVOKED = 4403
CLOSE_TRY_AGAIN = 4013      # "try again later" (the standard 1013 is refused by Daphne): database away
CLOSE_REPLACED = 4409       # a newer socket of the same kiosk opened: one socket per kiosk
CLOSE_FLOODED = 4429        # went on sending far past its rate limit (HTTP's 429, "too many requests")
# A socket is closed once this many bursts' worth of its messages in a row were refused, and at
# least FLOOD_MIN_REFUSED: a client sending as fast as it can (a broken or hostile one) queued
# messages faster than even a refusal is answered, growing the server's memory without bound, and
# its disconnect waited behind the queue until Daphne killed the consumer. The kiosk page keeps up
# to three frames in flight, so a stalled network's frames arriving at once at a low
# MASKNET_KIOSK_MAX_FPS are a few refusals, far below either
FLOOD_BURSTS = 2
FLOOD_MIN_REFUSED = 30
DB_ERRORS = (OperationalError, InterfaceError)   # the database is down or the connection broke
UNAVAILABLE_LOG_EVERY_S = 60.0
INDEX_RETRY_S = 2.0         # an index file that could not be read is tried again after this long
GROUP_RETRY_S = 5.0         # a socket not in its channel groups (Redis away) rechecks and tries again this often
# with no active index, whether one is active now or people have been enrolled is read again this
# often: a first photo added sends no index.updated, and the first rebuild takes seconds
NO_INDEX_RECHECK_S = 1.0
# Two clear faces this close in size are two people side by side, not one with a queue behind (a step
# further back is about half the width): nobody is decided on until one stands alone (reason
# "several"), else the largest flipped between them frame to frame and the other was never checked in.
# docs/kiosk.md, "What the kiosk shows": LFW DevTest's first photos framed as kiosk frames have such a
# pair in 41 of 1,711 at 0.85 (29 if both must pass the quality gate; 59 at 0.7).
SEVERAL_FACES_RATIO = 0.85
ERROR_MESSAGES = {
    "unreadable_image": "The frame could not be decoded.",
    "frame_too_large": "The frame has too many pixels (640x480 is plenty).",
    "models_missing": "The face models are not installed on the server.",
    "unavailable": "Temporarily unavailable: the server cannot reach its database. Check-ins resume by themselves.",
    "updating": "The list of enrolled people is being rebuilt for this version of MaskNet. Check-ins resume by "
                "themselves when it is ready.",
}
# the page shows the code's banner; the message says which part is away
INDEX_UNREADABLE = ("Temporarily unavailable: the list of enrolled people cannot be read. Check-ins resume by "
                    "themselves.")
# people are enrolled but no index version is active (an erasure withdrew an unreadable one, or the
# first rebuild has not finished): their faces are not voted "unknown" against a gallery the kiosk
# does not have
INDEX_MISSING = ("Temporarily unavailable: the list of enrolled people is being rebuilt. Check-ins resume by "
                 "themselves.")
_unavailable_logged_at = 0.0


def _log_unavailable(exc: BaseException) -> None:
    """Warn about an unreachable database at most once a minute per process (not per frame)."""
    global _unavailable_logged_at
    now = time.monotonic()
    if now - _unavailable_logged_at >= UNAVAILABLE_LOG_EVERY_S:
        _unavailable_logged_at = now
        # the driver's first line says which (a refused or timed-out connection, a dropped one, a
        # lock or deadlock): never the statement or its values, which a driver puts on later lines
        reason = error_first_line(exc)
        # a full disk is not an outage that ends by itself: the operator must free space
        what = "the database's disk is full" if database_full(exc) else "the database is unreachable"
        log.warning("kiosk socket: %s (%s: %s); answering 'unavailable'", what, type(exc).__name__, reason)


# ----------------------------------------------------------------------------------------------
# the engine side (runs in the pool's threads)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


# how ThreadPoolExecutor.submit refuses once the pool (or the interpreter) is shutting down:
# "cannot schedule new futures after shutdown" / "... after interpreter shutdown"
POOL_CLOSED = "cannot schedule new futures after"


def engine_pool() -> ThreadPoolExecutor:
    """The process-wide pool that runs the engine for every kiosk (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, settings.MASKNET_KIOSK_WORKERS),
                                       thread_name_prefix="kiosk-engine")
        return _pool


def _several_people(faces: Sequence[Face], sure: float) -> bool:
    """Whether another face nearly as large as the largest (:data:`SEVERAL_FACES_RATIO`) stands
    beside it: two people side by side. Judged on size and the detector's confidence (``sure``:
    its threshold without the masked faces' fallback), not on the quality gate: a face that moves
    is blurred for a frame, and is still there."""
    first = faces[0]
    if first.width < settings.MASKNET_KIOSK_MIN_FACE_PX:
        return False
    a = first.box
    for other in faces[1:]:
        b = other.box
        # side by side, not overlapping: two boxes over one face (the detector at times frames a
        # face twice, or its reflection where a camera's picture is mirrored at its edge) are one
        apart = box_overlap(a, b) <= 0.2 * min(box_area(a), box_area(b))
        if other.width >= SEVERAL_FACES_RATIO * first.width and other.score >= sure and apart:
            return True
    return False


def analyze_frame(data: bytes, index: Index | None, thresholds: dict, snapshot: bool = False,
                  adapt_margin: float | None = None, search_edges: bool = True,
                  welcome: str | None = None, background: Sequence[Sequence[float]] = ()) -> FrameAnalysis:
    """Decode (with the kiosk's limits), find the main face, gate its quality and identify it.

    ``thresholds``: the index version's site thresholds (``{"masked": .., "unmasked": ..}``);
    a probe is accepted only above both the engine's and the site's threshold. ``adapt_margin``
    (gallery adaptation on): an unmasked face accepted at least this far above its threshold also
    gets ``adapt_photo``. ``search_edges``: a frame without a face is searched again for one cut off
    by its edge (``Engine.analyze``), answered ``partial``. ``welcome``: the person whose welcome
    stands, whom an identified face is also scored against (``welcomed``), and so is a face refused
    for its light (:data:`SCORED_WHEN_REFUSED`), with the threshold its score is held to
    (``welcomed_threshold``; it has no decision, and stays unembedded in the answer). ``background``:
    places (0-1 boxes) where a face refused as blurred has stayed (:class:`.presence.StillBlur`): such
    a face found there again is left out, as if not found; every blurred face's place is answered
    (``blurred``), the ones left out too.
    """
    started = time.perf_counter()
    try:
        image = decode_image(data, max_bytes=settings.MASKNET_MAX_FRAME_BYTES,
                             max_pixels=settings.MASKNET_KIOSK_MAX_FRAME_PIXELS)
        engine = get_engine()
    except EngineError as exc:
        return FrameAnalysis(error=exc.code, ms=(time.perf_counter() - started) * 1000)
    size = (image.shape[1], image.shape[0])
    try:
        # no tiled search: an empty 1920x1080 frame (the page sends 640 px; another client may not)
        # cost 7 model runs instead of 1, and a face that small is asked to come closer anyway. A
        # frame is the part of the camera's picture the kiosk's screen shows: someone standing half
        # out of it is searched for across its edge and asked to move to the middle ("partial"),
        # where they were told "Looking for a face" (their face was cut through and not found); no
        # search for a face filling the frame (a cropped photo's): every empty frame would pay it
        faces = engine.analyze(image, max_faces=3, embed=False, search_tiles=False, search_edges=search_edges,
                               search_filled=False)
    except NoFaceFound:
        return FrameAnalysis(size=size, ms=(time.perf_counter() - started) * 1000)
    # sharp by the gate's own measure (the gate names one reason, and a blurred face too small, dark or
    # bright was named so); in focus, besides, as large as a face the kiosk decides on, which alone times
    # a blurred place beside it (not a small one in the queue behind someone blurred: a diff review found
    # either let the person in front go), where any sharp face forgets one (someone just under that size
    # beside another, moving in turn, was let go: a third review)
    sharp = [f for f in faces if f.quality.focus >= engine.config.min_focus and f.quality.reason != BLURRY]
    places = {"blurred": tuple(unit_box(f.box, size) for f in faces if f.quality.reason == BLURRY),
              "in_focus": tuple(unit_box(f.box, size) for f in sharp if f.width >= settings.MASKNET_KIOSK_MIN_FACE_PX),
              "sharp": tuple(unit_box(f.box, size) for f in sharp)}
    if background:   # out of focus behind the person in front: neither someone beside them nor alone someone
        faces = [f for f in faces if f.quality.reason != BLURRY or not let_go(unit_box(f.box, size), background)]
        if not faces and search_edges:
            # the engine searches across the edge only where it found nobody: someone half out of the
            # picture beside a face let go is asked to move to the middle, as without it (a diff review),
            # but not that face found again across the edge in the mirrored frame, its part in the frame
            # within the place let go (a second review)
            faces = [f for f in engine.faces_across_edge(image, 3)
                     if not any(box_overlap(unit_box(f.box, size), place) >= 0.5 * box_area(unit_box(f.box, size))
                                for place in background)]
        if not faces:
            return FrameAnalysis(size=size, **places, ms=(time.perf_counter() - started) * 1000)
    face = faces[0]
    if _several_people(faces, engine.config.detect_min_confidence):   # nobody is decided on (nor embedded)
        return FrameAnalysis(size=size, face=face, several=True, **places, ms=(time.perf_counter() - started) * 1000)
    # only the main face of a frame that can lead to a decision is embedded: FaceRes with flip
    # TTA is over half of a frame's engine time (docs/performance.md)
    decidable = face.quality.ok and face.width >= settings.MASKNET_KIOSK_MIN_FACE_PX
    if decidable and index is not None and len(index) and index.dim != engine.dim:
        # an index made by an earlier version (another embedding size): rebuilding after an upgrade,
        # so the face is not embedded for nothing
        return FrameAnalysis(size=size, error="updating", ms=(time.perf_counter() - started) * 1000)
    if decidable:
        face = engine.with_embedding(face)
    decision = welcomed = welcomed_threshold = None
    if face.embedding is not None and index is not None and len(index):
        decision = identify(engine, face, index, thresholds)
        if welcome is not None:
            welcomed = (welcome, decision.score if decision.label == welcome else score_for(face, index, welcome))
    elif (welcome is not None and face.quality.reason in SCORED_WHEN_REFUSED and index is not None and len(index)
          and index.dim == engine.dim):
        # a welcome stands and this face is refused where it could be anyone's: scored against the
        # person welcomed (never decided on), so a stranger in the dark who stepped into their place
        # hides it at once (Presence's refused frames), not after WELCOME_REFUSED_MAX_S
        scored = engine.with_embedding(face)
        welcomed = (welcome, score_for(scored, index, welcome))
        welcomed_threshold = probe_threshold(engine, scored.masked, thresholds)
    jpeg = None
    if snapshot and face.quality.ok:
        ok, buf = cv2.imencode(".jpg", face.aligned, [cv2.IMWRITE_JPEG_QUALITY, 85])
        jpeg = buf.tobytes() if ok else None
    adapt = None
    if (adapt_margin is not None and decision is not None and decision.accepted and not face.masked
            and decision.score >= decision.threshold + adapt_margin):
        adapt = face_photo(image, face.box)
    return FrameAnalysis(size=size, face=face, decision=decision, ms=(time.perf_counter() - started) * 1000,
                         snapshot=jpeg, adapt_photo=adapt, welcomed=welcomed,
                         welcomed_threshold=welcomed_threshold, **places)


def face_photo(image: np.ndarray, box: Sequence[float], context: float = 0.6) -> bytes | None:
    """A JPEG (quality 95) of the frame cut around a face box: the box widened by ``context`` of its
    size on every side, clipped at the frame's edges: enough of the head for enrolment's detector and
    quality gate, little of the room or of anyone beside."""
    x1, y1, x2, y2 = box
    dx, dy = context * (x2 - x1), context * (y2 - y1)
    h, w = image.shape[:2]
    left, top = max(int(x1 - dx), 0), max(int(y1 - dy), 0)
    right, bottom = min(int(x2 + dx) + 1, w), min(int(y2 + dy) + 1, h)
    if right - left < 2 or bottom - top < 2:
        return None
    ok, buf = cv2.imencode(".jpg", image[top:bottom, left:right], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes() if ok else None


def offer_to_gallery(kiosk_id: int, person_id: int, checkin_id: int, photo: bytes) -> None:
    """Gallery adaptation: offer a check-in's face to the person's photos
    (:func:`enrollment.services.photo_add_from_checkin`), in a thread of the engine's pool, with the
    database connection handling of ``database_sync_to_async``. Whatever fails, the check-in stands:
    logged only."""
    close_old_connections()
    try:
        photo_add_from_checkin(person_id=person_id, data=photo, checkin_id=checkin_id)
    except StorageFull:   # photo_add kept nothing of it; one line, no traceback for each check-in meanwhile
        log.warning("kiosk #%s: check-in #%s's face was not kept for the gallery: the media storage is full",
                    kiosk_id, checkin_id)
    except Exception:  # noqa: BLE001 - an optional extra: never the kiosk's error
        log.warning("kiosk #%s: check-in #%s's face could not be offered to the gallery", kiosk_id, checkin_id,
                    exc_info=True)
    finally:
        close_old_connections()


# ----------------------------------------------------------------------------------------------
# the consumer


class KioskConsumer(AsyncWebsocketConsumer):
    """One open kiosk page. See the module docstring for the protocol."""

    kiosk: Kiosk | None = None

    async def connect(self) -> None:
        """Accept only a paired, active kiosk (device cookie); anything else is refused."""
        token = (self.scope.get("cookies") or {}).get(KIOSK_COOKIE)
        try:
            # the first read of the handshake also counts it ("last seen", and the number that
            # orders this kiosk's sockets: see kiosk_connected), so a handshake held up later still
            # counts as the older one, and a handshake costs one write. Before the accept: a write
            # that hangs holds the handshake, which Daphne refuses after its connect timeout (5 s)
            # and the page retries, where after the accept it left the page at "Connecting…"
            self.kiosk = await database_sync_to_async(services.kiosk_connect)(token=token)
        except DB_ERRORS as exc:
            # say why rather than failing the handshake: the page shows it and reconnects later (no
            # number was taken: the socket never opens, so none is needed)
            _log_unavailable(exc)
            await self.accept()
            await self.send(text_data=json.dumps({"type": "error", "frame": 0, "code": "unavailable",
                                                  "message": ERROR_MESSAGES["unavailable"]}))
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if self.kiosk is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        # the socket and its frames
        self._token = token
        self._connection_seq = self.kiosk.connection_seq   # of two sockets of this kiosk, the higher stays
        self._closed = False
        self._seq = 0
        self._pending: tuple[int, bytes, float] | None = None   # (number, frame, when it came: monotonic)
        self._worker: asyncio.Task | None = None
        # what the page shows, and when a check-in is due (recognition.presence)
        self._presence = self._new_presence()
        self._adapt_pending: tuple[int, int, bytes] | None = None   # (person, check-in, photo) to offer
        # the gallery index the frames are matched against
        self._index: Index | None = None
        self._index_version: int | None = None
        self._thresholds: dict = {}
        self._index_stale = True
        self._index_retry_at = 0.0   # after a failed load: not again before this (monotonic)
        self._index_missing = False  # no active version, though people are enrolled (INDEX_MISSING)
        self._no_index_seen_at = 0.0  # when a load last found no active version (monotonic)
        # the periodic recheck of the kiosk row, and the rate limit
        self._checked_at = time.monotonic()
        self._recheck_s = float(settings.MASKNET_KIOSK_RECHECK_S)
        self._fps = float(settings.MASKNET_KIOSK_MAX_FPS)
        # two seconds' worth, and at least two frames: a rate below 0.5 a second would refuse every
        # frame, and at exactly the page's pace a little jitter would refuse some
        self._burst = max(2 * self._fps, 2.0)
        self._tokens, self._tokens_at = self._burst, time.monotonic()
        self._refused_in_a_row = 0
        events.register_loop(asyncio.get_running_loop())
        self._in_groups = True   # until a join fails: then its warning is said once, not every try
        # the channel layer's count of ended Redis outages when this socket last (re)joined its groups
        self._layer_epoch = outage_epoch(self.channel_layer)
        self._announce_pending = False
        joined = await self._join_groups()
        refused = await self._recheck_handshake(token)
        if refused == CLOSE_UNAUTHORIZED:
            await self._leave_groups()
            self.kiosk = None
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.accept()
        if refused == CLOSE_REPLACED:
            await self._close_with({"type": "replaced"}, CLOSE_REPLACED)
            return
        # build: the page served now; an open page of an earlier release reloads (recognition.kiosk_page)
        # ready: whether this process has its models yet (after a start they load for a few seconds,
        # which the first frame waits out: the page says "getting ready", not "looking for a face")
        await self._send({"type": "hello", **self._facts(), "build": page_build(), "ready": engine_loaded()})
        # one socket per kiosk: an older one (a stale connection of this device, or a copy of its
        # cookie on another screen) is closed, so a cookie cannot open many sockets' worth of work.
        # Not in its groups (the channel layer away): announced once it joins them
        if joined:
            await self._announce()
        else:
            self._announce_pending = True
        # the models load now, in a thread of their own (once per process), not on the first frame
        recognizer.warm_soon()

    @staticmethod
    def _new_presence() -> Presence:
        """The socket's :class:`Presence`, with the vote's settings and the timing constants as this
        module holds them when the socket opens (tests set them here, before opening one: later
        changes reach only sockets opened after them). The rules' other constants imported here
        (QUALITY_AUDIT_FRAMES, SEVERAL_HOLD_FRAMES, WELCOME_*, EDGE_STILL_IOU) are only for reading:
        :mod:`recognition.presence` reads its own at each frame, so set them there."""
        voter = Voter(min_frames=settings.MASKNET_KIOSK_VOTE_FRAMES,
                      min_frames_masked=settings.MASKNET_KIOSK_VOTE_FRAMES_MASKED,
                      min_frames_after_unknown=settings.MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN,
                      max_gap_s=VOTE_MAX_GAP_S)
        timing = Timing(lost_after_s=LOST_AFTER_S, lost_after_intervals=LOST_AFTER_INTERVALS,
                        vote_max_gap_s=VOTE_MAX_GAP_S, vote_gap_intervals=VOTE_GAP_INTERVALS,
                        gap_cap_s=VOTE_MAX_GAP_CAP_S, edge_search_every_s=EDGE_SEARCH_EVERY_S,
                        edge_still_s=EDGE_STILL_S)
        return Presence(voter, min_face_px=settings.MASKNET_KIOSK_MIN_FACE_PX, timing=timing)

    async def _join_groups(self) -> bool:
        """Join the ``kiosks`` group (``index.updated``) and this kiosk's own (``kiosk.revoked``,
        ``kiosk.connected``); ``False`` when the channel layer cannot be reached (Redis down).

        Frames and check-ins need only the database: the socket goes on without its groups, and its
        recheck (revocation, the active index version) comes every ``GROUP_RETRY_S`` instead of
        every ``MASKNET_KIOSK_RECHECK_S`` and tries to join again, until it has joined them. A socket
        in its groups joins them again at every recheck (a restarted Redis forgot its members), which
        comes at once when the channel layer has seen Redis come back from an outage (:meth:`_recheck_due`)."""
        try:
            await self.channel_layer.group_add(events.KIOSKS_GROUP, self.channel_name)
            await self.channel_layer.group_add(self.kiosk.group_name, self.channel_name)
        except Exception as exc:  # noqa: BLE001 - the channel layer's errors are its backend's (redis-py's)
            self._checked_at = min(self._checked_at, time.monotonic() - self._recheck_s + GROUP_RETRY_S)
            if self._in_groups:
                self._in_groups = False
                reason = error_first_line(exc)
                log.warning("kiosk #%s: cannot join its channel groups (%s: %s); the socket goes on without "
                            "them and tries again every %.0f s", self.kiosk.pk, type(exc).__name__, reason,
                            GROUP_RETRY_S)
            return False
        if not self._in_groups:
            self._in_groups = True
            log.info("kiosk #%s: joined its channel groups again", self.kiosk.pk)
        if self._announce_pending:
            self._announce_pending = False
            await self._announce()
        return True

    async def _leave_groups(self) -> None:
        """Leave both groups; with the channel layer away, the layer's group expiry drops the channel."""
        try:
            await self.channel_layer.group_discard(events.KIOSKS_GROUP, self.channel_name)
            await self.channel_layer.group_discard(self.kiosk.group_name, self.channel_name)
        except Exception:  # noqa: BLE001 - best effort (Redis away)
            log.debug("kiosk #%s: could not leave its channel groups", self.kiosk.pk)

    async def _announce(self) -> None:
        """Tell this kiosk's other sockets that this one opened (``kiosk.connected``)."""
        try:
            await self.channel_layer.group_send(self.kiosk.group_name,
                                                {"type": "kiosk.connected", "seq": self._connection_seq})
        except Exception:  # noqa: BLE001 - best effort, as the other publications
            log.warning("kiosk #%s: could not announce its new socket", self.kiosk.pk)

    async def _recheck_handshake(self, token: str) -> int | None:
        """Read the kiosk row again once the socket is in its groups (or failed to join them): a
        revocation published between the first read and joining them reached no group, and neither
        did the announcement of a socket of this kiosk whose handshake counted after this one's.
        Returns the close code that follows (``CLOSE_UNAUTHORIZED``: the token no longer opens this
        kiosk; ``CLOSE_REPLACED``: a newer socket took a higher number), else ``None``. With the
        database gone in that instant the socket goes on (its periodic recheck reads the row again)."""
        try:
            kiosk = await database_sync_to_async(Kiosk.objects.for_device_token)(token)
        except DB_ERRORS as exc:
            _log_unavailable(exc)
            return None
        if kiosk is None or kiosk.pk != self.kiosk.pk:
            return CLOSE_UNAUTHORIZED
        return CLOSE_REPLACED if kiosk.connection_seq > self._connection_seq else None

    async def disconnect(self, code: int) -> None:
        """Leave the groups and stop this socket's work: a frame still queued for the engine pool
        is taken out of the queue (closed sockets must not keep the pool busy for the kiosks that
        remain); one already being analysed finishes in its thread, unanswered."""
        if self.kiosk is None:
            return
        self._closed = True
        self._pending = None
        worker = self._worker
        if worker is not None and not worker.done() and worker is not asyncio.current_task():
            worker.cancel()   # cancels the pool's job too while it has not started
        await self._leave_groups()

    # -------------------------------------------------------------------------- incoming frames

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch, but a frame goes to its handler directly: Channels closes the stale
        database connections of the thread every socket's queries share before each handler
        (``aclose_old_connections``), a trip through that thread for each message, a refused one
        too (about 1,900 a second at most; a flood queued faster than that). A frame's own queries
        go through ``database_sync_to_async``, which closes them itself."""
        if message.get("type") == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A frame: check it, then make it the one waiting (replacing an older waiting one)."""
        if self.kiosk is None or self._closed:
            return
        self._seq += 1
        seq = self._seq
        if not self._within_rate():
            self._refused_in_a_row += 1
            if self._refused_in_a_row > max(FLOOD_BURSTS * self._burst, FLOOD_MIN_REFUSED):
                log.warning("kiosk #%s: closed after %d messages in a row past its rate limit (%g a second)",
                            self.kiosk.pk, self._refused_in_a_row, self._fps)
                self._closed = True   # the messages still queued behind are not read
                self._pending = None
                await self.close(code=CLOSE_FLOODED)
                return
            await self._error(seq, "rate_limited", f"At most {self._fps:g} frames a second.")
            return
        self._refused_in_a_row = 0
        if bytes_data is None:
            await self._error(seq, "binary_expected", "Send frames as binary JPEG messages.")
            return
        if len(bytes_data) > settings.MASKNET_MAX_FRAME_BYTES:
            await self._error(seq, "frame_too_large",
                              f"Frames may be at most {settings.MASKNET_MAX_FRAME_BYTES} bytes.")
            return
        if image_extension(bytes_data) is None:
            await self._error(seq, "not_an_image", "Frames must be JPEG (or PNG/WebP) images.")
            return
        if self._pending is not None:
            await self._send({"type": "dropped", "frame": self._pending[0]})
        self._pending = (seq, bytes_data, time.monotonic())
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())

    def _within_rate(self) -> bool:
        """Take a token from this socket's bucket (refilled at MASKNET_KIOSK_MAX_FPS; 0 = no limit)."""
        if self._fps <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self._fps)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _drain(self) -> None:
        """Analyse waiting frames one at a time, always the newest."""
        while self._pending is not None and not self._closed:
            seq, data, came = self._pending
            self._pending = None
            try:
                await self._process(seq, data, came)
            except DB_ERRORS as exc:
                _log_unavailable(exc)
                await self._error(seq, "unavailable", ERROR_MESSAGES["unavailable"])
            except Exception as exc:  # noqa: BLE001 - one bad frame must not kill the kiosk's socket
                if isinstance(exc, RuntimeError) and str(exc).startswith(POOL_CLOSED):
                    # the server is stopping (Ctrl-C, a deploy) and its engine pool is closed
                    # ("cannot schedule new futures after shutdown"): not this frame's error; the
                    # page reconnects to the next server
                    log.info("kiosk #%s: the server is stopping; frame %s not analysed", self.kiosk.pk, seq)
                    return
                log.exception("kiosk #%s: frame %s failed", self.kiosk.pk, seq)
                await self._error(seq, "internal", "The frame could not be analysed.")

    def _recheck_due(self) -> bool:
        """Time for :meth:`_still_valid`: every ``MASKNET_KIOSK_RECHECK_S``, and at once when the
        channel layer has seen a Redis outage end since the last one. Redis (restarted without
        persistence) then forgot this socket's groups, and a revocation or index update published
        meanwhile was lost: without this, both waited for the next periodic recheck (up to 30 s)."""
        return (time.monotonic() - self._checked_at > self._recheck_s
                or outage_epoch(self.channel_layer) != self._layer_epoch)

    async def _process(self, seq: int, data: bytes, came: float) -> None:
        """Analyse one frame and answer it: the checks due first, then the engine (in the pool), then
        the presence's step, the writes it asks for, and the answer."""
        if self._recheck_due() and not await self._still_valid():
            await self._revoke()
            return
        if self._closed:   # replaced by a newer socket of this kiosk (the recheck found it)
            return
        if not await self._index_ready(seq):
            return
        loop = asyncio.get_running_loop()
        adapt_margin = settings.MASKNET_GALLERY_ADAPT_MARGIN if settings.MASKNET_GALLERY_ADAPT else None
        presence = self._presence
        asked_at = time.monotonic()
        searched = presence.edges.due(asked_at)
        analysis = await loop.run_in_executor(engine_pool(), partial(
            analyze_frame, data, self._index, self._thresholds, settings.MASKNET_CHECKIN_SNAPSHOTS,
            adapt_margin=adapt_margin, search_edges=searched, welcome=presence.welcome_label,
            background=presence.background.boxes(asked_at)))
        if self._closed:
            return
        # a new version announced while this frame was in the engine: it was matched against the
        # replaced gallery (a wrong photo removed, thresholds refitted) and is not counted
        # read at each frame, where analyze_frame reads it to decide which faces it embeds: a face it left
        # unembedded as too small is asked to come closer, not voted on as nobody
        presence.min_face_px = settings.MASKNET_KIOSK_MIN_FACE_PX
        step = presence.frame(analysis, time.monotonic(), searched=searched, vote=not self._index_stale)
        if step.error:
            await self._error(seq, step.error, ERROR_MESSAGES.get(step.error, "The frame was refused."))
            return
        await self._record(step, analysis)
        reply = presence.shown(step.reply)
        # server_ms: from the frame's arrival to this answer (waiting behind the frame before, the
        # engine, the database): the page takes it from the answer's latency to see the network's part
        reply.update({"type": "result", "frame": seq, "ms": round(analysis.ms),
                      "server_ms": round((time.monotonic() - came) * 1000)})
        await self._send(reply)
        if self._adapt_pending is not None:
            # after the answer, in the engine's pool (it runs the engine), not awaited: neither the
            # welcome nor this socket's next frames wait for it
            person_id, checkin_id, photo = self._adapt_pending
            self._adapt_pending = None
            try:
                loop.run_in_executor(engine_pool(), offer_to_gallery, self.kiosk.pk, person_id, checkin_id, photo)
            except RuntimeError:   # the pool is closed: the server is stopping; the check-in stands
                pass

    async def _index_ready(self, seq: int) -> bool:
        """Load the gallery index if due; ``False`` (the frame answered ``unavailable``) when there
        is none to match against: never vote people "unknown" against a gallery the kiosk lacks."""
        if (self._index is None and not self._index_stale
                and time.monotonic() - self._no_index_seen_at > NO_INDEX_RECHECK_S):
            self._index_stale = True   # no index yet: maybe one now, or the first people enrolled
        if self._index_stale and not await self._load_index():
            await self._error(seq, "unavailable", INDEX_UNREADABLE)
            return False
        if self._index is None and self._index_missing:
            await self._error(seq, "unavailable", INDEX_MISSING)
            return False
        return True

    # -------------------------------------------------------------------------- writing what the presence decided

    async def _record(self, step: Step, a: FrameAnalysis) -> None:
        """Write what a frame's step asks for: the presence's quality audit, the verdict's record."""
        if step.quality_audit is not None:
            q = step.quality_audit
            await database_sync_to_async(services.checkin_reject_record)(
                kiosk=self.kiosk, reason="quality", frames=q.frames, masked=q.masked, detail=q.detail)
            self._presence.quality_audited()   # once written: a database error tries it again
        if step.verdict is not None:
            await self._act_on(step.verdict, a)

    async def _act_on(self, verdict: Verdict, a: FrameAnalysis) -> None:
        """Record a verdict as the presence asks (:meth:`Presence.verdict_due`): a check-in, or an
        "unknown" audit row; then tell the presence what was recorded."""
        due = self._presence.verdict_due(verdict, self._cooldown_window_now)
        if due is None:
            return
        detail = due.detail
        if due.action == CHECK_IN:
            try:
                outcome = await database_sync_to_async(services.checkin_record)(
                    person_id=int(verdict.label), kiosk=self.kiosk, score=verdict.score,
                    threshold=verdict.threshold, masked=verdict.masked, frames=verdict.frames,
                    index_version=self._index_version, snapshot=a.snapshot)
            except services.KioskRevoked:
                # revoked before its message (or the periodic recheck) reached this socket
                await self._revoke()
                return
            if outcome is not None:
                if (outcome.created and a.adapt_photo is not None and not verdict.masked
                        and a.decision is not None and a.decision.label == verdict.label):
                    self._adapt_pending = (int(verdict.label), outcome.checkin.pk, a.adapt_photo)
                local = timezone.localtime(outcome.checkin.at)
                self._presence.checked_in(verdict, created=outcome.created, name=outcome.greeting_name,
                                          time=f"{local:%H:%M}", window=outcome.checkin.window)
                return
            detail = "matched a person who is no longer active"
        await database_sync_to_async(services.checkin_reject_record)(
            kiosk=self.kiosk, reason="unknown", frames=verdict.frames, score=verdict.score,
            threshold=verdict.threshold, masked=verdict.masked, detail=detail)
        self._presence.unknown_recorded(verdict, due)

    def _cooldown_window_now(self) -> str:
        """The cooldown window a check-in at this kiosk now falls in (``services.cooldown_window``)."""
        return services.cooldown_window(site=self.kiosk.site, at=timezone.now())[0]

    # -------------------------------------------------------------------------- index, kiosk row

    async def _load_index(self) -> bool:
        """Load the active index version (the next frame's gallery and site thresholds).

        Returns ``False`` when its file cannot be read: the index stays stale and is tried again
        after ``INDEX_RETRY_S`` (a shared volume that lags the broadcast, a file being restored).
        A newer version announced while this one loads wins: the loaded one is thrown away and the
        newer one loaded (a few times at most; the periodic recheck catches anything later).
        A database error propagates and leaves the index stale."""
        for _ in range(3):
            if not self._index_stale:
                return True
            if time.monotonic() < self._index_retry_at:
                return False
            # cleared before the first await: an ``index.updated`` during the load sets it again
            self._index_stale = False
            try:
                loaded = await self._load_current_index()
            except BaseException:
                self._index_stale = True
                raise
            if not loaded:
                self._index, self._index_stale = None, True
                self._index_retry_at = time.monotonic() + INDEX_RETRY_S
                return False
        return not self._index_stale

    async def _load_current_index(self) -> bool:
        """One attempt of :meth:`_load_index`; ``False`` when the active version's file cannot be read."""
        version = await database_sync_to_async(IndexVersion.objects.current)()
        if index_rebuild_resume_due():  # a rebuild whose message was lost (a restart) is started again
            try:
                await database_sync_to_async(index_rebuild_resume)()
            except (InterfaceError, OperationalError):
                pass   # the database is away: the index load below says so
        if version is None:
            missing = await database_sync_to_async(FacePhoto.objects.for_index().exists)()
            if not self._index_stale:
                if self._index_version is not None:
                    self._presence.forget_votes()   # cast against the withdrawn gallery
                self._index, self._index_version, self._thresholds = None, None, {}
                self._index_missing = missing
                self._presence.welcome_end_unless_in(None)
                self._no_index_seen_at = time.monotonic()
            return True
        if version.outdated:
            try:   # after an upgrade: the first kiosk to load the old index asks for a new one
                await database_sync_to_async(index_refresh_if_outdated)()
            except (InterfaceError, OperationalError):
                log.warning("kiosk #%s: could not ask for a rebuild of the outdated index v%s", self.kiosk.pk,
                            version.pk)
        try:
            index = await asyncio.get_running_loop().run_in_executor(engine_pool(), version.load)
        except (EngineError, OSError) as exc:
            # no traceback: an unreadable file is an operations problem, said once per attempt
            log.warning("kiosk #%s: cannot load index v%s (trying again in %.0f s): %s", self.kiosk.pk, version.pk,
                        INDEX_RETRY_S, exc)
            return False
        if self._index_stale:
            return True   # superseded while it loaded: the caller loads the newer version
        if version.pk != self._index_version:
            # votes were cast against the old gallery (someone may have just been enrolled while
            # standing there): count afresh. An "unknown" called in this presence stands: most new
            # versions come from changes elsewhere (another site's enrolment, gallery adaptation
            # after someone else's check-in), and a stranger must not get the easier count back
            # with them; a person enrolled on the spot still checks in, on the stricter count
            self._presence.forget_votes()
        self._index, self._index_version = index, version.pk
        self._thresholds = version.site_thresholds()
        self._index_missing = False
        self._presence.welcome_end_unless_in(index)
        return True

    async def index_updated(self, event: dict) -> None:
        """A new index version is active: drop the old one now, load the new one with the next frame.
        The process's cached copy goes too (an erasure's replaced version must not stay in memory
        in processes other than the one that erased)."""
        self._index = None
        self._index_stale = True
        self._index_retry_at = 0.0   # a new version: no waiting out an earlier one's failed read
        index_cache_clear(keep=event.get("version"))

    async def _still_valid(self) -> bool:
        """Re-read the kiosk row (still active, same token) and the current index version.

        Run every ``MASKNET_KIOSK_RECHECK_S`` seconds while frames arrive. The index check is the
        fallback for a lost ``index.updated`` message (say Redis restarted between the rebuild and
        the broadcast), and re-joining the groups repairs memberships a restarted Redis forgot (run
        at once, not after ``MASKNET_KIOSK_RECHECK_S``, when the channel layer saw Redis come back).
        """
        self._checked_at = time.monotonic()
        self._layer_epoch = outage_epoch(self.channel_layer)   # taken before the join below
        kiosk = await database_sync_to_async(Kiosk.objects.for_device_token)(self._token)
        if kiosk is None or kiosk.pk != self.kiosk.pk:
            return False
        if kiosk.connection_seq > self._connection_seq:
            # a newer socket of this kiosk opened and its announcement never reached this one (Redis
            # away, or restarted and this socket not yet back in its groups): the rule still holds
            await self._close_with({"type": "replaced"}, CLOSE_REPLACED)
            return True
        before, self.kiosk = self._facts(), kiosk
        if self._facts() != before:   # renamed, moved or another language in the admin: the page shows it now
            await self._send({"type": "kiosk", **self._facts()})
        await database_sync_to_async(services.kiosk_seen)(kiosk_id=kiosk.pk)
        # a rebuild cut off by a restart (make run stopped mid-rebuild) was still alive or not yet
        # overdue when the socket loaded the index after it, and nothing looked again while only
        # kiosks were connected: the person enrolled just before stayed "not recognised" until an
        # admin page opened. The recheck looks too (at most once a minute per process)
        if index_rebuild_resume_due():
            try:
                await database_sync_to_async(index_rebuild_resume)()
            except (InterfaceError, OperationalError):
                pass   # the database is away: this recheck's next read says so
        current = await database_sync_to_async(IndexVersion.objects.current_id)()
        if current != self._index_version:
            self._index, self._index_stale = None, True
        if self._closed:
            return True   # closed meanwhile: re-joining would put a dead channel back in the groups
        await self._join_groups()
        return True

    def _facts(self) -> dict:
        """What the page shows of its kiosk (``hello`` and ``kiosk`` messages), and the language it speaks."""
        return {"kiosk": self.kiosk.name, "location": self.kiosk.location, "site": self.kiosk.site,
                "language": self.kiosk.screen_language}

    async def kiosk_revoked(self, event: dict) -> None:
        """The kiosk was revoked, paired again, deactivated or changed: close now if this socket's
        token no longer opens an active kiosk, else go on with the row as it is now (its site).
        With the database away the periodic recheck decides later."""
        try:
            if await self._still_valid():
                return
        except DB_ERRORS as exc:
            _log_unavailable(exc)
            return
        await self._revoke()

    async def kiosk_connected(self, event: dict) -> None:
        """Another socket of this kiosk opened: the one whose handshake counted earlier closes
        (``replaced``, 4409). By the number the database gave each handshake
        (:func:`services.kiosk_connect`), not by who announced last: a slow handshake of a connection
        the page already gave up must not close the page's new socket, and two overlapping ones keep
        one; nor by a clock, which on another web node may be behind or ahead of this one's. An
        announcement without a number (a node of the release before, which sent its clock's time)
        is ignored: until that node is upgraded, its socket and this one may both stay open."""
        seq = event.get("seq")
        if getattr(self, "_closed", True) or type(seq) is not int or seq <= self._connection_seq:
            return
        await self._close_with({"type": "replaced"}, CLOSE_REPLACED)

    async def _revoke(self) -> None:
        await self._close_with({"type": "revoked"}, CLOSE_REVOKED)

    async def _close_with(self, message: dict, code: int) -> None:
        self._closed, self._pending = True, None
        try:
            await self.send(text_data=json.dumps(message))
            await self.close(code=code)
        except Exception:  # noqa: BLE001 - the page went away meanwhile (Daphne raises Disconnected)
            log.debug("kiosk #%s: socket already closed", self.kiosk.pk if self.kiosk else "?")

    # -------------------------------------------------------------------------- sending

    async def _send(self, message: dict) -> None:
        if self._closed:
            return
        text = json.dumps(message, separators=(",", ":"))
        try:
            await self.send(text_data=text)
        except Exception:  # noqa: BLE001 - the page went away while the frame was analysed
            # (Daphne raises autobahn's Disconnected before our disconnect() has run): not an error
            self._closed, self._pending = True, None
            log.debug("kiosk #%s: answer not sent, the socket is closed", self.kiosk.pk if self.kiosk else "?")

    async def _error(self, seq: int, code: str, message: str) -> None:
        await self._send({"type": "error", "frame": seq, "code": code, "message": message})
