"""Kiosk-like camera frames made at test time from test photos (nothing is committed):
640x480, the face framed as a kiosk camera sees it, a synthetic mask drawn from the face's
landmarks by the product's renderer, a little movement from frame to frame."""

from __future__ import annotations

import cv2
import numpy as np

from bench.frames import cut_by_the_screen as cut_by_the_screen  # made there for bench/cut_faces.py too
from recognition.engine.masks import render_mask

W, H = 640, 480


def with_mask(engine, image_bgr: np.ndarray, seed: int = 0, style: str | None = None) -> np.ndarray:
    """The photo with a synthetic mask on its largest face."""
    face = engine.analyze(image_bgr)[0]
    return render_mask(image_bgr, face.landmarks, np.random.default_rng(seed), style=style)


def kiosk_view(engine, image_bgr: np.ndarray, face_width: float = 170.0) -> tuple[np.ndarray, np.ndarray]:
    """``(M, size)``: the affine transform that scales the photo so that its largest face is about
    ``face_width`` pixels wide, centred a little above the middle of a 640x480 frame."""
    face = engine.analyze(image_bgr)[0]
    x1, y1, x2, y2 = face.box
    s = face_width / (x2 - x1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.float32([[s, 0, W / 2 - cx * s], [0, s, H * 0.42 - cy * s]]), s


def frames(image_bgr: np.ndarray, m: np.ndarray, n: int, *, seed: int = 0, jitter: float = 3.0,
           brightness: float = 1.0, blur: float = 0.0, zoom: float = 1.0,
           background: np.ndarray | None = None) -> list[np.ndarray]:
    """``n`` 640x480 frames of the photo under transform ``m`` with small shifts (a person is never
    perfectly still), optionally darker, blurred or smaller (``zoom`` < 1: further away). With a
    ``background`` (640x480), the photo is laid over it instead of being extended by reflection."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = m.copy()
        t[:, :2] *= zoom
        t[0, 2] = W / 2 - (W / 2 - m[0, 2]) * zoom + rng.normal(0, jitter)
        t[1, 2] = H * 0.42 - (H * 0.42 - m[1, 2]) * zoom + rng.normal(0, jitter)
        if background is None:
            img = cv2.warpAffine(image_bgr, t, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        else:
            img = cv2.warpAffine(image_bgr, t, (W, H), dst=background.copy(), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_TRANSPARENT)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        if brightness != 1.0:
            img = np.clip(img.astype(np.float32) * brightness, 0, 255).astype(np.uint8)
        out.append(img)
    return out


def empty_room(n: int = 1) -> list[np.ndarray]:
    """Frames without anybody: a soft wall-like gradient."""
    y = np.linspace(150, 95, H, dtype=np.float32)[:, None]
    x = np.linspace(0.9, 1.05, W, dtype=np.float32)[None, :]
    wall = np.clip(np.stack([y * x * 0.95, y * x, y * x * 1.08], -1), 0, 255).astype(np.uint8)
    return [wall.copy() for _ in range(n)]


def jpeg(img_bgr: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes (what the kiosk page sends: quality 0.8)."""
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()
