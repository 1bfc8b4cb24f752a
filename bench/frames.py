"""Test frames for the speed benchmarks: 640x480 BGR frames with one face each; and the frame a
kiosk page sends of a face cut by its screen's edge (:func:`cut_by_the_screen`: bench/cut_faces.py
and the tests make theirs here).

Sources: scikit-image's astronaut photo (installed) and the face photos inside the
``insightface`` wheel, fetched with pip into ``var/test-assets`` like ``tests/conftest.py``
does (never committed). Each face is cut with a margin, scaled to a kiosk-like width
(~150-230 px) and placed on a plain background at a few positions.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "var" / "test-assets"
INSIGHTFACE_WHEEL = "insightface==2.1"  # as tests/conftest.py
FRAME_W, FRAME_H = 640, 480


def source_photos() -> dict[str, np.ndarray]:
    """BGR source photos by name (the insightface ones only when pip can fetch the wheel)."""
    from skimage import data

    photos = {"astronaut": cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)}
    ASSETS.mkdir(parents=True, exist_ok=True)
    wheels = sorted(ASSETS.glob("insightface-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(ASSETS),
                        INSIGHTFACE_WHEEL], capture_output=True, timeout=300, check=False)
        wheels = sorted(ASSETS.glob("insightface-*.whl"))
    if wheels:
        with zipfile.ZipFile(wheels[0]) as z:
            for name in z.namelist():
                if name.startswith("insightface/data/images/") and name.endswith((".jpg", ".png")):
                    img = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_COLOR)
                    if img is not None:
                        photos[Path(name).stem] = img
    return photos


def face_crops(engine, photos: dict[str, np.ndarray], limit: int = 12) -> list[tuple[str, np.ndarray]]:
    """Square crops (face plus a margin) of the faces the engine finds and accepts in the photos,
    named ``<photo>#<n>``, numbered left to right (not by size: a detector change reordered them)."""
    from recognition.engine import NoFaceFound

    crops = []
    for name, img in photos.items():
        try:
            faces = engine.analyze(img, embed=False)
        except NoFaceFound:
            continue
        for i, f in enumerate(sorted(faces, key=lambda f: f.box[0] + f.box[2])):
            if f.width < 40:
                continue
            x1, y1, x2, y2 = f.box
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.9 * max(x2 - x1, y2 - y1)
            m = np.float32([[1, 0, side / 2 - cx], [0, 1, side / 2 - cy]])
            crop = cv2.warpAffine(img, m, (int(side), int(side)), borderMode=cv2.BORDER_REPLICATE)
            crops.append((f"{name}#{i}", crop))
    return crops[:limit]


def make_frames(crops: list[tuple[str, np.ndarray]], per_crop: int = 2, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """640x480 frames, one face each, at varied sizes and positions."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, crop in crops:
        for j in range(per_crop):
            side = int(rng.integers(300, 420))  # face ~ side / 1.9 wide
            face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
            frame = np.full((FRAME_H, FRAME_W, 3), (rng.integers(60, 200),) * 3, np.uint8)
            frame += rng.integers(0, 12, frame.shape, dtype=np.uint8)
            x, y = int(rng.integers(0, FRAME_W - side)), int(rng.integers(0, max(1, FRAME_H - side)))
            h = min(side, FRAME_H - y)
            frame[y:y + h, x:x + side] = face[:h]
            frames.append((f"{name}/{j}", frame))
    return frames


def shown_part(camera: tuple[int, int], screen: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x, y, w, h)``: the part of a ``camera`` (width, height) picture that a ``screen`` (width,
    height) shows, as the kiosk page's ``shownPart()`` computes it (the video covers the screen)."""
    (cw, ch), (sw, sh) = camera, screen
    cover = max(sw / cw, sh / ch)
    w, h = min(cw, round(sw / cover)), min(ch, round(sh / cover))
    return round((cw - w) / 2), round((ch - h) / 2), w, h


def cut_by_the_screen(engine, image_bgr: np.ndarray, outside: float, side: str = "left",
                      camera: tuple[int, int] = (1280, 720), screen: tuple[int, int] = (1080, 1920),
                      face_width: float = 290.0) -> np.ndarray:
    """The frame a kiosk page sends (the part of the camera's picture its screen shows, scaled to fit
    480x640 or 640x480) while the photo's largest face, ``face_width`` camera pixels wide, stands
    ``outside`` of its box's width (height) past that part's ``side`` edge ("left", "right", "top" or
    "bottom" of the picture); elsewhere in the middle of its width, eyes at 0.42 of its height."""
    x1, y1, x2, y2 = engine.analyze(image_bgr)[0].box
    s = face_width / (x2 - x1)
    px, py, pw, ph = shown_part(camera, screen)
    across, down = (0.5 - outside) * face_width, (0.5 - outside) * (y2 - y1) * s   # edge to the face's centre
    cx = {"left": px + across, "right": px + pw - across}.get(side, px + pw / 2)
    cy = {"top": py + down, "bottom": py + ph - down}.get(side, py + ph * 0.42)
    m = np.float32([[s, 0, cx - (x1 + x2) / 2 * s], [0, s, cy - (y1 + y2) / 2 * s]])
    picture = cv2.warpAffine(image_bgr, m, camera, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box_w, box_h = (FRAME_H, FRAME_W) if ph > pw else (FRAME_W, FRAME_H)
    scale = min(1.0, box_w / pw, box_h / ph)
    return cv2.resize(picture[py:py + ph, px:px + pw], (round(pw * scale), round(ph * scale)),
                      interpolation=cv2.INTER_AREA)


def jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes as the kiosk page sends them (canvas.toBlob quality ~0.8)."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def stats(ms: list[float]) -> dict:
    """p50/p95/mean (ms) and the rate one process sustains (1000 / mean)."""
    a = np.asarray(ms, np.float64)
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None, "per_s": None}
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2), "mean_ms": round(float(a.mean()), 2),
            "per_s": round(1000.0 / float(a.mean()), 1) if a.mean() > 0 else None}


def machine() -> dict:
    """CPU model, core count, memory and the load average now (other jobs skew timings)."""
    import os
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": mem_gb, "gpu": None, "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}
