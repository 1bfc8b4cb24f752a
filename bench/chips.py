"""Where the five-point chip puts a face, against the eye-only chip (issue 3).

SFace's chip is cut on five FaceMesh points (``EngineConfig.chip_alignment``: eye centres, nose tip,
mouth corners). Under a mask the last three are FaceMesh's estimate, so the chip of a masked face could
sit differently from the chip of the same face unmasked. This bench measures, for each face the
engine accepts, how the five-point chip differs from the eye-only chip: its scale (ratio of the two
transforms' scales) and how far down it moves the eye line (pixels of the 112x112 chip). It compares
three sets: unmasked LFW photos, the same photos wearing MaskTheFace masks (unseen by the product),
and the real masked faces of RWMFD part 1 (photos from the wild; the faces the engine classifies
masked and the quality gate accepts). If real masks move the chip as the synthetic masks do, the
five-point chip's effect measured with synthetic masks (docs/accuracy.md "Five-point chips for SFace") is the
effect to expect on real ones.

Usage: ``python bench/chips.py [--lfw 300]`` (about 3 minutes on 2 cores). Prints a table and writes
``bench/results/chips.json``.
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

from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, EngineError, load_engine  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
PERCENTILES = (5, 25, 50, 75, 95)


def geometry(faces: list, eye_chip: np.ndarray, cfg: EngineConfig) -> dict:
    """Percentiles of the five-point chip's scale over the eye-only chip's, and of the shift (chip
    pixels, positive: down) of the crop's eye line on it, over the faces that have a five-point chip."""
    eye_scale = float(np.sqrt(abs(np.linalg.det(eye_chip[:, :2]))))
    eye_line = np.array([cfg.aligned_size / 2, cfg.eye_y * cfg.aligned_size, 1.0])
    scale, shift = [], []
    for f in faces:
        if f.chip_matrix is None:
            continue
        scale.append(float(np.sqrt(abs(np.linalg.det(f.chip_matrix[:, :2])))) / eye_scale)
        shift.append(float((f.chip_matrix @ eye_line)[1] - (eye_chip @ eye_line)[1]))
    if not scale:
        return {"faces": 0, "scale": {}, "shift": {}}
    return {"faces": len(scale),
            "scale": dict(zip(map(str, PERCENTILES), np.percentile(scale, PERCENTILES).tolist(), strict=True)),
            "shift": dict(zip(map(str, PERCENTILES), np.percentile(shift, PERCENTILES).tolist(), strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=300, help="LFW photos (each person's first, every other person)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    cfg = EngineConfig.for_descriptor("sface")
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), cfg)
    rng = np.random.default_rng(0)
    templates = load_templates(SHARED / "masks")
    unmasked, masked, real = [], [], []
    for path in sorted((SHARED / "lfw" / "images_deepfunneled").glob("*/*_0001.jpg"))[:2 * args.lfw:2]:
        img = cv2.imread(str(path))
        try:
            face = engine.analyze(img, max_faces=3)[0]
            unmasked.append(face)
            if face.landmarks is not None:
                masked.append(engine.analyze(apply_mask(img, face.landmarks, rng, templates), max_faces=3)[0])
        except EngineError:
            continue
    for path in sorted((SHARED / "rwmfd_part1").glob("*/*.jpg")):
        img = cv2.imread(str(path))
        try:
            face = engine.analyze(img, max_faces=1)[0] if img is not None else None
        except EngineError:
            continue
        if face is not None and face.masked and face.quality.ok:
            real.append(face)
    sets = {"LFW unmasked": unmasked, "LFW, unseen MaskTheFace masks": masked,
            "RWMFD part 1, real masks (classified masked, past the gate)": real}
    results = {name: geometry(faces, engine.chipnet.chip_matrix, cfg) for name, faces in sets.items()}
    write_json(results_path("chips", REPO), {"seconds": round(time.time() - t0, 1), "results": results,
                                             "provenance": provenance(cfg)})
    print("| faces | n | five-point / eye-only scale: p5 / p25 / median / p75 / p95 "
          "| eye line moved down (chip px): p5 / p25 / median / p75 / p95 |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['faces']} | " + " / ".join(f"{v:.3f}" for v in r["scale"].values()) + " | "
              + " / ".join(f"{v:+.2f}" for v in r["shift"].values()) + " |")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
