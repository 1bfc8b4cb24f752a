"""Within-class whitening of the product's matching vectors, learned on LFW DevTrain people (issue 3).

A linear map learned from many people's photos, with and without the product's synthetic masks:
``T(x) = normalise((x - mean) @ W)`` with ``W = (S_w + lambda * mean_eigenvalue * I)^(-1/2)``, where
``S_w`` is the covariance of the product's joined vectors (FaceRes with its upper-face fusion for a
masked face, dlib's ResNet with its own, joined as ``embed.join`` does) around each person's mean,
a photo and its masked renderings counting as one person (WCCN, within-class covariance
normalisation: the directions in which one person's vectors vary, a mask among them, are shrunk).
Also measured: centring alone (subtract DevTrain's mean vector), and LDA (the ``k`` directions
that best separate DevTrain's people relative to ``S_w``).

Trained on DevTrain (the people of ``pairsDevTrain.txt``; the product's masks only), measured on
the ablation's DevTest pairs with MaskTheFace masks it never saw, exactly as ``bench/ablation.py``
scores the product's row (mask classifier, synthetic-mask gallery), plus the FAR 1e-3 / 1e-4
calibration over all cross-person DevTest pairs. The identity map reproduces the ablation's
product row (a check printed first).

Usage: ``python bench/whitening.py`` (needs the DevTest caches of ``bench/ablation.py``; builds the
DevTrain crops and embeddings of ``bench/ablation.py --calibrate-split DevTrain`` if missing, about
20 minutes on 2 cores); writes ``bench/results/whitening.json``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
from provenance import provenance, write_results  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.embed import fuse_upper, join, l2_normalise  # noqa: E402
from recognition.engine.evaluation import stratified_folds, verification_metrics  # noqa: E402

CUT, FUSE = ablation.FUSE_CUT, ablation.FUSE
MAPS: list[tuple[str, dict]] = [
    ("the product (no map)", {}),
    ("centred on DevTrain's mean", {"centre": True}),
    ("WCCN, lambda 1", {"centre": True, "lam": 1.0}),
    ("WCCN, lambda 0.3", {"centre": True, "lam": 0.3}),
    ("WCCN, lambda 0.1", {"centre": True, "lam": 0.1}),
    ("WCCN, lambda 0.03", {"centre": True, "lam": 0.03}),
    ("LDA 256 (lambda 0.1)", {"centre": True, "lam": 0.1, "lda": 256}),
    ("LDA 128 (lambda 0.1)", {"centre": True, "lam": 0.1, "lda": 128}),
]


def product_vectors(emb: dict, kind: str, masked: bool) -> tuple[list, np.ndarray]:
    """The product's matching vector of every crop of ``kind``: mirror-averaged FaceRes (fused with
    the upper face if ``masked``) joined with the ResNet descriptor (fused with its upper face if
    ``masked``), as ``Engine.embed`` / ``Engine.embed_masked`` and ``embed.join`` compute it."""
    d = emb[kind]
    whole = l2_normalise(d["full"] + d["full_f"])
    r = d["rn"]
    if masked:
        whole = fuse_upper(whole, l2_normalise(d[f"up{CUT}"] + d[f"up{CUT}_f"]), FUSE)
        r = fuse_upper(r, d["rnup"], ablation.RESNET_UPPER)
    return d["keys"], join(whole, r, ablation.RESNET)


def fit(x: np.ndarray, labels: np.ndarray, centre: bool = False, lam: float | None = None,
        lda: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, W)`` of the map ``normalise((x - mean) @ W)`` learned from rows ``x`` of people ``labels``."""
    dim = x.shape[1]
    mean = x.mean(0) if centre else np.zeros(dim, x.dtype)
    if lam is None:
        return mean, np.eye(dim, dtype=np.float32)
    _, inv = np.unique(labels, return_inverse=True)
    counts = np.bincount(inv)
    means = np.zeros((counts.size, dim))
    np.add.at(means, inv, x)
    means /= counts[:, None]
    within = x - means[inv]
    sw = within.T @ within / len(x)
    sw += lam * np.trace(sw) / dim * np.eye(dim)
    evals, evecs = np.linalg.eigh(sw)
    w = evecs @ np.diag(evals ** -0.5) @ evecs.T
    if lda:
        between = (means - mean) * np.sqrt(counts)[:, None]
        sb = w.T @ (between.T @ between / len(x)) @ w   # between-class scatter in the whitened space
        bvals, bvecs = np.linalg.eigh(sb)
        w = w @ bvecs[:, np.argsort(bvals)[::-1][:lda]]
    return mean.astype(np.float32), w.astype(np.float32)


def apply(x: np.ndarray, mean: np.ndarray, w: np.ndarray) -> np.ndarray:
    return l2_normalise((x - mean) @ w)


def devtrain_embeddings(engine) -> dict:
    """The ablation's DevTrain crops and embeddings (``--calibrate-split DevTrain``'s caches)."""
    saved = ablation.WORK, ablation.UPPER_CUTS
    ablation.WORK, ablation.UPPER_CUTS = ablation.split_work("DevTrain"), (CUT,)
    try:
        pairs = ablation.devtest_pairs("DevTrain")
        keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
        return ablation.embed_variants(engine, ablation.prepare_crops(engine, keys))
    finally:
        ablation.WORK, ablation.UPPER_CUTS = saved   # the DevTest caches again


def training_set(emb: dict) -> tuple[np.ndarray, np.ndarray]:
    """DevTrain rows: each photo unmasked and with two renderings of the product's masks, labelled by person."""
    xs, names = [], []
    for kind, masked in (("orig", False), ("prod0", True), ("prod1", True)):
        keys, v = product_vectors(emb, kind, masked)
        xs.append(v)
        names += [k[0] for k in keys]
    return np.concatenate(xs).astype(np.float32), np.array(names)


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), EngineConfig())
    if not ablation.cache_file(engine, "embeddings.pkl").exists():
        sys.exit("run python bench/ablation.py first (its DevTest crops and embeddings are the test set)")
    t0 = time.time()
    x, labels = training_set(devtrain_embeddings(engine))
    print(f"training rows: {len(x)} ({len(set(labels))} people), {time.time() - t0:.0f} s", file=sys.stderr)
    emb = ablation.embed_variants(engine, {})   # the DevTest embeddings, complete in the ablation's cache
    clf = engine.mask_classifier
    masked_flag = {kind: dict(zip(emb[kind]["keys"], clf(l2_normalise(emb[kind]["full"] + emb[kind]["full_f"]))
                                  >= 0.5, strict=True)) for kind in ("orig", "mtf")}
    vectors = {(kind, m): dict(zip(*product_vectors(emb, kind, m), strict=True))
               for kind in ("orig", "mtf", "prod0", "prod1") for m in (False, True)}
    pairs = ablation.devtest_pairs()
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    results: dict = {}
    for name, kw in MAPS:
        mean, w = fit(x, labels, **kw)
        mapped = {k: dict(zip(v.keys(), apply(np.stack(list(v.values())), mean, w), strict=True))
                  for k, v in vectors.items()}
        row = {}
        for set_name, (ak, bk) in ablation.SETS.items():
            scores = []
            for a, b, _ in pairs:
                if a not in masked_flag[ak] or b not in masked_flag[bk]:
                    scores.append(-1.0)
                    continue
                ma, mb = masked_flag[ak][a], masked_flag[bk][b]
                probe = mapped[(bk, mb)][b]
                s = float(mapped[(ak, ma)][a] @ probe)
                if mb and not ma:   # masked probe vs photographed enrolment: also its synthetic-mask templates
                    s = max([s] + [float(mapped[(kind, True)][a] @ probe) for kind in ("prod0", "prod1")
                                   if a in mapped[(kind, True)]])
                scores.append(s)
            row[set_name] = verification_metrics(np.array(scores), same, folds)
        keys, o = product_vectors(emb, "orig", False)
        cal = ablation.thresholds(np.array([k[0] for k in keys]), apply(o, mean, w),
                                  *(apply(product_vectors(emb, kind, True)[1], mean, w)
                                    for kind in ("prod0", "prod1", "mtf")), (1e-3, 1e-4))
        results[name] = {"verification": row, "calibration": cal}
        print(f"  {name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    meta = {"seconds": round(time.time() - t0, 1), "training_rows": len(x), "training_people": len(set(labels)),
            "provenance": provenance()}
    write_results("whitening", meta, results, REPO)
    print(table(results))


def table(results: dict) -> str:
    """Markdown: verification per set (accuracy ± std / TAR at FAR 1e-2) and the FAR 1e-4 calibration."""
    lines = ["| map | unmasked | one side masked | both masked | FAR 1e-4: unmasked TAR | masked TAR (product masks) "
             "| unseen masks: FAR / TAR |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = [f"{v['accuracy']:.1%} ± {100 * v['accuracy_std']:.1f} / {v['tar_at_far_1e-2']:.1%}"
                 for v in r["verification"].values()]
        c = r["calibration"]["1e-04"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {c['unmasked']['tar']:.1%} | "
                     f"{c['masked']['tar_product_masks']:.1%} | {c['masked']['far_on_unseen_masks']:.1e} / "
                     f"{c['masked']['tar_on_unseen_masks']:.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
