"""Faces cut through by the edge of a kiosk's frame: found, or "Looking for a face"?

The kiosk page sends the part of its camera's picture the screen shows (a landscape camera on a
portrait screen: its middle third), so someone standing half out of that part is cut through the
face by the frame's edge. The detector misses most faces cut through their middle, and the kiosk
said "Looking for a face" to them. ``Engine.analyze(search_edges=True)`` searches such a frame again
extended by its own reflection (``EngineConfig.edge_reflection``), where a face cut through its
middle shows whole, and refuses a face found across the edge as ``partial`` ("Please move to the
middle") when FaceMesh's face flag reaches ``EngineConfig.edge_min_face_flag``.

Measured here, on kiosk frames made as the page makes them (bench/frames.py,
``cut_by_the_screen``) from the first photo of LFW DevTest people, unmasked and wearing an unseen
MaskTheFace template, whose face passes the gate whole: a 1280x720 camera on a 1080x1920 screen (the
frame's left and right edges cut; 360x640 frames) and a 1280x960 camera on a 1920x1080 screen (top
and bottom; 640x360), the face 290 (200) camera pixels wide with a share of its box's width (height)
past the edge. For each: what the kiosk answered before (no face / partial / another answer) and,
of the frames where no face was found, those found across the edge at each candidate face flag; and
the same search on kiosk-shaped crops of scikit-image's images without a face (bench/detection.py's),
where a face found is a false "Please move to the middle" at an empty kiosk.

Usage: ``python bench/cut_faces.py [--people 60]``; prints two tables and writes
``bench/results/cut_faces.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from detection import NON_FACE  # noqa: E402
from frames import cut_by_the_screen  # noqa: E402
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402
from recognition.engine.quality import PARTIAL  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
FLAGS = (0.0, 0.1, 0.2, 0.3, 0.5)
SHARES = (0.0, 0.3, 0.5, 0.6, 0.7, 1.0)
# (camera, screen, face width in camera pixels, the frame's edges cut by the screen)
VIEWS = (((1280, 720), (1080, 1920), 290.0, ("left", "right")),
         ((1280, 960), (1920, 1080), 200.0, ("top", "bottom")))


def photos(engine, people: int, seed: int) -> list[np.ndarray]:
    """The first photo of LFW DevTest people whose face passes the gate whole, unmasked and wearing a
    MaskTheFace template (masks the product never saw), in turn."""
    names = [ln.split()[0] for ln in (SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:]
             if ln.strip()]
    templates = load_templates(SHARED / "masks")
    out = []
    for k, name in enumerate(names[:people]):
        img = cv2.imread(str(SHARED / "lfw" / "images_deepfunneled" / name / f"{name}_0001.jpg"))
        try:
            face = engine.analyze(img, max_faces=3, embed=False)[0]
            masked = apply_mask(img, face.landmarks, np.random.default_rng([seed, k]), templates)
            whole = [m for m in (img, masked) if engine.analyze(m, max_faces=3, embed=False)[0].quality.ok]
        except (NoFaceFound, TypeError):
            continue
        out += whole
    return out


def kiosk_frame(engine, img: np.ndarray, share: float, side: str, camera, screen, width: float) -> np.ndarray:
    """The frame the page sends, through the page's JPEG (quality 0.8)."""
    ok, buf = cv2.imencode(".jpg", cut_by_the_screen(engine, img, share, side, camera, screen, width),
                           [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def answer(engine, frame: np.ndarray) -> tuple[str, list[float]]:
    """What the kiosk answered before the edge search ("none", "partial" or "other") and the face
    flags of the faces the search finds across the edge when it found none."""
    try:
        first = engine.analyze(frame, max_faces=3, embed=False, search_tiles=False)[0]
        return ("partial" if first.quality.reason == PARTIAL else "other"), []
    except NoFaceFound:
        pass
    try:
        cut = engine.analyze(frame, max_faces=3, embed=False, search_tiles=False, search_edges=True)
    except NoFaceFound:
        cut = []
    return "none", [f.face_flag for f in cut]


def found_at(answers: list[tuple[str, list[float]]]) -> dict[str, int]:
    """Per candidate face flag, the frames without a face found before that the search finds one in."""
    return {str(t): sum(a == "none" and any(f >= t for f in flags) for a, flags in answers) for t in FLAGS}


def empty_frames(crops: int, seed: int) -> list[np.ndarray]:
    """Kiosk-shaped crops (360x640 and 640x480, in turn) of the images without a face."""
    from skimage import data

    rng = np.random.default_rng(seed)
    out = []
    for name in NON_FACE:
        loaded = getattr(data, name)()
        img = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)
        if img.dtype != np.uint8:
            img = img.astype(np.float64)
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        img = np.stack([img] * 3, -1) if img.ndim == 2 else np.ascontiguousarray(img[..., 2::-1])
        h0, w0 = img.shape[:2]
        for k in range(crops):
            size = (360, 640) if k % 2 == 0 else (640, 480)
            aspect = size[0] / size[1]
            tall = int(min(h0, w0 / aspect))
            h = int(rng.integers(tall // 4, tall + 1))
            w = int(h * aspect)
            y, x = int(rng.integers(0, h0 - h + 1)), int(rng.integers(0, w0 - w + 1))
            out.append(cv2.resize(img[y:y + h, x:x + w], size, interpolation=cv2.INTER_AREA))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=60, help="LFW DevTest people (each unmasked and masked)")
    ap.add_argument("--crops", type=int, default=40, help="crops of each image without a face")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the benchmark needs ../shared/data")
    t0 = time.time()
    cfg = EngineConfig()
    # every face found across the edge, whatever its flag: the candidate flags are applied here
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), cfg.with_(edge_min_face_flag=0.0))
    faces = photos(engine, args.people, args.seed)
    rows = []
    for camera, screen, width, sides in VIEWS:
        for side in sides:
            for share in SHARES:
                found = [answer(engine, kiosk_frame(engine, img, share, side, camera, screen, width)) for img in faces]
                rows.append({"side": side, "share": share, "n": len(found),
                             "partial": sum(a == "partial" for a, _ in found),
                             "other": sum(a == "other" for a, _ in found),
                             "none": sum(a == "none" for a, _ in found),
                             "found_at": found_at(found)})
    empty = [answer(engine, f) for f in empty_frames(args.crops, args.seed)]
    nobody = {"n": len(empty), "false_face": sum(a != "none" for a, _ in empty), "found_at": found_at(empty)}
    results = {"args": vars(args), "photos": len(faces), "edge_min_face_flag": cfg.edge_min_face_flag,
               "edge_reflection": cfg.edge_reflection, "rows": rows, "nobody": nobody,
               "seconds": round(time.time() - t0, 1), "provenance": provenance()}
    print(table(results))
    write_json(results_path("cut_faces", REPO), results)


def table(results: dict) -> str:
    """Two markdown tables: the cut faces at the engine's face flag, and the candidate flags."""
    def pct(v: int, of: int) -> str:
        return f"{100 * v / of:.1f}% ({v})" if of else "-"

    flag = str(results["edge_min_face_flag"])
    out = ["| frame's edge | share of the face past it | \"Looking for a face\" before | \"Looking for a face\" now "
           "| \"move to the middle\" by the gate (as before) | another answer (as before) |",
           "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        out.append(f"| {r['side']} | {r['share']:.0%} | {pct(r['none'], r['n'])} "
                   f"| {pct(r['none'] - r['found_at'][flag], r['n'])} | {pct(r['partial'], r['n'])} "
                   f"| {pct(r['other'], r['n'])} |")
    cut = [r for r in results["rows"] if 0.5 <= r["share"] <= 0.7]
    n = sum(r["n"] for r in cut)
    nobody = results["nobody"]
    out += ["", "| face flag at least | faces 50-70% past the edge still \"Looking for a face\" "
            "| frames without a face told \"move to the middle\" |", "|---|---|---|"]
    for t in FLAGS:
        out.append(f"| {t} | {pct(sum(r['none'] - r['found_at'][str(t)] for r in cut), n)} "
                   f"| {pct(nobody['found_at'][str(t)], nobody['n'])} |")
    out.append(f"\n{results['photos']} frames' faces (LFW DevTest first photos, unmasked and with unseen masks); "
               f"{nobody['n']} kiosk-shaped frames without a face ({nobody['false_face']} with a false face found "
               f"before any edge search); the engine's edge_min_face_flag is {flag}, edge_reflection "
               f"{results['edge_reflection']}. {results['seconds']} s.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
