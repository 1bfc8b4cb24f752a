"""Face alignment: the engine's crop on the eyes (which a mask never hides); the chip descriptors'
chips on five points (:func:`five_point_similarity`)."""

from __future__ import annotations

import cv2
import numpy as np


def eye_similarity(right_eye: np.ndarray, left_eye: np.ndarray, size: int,
                   eye_distance: float, eye_y: float) -> np.ndarray:
    """2x3 similarity transform putting the eye centres at fixed spots of a ``size`` crop.

    The subject's right eye lands at ``((0.5 - eye_distance/2) * size, eye_y * size)``
    and the left eye symmetrically; the crop is upright and scale-normalised.
    """
    src = np.asarray([right_eye, left_eye], np.float64)
    dst = np.asarray([[(0.5 - eye_distance / 2) * size, eye_y * size],
                      [(0.5 + eye_distance / 2) * size, eye_y * size]], np.float64)
    sv, dv = src[1] - src[0], dst[1] - dst[0]
    scale = np.linalg.norm(dv) / max(np.linalg.norm(sv), 1e-6)
    angle = np.arctan2(dv[1], dv[0]) - np.arctan2(sv[1], sv[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    t = dst[0] - rot @ src[0]
    return np.hstack([rot, t[:, None]]).astype(np.float32)


def five_point_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, shift; no reflection) that maps the ``Nx2``
    points ``src`` onto ``dst`` in the least-squares sense (Umeyama 1991), as InsightFace aligns
    its five points (eye centres, nose tip, mouth corners) onto its template."""
    src, dst = np.asarray(src, np.float64)[:, :2], np.asarray(dst, np.float64)[:, :2]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ flip @ vt
    scale = float(np.trace(np.diag(sig) @ flip) / max(float((s ** 2).sum(1).mean()), 1e-12))
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply a 2x3 transform and return a ``size x size`` crop (edges replicated)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``Nx2`` points with a 2x3 affine matrix."""
    return np.asarray(points[:, :2], np.float32) @ matrix[:, :2].T + matrix[:, 2]
