"""The masked-embedding adapter on SFace (issue 3): trained on DevTrain, measured on DevTest.

``manage.py train_adapter`` trains the adapter (``recognition.engine.train.fit_adapter``: a small
residual network, supervised-contrastive loss between adapted masked embeddings and unmasked ones,
other people kept apart) and ``bench/ablation.py`` measured it on FaceRes, where it stayed off. This
bench asks the same question of SFace, the site's default descriptor, on the crops and embeddings that
``bench/descriptors.py --sface`` caches:

1. training data: every photo of LFW ``pairsDevTrain.txt`` (people never measured on), its SFace
   vector (mirror-averaged, five-point chip, as the engine matches) unmasked and wearing each of the
   product's own two mask renderings (``prod0``, ``prod1``); ``fit_adapter`` holds out 15% of the
   people for its validation figures; those people, never DevTest, chose the training settings
   (``--steps``, ``--hidden``, ``--temperature``; docs/accuracy.md "The embedding adapter on SFace");
2. the adapter is applied as the engine would apply it, to every face wearing a mask: the masked
   probe (DevTest photos wearing MaskTheFace masks the adapter never saw) and the synthetic-mask
   templates of the gallery; photographed faces are left alone;
3. DevTest: the verification sets and the open-set identification column of ``bench/descriptors.py``
   (same pairs, folds and people), with and without the adapter, the threshold calibration over
   every cross-person pair (FAR 1e-3 / 1e-4; TAR on the product's masks and on the unseen ones), and
   the unseen masks' TAR at the same false-accept rate with and without adapters of several seeds
   (:func:`unseen_tar`; a calibrated threshold moves the FAR too, so the calibration alone cannot
   compare them).

Usage: ``python bench/adapter.py [--steps 800] [--hidden 128] [--temperature 0.3] [--seed 0] [--seeds 0 1 2]``
(about 45 minutes on 2 cores for both splits' crops and embeddings the first time, a minute once
``bench/descriptors.py --sface`` and ``--sface --split DevTrain`` have cached them). Prints the tables
and writes ``bench/results/adapter-sface.json``. Measured, not built into the engine unless
docs/accuracy.md says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
import descriptors  # noqa: E402
from provenance import provenance, write_results  # noqa: E402

from recognition.engine import load_engine  # noqa: E402
from recognition.engine.adapter import Adapter  # noqa: E402
from recognition.engine.evaluation import stratified_folds, threshold_at_far, verification_metrics  # noqa: E402
from recognition.engine.train import fit_adapter  # noqa: E402

DEVTEST_WORK = ablation.WORK   # the ablation's own cache folder (DevTest); other splits have theirs
KINDS = ("orig", "mtf", "prod0", "prod1")
MASKED_KINDS = ("mtf", "prod0", "prod1")


def split_embeddings(split: str) -> tuple[dict, list]:
    """SFace's embeddings of ``split``'s pair photos (``bench/descriptors.py --sface``'s cache, built
    if absent) and the split's pairs."""
    ablation.WORK = ablation.split_work(split) if split != "DevTest" else DEVTEST_WORK
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), descriptors.CFG)
    pairs = ablation.devtest_pairs(split)
    crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}))
    cut = descriptors.ARC.upper_face_cut  # as bench/descriptors.py embeds them (its cache's name)
    net = descriptors.SFace(descriptors.fetch(descriptors.WHEELS["sface"]))
    emb = descriptors.embed_kinds(net, crops, KINDS, cut, descriptors.embedding_cache(engine, "sface", KINDS, cut))
    return emb, pairs


def training_rows(emb: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(masked, unmasked, person)``: one row per photo and product-mask rendering."""
    masked, unmasked, person = [], [], []
    for kind in ("prod0", "prod1"):
        for key, d in sorted(emb[kind].items()):
            o = emb["orig"].get(key)
            if o is not None:
                masked.append(d["full"])
                unmasked.append(o["full"])
                person.append(key[0])
    return np.stack(masked).astype(np.float32), np.stack(unmasked).astype(np.float32), np.array(person)


def adapted(emb: dict, adapter: Adapter, kinds: tuple[str, ...] = MASKED_KINDS) -> dict:
    """A copy of ``emb`` with every masked face's vectors (``kinds``) passed through ``adapter``."""
    out = dict(emb)
    for kind in kinds:
        keys = list(emb[kind])
        full = adapter(np.stack([emb[kind][k]["full"] for k in keys]))
        plain = adapter(np.stack([emb[kind][k]["plain"] for k in keys]))
        out[kind] = {k: {"full": f, "plain": p, "up": None} for k, f, p in zip(keys, full, plain, strict=True)}
    return out


def measure(emb: dict, pairs: list, kw: dict) -> dict:
    """The verification sets and the identification column under the levers ``kw``."""
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    out = {s: verification_metrics(np.array([descriptors.score(emb, a, b, ak, bk, **kw) for a, b, _ in pairs]),
                                   same, folds) for s, (ak, bk) in ablation.SETS.items()}
    out["identification"] = ablation.identification(None, keys, kw,
                                                     scores=descriptors.identification_scores(emb, keys, kw))
    return out


MATCHED_FARS = (1e-3, 1e-4, 1e-5)


def unseen_tar(emb: dict, gallery: bool = True) -> dict:
    """TAR of probes wearing the unseen masks at thresholds set on their own impostors (every
    cross-person pair), so that two ways of matching compare at the same false-accept rate: a
    probe meets the photographed face and (``gallery``) a product-masked template of it, as
    ``ablation.thresholds`` scores the unseen masks."""
    keys = [k for k in emb["orig"] if all(k in emb[kind] for kind in ("prod1", "mtf"))]
    names = np.array([k[0] for k in keys])
    photo, template, probe = (np.stack([emb[kind][k]["full"] for k in keys]) for kind in ("orig", "prod1", "mtf"))
    scores = np.maximum(probe @ photo.T, probe @ template.T) if gallery else probe @ photo.T
    diff = names[:, None] != names[None, :]
    same = ~diff & ~np.eye(len(names), dtype=bool)
    return {f"{far:.0e}": float((scores[same] >= threshold_at_far(scores[diff], far)).mean()) for far in MATCHED_FARS}


def matched_table(rows: dict) -> str:
    """Markdown table of :func:`unseen_tar` rows."""
    lines = ["| masked probe (unseen masks) meets | " + " | ".join(f"TAR at FAR {f:.0e}" for f in MATCHED_FARS) + " |",
             "|---|" + "---|" * len(MATCHED_FARS)]
    lines += [f"| {name} | " + " | ".join(f"{v * 100:.1f}%" for v in r.values()) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def report(name: str, meta: dict, results: dict) -> None:
    """Write ``bench/results/<name>.json`` and print the lever table, each row's pooled FNIR at FPIR
    1e-2, the calibration (``meta["calibration"]``) and the matched-FAR table (``meta["matched_far"]``)."""
    write_results(name, meta, results, REPO)
    print(descriptors.table(results))
    print()
    for row, r in results.items():
        print(f"{row}: FNIR at FPIR 1e-2 over all folds' probes at once "
              f"{r['identification']['fnir_at_fpir_1e-2_pooled'] * 100:.1f}%")
    print()
    print(descriptors.calibration_table(meta["calibration"]))
    print()
    print(matched_table(meta["matched_far"]))
    print(f"\n{meta['seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0, help="the adapter measured in the lever rows")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="adapters trained with each seed for the matched-FAR table (how much a seed moves it)")
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    train, _ = split_embeddings("DevTrain")
    masked, unmasked, person = training_rows(train)
    fit = fit_adapter(masked, unmasked, person, hidden=args.hidden, steps=args.steps, seed=args.seed,
                      temperature=args.temperature)
    adapter = Adapter(fit.w1, fit.b1, fit.w2, fit.b2)
    print(json.dumps({k: round(v, 4) for k, v in fit.metrics.items() if k.startswith("val_")}))  # held-out DevTrain
    emb, pairs = split_embeddings("DevTest")
    probes_only = adapted(emb, adapter, ("mtf",))
    every_mask = adapted(emb, adapter)
    rows = {"SFace + mirror + gallery (the product)": (emb, {"gallery": True}),
            "SFace + mirror": (emb, {}),
            "+ adapter on masked probes": (every_mask, {}),
            "+ gallery + adapter on masked probes only": (probes_only, {"gallery": True}),
            "+ gallery + adapter on masked probes and templates": (every_mask, {"gallery": True})}
    results = {name: measure(e, pairs, kw) for name, (e, kw) in rows.items()}
    calib = {"SFace (the product)": descriptors.calibrate(emb, 0.0),
             "SFace + adapter on every masked face": descriptors.calibrate(every_mask, 0.0)}
    matched = {"photo + masked template (the product)": unseen_tar(emb),
               "photo only": unseen_tar(emb, gallery=False)}
    for seed in args.seeds:
        other = fit if seed == args.seed else fit_adapter(masked, unmasked, person, hidden=args.hidden,
                                                          steps=args.steps, seed=seed, temperature=args.temperature)
        every = adapted(emb, Adapter(other.w1, other.b1, other.w2, other.b2))
        matched[f"photo + masked template, adapter seed {seed}"] = unseen_tar(every)
        matched[f"photo only, adapter seed {seed}"] = unseen_tar(every, gallery=False)
    meta = {"seconds": round(time.time() - t0, 1), "training": {**vars(args), **fit.metrics,
            "rows": len(person), "people": len(set(person.tolist()))},
            "calibration": calib, "matched_far": matched, "provenance": provenance()}
    report("adapter-sface", meta, results)


if __name__ == "__main__":
    main()
