"""The Django side's access to the recognizer: the cached engine, the template version key and
the enrollment templates of one face. (No Django models here; services call these.)"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.signals import request_finished

from recognition.engine import Engine, EngineConfig, Face, NoFaceFound, load_engine
from recognition.engine.convert import ONNX_CONVERTER_VERSION
from recognition.engine.detect import box_iou
from recognition.engine.errors import ModelsMissing
from recognition.engine.gallery import MASK_VARIANTS, Templates, photo_templates, usable_face
from recognition.engine.install import gain_digest, installed_manifest
from recognition.engine.maskclf import DEFAULT_PATH as DEFAULT_MASK_CLASSIFIER
from recognition.engine.registry import CHIP_NETS

log = logging.getLogger(__name__)

N_MASKED_TEMPLATES = 1  # templates from synthetic masks per unmasked photo (MASK_VARIANTS averaged)
# bump when the way templates are made from a photo changes (forces re-embedding)
TEMPLATE_SCHEME = 4


def engine_config() -> EngineConfig:
    """The recognizer settings the site uses: the engine's defaults, both match thresholds moved by
    ``MASKNET_THRESHOLD_OFFSET`` (the operator's choice between fewer strangers and fewer waits), for
    the descriptor ``MASKNET_DESCRIPTOR`` names. Its decoder (enrolment photos: the checks, the
    rebuilds) takes at least what ``MASKNET_MAX_PHOTO_BYTES`` and ``MASKNET_MAX_PIXELS`` take: raised
    above its own limits, they let a photo through their checks that the engine then refused."""
    cfg = EngineConfig.for_descriptor(getattr(settings, "MASKNET_DESCRIPTOR", "sface"))
    # never lower than the engine's own (with the defaults, an equal config: the same cached engine):
    # a photo stored before a limit was lowered is still embedded by the rebuilds
    cfg = cfg.with_(max_image_bytes=max(cfg.max_image_bytes, settings.MASKNET_MAX_PHOTO_BYTES),
                    max_pixels=max(cfg.max_pixels, settings.MASKNET_MAX_PIXELS))
    offset = float(getattr(settings, "MASKNET_THRESHOLD_OFFSET", 0.0))
    if not offset:
        return cfg
    return cfg.with_(threshold_unmasked=round(cfg.threshold_unmasked + offset, 4),
                     threshold_masked=round(cfg.threshold_masked + offset, 4))


_load_lock = threading.Lock()
_warm_lock = threading.Lock()
_loaded = False   # get_engine has returned an engine in this process


def get_engine() -> Engine:
    """The engine for this process (loaded on first use, never at import time). One thread loads
    it; others asking meanwhile (a kiosk's pool, a rebuild, the API) wait for that one instead of
    loading the models a second time beside it (about 900 MB each)."""
    global _loaded
    with _load_lock:
        started = time.perf_counter()
        engine = load_engine(settings.MASKNET_MODELS_DIR, engine_config())
        if not _loaded:   # when this process is ready for its first frame (an operator's sign after a start)
            log.info("face models loaded in %.1f s", time.perf_counter() - started)
        _loaded = True
        return engine


def engine_loaded() -> bool:
    """Whether this process has its engine already (a frame is answered at once), or the first
    frame waits for the models to load (a few seconds after a start)."""
    return _loaded


_warming = False   # a warm_soon thread is loading the engine in this process


def warm_soon() -> None:
    """Start loading this process's engine in a thread of its own, unless it is loaded or being
    loaded: a page about to check photos (the person's form, the capture page) asks when it is
    opened, as a kiosk's socket does (``recognition.consumers``), so that its first check does not
    wait out the models' load (about 4 s on 2 idle cores, more on a busy one). Returns at once."""
    global _warming
    with _warm_lock:
        if _loaded or _warming:
            return
        _warming = True
    threading.Thread(target=_warm, name="engine-warm", daemon=True).start()


# how long after Daphne starts serving its models start loading when no request came before (one
# that does: once it is answered)
PRELOAD_AFTER_S = 1.0


def warm_when_serving() -> None:
    """Have this process's engine loaded (:func:`warm_soon`) once Daphne serves, so that the first
    kiosk after a restart or a deploy is answered at once instead of after the load (a few seconds).
    ``masknet_site.asgi`` asks (``MASKNET_PRELOAD_MODELS``).

    Daphne (``daphne``, ``manage.py runserver``) imports that module, then listens and runs its
    Twisted reactor in the same process; it sends no ASGI lifespan events. When the reactor runs,
    the load starts as soon as the first HTTP answer has gone (``request_finished``), or
    :data:`PRELOAD_AFTER_S` later if no request came: TensorFlow's native libraries hold the GIL for
    about a second while they load, which a request served meanwhile waits out (the first one after
    a start, answered in 0.2-0.3 s, took 1.4-1.5 s when the load started with the reactor). A process
    that imports the module without serving (a test, a management command) never runs the reactor,
    and runserver's autoreloader parent, which only restarts its child, never imports it: neither
    loads anything. Without Daphne's reactor (another ASGI server), the models load on first use."""
    reactor = sys.modules.get("twisted.internet.reactor")   # installed by Daphne before it imports the site
    if reactor is None:
        return

    def start(**_) -> None:
        request_finished.disconnect(dispatch_uid=_PRELOAD_UID)
        warm_soon()

    def serving() -> None:
        request_finished.connect(start, weak=False, dispatch_uid=_PRELOAD_UID)
        reactor.callLater(PRELOAD_AFTER_S, start)

    reactor.callWhenRunning(serving)


_PRELOAD_UID = "masknet-preload-models"


def _warm() -> None:
    global _warming
    try:
        get_engine()
    except ModelsMissing:
        pass   # the page's checks say so
    except Exception:  # noqa: BLE001 - the page's first check meets it again and says so
        log.exception("could not load the recognition engine")
    finally:
        with _warm_lock:
            _warming = False


def synthetic_masks_available() -> bool:
    """Whether the product's mask renderer (``recognition.engine.masks``) is installed."""
    return importlib.util.find_spec("recognition.engine.masks") is not None


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "none"


@functools.lru_cache(maxsize=8)
def _version(models_dir: str, masks: bool, descriptor: str, gain: bool = True) -> str:
    manifest = installed_manifest(Path(models_dir)) or {}
    cfg = EngineConfig.for_descriptor(descriptor)
    # with a chip descriptor the masked/unmasked head reads FaceRes without its mirror
    extra = ({"descriptor": [descriptor, CHIP_NETS[descriptor].wheel.sha256, ONNX_CONVERTER_VERSION],
              "mask_head_flip": False}
             if descriptor in CHIP_NETS else {})
    if gain and descriptor in CHIP_NETS and cfg.masked_gain and gain_digest(descriptor):   # masked faces' vectors
        extra["gain"] = gain_digest(descriptor)
    if descriptor in CHIP_NETS and cfg.chip_alignment != "eyes":   # eye-only chips kept their version
        extra["chip"] = cfg.chip_alignment
    blob = json.dumps({**extra, "models": manifest.get("fingerprint", "none"), "size": cfg.aligned_size,
                       "eyes": [cfg.eye_distance, cfg.eye_y], "flip": cfg.flip_tta,
                       # which photos are stored as masked templates, and which get synthetic masks
                       "masked": cfg.masked_threshold,
                       "mesh": cfg.mesh_min_confidence,   # below it a face is aligned on the detector's eyes
                       "upper": [cfg.upper_face_weight, cfg.upper_face_cut],
                       "resnet": [cfg.resnet_weight, cfg.resnet_upper_weight],
                       "n_masked": MASK_VARIANTS, "masks": masks, "scheme": TEMPLATE_SCHEME,
                       # the masked/unmasked head decides which templates a photo gets (retrained or shipped anew)
                       "mask_head": _file_digest(DEFAULT_MASK_CLASSIFIER)}, sort_keys=True)
    return f"{manifest.get('fingerprint', 'none')[:12]}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def template_version(*, gain: bool = True) -> str:
    """Key of cached templates: changes with the models, the descriptor, the alignment (and which
    landmarks it uses), the TTA, the mask scheme, the masked/unmasked head and (unless ``gain`` is
    false: what comes before it, such as the feature maps the gain is trained on) the masked-face gain."""
    return _version(str(settings.MASKNET_MODELS_DIR), synthetic_masks_available(),
                    getattr(settings, "MASKNET_DESCRIPTOR", "sface"), gain)


@dataclass(frozen=True)
class PhotoFace:
    """The face chosen in an enrollment photo, or why none was.

    ``face``: the chosen face (``None`` when refused); ``reason``: refusal code or ``None``;
    ``faces``: how many faces were detected.
    """

    face: Face | None
    reason: str | None
    faces: int


def choose_face(faces: list[Face]) -> PhotoFace:
    """Exactly one usable face (passes the quality gate and enrolment's own light and sharpness
    limits) or a refusal: ``several_faces`` when more than one is usable, else the largest face's
    reason (:func:`gallery.usable_face`, which the benchmarks use too)."""
    face, reason = usable_face(faces)
    return PhotoFace(face, reason, len(faces))


NEAR_MIN_IOU = 0.3   # a face found again in an enrolment photo overlaps the box chosen then at least this much


def face_near(faces: list[Face], box: list[float] | None) -> Face:
    """The face of an enrolment photo found again (a rebuild after a model change): the one whose
    box overlaps ``box`` (the face chosen at enrolment) most, if it overlaps at least
    :data:`NEAR_MIN_IOU`; else, or without a box, the photo's one usable face as enrolment would
    choose it (:func:`gallery.usable_face`). Raises ``NoFaceFound`` when there is none: a bystander
    or a face the gate refuses is never enrolled in the person's place."""
    if box:
        best = max(faces, key=lambda f: box_iou(f.box, box))
        if box_iou(best.box, box) >= NEAR_MIN_IOU:
            return best
    face, reason = usable_face(faces)
    if face is None:
        raise NoFaceFound(f"the enrolled face is no longer found in this photo ({reason}); add another photo")
    return face


def face_templates(engine: Engine, face: Face, *, seed: int) -> Templates:
    """Templates of one enrollment face (:func:`gallery.photo_templates`, which the benchmarks use
    too): unmasked, its embedding plus one template from synthetic masks; masked, its own embedding
    only, tagged as a masked template so that unmasked probes never match against it."""
    synthetic = synthetic_masks_available()
    if not synthetic and not face.masked:
        log.warning("recognition.engine.masks is missing: enrolling without synthetic-mask templates")
    return photo_templates(engine, face, np.random.default_rng(seed), synthetic=synthetic)
