"""Face detection with BlazeFace "back" (MediaPipe), decoded with its 896 SSD anchors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 256
# a face narrower than this on the model's input (a small face in a large photo: 150 px of a
# 3000 px wide one is 13 px there) is detected again in a crop around it, where it is four times
# larger: at that size the first box and keypoints are a few input pixels off, enough to cut the
# face or call a frontal one turned away
REFINE_BELOW = 32.0
REFINE_CONTEXT = 4.0   # the crop's side, in the first box's longer sides
# the smallest face the model finds reliably, in pixels of its input (LFW faces pasted into a
# 4000 px photo: 20 of 20 found at 8 px, 16 at 6, 1 at 4); a photo larger than TILE_SIDE where the
# whole-image pass finds nobody is searched again in overlapping tiles of TILE_SIDE pixels, where
# faces from about 32 px are found: a 60-130 px face in a phone's 4000 px photo (which the gate
# takes) was "no face", and a smaller one "no face" rather than "too small"
FOUND_FROM = 8.0
TILE_SIDE = 4 * INPUT_SIZE
# no tiles for a strip thinner than a face the tiles could find, nor more tiles than this (a photo
# of 8000x8000 pixels takes 64): a 2,073,600 x 1 black PNG of 6 KB, within the kiosk's limits, took
# 2,025 model runs (45 s of an engine thread) before these limits
TILE_MIN_SIDE = 32
TILE_MAX_COUNT = 64


@dataclass(frozen=True)
class Detection:
    """One detected face.

    ``box``: ``(x1, y1, x2, y2)`` in pixels of the input image (float).
    ``keypoints``: ``6x2`` float array of ``(x, y)`` pixels: the subject's right eye,
    left eye, nose tip, mouth centre, right ear tragion, left ear tragion (the
    subject's right eye appears on the image's left). ``score`` in [0, 1].
    """

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float


def generate_anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """MediaPipe's anchor centres for BlazeFace back: ``896x2`` (x, y) in input pixels."""
    anchors = []
    for stride, per_cell in ((size // 16, 2), (size // 8, 6)):
        rows = (size + stride - 1) // stride
        for gy in range(rows):
            for gx in range(rows):
                anchors.extend([(stride * (gx + 0.5), stride * (gy + 0.5))] * per_cell)
    return np.asarray(anchors, dtype=np.float32)


def box_area(box: Sequence[float]) -> float:
    """Area of an ``(x1, y1, x2, y2)`` box (0 for an empty one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Area of two ``(x1, y1, x2, y2)`` boxes' intersection."""
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (0 when both are empty); :func:`nms` computes the
    same, vectorised."""
    inter = box_overlap(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _tile_starts(length: int, overlap: int) -> list[int]:
    """Where the tiles of :data:`TILE_SIDE` pixels start along one side of ``length`` pixels,
    neighbours overlapping by ``overlap`` at least, the last one ending at the edge."""
    if length <= TILE_SIDE:
        return [0]
    step = TILE_SIDE - overlap
    count = int(np.ceil((length - TILE_SIDE) / step)) + 1
    return [round(i * (length - TILE_SIDE) / (count - 1)) for i in range(count)]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


class BlazeFaceDetector:
    """Wraps the converted BlazeFace model (``serve(x) -> dict of ndarrays``)."""

    def __init__(self, serve) -> None:
        self._serve = serve
        self._anchors = generate_anchors()

    def raw(self, square_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a ``256x256x3`` RGB uint8 image: ``(scores[896], raw[896x16])``."""
        x = square_rgb.astype(np.float32)[None] / 127.5 - 1.0
        out = self._serve(x)
        raw = np.concatenate([out["boxes_512"][0], out["boxes_384"][0]], 0)
        logits = np.concatenate([out["scores_512"][0, :, 0], out["scores_384"][0, :, 0]])
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        return scores, raw

    def __call__(self, image_bgr: np.ndarray, *, min_confidence: float, iou: float,
                 max_faces: int, fallback_confidence: float | None = None, tiles: bool = True) -> list[Detection]:
        """Detect faces in a BGR image; best first.

        ``fallback_confidence`` (at most ``min_confidence``): when no face reaches
        ``min_confidence``, the faces that reach this lower one are returned instead. A mask
        lowers the detector's confidence; a face it is sure of still takes precedence over any
        face it is unsure of, so images with a confident face are unaffected. A face smaller than
        :data:`REFINE_BELOW` pixels of the model's input is located again in a crop around it
        (:meth:`_refine`); a photo larger than :data:`TILE_SIDE` where nobody is found is searched
        again in tiles (:meth:`_tiled`) unless ``tiles`` is false (a kiosk's frames: someone that far
        away is asked to come closer by nothing).
        """
        found = self._detect(image_bgr, min_confidence=min_confidence, iou=iou, max_faces=max_faces,
                             fallback_confidence=fallback_confidence)
        if tiles and not found and max(image_bgr.shape[:2]) > TILE_SIDE:
            return self._tiled(image_bgr, min_confidence=min_confidence, iou=iou, max_faces=max_faces,
                               fallback_confidence=fallback_confidence)
        scale = max(image_bgr.shape[:2]) / INPUT_SIZE
        refined = [self._refine(image_bgr, d, min_confidence, iou, fallback_confidence)
                   if d.box[2] - d.box[0] < REFINE_BELOW * scale and scale > 1 else d for d in found]
        # two first boxes of one face (or neighbours) may come out as one face: kept once, best first
        keep = nms(np.array([d.box for d in refined], np.float32).reshape(-1, 4),
                   np.array([d.score for d in refined], np.float32), iou, len(refined))
        return [refined[i] for i in keep]

    def _tiled(self, image_bgr: np.ndarray, *, min_confidence: float, iou: float, max_faces: int,
               fallback_confidence: float | None) -> list[Detection]:
        """Faces too small for the whole-image pass, searched for in tiles of :data:`TILE_SIDE`
        pixels that overlap by more than such a face (a face cut by a tile's inner edge is whole in
        its neighbour, and the cut one is dropped); confident faces first, as in one pass."""
        h, w = image_bgr.shape[:2]
        # faces the whole-image pass misses are under FOUND_FROM pixels of its input
        overlap = min(TILE_SIDE // 2, max(TILE_SIDE // 4, int(np.ceil(2 * FOUND_FROM * max(h, w) / INPUT_SIZE))))
        rows, columns = _tile_starts(h, overlap), _tile_starts(w, overlap)
        if min(h, w) < TILE_MIN_SIDE or len(rows) * len(columns) > TILE_MAX_COUNT:
            return []
        found: list[Detection] = []
        for top in rows:
            for left in columns:
                tile = image_bgr[top:top + TILE_SIDE, left:left + TILE_SIDE]
                th, tw = tile.shape[:2]
                for d in self._detect(tile, min_confidence=min_confidence, iou=iou, max_faces=max_faces,
                                      fallback_confidence=fallback_confidence):
                    x1, y1, x2, y2 = d.box
                    if ((left and x1 <= 1) or (top and y1 <= 1) or (left + tw < w and x2 >= tw - 1)
                            or (top + th < h and y2 >= th - 1)):
                        continue
                    shifted = Detection((x1 + left, y1 + top, x2 + left, y2 + top),
                                        d.keypoints + np.array([left, top], np.float32), d.score)
                    # small for the tile too (under 128 px): located again, as in the whole pass
                    small = x2 - x1 < REFINE_BELOW * max(th, tw) / INPUT_SIZE
                    found.append(self._refine(image_bgr, shifted, min_confidence, iou, fallback_confidence)
                                 if small else shifted)
        found = [d for d in found if d.score >= min_confidence] or found
        keep = nms(np.array([d.box for d in found], np.float32).reshape(-1, 4),
                   np.array([d.score for d in found], np.float32), iou, max_faces)
        return [found[i] for i in keep]

    def _refine(self, image_bgr: np.ndarray, det: Detection, min_confidence: float, iou: float,
                fallback_confidence: float | None) -> Detection:
        """``det`` located again in a square crop :data:`REFINE_CONTEXT` times its size around it:
        the crop's face nearest the first box's centre, if the two boxes hold each other's centre;
        else ``det``."""
        h, w = image_bgr.shape[:2]
        x1, y1, x2, y2 = det.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = REFINE_CONTEXT * max(x2 - x1, y2 - y1) / 2
        left, top = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
        right, bottom = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
        if right - left < 8 or bottom - top < 8:
            return det
        found = self._detect(image_bgr[top:bottom, left:right], min_confidence=min_confidence, iou=iou,
                             max_faces=4, fallback_confidence=fallback_confidence)
        best, best_distance = None, None
        for d in found:
            bx1, by1, bx2, by2 = d.box[0] + left, d.box[1] + top, d.box[2] + left, d.box[3] + top
            mx, my = (bx1 + bx2) / 2, (by1 + by2) / 2
            # the face first found: each box holds the other's centre (a neighbour, which the crop
            # may show larger and surer, holds neither)
            if not (x1 <= mx <= x2 and y1 <= my <= y2 and bx1 <= cx <= bx2 and by1 <= cy <= by2):
                continue
            distance = np.hypot(mx - cx, my - cy)
            if best_distance is None or distance < best_distance:
                best, best_distance = (d, (bx1, by1, bx2, by2)), distance
        if best is None:
            return det
        d, box = best
        # the first pass's confidence stays: the crop, where a face is four times larger, is surer of
        # false faces too (an empty scene's "faces" found rose 128 -> 139 of 779 with the crop's);
        # what it improves is where the face is
        return Detection(tuple(float(v) for v in box), d.keypoints + np.array([left, top], np.float32), det.score)

    def _detect(self, image_bgr: np.ndarray, *, min_confidence: float, iou: float,
                max_faces: int, fallback_confidence: float | None) -> list[Detection]:
        """One pass of the model over the whole image (:meth:`__call__` without refinement)."""
        h, w = image_bgr.shape[:2]
        side = max(h, w)
        # shrink, then pad to a square (bottom/right) so the aspect ratio is kept: padding first
        # allocated side x side pixels (112 GiB for a 200000 x 10 strip that passes the pixel limit)
        f = INPUT_SIZE / side
        sw, sh = min(INPUT_SIZE, max(1, round(w * f))), min(INPUT_SIZE, max(1, round(h * f)))
        small = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        small[:sh, :sw] = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        scores, raw = self.raw(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        centres = raw[:, 0:2] + self._anchors
        sizes = raw[:, 2:4]
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + self._anchors[:, None, :]
        floor = min_confidence if fallback_confidence is None else min(fallback_confidence, min_confidence)
        candidates = np.nonzero(scores >= floor)[0]
        sure = candidates[scores[candidates] >= min_confidence]
        if sure.size:
            candidates = sure
        if candidates.size == 0:
            return []
        keep = nms(boxes[candidates], scores[candidates], iou, max_faces)
        scale = side / INPUT_SIZE
        result = []
        for k in keep:
            i = candidates[k]
            b = boxes[i] * scale
            box = (float(max(b[0], 0)), float(max(b[1], 0)), float(min(b[2], w)), float(min(b[3], h)))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            result.append(Detection(box, keypoints[i] * scale, float(scores[i])))
        return result
