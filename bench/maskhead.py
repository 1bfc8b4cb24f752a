"""The masked/unmasked head with and without FaceRes's mirror (issue 3; the opt-in descriptor's engine).

With ``MASKNET_DESCRIPTOR=arcface`` FaceRes's embedding feeds only the masked/unmasked head, so the
engine runs FaceRes once, without the mirrored copy the head was trained on (``Engine._embed_and_classify``).
This bench measures what that changes: on the ablation's aligned crops of LFW photos (``bench/ablation.py``
stage 1: the photo, the photo with the product's own mask, the photo with a MaskTheFace template the
product never saw), the share of faces the head calls masked with and without the mirror, and how
many decisions differ.

Usage: ``python bench/maskhead.py [--split DevTest|DevTrain] [--limit N]`` (DevTest: the ablation's
crops in ``var/bench/ablation``; DevTrain: those of ``ablation.py --calibrate-split DevTrain``, whose
people also gave the head's unmasked training photos). Prints a table and writes
``bench/results/maskhead-<split>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402

KINDS = {"photographed": "orig", "product mask": "prod0", "unseen MaskTheFace mask": "mtf"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("DevTest", "DevTrain"), default="DevTest")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    if args.split != "DevTest":  # the crops ablation.py --calibrate-split caches
        ablation.WORK = ablation.split_work(args.split)
    config = EngineConfig()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), config)
    pairs = ablation.devtest_pairs(args.split)
    crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}))
    keys = [k for k, r in crops.items() if r is not None and "prod" in r and "mtf" in r]
    keys = keys[:args.limit] if args.limit else keys
    results = {}
    print("| faces | n | called masked, with the mirror | without | decisions that differ | max prob. change |")
    print("|---|---|---|---|---|---|")
    for label, kind in KINDS.items():
        batch = np.stack([ablation.crop_of(crops[k], kind) for k in keys])
        mirrored = engine.mask_classifier(engine.embedder(batch, flip=True))
        once = engine.mask_classifier(engine.embedder(batch, flip=False))
        a, b = mirrored >= config.masked_threshold, once >= config.masked_threshold
        r = results[label] = {"n": len(keys), "masked_with_mirror": float(a.mean()), "masked_without": float(b.mean()),
                              "differ": int((a != b).sum()), "max_prob_change": float(np.abs(mirrored - once).max())}
        print(f"| {label} | {r['n']} | {r['masked_with_mirror'] * 100:.2f}% | {r['masked_without'] * 100:.2f}% | "
              f"{r['differ']} | {r['max_prob_change']:.3f} |", flush=True)
    out = write_json(results_path(f"maskhead-{args.split}", REPO), {
        "args": vars(args), "seconds": round(time.time() - t0, 1), "results": results,
        "provenance": provenance(config)})
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
