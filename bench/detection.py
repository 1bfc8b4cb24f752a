"""Face detection on masked faces: how many the detector finds at each confidence threshold.

A mask lowers BlazeFace's confidence, and a face it does not find is a kiosk that says "no face"
to a person standing in front of it. The engine takes the faces found at
``EngineConfig.detect_min_confidence`` and, only when there is none, those found at the lower
``detect_fallback_confidence``. This benchmark measures, for the engine's whole pipeline (detect,
FaceMesh, align, quality gate; ``Engine.analyze(embed=False)``) and each candidate fallback value:

* **real masked photos** (``rwmfd_part1``: 1,193 photos of people wearing real masks, single
  faces and crowds): photos with a face found, and photos whose largest face passes the quality
  gate (a face the kiosk would match);
* **LFW DevTest photos with unseen masks** (the first photo of each DevTest person wearing a
  MaskTheFace template, masks the product never saw) and the **same photos unmasked**;
* **images without a face** (scikit-image's sample images without people or animals, whole and as
  random square crops): false detections, and false detections that pass the quality gate (those
  reach matching, where the strict match thresholds then call them unknown);
* for every set, the faces past the gate that enrolment would also take: FaceMesh's face flag at
  ``gallery.ENROL_MIN_FACE_FLAG`` or above (enrolment refuses the others as ``unclear_face``).

Usage: ``python bench/detection.py [--crops 40]``; prints a table and writes
``bench/results/detection.json``.
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

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.gallery import ENROL_MIN_FACE_FLAG  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)
# scikit-image's sample images that show no person and no animal (astronaut, camera, chelsea and
# the like are left out); they stand in for an entrance with nobody in front of the camera
NON_FACE = ("brick", "coffee", "coins", "grass", "gravel", "horse", "hubble_deep_field", "logo", "moon",
            "page", "retina", "rocket", "text", "clock", "colorwheel", "cell", "immunohistochemistry",
            "stereo_motorcycle", "checkerboard")


def non_face_images(crops: int, seed: int) -> list[np.ndarray]:
    """The sample images whole and as ``crops`` random square crops each (a quarter of the short
    side to all of it), BGR."""
    from skimage import data

    rng = np.random.default_rng(seed)
    out = []
    for name in NON_FACE:
        loaded = getattr(data, name)()
        img = loaded[0] if isinstance(loaded, tuple) else loaded  # stereo_motorcycle: (left, right, disparity)
        img = np.asarray(img)
        if img.dtype != np.uint8:
            img = img.astype(np.float64)  # boolean (horse) or float images
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        img = np.stack([img] * 3, -1) if img.ndim == 2 else np.ascontiguousarray(img[..., 2::-1])
        h, w = img.shape[:2]
        out.append(img)
        for _ in range(crops):
            s = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            out.append(np.ascontiguousarray(img[y:y + s, x:x + s]))
    return out


def lfw_photos(engine, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first photo of every LFW DevTest person, unmasked and wearing a MaskTheFace template
    (drawn on the landmarks of the unmasked photo; a photo without a face stays unmasked)."""
    people = [ln.split()[0] for ln in (SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:]
              if ln.strip()]
    templates = load_templates(SHARED / "masks")
    plain, masked = [], []
    for k, name in enumerate(people):
        img = cv2.imread(str(SHARED / "lfw" / "images_deepfunneled" / name / f"{name}_0001.jpg"))
        plain.append(img)
        try:
            face = engine.analyze(img, max_faces=3, embed=False)[0]
            masked.append(apply_mask(img, face.landmarks, np.random.default_rng([seed, k]), templates))
        except (NoFaceFound, TypeError):
            masked.append(img)
    return plain, masked


def faces_by_threshold(engine, images: list[np.ndarray]) -> list[list[tuple[float, bool, tuple, float]]]:
    """For each image, its faces at the lowest threshold as ``(score, passes the gate, box, face
    flag)``, largest first (the face the kiosk takes)."""
    out = []
    for img in images:
        try:
            faces = engine.analyze(img, embed=False)
        except NoFaceFound:
            faces = []
        out.append([(f.score, f.quality.ok, f.box, f.face_flag) for f in faces])
    return out


def summarise(found: list[list[tuple[float, bool, tuple, float]]], confident: float = 0.55) -> dict:
    """Per fallback threshold ``t``, with the engine's rule (faces at ``confident`` or above if there
    are any, else faces at ``t`` or above): images with a face and images whose largest face passes
    the gate. ``largest_changed_one_threshold``: images whose largest face would differ from the one
    taken at ``confident`` if ``t`` were a single threshold (why the engine keeps two)."""
    out = {}
    for t in THRESHOLDS:
        ref = [[f for f in faces if f[0] >= confident] for faces in found]
        low = [[f for f in faces if f[0] >= t] for faces in found]
        kept = [r or k for r, k in zip(ref, low, strict=True)]
        out[str(t)] = {
            "n": len(found),
            "found": sum(bool(k) for k in kept),
            "usable": sum(bool(k) and k[0][1] for k in kept),
            "enrolable": sum(bool(k) and k[0][1] and k[0][3] >= ENROL_MIN_FACE_FLAG for k in kept),
            "largest_changed_one_threshold": sum(bool(k) and bool(r) and k[0][2] != r[0][2]
                                                 for k, r in zip(low, ref, strict=True)),
        }
    return out


def table(results: dict) -> str:
    """Markdown table: one row per fallback threshold."""
    sets = results["sets"]
    rows = ["| fallback threshold | real masks: face found | real masks: face past the gate "
            "| LFW unseen masks: found | LFW unseen masks: past the gate | LFW unmasked: found "
            "| no-face images: false face | no-face images: false face past the gate |",
            "|---|---|---|---|---|---|---|---|"]

    def pct(name: str, t: str, key: str) -> str:
        r = sets[name][t]
        return f"{100 * r[key] / r['n']:.1f}% ({r[key]})"

    for t in map(str, THRESHOLDS):
        cells = [pct(name, t, key) for name, key in (("rwmfd", "found"), ("rwmfd", "usable"), ("lfw_masked", "found"),
                                                     ("lfw_masked", "usable"), ("lfw_unmasked", "found"),
                                                     ("non_face", "found"), ("non_face", "usable"))]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    n = {k: v[str(THRESHOLDS[0])]["n"] for k, v in sets.items()}
    changed = ", ".join(f"{t}: {sets['lfw_unmasked'][str(t)]['largest_changed_one_threshold']}"
                        for t in THRESHOLDS[:-1])
    rows.append(f"\n{n['rwmfd']} real masked photos, {n['lfw_masked']} LFW DevTest photos (masked and "
                f"unmasked), {n['non_face']} images without a face. Faces at {results['confident']} or above "
                f"take precedence (the engine's rule); as a single threshold instead, the largest face of "
                f"this many unmasked LFW photos would change: {changed}.")
    fb = str(results["fallback"])
    enrol = ", ".join(f"{label} {sets[name][fb]['enrolable']} of {sets[name][fb]['usable']}"
                      for label, name in (("real masks", "rwmfd"), ("LFW unseen masks", "lfw_masked"),
                                          ("LFW unmasked", "lfw_unmasked"), ("no-face images", "non_face")))
    rows.append(f"\nAt the engine's fallback threshold ({fb}), faces past the gate that enrolment also takes "
                f"(FaceMesh's face flag at {results['enrol_min_face_flag']} or above): {enrol}.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=int, default=40, help="random crops of each image without a face")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the detection benchmark needs ../shared/data")
    t0 = time.time()
    models = Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))
    non_face = non_face_images(args.crops, args.seed)
    engine = load_engine(models, EngineConfig())
    plain, masked = lfw_photos(engine, args.seed)
    # every face down to the lowest threshold; summarise applies the engine's two-level rule
    floor = min(THRESHOLDS)
    low = load_engine(models, EngineConfig().with_(detect_min_confidence=floor, detect_fallback_confidence=floor))
    real = [cv2.imread(str(p)) for p in sorted((SHARED / "rwmfd_part1").rglob("*.jpg"))]
    sets = {"rwmfd": real, "lfw_masked": masked, "lfw_unmasked": plain,
            "non_face": non_face}
    confident = EngineConfig().detect_min_confidence
    results = {"args": vars(args), "thresholds": list(THRESHOLDS), "confident": confident,
               "fallback": EngineConfig().detect_fallback_confidence, "enrol_min_face_flag": ENROL_MIN_FACE_FLAG,
               "sets": {name: summarise(faces_by_threshold(low, images), confident) for name, images in sets.items()}}
    results["seconds"] = round(time.time() - t0, 1)
    results["provenance"] = provenance()
    print(table(results))
    write_json(results_path("detection", REPO), results)


if __name__ == "__main__":
    main()
