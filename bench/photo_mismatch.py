"""Enrolment photos of two different people under one person: where to warn (``enrollment.services``).

A person's photos are averaged into their templates, so a photo of someone else filed under them (a
wrong file picked, two people in one HR folder) makes check-ins of either go to them, and nothing
said so: the look-alike check compares a new photo with *other* people's, the same-picture check
with the person's own for copies. The admin now warns when a new unmasked photo's face scores below
a level against every other unmasked photo of the person. This bench measures that level on LFW
pairs, the way the product embeds an enrolment photo (the engine's analysis of the whole photo, its
largest face, mirror averaged): the scores of two photos of one person (genuine pairs) and of two
people (impostor pairs), and for each candidate level the genuine pairs it would wrongly warn of and
the impostor pairs it would catch. Chosen on DevTrain, checked on DevTest (never used to choose).

Usage: ``python bench/photo_mismatch.py [--descriptor sface]`` (about 6 minutes on 2 cores). Prints
the tables and writes ``bench/results/photo-mismatch-<descriptor>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provenance import provenance, write_results  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.evaluation import parse_pairs  # noqa: E402

LFW = REPO.parent / "shared" / "data" / "lfw"
LEVELS = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35)


def embed(engine, path: Path, cache: dict) -> np.ndarray | None:
    """The largest unmasked face's embedding of a photo, as enrolment takes it (``None``: no face, or masked)."""
    if path not in cache:
        try:
            face = engine.analyze(path.read_bytes(), max_faces=1)[0]
            cache[path] = None if face.masked or face.embedding is None else face.embedding
        except NoFaceFound:
            cache[path] = None
    return cache[path]


def measure(engine, pairs_file: Path, cache: dict) -> dict:
    pairs = parse_pairs(LFW / "images_deepfunneled", pairs_file)
    genuine, impostor, skipped = [], [], 0
    for pair in pairs:
        a, b = embed(engine, pair.a, cache), embed(engine, pair.b, cache)
        if a is None or b is None:
            skipped += 1
            continue
        (genuine if pair.same else impostor).append(float(a @ b))
    g, i = np.array(genuine), np.array(impostor)
    return {"pairs": len(pairs), "skipped": skipped, "genuine": len(g), "impostor": len(i),
            "genuine_quantiles": {q: round(float(np.quantile(g, q / 100)), 3) for q in (0.5, 1, 5, 50)},
            "impostor_quantiles": {q: round(float(np.quantile(i, q / 100)), 3) for q in (50, 95, 99, 99.5)},
            "levels": {f"{t:.2f}": {"genuine_warned": round(float((g < t).mean()), 4),
                                    "impostor_caught": round(float((i < t).mean()), 4)} for t in LEVELS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="sface")
    args = parser.parse_args()
    if not LFW.is_dir():
        sys.exit(f"LFW not found at {LFW}")
    config = EngineConfig.for_descriptor(args.descriptor)
    engine = load_engine(REPO / "models", config)
    cache: dict = {}
    start = time.time()
    results = {split: measure(engine, LFW / f"pairs{split}.txt", cache) for split in ("DevTrain", "DevTest")}
    print(f"{args.descriptor}: one unmasked enrolment face against another ({time.time() - start:.0f} s)")
    for split, r in results.items():
        print(f"\n{split}: {r['genuine']} genuine / {r['impostor']} impostor pairs ({r['skipped']} without an "
              f"unmasked face on both sides)")
        print(f"  genuine scores, quantiles {r['genuine_quantiles']}; impostor {r['impostor_quantiles']}")
        print("  | level | genuine pairs warned of | impostor pairs caught |")
        print("  |---|---|---|")
        for level, row in r["levels"].items():
            print(f"  | {level} | {row['genuine_warned']:.2%} | {row['impostor_caught']:.2%} |")
    path = write_results(f"photo-mismatch-{args.descriptor}", provenance(config), results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
