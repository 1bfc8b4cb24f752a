"""Upper-face fusion for masked faces: which weight and cut (issue 3).

A face mask hides the lower face; the eyes, brows and forehead stay visible. The product embeds a
masked face twice, the whole aligned crop and the crop with every row below a *cut* (a fraction of
its height) filled with the mean colour, and matches it by ``normalise((1 - w) whole + w upper)``
(``Engine.embed_masked``; the synthetic-mask enrolment templates are made the same way).

The benchmark is open-set identification built from an LFW pairs file's photos: the gallery is the
first photo of each person of a "same" pair (its photographed template plus one template with the
product's own mask), the probes are their other photo wearing a mask, and the strangers are the
people found only in "different" pairs, also masked. For each (cut, w) the masked threshold is
re-calibrated as the product's is (FAR 1e-4 over every cross-person pair of the split's photos, a
product-masked probe against the photographed and masked templates), then rank-1, FNIR at FPIR 1e-2
and FPIR / FNIR at that threshold are reported.

* ``--split DevTrain`` (the choice): people never measured on, wearing the product's own masks only.
* ``--split DevTest``: the same grid on the test people, with the product's masks and with the
  unseen MaskTheFace masks (shares the crops and embeddings of ``bench/ablation.py``).

``--descriptor sface`` or ``arcface``: the same grid for a chip descriptor (its converted model, as
the engine runs it; the upper face cut from the aligned crop, then the network's chip), each weight's
masked threshold calibrated as above; writes ``fusion-<split>-<descriptor>.json``. Its embeddings are
cached beside the crops (``var/bench/ablation*/embeddings-<descriptor>-<settings digest>.pkl``).

Usage: ``python bench/fusion.py [--split DevTrain|DevTest] [--zoom] [--descriptor D]``; prints a
table and writes ``bench/results/fusion-<split>.json``. ``--zoom``: at the product's cut, one look at the
upper face, the look enlarged about the eye line, or both averaged (``fusion-zoom-<split>.json``). First run: about
30 minutes (DevTrain, 3,443 photos) or 15
(DevTest) on 2 idle cores; cached in ``var/bench``. ``--descriptor arcface``: 35 minutes (DevTrain) or
20 (DevTest) once the ablation's crops are cached (22 and 9 minutes to build them).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import ablation  # noqa: E402
from provenance import descriptor_suffix, provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.embed import ARCFACE_SIZE, fuse_upper, l2_normalise, upper_face  # noqa: E402
from recognition.engine.evaluation import identification_metrics, threshold_at_far  # noqa: E402

CUTS = (0.50, 0.56, 0.62)
WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# --zoom: the product's cut looked at once, enlarged by ZOOM about the eye line instead, or both
# averaged (a second look at the upper face; measured, not built into the engine)
ZOOM = 1.5
ZOOM_WEIGHTS = (0.0, 0.4, 0.5, 0.6, 0.7)


def zoom_uppers(cut: float, zoom: float = ZOOM) -> dict:
    """``grid``'s upper faces for ``--zoom``: one look at ``cut``, the enlarged look, both."""
    one, enlarged = ablation.upper_key(cut), ablation.upper_key(cut, zoom)
    return {f"{cut}": (one,), f"{cut}, enlarged {zoom}": (enlarged,), f"{cut} + enlarged {zoom}": (one, enlarged)}


def product_mask_embeddings(engine, keys, work: Path, cuts: tuple[float, ...] = CUTS) -> dict:
    """Whole/upper embeddings (with mirrors) of each photo and of two copies wearing the product's
    masks: ``{"orig"|"prod0"|"prod1": {"keys", "full", "full_f", "up<cut>", "up<cut>_f", ...}}``, the
    upper face at ``cuts`` and at ``ablation.UPPER_ZOOMS`` (cached; missing variants are added)."""
    path = ablation.cache_file(engine, "embeddings.pkl", folder=work)
    ablation.UPPER_CUTS = cuts
    if path.exists():
        emb = pickle.loads(path.read_bytes())
        wanted = [ablation.upper_key(c) for c in cuts] + [ablation.upper_key(*v) for v in ablation.UPPER_ZOOMS]
        if all(k in d for d in emb.values() for k in wanted):
            return emb
    crops = ablation.prepare_crops(engine, keys, unseen=False, cache=False)  # 3,443 photos: not pickled
    return ablation.embed_variants(engine, crops, kinds=("orig", "prod0", "prod1"), path=path)


def chip_matrices(engine, points: list) -> list | None:
    """The engine's chip matrix of each crop from its five points (``ablation.five_of``), as
    ``Face.chip_matrix`` is made; ``None`` when the engine cuts eye-only chips."""
    if engine.config.chip_alignment != "five_point":
        return None
    return [None if p is None else type(engine.chipnet).five_point_matrix(p) for p in points]


def mirror_matrix(matrix: np.ndarray | None, crop_width: int, chip_width: int = ARCFACE_SIZE) -> np.ndarray | None:
    """The matrix that cuts from the mirrored crop the mirror of the chip ``matrix`` cuts from the crop."""
    if matrix is None:
        return None
    flip_crop = np.array([[-1, 0, crop_width - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    flip_chip = np.array([[-1, 0, chip_width - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    return (flip_chip @ np.vstack([matrix, [0, 0, 1]]) @ flip_crop)[:2].astype(np.float32)


def chip_embeddings(engine, crops: dict, kinds: tuple[str, ...], path: Path) -> dict:
    """``product_mask_embeddings``'s layout for a chip descriptor (``engine.chipnet``: SFace, ArcFace):
    whole face and the upper face at each cut of ``CUTS``, each with its mirror (the aligned crop
    mirrored, as the ablation mirrors FaceRes's), per crop kind; cached in ``path``."""
    if path.exists():
        emb = pickle.loads(path.read_bytes())
        if all(kind in emb and all(f"up{c}" in emb[kind] for c in CUTS) for kind in kinds):
            return emb
    emb = {}
    for kind in kinds:
        keys = [k for k, r in crops.items() if r is not None and ablation.crop_of(r, kind) is not None]
        batch = np.stack([ablation.crop_of(crops[k], kind) for k in keys])
        # each crop's chip as the engine cuts it (Face.chip_matrix), and the same chip of the mirrored crop
        mats = chip_matrices(engine, [ablation.five_of(crops[k], kind) for k in keys])
        mirrored = None if mats is None else [mirror_matrix(m, batch.shape[2]) for m in mats]
        d = {"keys": keys, "full": engine.chipnet(batch, matrices=mats),
             "full_f": engine.chipnet(batch[:, :, ::-1], matrices=mirrored)}
        for cut in CUTS:
            up = upper_face(batch, cut)
            d[f"up{cut}"] = engine.chipnet(up, matrices=mats)
            d[f"up{cut}_f"] = engine.chipnet(up[:, :, ::-1], matrices=mirrored)
        emb[kind] = d
        print(f"  {engine.config.descriptor} {kind}: {len(keys)} faces", file=sys.stderr, flush=True)
    path.write_bytes(pickle.dumps(emb))
    return emb


def chip_split(engine, split: str, keys) -> tuple[dict, dict]:
    """A chip descriptor's embeddings of a split and the probe kinds to measure: the crops ``bench/ablation.py``
    caches (DevTrain: its ``--calibrate-split`` folder), MaskTheFace masks included; DevTrain is
    measured with the product's masks only, as the default's choice."""
    ablation.WORK = ablation.WORK if split == "DevTest" else ablation.split_work(split)
    crops = ablation.prepare_crops(engine, keys)
    kinds = ("orig", "prod0", "prod1") + (("mtf",) if split == "DevTest" else ())
    emb = chip_embeddings(engine, crops, kinds,
                          ablation.cache_file(engine, f"embeddings-{engine.config.descriptor}.pkl"))
    return emb, {"product masks": "prod0"} | ({"unseen MaskTheFace masks": "mtf"} if split == "DevTest" else {})


def grid(emb: dict, pairs, probe_kind: str, uppers: dict | None = None,
         weights: tuple[float, ...] = WEIGHTS) -> list[dict]:
    """Identification metrics for every (upper face, weight), probes wearing ``probe_kind`` masks.
    ``uppers``: label -> the upper-face embedding keys averaged into the upper face (default: each
    cut of ``CUTS``, labelled by the cut)."""
    uppers = uppers or {cut: (f"up{cut}",) for cut in CUTS}
    def vec(kind, part):
        d = emb[kind]
        return d["keys"], l2_normalise(d[part] + d[part + "_f"])

    keys = emb["orig"]["keys"]
    shared = set(keys) & set(emb["prod0"]["keys"]) & set(emb["prod1"]["keys"]) & set(emb[probe_kind]["keys"])
    keys = [k for k in keys if k in shared]

    def rows(kind, part):
        ks, v = vec(kind, part)
        pos = {k: i for i, k in enumerate(ks)}
        return v[[pos[k] for k in keys]]

    pos = {k: i for i, k in enumerate(keys)}
    gallery, probes = {}, []
    same_people = {a[0] for a, b, s in pairs if s}
    for a, b, s in pairs:
        if s and a[0] not in gallery and a in pos and b in pos:
            gallery[a[0]] = a
            probes.append(b)
    strangers = sorted({k for a, b, s in pairs if not s for k in (a, b) if k[0] not in same_people and k in pos})
    names = sorted(gallery)
    gi = np.array([pos[gallery[n]] for n in names])
    pi = np.array([pos[k] for k in probes] + [pos[k] for k in strangers])
    truth = [k[0] for k in probes] + [k[0] for k in strangers]
    known = np.array([True] * len(probes) + [False] * len(strangers))
    people = np.array([k[0] for k in keys])
    impostor = people[:, None] != people[None, :]
    photo = rows("orig", "full")
    out = []
    for cut, parts in uppers.items():
        for w in weights:
            if w == 0 and cut != next(iter(uppers)):
                continue

            def fused(kind, w=w, parts=parts):
                whole = rows(kind, "full")
                return whole if w == 0 else fuse_upper(whole, l2_normalise(sum(rows(kind, k) for k in parts)), w)

            p0, p1, probe = fused("prod0"), fused("prod1"), fused(probe_kind)
            calib = np.maximum(p0 @ photo.T, p0 @ p1.T)  # as bench/ablation.py calibrates the product's
            threshold = threshold_at_far(calib[impostor], 1e-4)
            scores = np.maximum(probe[pi] @ photo[gi].T, probe[pi] @ p1[gi].T)
            best = scores.argmax(1)
            m = identification_metrics([names[j] for j in best], scores[np.arange(len(pi)), best], truth, known,
                                       np.full(len(pi), threshold))
            out.append({"cut": None if w == 0 else cut, "weight": w, "threshold": threshold, **m,
                        "gallery": len(names), "strangers": len(strangers)})
    return out


def table(rows: list[dict], title: str) -> str:
    lines = [f"| {title}: cut | weight | masked threshold (FAR 1e-4) | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold "
             "| FNIR at threshold |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'-' if r['cut'] is None else r['cut']} | {r['weight']:.1f} | {r['threshold']:.3f} | "
                     f"{r['rank1'] * 100:.1f}% | {r['fnir_at_fpir_1e-2'] * 100:.1f}% | "
                     f"{r['fpir_at_threshold'] * 100:.1f}% | {r['fnir_at_threshold'] * 100:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("DevTrain", "DevTest"), default="DevTrain")
    ap.add_argument("--zoom", action="store_true",
                    help=f"at the product's weight grid and cut: one look at the upper face, the look enlarged "
                         f"{ZOOM} times about the eye line, or both (writes fusion-zoom-<split>.json)")
    ap.add_argument("--descriptor", choices=DESCRIPTORS, default=DESCRIPTORS[0],
                    help="default faceres+resnet; sface (the site's), arcface write fusion[...]-<descriptor>.json")
    args = ap.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: the fusion benchmark needs ../shared/data")
    if args.zoom and args.descriptor != "faceres+resnet":
        sys.exit("--zoom is measured for faceres+resnet only")
    t0 = time.time()
    config = EngineConfig.for_descriptor(args.descriptor)
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), config)
    pairs = ablation.devtest_pairs(args.split)
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    cut = engine.config.upper_face_cut
    if args.zoom:
        ablation.UPPER_ZOOMS = tuple(sorted(set(ablation.UPPER_ZOOMS) | {(cut, ZOOM)}))
    if engine.chipnet is not None:
        emb, probe_kinds = chip_split(engine, args.split, keys)
    elif args.split == "DevTest":  # the ablation's crops, MaskTheFace masks included
        ablation.UPPER_CUTS = tuple(sorted(set(ablation.UPPER_CUTS) | ({cut} if args.zoom else set(CUTS))))
        emb = ablation.embed_variants(engine, ablation.prepare_crops(engine, keys))
        probe_kinds = {"product masks": "prod0", "unseen MaskTheFace masks": "mtf"}
    else:
        work = REPO / "var" / "bench" / f"fusion-{args.split.lower()}"
        work.mkdir(parents=True, exist_ok=True)
        emb = product_mask_embeddings(engine, keys, work, (cut,) if args.zoom else CUTS)
        probe_kinds = {"product masks": "prod0"}
    if args.zoom:
        results = {name: grid(emb, pairs, kind, zoom_uppers(cut), ZOOM_WEIGHTS) for name, kind in probe_kinds.items()}
    else:
        results = {name: grid(emb, pairs, kind) for name, kind in probe_kinds.items()}
    for name, rows in results.items():
        print(table(rows, f"{args.split}, {name}"))
        print()
    suffix = descriptor_suffix(args.descriptor)
    cfg = engine.config
    write_json(results_path(f"fusion-{'zoom-' if args.zoom else ''}{args.split}{suffix}", REPO), {
        "split": args.split, "descriptor": args.descriptor, "seconds": round(time.time() - t0, 1),
        "product": {"weight": cfg.upper_face_weight, "cut": cfg.upper_face_cut}, "provenance": provenance(cfg),
        "results": results})


if __name__ == "__main__":
    main()
