"""The two model runtimes on real faces: TensorFlow Lite (the default) against the SavedModels.

Usage: ``python bench/runtime.py [--limit N] [--descriptor D]``. Every photo of LFW's
``pairsDevTest.txt`` (or the first ``N``), as it is and wearing one of the product's masks, goes
through ``Engine.analyze`` under each runtime (the site's engine, SFace by default). Reports:

- agreement: faces found, masked/unmasked decisions, cosine between the two runtimes' vectors of
  the same face, the pairs' scores and the match decisions at the shipped thresholds;
- speed: each model alone on its own input (batch 1; SFace and FaceRes also batch 2, a face and its
  mirror) and the whole ``analyze`` per photo, interleaved photo by photo.

Prints a table and writes ``bench/results/runtime.json``. Needs ``../shared/data``.
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

import ablation  # noqa: E402
from frames import machine, stats  # noqa: E402
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.masks import render_mask  # noqa: E402
from recognition.engine.runtime import RUNTIMES, load_model  # noqa: E402

MODELS = REPO / "models"


def model_times(models_dir: Path, names: list[str], rounds: int = 40) -> dict:
    """Median and p95 ms of each model alone under each runtime, on uniform noise of its input shape."""
    out: dict = {}
    for name in names:
        runs = {rt: load_model(models_dir, name, runtime=rt) for rt in RUNTIMES}
        shape = runs["tflite"].input_shape
        for batch in ((1, 2) if name in ("faceres", "sface") else (1,)):
            x = np.random.default_rng(0).uniform(0, 1, [batch, *shape[1:]]).astype(np.float32)
            times: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
            for k in range(rounds + 3):
                for rt, run in runs.items():  # interleaved, so load changes hit both alike
                    t0 = time.perf_counter()
                    run(x)
                    if k >= 3:
                        times[rt].append((time.perf_counter() - t0) * 1000)
            out[f"{name} x{batch}"] = {rt: stats(v) for rt, v in times.items()}
    return out


def analyze_all(engines: dict, images: list[np.ndarray]) -> tuple[dict, dict]:
    """Each image through each engine, interleaved: ``({runtime: [face or None]}, {runtime: [ms]})``."""
    faces: dict = {rt: [] for rt in engines}
    ms: dict = {rt: [] for rt in engines}
    for img in images:
        for rt, engine in engines.items():
            t0 = time.perf_counter()
            try:
                face = engine.analyze(img, max_faces=3)[0]
            except NoFaceFound:
                face = None
            ms[rt].append((time.perf_counter() - t0) * 1000)
            faces[rt].append(face)
    return faces, ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    parser.add_argument("--descriptor", default=os.environ.get("MASKNET_DESCRIPTOR", "sface"))
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    load0 = os.getloadavg()
    models_dir = Path(os.environ.get("MASKNET_MODELS_DIR", MODELS))
    config = EngineConfig.for_descriptor(args.descriptor)
    engines = {rt: load_engine(models_dir, config, runtime=rt) for rt in RUNTIMES}
    pairs = ablation.devtest_pairs("DevTest")
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    if args.limit:
        keys = keys[:args.limit]
    photos = ablation.SHARED / "lfw" / "images_deepfunneled"
    images, masked_images = [], []
    for k, (name, num) in enumerate(keys):
        img = cv2.imread(str(photos / name / f"{name}_{num:04d}.jpg"))
        images.append(img)
        try:
            face = engines["tensorflow"].analyze(img, max_faces=3, embed=False)[0]
            masked_images.append(render_mask(img, face.landmarks, np.random.default_rng([k, 3])))
        except NoFaceFound:
            masked_images.append(img)
    index = {key: i for i, key in enumerate(keys)}
    results: dict = {}
    timings: dict = {}
    found: dict = {}
    for kind, imgs in (("unmasked", images), ("masked", masked_images)):
        faces, ms = analyze_all(engines, imgs)
        found[kind] = faces
        a, b = faces["tflite"], faces["tensorflow"]
        both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
        cos = np.array([float(np.dot(x.embedding, y.embedding)) for x, y in both])
        results[kind] = {
            "photos": len(imgs),
            "found": {rt: sum(f is not None for f in faces[rt]) for rt in RUNTIMES},
            "found_by_one_only": sum((x is None) != (y is None) for x, y in zip(a, b, strict=True)),
            "masked_decisions_differ": sum(x.masked != y.masked for x, y in both),
            "cosine_min": float(cos.min()) if len(cos) else None,
            "cosine_median": float(np.median(cos)) if len(cos) else None,
        }
        timings[kind] = {rt: stats(v) for rt, v in ms.items()}
    for kind, results_kind in results.items():
        # each pair's first photo as enrolled (unmasked) against its second as the probe (masked or not)
        flips, deltas = 0, []
        for p, q, _same in pairs:
            if p not in index or q not in index:
                continue
            i, j = index[p], index[q]
            g = {rt: found["unmasked"][rt][i] for rt in RUNTIMES}
            probe = {rt: found[kind][rt][j] for rt in RUNTIMES}
            if None in (*g.values(), *probe.values()):
                continue
            score = {rt: float(np.dot(g[rt].embedding, probe[rt].embedding)) for rt in RUNTIMES}
            deltas.append(abs(score["tflite"] - score["tensorflow"]))
            limit = engines["tensorflow"].threshold(probe["tensorflow"].masked)
            flips += (score["tflite"] >= limit) != (score["tensorflow"] >= limit)
        results_kind.update(pairs=len(deltas), pair_score_max_abs_diff=float(max(deltas)) if deltas else None,
                            decisions_flipped=int(flips))
    names = ["blazeface", "facemesh", "faceres"] + ([config.descriptor] if config.descriptor == "sface" else [])
    per_model = model_times(models_dir, names)
    out = {"machine": machine(), "load": [load0, os.getloadavg()], "seconds": round(time.time() - t0, 1),
           "descriptor": args.descriptor, "agreement": results, "analyze_ms": timings, "models_ms": per_model,
           "provenance": provenance(config)}
    path = write_json(results_path("runtime", REPO), out)

    cpu = out["machine"]
    print(f"\n{cpu['cpu']} · {cpu['cores']} cores · load {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}"
          f" · {out['seconds']} s")
    print(f"{'photos':<10} {'found tfl/tf':>13} {'mask diff':>9} {'cos min':>9} {'pairs':>6} "
          f"{'max |dscore|':>12} {'flips':>5}")
    for kind, r in results.items():
        print(f"{kind:<10} {r['found']['tflite']:>6}/{r['found']['tensorflow']:<6} {r['masked_decisions_differ']:>9} "
              f"{r['cosine_min']:>9.6f} {r['pairs']:>6} {r['pair_score_max_abs_diff']:>12.2e} "
              f"{r['decisions_flipped']:>5}")
    print(f"\n{'p50 / p95 ms':<22} {'tflite':>15} {'tensorflow':>15} {'speed-up':>9}")
    rows = [(f"{k} (model alone)", v) for k, v in per_model.items()]
    rows += [(f"analyze, {kind}", v) for kind, v in timings.items()]
    for label, v in rows:
        lite, full = v["tflite"], v["tensorflow"]
        print(f"{label:<22} {lite['p50_ms']:>7.1f} / {lite['p95_ms']:<5.1f} {full['p50_ms']:>7.1f} / "
              f"{full['p95_ms']:<5.1f} {full['p50_ms'] / lite['p50_ms']:>8.2f}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
