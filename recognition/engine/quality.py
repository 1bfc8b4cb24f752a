"""The quality gate: says why a face is not good enough to recognise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import EngineConfig

# Reasons, in the order they are checked (the first failing one is reported).
TOO_SMALL, TOO_DARK, TOO_BRIGHT, BLURRY, POSE = "too_small", "too_dark", "too_bright", "blurry", "pose"


@dataclass(frozen=True)
class Quality:
    """Quality measurements of one face and the verdict.

    ``face_px``: detector box width in image pixels. ``brightness``: mean grey level
    (0-255) of the eye region of the aligned crop. ``sharpness``: variance of the
    Laplacian of that region. ``yaw`` / ``pitch``: nose-tip offset from the eye
    midpoint divided by the eye distance (0 = frontal; about ±0.5 at 30°).
    ``reason``: ``None`` when ``ok``, else one of the module's reason codes.
    """

    face_px: float
    brightness: float
    sharpness: float
    yaw: float
    pitch: float
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the face passes every check."""
        return self.reason is None

    @property
    def score(self) -> float:
        """A 0-1 summary used to weight templates (1 = large, sharp, frontal, well lit)."""
        size = min(self.face_px / 160.0, 1.0)
        sharp = min(self.sharpness / 120.0, 1.0)
        light = 1.0 - min(abs(self.brightness - 128.0) / 128.0, 1.0)
        pose = max(0.0, 1.0 - (abs(self.yaw) + abs(self.pitch) / 2))
        return float(np.clip(0.35 * size + 0.25 * sharp + 0.15 * light + 0.25 * pose, 0, 1))


def pose_ratios(right_eye: np.ndarray, left_eye: np.ndarray, nose: np.ndarray,
                nominal_drop: float = 0.85) -> tuple[float, float]:
    """``(yaw, pitch)`` from the nose tip's position in the eyes' frame of reference."""
    axis = left_eye - right_eye
    iod = float(np.linalg.norm(axis)) or 1.0
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    rel = nose - (right_eye + left_eye) / 2
    yaw = float(rel @ ux) / iod
    pitch = float(rel @ uy) / iod - nominal_drop
    return yaw, pitch


def assess(aligned_bgr: np.ndarray, face_px: float, yaw: float, pitch: float,
           config: EngineConfig) -> Quality:
    """Measure an aligned crop and apply the thresholds of ``config``."""
    size = aligned_bgr.shape[0]
    # the eye band: never covered by a mask
    band = aligned_bgr[int(size * 0.25): int(size * 0.6), int(size * 0.15): int(size * 0.85)]
    grey = cv2.cvtColor(band, cv2.COLOR_BGR2GRAY)
    brightness = float(grey.mean())
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    reason = None
    if face_px < config.min_face_px:
        reason = TOO_SMALL
    elif brightness < config.min_brightness:
        reason = TOO_DARK
    elif brightness > config.max_brightness:
        reason = TOO_BRIGHT
    elif sharpness < config.min_sharpness:
        reason = BLURRY
    elif abs(yaw) > config.max_yaw or abs(pitch) > config.max_pitch:
        reason = POSE
    return Quality(face_px, brightness, sharpness, yaw, pitch, reason)
