"""BlazeFace decoding: which candidates become faces (confident ones first, the fallback otherwise).

The model's output is built by hand here (one candidate box per chosen anchor, every other anchor
far below any threshold), so the rule is tested exactly; the model itself is exercised on real
photos in test_engine.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from recognition.engine import EngineConfig
from recognition.engine.detect import INPUT_SIZE, BlazeFaceDetector, box_iou, box_overlap, generate_anchors, nms

ANCHORS = generate_anchors()


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def model_with(candidates: dict[int, float]):
    """A stand-in for the converted model's ``serve``: a 60-pixel box centred on each given anchor
    with the given score, and nothing anywhere else."""
    raw = np.zeros((len(ANCHORS), 16), np.float32)
    logits = np.full(len(ANCHORS), -20.0, np.float32)
    for i, score in candidates.items():
        raw[i, 2:4] = 60.0
        raw[i, 4:16] = np.ravel([[-12, -10], [12, -10], [0, 0], [0, 12], [-25, -5], [25, -5]])  # keypoints
        logits[i] = logit(score)

    def serve(x):
        assert x.shape == (1, INPUT_SIZE, INPUT_SIZE, 3)
        return {"boxes_512": raw[None, :512], "boxes_384": raw[None, 512:],
                "scores_512": logits[None, :512, None], "scores_384": logits[None, 512:, None]}
    return serve


def anchor_near(x: float, y: float) -> int:
    return int(np.argmin(((ANCHORS - (x, y)) ** 2).sum(1)))


LEFT, RIGHT = anchor_near(60, 128), anchor_near(196, 128)
IMAGE = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)


def detect(candidates: dict[int, float], fallback: float | None) -> list[float]:
    det = BlazeFaceDetector(model_with(candidates))
    return [round(d.score, 3) for d in det(IMAGE, min_confidence=0.55, iou=0.3, max_faces=10,
                                           fallback_confidence=fallback)]


def test_an_unsure_face_is_taken_only_when_no_face_is_sure():
    assert detect({LEFT: 0.5}, fallback=0.45) == [0.5]
    assert detect({LEFT: 0.5}, fallback=None) == []         # one threshold: the masked face is lost
    assert detect({LEFT: 0.5, RIGHT: 0.7}, fallback=0.45) == [0.7]
    assert detect({LEFT: 0.5, RIGHT: 0.52}, fallback=0.45) == [0.52, 0.5]
    assert detect({LEFT: 0.4}, fallback=0.45) == []


@pytest.mark.parametrize("fallback", [0.55, 0.7])
def test_a_fallback_at_or_above_the_threshold_changes_nothing(fallback):
    assert detect({LEFT: 0.5, RIGHT: 0.6}, fallback=fallback) == [0.6]
    assert detect({LEFT: 0.5}, fallback=fallback) == []


def test_the_engine_falls_back_below_its_detection_threshold():
    cfg = EngineConfig()
    assert 0 < cfg.detect_fallback_confidence < cfg.detect_min_confidence


def test_the_model_input_is_shrunk_before_padding():
    """A 200000 x 10 strip (2 Mpx: within the kiosk's pixel limit) was padded to a 200000^2 square
    before shrinking (112 GiB). Shrinking first gives the model the same input for the kiosk's
    640x480 frames, and boxes in the frame's coordinates."""
    import cv2

    seen = []
    serve = model_with({anchor_near(128, 96): 0.9})

    def recording(x):
        seen.append(x)
        return serve(x)

    det = BlazeFaceDetector(recording)
    strip = np.full((10, 200_000, 3), 128, np.uint8)
    assert isinstance(det(strip, min_confidence=0.55, iou=0.3, max_faces=10), list)   # no MemoryError
    assert seen[0].shape == (1, INPUT_SIZE, INPUT_SIZE, 3)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    (face,) = det(frame, min_confidence=0.55, iou=0.3, max_faces=10)
    square = np.zeros((640, 640, 3), np.uint8)
    square[:480] = frame
    padded_first = cv2.cvtColor(cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA),
                                cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 127.5 - 1.0
    assert np.array_equal(seen[-1], padded_first)
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    ax, ay = ANCHORS[anchor_near(128, 96)]
    assert abs(cx - ax * 2.5) < 1 and abs(cy - ay * 2.5) < 1      # 640 / 256: back in the frame's pixels


def test_box_geometry_agrees_with_the_vectorised_suppression():
    """``box_iou`` (enrolment's face found again) and ``nms`` (the detector) measure one overlap."""
    a, b, far = (0.0, 0.0, 10.0, 10.0), (5.0, 0.0, 15.0, 10.0), (20.0, 20.0, 30.0, 30.0)
    assert box_overlap(a, b) == 50.0 and box_overlap(a, far) == 0.0
    assert box_iou(a, b) == pytest.approx(50 / 150) and box_iou(a, a) == 1.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0   # empty boxes: no division by zero
    boxes = np.array([a, b, far], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, iou=0.4, limit=3) == [0, 1, 2]   # 1/3 overlap is kept at 0.4 ...
    assert nms(boxes, scores, iou=0.3, limit=3) == [0, 2]      # ... and suppressed at 0.3


@pytest.mark.parametrize("shape", [(1, 1920 * 1080), (1920 * 1080, 1), (20, 100_000), (3000, 12_000)])
def test_a_strip_or_a_huge_photo_costs_a_bounded_number_of_model_runs(shape):
    """A photo where nobody is found is searched again in tiles: a 2,073,600 x 1 black PNG of 6 KB,
    within the kiosk's frame limits, took 2,025 model runs (45 s of an engine thread). No tiles for
    a strip thinner than a face, and at most TILE_MAX_COUNT of them."""
    from recognition.engine.detect import TILE_MAX_COUNT

    runs = []
    empty = model_with({})

    def counting(x):
        runs.append(1)
        return empty(x)

    found = BlazeFaceDetector(counting)(np.zeros((*shape, 3), np.uint8), min_confidence=0.55, iou=0.3,
                                        max_faces=3, fallback_confidence=0.45)
    assert found == [] and len(runs) <= 1 + TILE_MAX_COUNT, (shape, len(runs))
    if min(shape) < 32 or shape == (3000, 12_000):
        assert len(runs) == 1   # the whole-image pass alone


def test_a_kiosk_frame_is_not_searched_in_tiles():
    """The page sends 640 px frames, but the socket takes up to 1920x1080: an empty one cost 7 model
    runs instead of 1 (``tiles=False``: ``consumers.analyze_frame``)."""
    runs = []
    empty = model_with({})

    def counting(x):
        runs.append(1)
        return empty(x)

    frame = np.zeros((1080, 1920, 3), np.uint8)
    detector = BlazeFaceDetector(counting)
    assert detector(frame, min_confidence=0.55, iou=0.3, max_faces=3, tiles=False) == [] and len(runs) == 1
    assert detector(frame, min_confidence=0.55, iou=0.3, max_faces=3) == [] and len(runs) > 2
