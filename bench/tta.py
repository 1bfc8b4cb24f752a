"""Multi-crop test-time augmentation for SFace (issue 3): several chips per face, one vector.

The engine embeds every face twice, its chip and the chip's mirror image, and matches the mean
(mirror TTA, on since the FaceRes days). This bench asks whether more looks at the same face pay:
the five-point chip also scaled about its centre (a few percent smaller and larger) and shifted by a
couple of pixels (no mirror), all summed with the chip and its mirror into one L2-normalised vector. It should transfer
to real masks if it pays at all: it assumes nothing about the mask, only that the landmarks a chip is
cut on are a few pixels or percent off (``bench/chips.py`` measured masked chips sitting 5-7% larger).

On the crops ``bench/descriptors.py --sface`` caches (LFW ``pairsDevTrain.txt`` with ``--split
DevTrain``, the split levers are chosen on; ``pairsDevTest.txt`` otherwise), every face (photos, the
product's two mask renderings, the unseen MaskTheFace masks) is embedded by the engine's own SFace
(``Engine.chipnet``, the converted graph the site runs, batched) once per transform of
:data:`TRANSFORMS` (cached in the split's folder): its five-point chip, the chip's mirror image (the
product's two looks), and the chip scaled and shifted (no mirror, to keep the run short); each row of
:data:`ROWS` sums a subset. Rows measure what ``bench/descriptors.py`` measures (the verification sets,
the open-set identification column, with the product's levers: mirror and synthetic-mask gallery), the
FAR 1e-3 / 1e-4 calibration over every cross-person pair, and the unseen masks' TAR at thresholds set
on their own impostors (``bench/adapter.py``'s :func:`unseen_tar`), which compares rows at the same
false-accept rate.

Usage: ``python bench/tta.py [--split DevTrain]`` (about 10 minutes for DevTest and 25 for DevTrain on
2 cores once ``bench/descriptors.py --sface [--split DevTrain]`` has cached the crops; the embeddings
are cached too). Prints the tables and writes
``bench/results/tta-sface[-DevTrain].json``. Measured, not built into the engine unless
docs/accuracy.md says so.
"""

from __future__ import annotations

import argparse
import inspect
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
import descriptors  # noqa: E402
from adapter import KINDS, measure, report, unseen_tar  # noqa: E402
from provenance import provenance  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.embed import ARCFACE_SIZE, l2_normalise  # noqa: E402

# chip -> chip similarity about the chip's centre: (scale, dx, dy in chip pixels, mirrored)
TRANSFORMS = {"id": (1.0, 0.0, 0.0, False), "mirror": (1.0, 0.0, 0.0, True),
              "s0.96": (0.96, 0.0, 0.0, False), "s1.04": (1.04, 0.0, 0.0, False),
              "up2": (1.0, 0.0, -2.0, False), "down2": (1.0, 0.0, 2.0, False)}
ROWS = {"mirror (the product)": (),
        "mirror + scales 0.96 / 1.04": ("s0.96", "s1.04"),
        "mirror + shifts 2 px up / down": ("up2", "down2"),
        "mirror + scales + shifts": ("s0.96", "s1.04", "up2", "down2")}


def jittered(matrix: np.ndarray, scale: float, dx: float, dy: float, mirrored: bool = False,
             size: int = ARCFACE_SIZE) -> np.ndarray:
    """``matrix`` (crop -> chip, 2x3) followed by a similarity of the chip about its centre, and by
    the chip's mirror image when ``mirrored`` (column ``x`` to ``size - 1 - x``, as ``chip[:, ::-1]``)."""
    c = size / 2
    j = np.array([[scale, 0, (1 - scale) * c + dx], [0, scale, (1 - scale) * c + dy], [0, 0, 1]])
    if mirrored:
        j = np.array([[-1, 0, size - 1], [0, 1, 0], [0, 0, 1]]) @ j
    return (j @ np.vstack([matrix, [0, 0, 1]]))[:2].astype(np.float32)


def transform_embeddings(chipnet, crops: dict, cache: Path) -> dict:
    """``{kind: {key: {transform: vector}}}``: the engine's L2-normalised SFace vector of every face's
    five-point chip under each transform of :data:`TRANSFORMS` (cached in ``cache``)."""
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    out: dict = {}
    for kind in KINDS:
        keys = [k for k, r in crops.items() if r is not None and ablation.crop_of(r, kind) is not None]
        batch = np.stack([ablation.crop_of(crops[k], kind) for k in keys])
        base = [chipnet.chip_matrix if p is None else chipnet.five_point_matrix(p)
                for p in (ablation.five_of(crops[k], kind) for k in keys)]
        out[kind] = {k: {} for k in keys}
        for name, transform in TRANSFORMS.items():
            vectors = chipnet(batch, flip=False, matrices=[jittered(m, *transform) for m in base])
            for k, v in zip(keys, vectors, strict=True):
                out[kind][k][name] = v
            print(f"  {kind} {name}: {len(keys)} faces", file=sys.stderr, flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def combined(per: dict, names: tuple[str, ...]) -> dict:
    """``bench/descriptors.py``'s embedding layout for one row: ``full`` the normalised sum of a face's
    chip, its mirror image (the engine's mirror TTA) and its chips under the transforms ``names``;
    ``plain`` the same without the mirror image (for ``flip=False``)."""
    out: dict = {}
    for kind, faces in per.items():
        out[kind] = {}
        for key, t in faces.items():
            plain = t["id"] + sum((t[n] for n in names), np.zeros_like(t["id"]))
            out[kind][key] = {"full": l2_normalise((plain + t["mirror"])[None])[0],
                              "plain": l2_normalise(plain[None])[0], "up": None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("DevTest", "DevTrain"), default="DevTest",
                        help="DevTrain: the people levers are chosen on; DevTest: the ablation's people")
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    if args.split != "DevTest":
        ablation.WORK = ablation.split_work(args.split)  # the crops bench/descriptors.py --split caches
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), descriptors.CFG)
    pairs = ablation.devtest_pairs(args.split)
    crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}))
    sface = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")),
                        EngineConfig.for_descriptor("sface")).chipnet
    made = descriptors.embedding_cache(engine, "sface", KINDS, None).name  # names the crops and settings
    # jittered's source in the key too: a changed chip convention never replays old vectors
    per = transform_embeddings(sface, crops, ablation.cache_file(engine, "sface-tta.pkl", made,
                                                                  sorted(TRANSFORMS.items()),
                                                                  inspect.getsource(jittered)))
    del crops
    results, calib, matched = {}, {}, {}
    for row, names in ROWS.items():
        rows = combined(per, names)
        results[row] = measure(rows, pairs, {"gallery": True})
        calib[row] = descriptors.calibrate(rows, 0.0)
        matched[row] = unseen_tar(rows)
        print(f"  measured {row}", file=sys.stderr, flush=True)
    meta = {"seconds": round(time.time() - t0, 1), "split": args.split, "pairs": len(pairs),
            "transforms": TRANSFORMS, "rows": ROWS, "calibration": calib, "matched_far": matched,
            "provenance": provenance()}
    report("tta-sface" + ("" if args.split == "DevTest" else f"-{args.split}"), meta, results)


if __name__ == "__main__":
    main()
