"""A second face descriptor beside FaceRes: dlib's ResNet (face-api's port), which weight (issue 3).

The two networks were trained on different data with different losses, so they err on different
faces. The product can describe every face with both and match it by
``(1 - w) * cos_FaceRes + w * cos_ResNet`` (``embed.join``: one index search over the joined
vectors). This benchmark measures that on LFW pairs for a grid of ``w``, with everything else as the
product does it: mirror TTA on both networks, the upper-face fusion of both networks for a face the
classifier calls masked, and a masked probe also compared with the gallery photo's synthetic-mask
template (maximum over templates).

It also chooses the ResNet's upper-face weight for masked faces (``EngineConfig.resnet_upper_weight``,
:data:`UPPER_WEIGHTS`) at the engine's ``w`` by the same :func:`merit`, and reports the best pair of
the whole grid (``chosen["joint"]``). The verification tables use the engine's upper-face weight.

* ``--split DevTrain`` (the choice): people never measured on; masked faces wear the product's own
  masks (probe: one rendering, gallery template: another).
* ``--split DevTest``: the same grid on the test people, with the product's masks and with the
  unseen MaskTheFace masks.

Sets: unmasked pairs, one side masked (gallery photo unmasked), both sides masked. Each with the
LFW protocol's accuracy over 10 folds, AUC and TAR at FAR 1e-2 / 1e-3; and the thresholds the
product would calibrate at FAR 1e-4 (``ablation.calibrate``, every cross-person pair of the split)
with the TAR they leave, which is what the weight is chosen by (:func:`merit`).

Usage: ``python bench/ensemble.py [--split DevTrain|DevTest]``; prints tables and writes
``bench/results/ensemble-<split>.json``. Shares the crops and FaceRes embeddings of
``bench/ablation.py`` (``--calibrate-split DevTrain`` for DevTrain); the ResNet embeddings are
cached beside them. First run about 30 minutes (DevTrain) or 15 (DevTest) on 2 idle cores.
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
sys.path.insert(0, str(REPO / "bench"))

import ablation  # noqa: E402
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.evaluation import stratified_folds, verification_metrics  # noqa: E402

WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0)
UPPER_WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.85, 1.0)


def pair_scores(emb: dict, engine, pairs, gallery_kind: str, probe_kind: str,
                flip: bool = True) -> list[np.ndarray | None]:
    """Per pair, the ``(FaceRes, ResNet)`` cosine of each template the product compares (a masked
    probe against an unmasked gallery photo: the photo and its synthetic-mask template), as an
    ``Nx2`` array; ``None`` where a photo has no face. ``flip``: mirror TTA on both networks (the
    ResNet's upper face never has it, as in the product)."""
    score = ablation.Scorer(emb, engine, None)
    cfg = engine.config
    fuse, cut, rn_up = cfg.upper_face_weight, cfg.upper_face_cut, cfg.resnet_upper_weight
    templates = [k for k in ("prod0", "prod1") if k != probe_kind][:1]
    out = []
    for a, b, _ in pairs:
        fa, fb = score.vec(gallery_kind, a, flip=flip), score.vec(probe_kind, b, flip=flip)
        ma = fa is not None and score.clf(fa[None])[0] >= 0.5
        mb = fb is not None and score.clf(fb[None])[0] >= 0.5
        ra = score.resnet(gallery_kind, a, flip, rn_up if ma else 0.0)
        rb = score.resnet(probe_kind, b, flip, rn_up if mb else 0.0)
        if fa is None or fb is None or ra is None or rb is None:
            out.append(None)
            continue
        va = score.fused(gallery_kind, a, flip, fuse, cut) if ma else fa
        vb = score.fused(probe_kind, b, flip, fuse, cut) if mb else fb
        rows = [(float(va @ vb), float(ra @ rb))]
        if mb and not ma:
            for kind in templates:
                v, r = score.fused(kind, a, flip, fuse, cut), score.resnet(kind, a, flip, rn_up)
                if v is not None and r is not None:
                    rows.append((float(v @ vb), float(r @ rb)))
        out.append(np.array(rows))
    return out


def grid(scored: list[np.ndarray | None], same: np.ndarray, folds: np.ndarray) -> dict:
    """Verification metrics of the joined score for every weight of :data:`WEIGHTS`."""
    res = {}
    for w in WEIGHTS:
        s = np.array([((1 - w) * t[:, 0] + w * t[:, 1]).max() if t is not None else -1.0 for t in scored])
        res[str(w)] = verification_metrics(s, same, folds)
    return res


def merit(cal: dict) -> float:
    """What a weight is chosen by: the mean of the unmasked and the (product-)masked TAR at the
    thresholds the product would calibrate (FAR 1e-4 over every cross-person pair of the split's
    photos: millions of impostor pairs, where the pairs' TAR at 1e-3 rests on about one)."""
    return float(np.mean([cal["1e-04"]["unmasked"]["tar"], cal["1e-04"]["masked"]["tar_product_masks"]]))


def calibration_table(cal: dict) -> str:
    """Markdown table of the FAR 1e-4 thresholds per weight and the TAR they leave."""
    lines = ["| ResNet weight | threshold unmasked | TAR | threshold masked | TAR, product masks | "
             "TAR, unseen masks | FAR, unseen masks |", "|---|---|---|---|---|---|---|"]
    for w, c in cal.items():
        u, m = c["1e-04"]["unmasked"], c["1e-04"]["masked"]
        lines.append(f"| {w} | {u['threshold']:.3f} | {u['tar'] * 100:.1f}% | {m['threshold']:.3f} | "
                     f"{m['tar_product_masks'] * 100:.1f}% | {m['tar_on_unseen_masks'] * 100:.1f}% | "
                     f"{m['far_on_unseen_masks']:.1e} |")
    return "\n".join(lines)


def table(results: dict, title: str) -> str:
    """Markdown table: one row per weight, per set accuracy ± spread / TAR 1e-2 / TAR 1e-3."""
    sets = list(results)
    head = "| ResNet weight | " + " | ".join(f"{s}: acc / AUC / TAR@1e-2 / TAR@1e-3" for s in sets) + " |"
    lines = [f"### {title}", "", head, "|---|" + "---|" * len(sets)]
    for w in results[sets[0]]:
        cells = [f"{m['accuracy'] * 100:.1f}% ± {m['accuracy_std'] * 100:.1f} / {m['auc']:.4f} / "
                 f"{m['tar_at_far_1e-2'] * 100:.1f}% / {m['tar_at_far_1e-3'] * 100:.1f}%"
                 for m in (results[s][w] for s in sets)]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("DevTrain", "DevTest"), default="DevTrain")
    args = ap.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: the ensemble benchmark needs ../shared/data")
    t0 = time.time()
    models = Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))
    # the grid needs the ResNet whatever the configured weight; the FaceRes parts are the product's
    engine = load_engine(models, EngineConfig().with_(resnet_weight=max(EngineConfig().resnet_weight, 0.5)))
    if args.split != "DevTest":
        ablation.WORK = REPO / "var" / "bench" / f"ablation-{args.split.lower()}-cut{ablation.FUSE_CUT}"
        ablation.UPPER_CUTS = (ablation.FUSE_CUT,)
    pairs = ablation.devtest_pairs(args.split)
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    emb = ablation.embed_variants(engine, ablation.prepare_crops(engine, keys))
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    masks = {"product masks": "prod0"} if args.split != "DevTest" else {
        "product masks": "prod0", "unseen MaskTheFace masks": "mtf"}
    results: dict = {}
    for mask_name, kind in masks.items():
        sets = {"unmasked": ("orig", "orig"), "one side masked": ("orig", kind), "both masked": (kind, kind)}
        for flip in (True, False):
            label = mask_name if flip else f"{mask_name}, no mirror TTA"
            results[label] = {name: grid(pair_scores(emb, engine, pairs, g, p, flip), same, folds)
                              for name, (g, p) in sets.items()}
            print(table(results[label], f"{args.split}, {label}"))
            print()
    # every (upper-face weight, w) pair: the masked TAR depends on both, the unmasked one on w alone
    joint = {str(u): {str(w): ablation.calibrate(emb, resnet_weight=w, resnet_upper=u) for w in WEIGHTS}
             for u in UPPER_WEIGHTS}
    best_u, best_w = max(((u, w) for u in joint for w in joint[u]), key=lambda uw: merit(joint[uw[0]][uw[1]]))
    w0, u0 = str(ablation.RESNET), str(ablation.RESNET_UPPER)  # the engine's
    calibration = {"mirror TTA": joint[u0], "no mirror TTA": {
        str(w): ablation.calibrate(emb, resnet_weight=w, resnet_upper=float(u0), flip=False) for w in WEIGHTS}}
    upper = {u: joint[u][w0] for u in joint}
    chosen = {label: float(max(cal, key=lambda w, cal=cal: merit(cal[w]))) for label, cal in calibration.items()}
    chosen["resnet upper weight"] = float(max(upper, key=lambda u: merit(upper[u])))
    chosen["joint"] = {"resnet_weight": float(best_w), "resnet_upper_weight": float(best_u),
                       "merit": merit(joint[best_u][best_w]), "merit_engine": merit(joint[u0][w0])}
    for label, cal in calibration.items():
        print(f"### {args.split}: thresholds at FAR 1e-4, {label} (ResNet upper-face weight {u0})\n")
        print(calibration_table(cal))
        print(f"\nchosen on {args.split}, {label}: w = {chosen[label]}\n")
    print(f"### {args.split}: the ResNet's upper-face weight for masked faces (w {w0}), FAR 1e-4\n")
    print(calibration_table(upper).replace("| ResNet weight |", "| ResNet upper-face weight |", 1))
    print(f"\nchosen on {args.split} at w {w0}: ResNet upper-face weight {chosen['resnet upper weight']}; "
          f"best pair: {chosen['joint']}\n")
    write_json(results_path(f"ensemble-{args.split}", REPO), {
        "split": args.split, "pairs": len(pairs), "images": len(keys), "seconds": round(time.time() - t0, 1),
        "chosen": chosen, "calibration": calibration, "upper": upper, "joint": joint, "provenance": provenance(),
        "results": results})


if __name__ == "__main__":
    main()
