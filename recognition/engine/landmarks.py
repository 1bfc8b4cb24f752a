"""Dense landmarks with MediaPipe FaceMesh (468 points), cropped around a detection.

FaceMesh predicts the whole face surface even when the mouth and nose are covered,
which gives the mask renderer its jaw line and nose bridge. The engine's crop is aligned on
the eyes only (see :mod:`.align`), which a mask never hides; SFace's chip is then cut on five
points (:func:`five_points`), the nose and mouth estimated by the mesh under a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detect import Detection

INPUT_SIZE = 192
CROP_SCALE = 1.5  # crop side as a multiple of the detector's box side

# FaceMesh indices (subject's right = image left for a frontal face).
RIGHT_EYE = (33, 133, 159, 145, 160, 144, 158, 153)
LEFT_EYE = (362, 263, 386, 374, 385, 380, 387, 373)
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (336, 296, 334, 293, 300)
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
MOUTH_CORNERS = (61, 291)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)


@dataclass(frozen=True)
class Landmarks:
    """FaceMesh output for one face.

    ``points``: ``468x3`` float32; x, y in pixels of the original image, z in the
    same scale relative to the face centre (larger = further from the camera).
    ``score``: FaceMesh's face-presence confidence in [0, 1].
    """

    points: np.ndarray
    score: float

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """``(right_eye, left_eye)`` centres as ``(x, y)``; the subject's right first."""
        p = self.points[:, :2]
        return p[list(RIGHT_EYE)].mean(0), p[list(LEFT_EYE)].mean(0)

    def five_points(self) -> np.ndarray:
        """InsightFace's five points of this face (:func:`five_points`)."""
        return five_points(self.points)


def five_points(points: np.ndarray) -> np.ndarray:
    """``5x2`` InsightFace's five points of FaceMesh ``points`` (``468x2`` or more columns): eye centres
    (the subject's right first), nose tip, mouth corners (right first). Under a mask the last three are
    FaceMesh's estimate from the visible face."""
    p = np.asarray(points)[:, :2]
    return np.stack([p[list(RIGHT_EYE)].mean(0), p[list(LEFT_EYE)].mean(0), p[NOSE_TIP],
                     p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]]]).astype(np.float32)


def crop_transform(det: Detection) -> np.ndarray:
    """2x3 affine matrix mapping the image to a rotation-corrected 192x192 crop of the face."""
    right_eye, left_eye = det.keypoints[0], det.keypoints[1]
    dx, dy = left_eye - right_eye
    angle = np.degrees(np.arctan2(dy, dx))
    x1, y1, x2, y2 = det.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * CROP_SCALE
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), INPUT_SIZE / side)
    m[0, 2] += INPUT_SIZE / 2 - cx
    m[1, 2] += INPUT_SIZE / 2 - cy
    return m


class FaceMesh:
    """Wraps the converted FaceMesh model (``serve(x) -> dict of ndarrays``)."""

    def __init__(self, serve) -> None:
        self._serve = serve

    def __call__(self, image_bgr: np.ndarray, dets: list[Detection]) -> list[Landmarks]:
        """Landmarks for each detection (one batched model call)."""
        if not dets:
            return []
        mats = [crop_transform(d) for d in dets]
        crops = [cv2.warpAffine(image_bgr, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT) for m in mats]
        x = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops]).astype(np.float32) / 255.0
        out = self._serve(x)
        result = []
        for i, m in enumerate(mats):
            pts = out["mesh"][i].reshape(-1, 3)
            inv = cv2.invertAffineTransform(m)
            xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
            scale = np.sqrt(abs(np.linalg.det(inv[:, :2])))
            points = np.concatenate([xy, pts[:, 2:3] * scale], 1).astype(np.float32)
            # the graph's face flag is already a probability (Human reads it as one); a second
            # sigmoid here once kept every score within [0.5, 0.73]
            score = float(np.clip(out["faceflag"][i].ravel()[0], 0.0, 1.0))
            result.append(Landmarks(points, score))
        return result
