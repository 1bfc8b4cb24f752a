"""Open-set identification benchmark on LFW DevTest people (never used for training, nor for the
engine's thresholds, which are calibrated on DevTrain).

Gallery: the first photo of N people (unmasked, enrolled exactly as the product enrols, the site
thresholds fitted on it as a rebuild fits them). Probes:
another photo of each of them plus one photo of M people who are not enrolled, all wearing
MaskTheFace templates (masks the product never saw) — and the same probes unmasked for reference.
Prints a table and writes ``bench/results/identification.json``.

Usage: ``python bench/identification.py [--known 250] [--unknown 1000] [--descriptor arcface]``
(1,000 strangers: FNIR at FPIR 1e-2 then rests on the 10 best-scoring strangers, not on one;
``--descriptor arcface`` writes ``identification-arcface.json``)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provenance import descriptor_suffix, provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.benchmark import evaluate_identification  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
WORK = REPO / "var" / "bench" / "identification"


def build(engine, known: int, unknown: int, seed: int) -> tuple[Path, Path, Path]:
    """Symlinked gallery, unmasked probes and masked probes (cached)."""
    images = SHARED / "lfw" / "images_deepfunneled"
    people = [ln.split() for ln in (SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:]
              if ln.strip()]
    multi = [n for n, c in people if int(c) >= 2]
    single = [n for n, c in people if int(c) == 1]
    rng = np.random.default_rng(seed)
    rng.shuffle(multi)
    rng.shuffle(single)
    gallery, plain, masked = WORK / "gallery", WORK / "probes_unmasked", WORK / "probes_masked"
    templates = load_templates(SHARED / "masks")
    jobs = [(n, 1, 2) for n in multi[:known]] + [(n, None, 1) for n in single[:unknown]]
    # people left by an earlier run with larger --known/--unknown would silently join this one
    wanted = {n for n, _, _ in jobs}
    for d in (gallery, plain, masked):
        for stale in (p for p in d.glob("*") if d.is_dir() and p.name not in wanted):
            shutil.rmtree(stale)
    for k, (name, g, p) in enumerate(jobs):
        if g is not None:
            (gallery / name).mkdir(parents=True, exist_ok=True)
            link = gallery / name / f"{name}_{g:04d}.jpg"
            if not link.exists():
                link.symlink_to(images / name / link.name)
        src = images / name / f"{name}_{p:04d}.jpg"
        for d in (plain, masked):
            (d / name).mkdir(parents=True, exist_ok=True)
        if not (plain / name / src.name).exists():
            (plain / name / src.name).symlink_to(src)
        dst = masked / name / src.name
        if not dst.exists():
            img = cv2.imread(str(src))
            try:
                face = engine.analyze(img, max_faces=3, embed=False)[0]
                out = apply_mask(img, face.landmarks, np.random.default_rng([seed, k]), templates)
            except (NoFaceFound, TypeError):
                out = img
            cv2.imwrite(str(dst), out, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return gallery, plain, masked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--known", type=int, default=250)
    ap.add_argument("--unknown", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--descriptor", choices=DESCRIPTORS, default=DESCRIPTORS[0],
                    help="default faceres+resnet; sface (the site's), arcface write identification-<descriptor>.json")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the identification benchmark needs ../shared/data")
    t0 = time.time()
    config = EngineConfig.for_descriptor(args.descriptor)
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), config)
    gallery, plain, masked = build(engine, args.known, args.unknown, args.seed)
    # probes the kiosk would ask to come closer decide nothing, as there (the site's default)
    min_face_px = float(os.environ.get("MASKNET_KIOSK_MIN_FACE_PX", "80"))
    results = {name: evaluate_identification(engine, gallery, probes, seed=args.seed, min_face_px=min_face_px)
               for name, probes in (("unmasked probes", plain), ("masked probes (unseen masks)", masked))}
    keys = ("rank1", "fnir_at_fpir_1e-2", "fpir_at_threshold", "fnir_at_threshold", "n_gallery_people",
            "failed_gallery_images", "n_known_probes", "n_unknown_probes", "failed_probes",
            "probes_refused_by_quality", "probes_classified_masked")
    print("| probes | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    for name, r in results.items():  # fitted on the gallery as a rebuild fits them (the kiosk's)
        t = r["thresholds"]
        print(f"{name}: thresholds unmasked {t['unmasked']:.4f}, masked {t['masked']:.4f} ({t['source']}, "
              f"{t['impostor_pairs']} impostor pairs)")
    write_json(results_path(f"identification{descriptor_suffix(args.descriptor)}", REPO),
               {"args": vars(args), "seconds": round(time.time() - t0, 1), "provenance": provenance(config),
                "results": results})


if __name__ == "__main__":
    main()
