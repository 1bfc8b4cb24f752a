"""The quality gate: says why a face is not good enough to recognise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import EngineConfig

# Reasons, in the order they are checked (the first failing one is reported).
TOO_SMALL, PARTIAL, TOO_DARK, TOO_BRIGHT, BLURRY, POSE = (
    "too_small", "partial", "too_dark", "too_bright", "blurry", "pose")

# Two parts of the face in the aligned crop (x from, x to, y from, y to; fractions of its side): the
# upper face (brows to nose, cheek to cheek), where a cut costs the most, and the inner face (brows to
# mouth). Where either reaches past the image's edge the crop is filled with replicated border pixels.
_PARTS = ((0.17, 0.83, 0.20, 0.60), (0.22, 0.78, 0.25, 0.80))
_GRIDS = [np.array([[x, y] for y in np.linspace(y0, y1, 12) for x in np.linspace(x0, x1, 12)], np.float32)
          for x0, x1, y0, y1 in _PARTS]


@dataclass(frozen=True)
class Quality:
    """Quality measurements of one face and the verdict.

    ``face_px``: detector box width in image pixels. ``brightness``: mean grey level
    (0-255) of the skin from the brows to the nose bridge in the aligned crop (above any mask).
    ``sharpness``: variance of the Laplacian of the eye band (it falls with the square of the
    light; the quality :attr:`score` weighs it). ``focus``: what the gate judges blur by: the same
    of the eye band smoothed by a 1.5 px Gaussian (a dim frame's sensor noise is not detail), scaled
    up by ``(128 / brightness)^2`` for a face darker than 128 (dim light is not blur; a brighter
    face is not scaled down: its figure, as the raw one, reads higher, as before).
    ``yaw`` / ``pitch``: nose-tip offset from the eye
    midpoint divided by the eye distance (0 = frontal; about ±0.5 at 30°). ``outside``: the
    share of the face outside the image, a face cut off by the frame's edge
    (:func:`outside_fraction`). ``reason``: ``None`` when ``ok``, else one of the module's reason codes.
    """

    face_px: float
    brightness: float
    sharpness: float
    yaw: float
    pitch: float
    reason: str | None
    outside: float = 0.0
    focus: float = 0.0

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


def outside_fraction(matrix: np.ndarray, size: int, image_shape: tuple[int, ...]) -> float:
    """The share of the face that the alignment ``matrix`` (image to ``size`` crop) takes from
    outside an image of ``image_shape``: the larger of the shares of its upper face (brows to nose)
    and of its inner face (brows to mouth); 0 for a face wholly in the picture."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float32))
    h, w = image_shape[:2]
    shares = []
    for grid in _GRIDS:
        pts = (grid * size) @ inverse[:, :2].T + inverse[:, 2]
        out = (pts[:, 0] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] < 0) | (pts[:, 1] > h - 1)
        shares.append(float(out.mean()))
    return max(shares)


# the Gaussian (pixels of the 224 px crop) the eye band is smoothed by before its focus is measured:
# 1 px left a dim frame's noise counted as detail (blurred faces in a twentieth of the light
# passed as sharp), 2 px took fine detail for blur (bench/light.py)
FOCUS_SMOOTHING = 1.5

# where the light is read in the aligned crop (eyes at 0.42 of its height, 0.26 of its width apart):
# from the brows to the nose bridge, between the outer eye corners
LIGHT_ROWS, LIGHT_COLUMNS = (0.22, 0.50), (0.24, 0.76)


def assess(aligned_bgr: np.ndarray, face_px: float, yaw: float, pitch: float,
           config: EngineConfig, outside: float = 0.0) -> Quality:
    """Measure an aligned crop and apply the thresholds of ``config`` (``outside``: see
    :func:`outside_fraction`)."""
    size = aligned_bgr.shape[0]
    # sharpness over the eye band; the light over the skin of brows, eyes and nose bridge alone:
    # the band's lower rows hold a mask's top and its sides the background at the temples, so a
    # black mask read 18% darker than the same face bare (too dark in light a bare face passes in)
    # and a white one 7% lighter (LFW DevTest faces as kiosk frames; a mask now moves it 2%)
    band = aligned_bgr[int(size * 0.25): int(size * 0.6), int(size * 0.15): int(size * 0.85)]
    grey = cv2.cvtColor(band, cv2.COLOR_BGR2GRAY)
    skin = aligned_bgr[int(size * LIGHT_ROWS[0]): int(size * LIGHT_ROWS[1]),
                       int(size * LIGHT_COLUMNS[0]): int(size * LIGHT_COLUMNS[1])]
    brightness = float(cv2.cvtColor(skin, cv2.COLOR_BGR2GRAY).mean())
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    # the Laplacian's variance falls with the square of the light: at a tenth of a scene's light
    # the raw figure called 78% of sharp bare faces blurred (bench/light.py); smoothed first, so
    # that the noise a camera adds in the dark is not taken for detail
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), FOCUS_SMOOTHING)
    focus = float(cv2.Laplacian(smooth, cv2.CV_32F).var()) * max(1.0, 128.0 / max(brightness, 1.0)) ** 2
    reason = None
    if face_px < config.min_face_px:
        reason = TOO_SMALL
    elif outside > config.max_outside:
        reason = PARTIAL
    elif brightness < config.min_brightness:
        reason = TOO_DARK
    elif brightness > config.max_brightness:
        reason = TOO_BRIGHT
    elif focus < config.min_focus:
        reason = BLURRY
    elif abs(yaw) > config.max_yaw or abs(pitch) > config.max_pitch:
        reason = POSE
    return Quality(face_px, brightness, sharpness, yaw, pitch, reason, outside, focus)
