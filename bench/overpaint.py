"""A masked probe made to wear the product's own mask, and cohort score normalisation (issue 3; measured, not built).

The site's gain and synthetic-mask templates were learned and drawn with the product's own masks,
while a probe at the kiosk wears a real one. Two ways to take the real mask's own look out of the
score, each on the site's matching (SFace on its five-point chip, mirror TTA, the shipped gain on
masked faces, the photo and four averaged renderings as the gallery; its row reproduces
``bench/featuremap.py``'s site row):

- **overpaint**: one of the product's masks, of a fixed style and colour (:data:`STYLES`), drawn
  over the probe's mask on its own FaceMesh landmarks, and matched against the enrolment photo
  wearing the same mask drawn the same way (same random stream): mask against an identical mask,
  so that what differs should be the face above it. Rows: each style against the photo and that
  template (``+ the site's``: the best of that and the site's scores), the styles' scores
  averaged, the probe's descriptor averaged with its overpainted ones (a test-time augmentation),
  the templates of all eight renderings averaged;
- **cohort normalisation** of a masked probe's scores from a cohort's statistics alone (its mean
  and covariance, :func:`cohort_normalise`; a site could store these without anyone's vectors):
  centred (``s - a * p . mean``) or T-normed (``(s - p . mean) / sqrt(p' C p)``). The cohort here is
  DevTest's own photos and templates, the most favourable cohort there is: an upper bound of what
  a cohort from other people (DevTrain) gives.

On LFW DevTest pairs (the ablation's pairs, folds and identification bench), the probes wearing
unseen MaskTheFace masks: one side masked accuracy ± its spread over folds and TAR at FAR 1e-2 and
1e-3, identification rank-1 and FNIR at FPIR 1e-2 per fold and pooled.

Usage: ``python bench/overpaint.py [--limit N]`` (about 35 minutes on 2 cores the first time, the
renderer drawing twelve masks an image; seconds once the vectors are cached in ``var/bench/overpaint``).
Prints the table and writes ``bench/results/overpaint.json``. Needs ``onnxruntime`` and ``../shared/data``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
import descriptors  # noqa: E402
import featuremap  # noqa: E402
from provenance import provenance, write_results  # noqa: E402

from recognition.engine import load_engine  # noqa: E402
from recognition.engine.embed import l2_normalise  # noqa: E402
from recognition.engine.evaluation import stratified_folds, verification_metrics  # noqa: E402
from recognition.engine.masks import load_templates, render_mask  # noqa: E402

GAIN = REPO / "recognition" / "engine" / "assets" / "sface_gain-v1.npz"
WORK = REPO / "var" / "bench" / "overpaint"
# (style, colour) of the masks drawn over a probe's mask and on the enrolment photo: the renderer's
# most common shapes, the N95 cup covering the most of the nose
STYLES = (("surgical", "blue"), ("kn95", "white"), ("cloth", "black"), ("n95", "white"))
RENDERINGS = 4   # the site's synthetic-mask template averages four renderings
KINDS = ("orig", "mtf") + tuple(f"prod{i}" for i in range(RENDERINGS)) \
    + tuple(f"origo{i}" for i in range(len(STYLES))) + tuple(f"mtfo{i}" for i in range(len(STYLES)))
VARIANTS = ("plain", "plain_m", "gained", "gained_m")   # without / with the gain, without / with the mirror

Scorer = Callable[[np.ndarray, np.ndarray, bool], np.ndarray]


def overpainted(rec: dict, masked_points: np.ndarray | None, photo_points: np.ndarray | None) -> dict:
    """``{kind: (crop, five points)}`` of one image: the ablation's crops (``orig``, ``mtf``,
    ``prod0``...) and, for each of :data:`STYLES`, the photo wearing it (``origo<i>``) and the
    unseen-mask crop with it drawn over its mask (``mtfo<i>``), both from the same random stream."""
    out = {"orig": (rec["orig"], rec.get("five"))}
    if "mtf" in rec:
        out["mtf"] = (rec["mtf"], rec.get("mtf_five"))
    out.update({f"prod{i}": (p, rec.get("five")) for i, p in enumerate(rec.get("prod", []))})
    for i, (style, color) in enumerate(STYLES):
        if photo_points is not None:
            out[f"origo{i}"] = (render_mask(rec["orig"], photo_points, np.random.default_rng(100 + i), style, color),
                                rec.get("five"))
        if masked_points is not None:
            out[f"mtfo{i}"] = (render_mask(rec["mtf"], masked_points, np.random.default_rng(100 + i), style, color),
                               rec.get("mtf_five"))
    return out


def build(engine, net: featuremap.SFaceMaps, gain: tuple[np.ndarray, np.ndarray], keys: list,
          batch: int = 128) -> dict:
    """``{(kind, variant): (keys, vectors)}`` of :data:`KINDS` x :data:`VARIANTS` for ``keys`` (the
    ablation's sorted pair photos, whose random streams :func:`ablation.image_crops` reproduces)."""
    templates = load_templates(ablation.SHARED / "masks")
    found: dict = {k: ([], [], []) for k in KINDS}   # keys, crops, five points waiting for the network
    out: dict = {(k, v): ([], []) for k in KINDS for v in VARIANTS}
    mean, g = gain

    def flush() -> None:
        for kind, (ks, crops, fives) in found.items():
            if not ks:
                continue
            chips = descriptors.chips(np.stack(crops), descriptors.chip_matrices(descriptors.SFace, fives), 112)
            _, m = net.maps(chips)
            _, mm = net.maps(np.ascontiguousarray(chips[:, :, ::-1]))
            for name, f in (("plain", lambda x: x), ("gained", featuremap.gained(g, mean))):
                v, vm = net.head(f(m)), net.head(f(mm))
                for variant, vec in ((name, v), (f"{name}_m", l2_normalise(v + vm))):
                    out[kind, variant][0].extend(ks)
                    out[kind, variant][1].append(vec)
            found[kind] = ([], [], [])

    t0 = time.time()
    for k, (name, num) in enumerate(keys):
        rec, photo_points, masked_points = ablation.image_crops(
            engine, ablation.read_image(name, num), ablation.image_rng(k), templates, renderings=RENDERINGS)
        if rec is None:
            continue
        for kind, (crop, five) in overpainted(rec, masked_points, photo_points).items():
            found[kind][0].append((name, num))
            found[kind][1].append(crop)
            found[kind][2].append(five)
        if len(found["orig"][0]) >= batch:
            flush()
            print(f"  {k + 1}/{len(keys)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    flush()
    return {kv: (ks, np.concatenate(vs) if vs else np.zeros((0, 128), np.float32)) for kv, (ks, vs) in out.items()}


def cohort_normalise(scores: np.ndarray, probes: np.ndarray, mean: np.ndarray, cov: np.ndarray | None,
                     alpha: float = 1.0) -> np.ndarray:
    """Masked probes' scores normalised by a cohort's statistics alone: ``scores - alpha * p . mean``
    (``cov`` None: centred), or T-normed, ``(scores - p . mean) / sqrt(p' cov p)`` -- the mean and
    standard deviation of the probe's scores against every cohort vector, from the cohort's mean and
    (biased) covariance. ``scores``: one per probe (``N``) or probes x gallery (``NxG``); ``probes``:
    ``NxD``."""
    mu = probes @ mean
    if cov is None:
        shift, scale = alpha * mu, np.ones_like(mu)
    else:
        shift, scale = mu, np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", probes, cov, probes), 1e-12))
    if scores.ndim == 2:
        shift, scale = shift[:, None], scale[:, None]
    return (scores - shift) / scale


class Vectors:
    """The built vectors as ``(kind, variant) -> KxD`` matrices on the pair photos' sorted keys (NaN rows
    where a photo has no such crop)."""

    def __init__(self, built: dict, keys: list) -> None:
        self.keys = keys
        index = {k: i for i, k in enumerate(keys)}
        self.m: dict = {}
        for (kind, variant), (ks, vs) in built.items():
            a = np.full((len(keys), vs.shape[1] if vs.ndim == 2 else 128), np.nan, np.float32)
            if len(ks):
                a[[index[tuple(k)] for k in ks]] = vs
            self.m[kind, variant] = a

    def __getitem__(self, kv: tuple[str, str]) -> np.ndarray:
        return self.m[kv]

    def mean_of(self, kinds: list[str], variant: str) -> np.ndarray:
        """The normalised mean of several kinds' vectors (NaN where any is missing)."""
        return l2_normalise(sum(self.m[k, variant] for k in kinds))


def cosine(a: np.ndarray, b: np.ndarray) -> Scorer:
    """Scores of enrolled rows of ``a`` and probe rows of ``b``: pair by pair, or probes x gallery."""
    return lambda ga, pb, pairwise: np.einsum("ij,ij->i", a[ga], b[pb]) if pairwise else b[pb] @ a[ga].T


def best(*scorers: Scorer) -> Scorer:
    """The best of several scores (a missing one ignored)."""
    return lambda ga, pb, pw: np.fmax.reduce(np.stack([s(ga, pb, pw) for s in scorers]), axis=0)


def averaged(*scorers: Scorer) -> Scorer:
    """The mean of several scores (a missing one ignored)."""
    def score(ga: np.ndarray, pb: np.ndarray, pw: bool) -> np.ndarray:
        s = np.stack([f(ga, pb, pw) for f in scorers])
        n = (~np.isnan(s)).sum(0)
        return np.where(n > 0, np.nansum(s, 0) / np.maximum(n, 1), np.nan)
    return score


def rows(v: Vectors) -> dict[str, Scorer]:
    """Each row's scorer of a masked probe (``a`` enrolled, ``b`` the probe), every vector with the
    mirror TTA as the site matches."""
    m = "_m"
    photo, probe = v["orig", "plain" + m], v["mtf", "gained" + m]
    prods = [f"prod{i}" for i in range(RENDERINGS)]
    template = v.mean_of(prods, "gained" + m)
    site = best(cosine(photo, probe), cosine(template, probe))
    out = {"the site (photo, four renderings averaged, gain)": site,
           "the site without the gain": best(cosine(photo, v["mtf", "plain" + m]),
                                             cosine(v.mean_of(prods, "plain" + m), v["mtf", "plain" + m])),
           "the photo alone (gain)": cosine(photo, probe)}
    styles = []
    for i, (style, color) in enumerate(STYLES):
        op, tp = v[f"mtfo{i}", "gained" + m], v[f"origo{i}", "gained" + m]
        styles.append(cosine(tp, op))
        own = best(cosine(photo, op), cosine(tp, op))
        out[f"overpaint {style} {color}: photo and the same mask's template"] = own
        out[f"overpaint {style} {color}: + the site's"] = best(own, site)
        out[f"overpaint {style} {color}: without the gain"] = best(
            cosine(photo, v[f"mtfo{i}", "plain" + m]), cosine(v[f"origo{i}", "plain" + m], v[f"mtfo{i}", "plain" + m]))
    out["overpaint: the four masks' scores averaged, + the photo"] = best(averaged(*styles), cosine(photo, probe))
    out["overpaint: the four masks' scores averaged, + the site's"] = best(averaged(*styles), site)
    tta = l2_normalise(probe + sum(np.nan_to_num(v[f"mtfo{i}", "gained" + m]) for i in range(len(STYLES))))
    out["overpaint as TTA: the probe averaged with its four overpaints, the site's gallery"] = best(
        cosine(photo, tta), cosine(template, tta))
    eight = l2_normalise(sum(v[k, "gained" + m] for k in prods + [f"origo{i}" for i in range(len(STYLES))]))
    out["templates: eight renderings averaged (four drawn at random, four styles)"] = best(
        cosine(photo, probe), cosine(eight, probe))
    # cohort normalisation: DevTest's own photos and templates (the most favourable cohort)
    cohort = {name: (a[~np.isnan(a[:, 0])].mean(0), np.cov(a[~np.isnan(a[:, 0])].T, bias=True))
              for name, a in (("photo", photo), ("template", template))}

    def normalised(alpha: float, tnorm: bool, shared: bool = False) -> Scorer:
        def score(ga: np.ndarray, pb: np.ndarray, pw: bool) -> np.ndarray:
            p = probe[pb]
            if shared:   # the site's best score less one mean, the photos' and templates' averaged
                mean = (cohort["photo"][0] + cohort["template"][0]) / 2
                return cohort_normalise(site(ga, pb, pw), p, mean, None, alpha)
            parts = [cohort_normalise(cosine(a, probe)(ga, pb, pw), p, cohort[name][0],
                                      cohort[name][1] if tnorm else None, alpha)
                     for name, a in (("photo", photo), ("template", template))]
            return np.fmax(*parts)
        return score

    for alpha in (0.5, 1.0):
        out[f"cohort (DevTest's own): centred, {alpha:g} x the mean"] = normalised(alpha, False)
    out["cohort (DevTest's own): the best score less one shared mean"] = normalised(1.0, False, True)
    out["cohort (DevTest's own): T-norm"] = normalised(1.0, True)
    return out


def measure(v: Vectors, scorer: Scorer) -> dict:
    """One side masked verification and the identification column of one row."""
    pairs = ablation.devtest_pairs("DevTest")
    index = {k: i for i, k in enumerate(v.keys)}
    same = np.array([p[2] for p in pairs])
    a, b = np.array([index[p[0]] for p in pairs]), np.array([index[p[1]] for p in pairs])
    ver = verification_metrics(np.nan_to_num(scorer(a, b, True), nan=-9.0), same, stratified_folds(list(same)))
    gallery, probes = ablation.identification_sets(v.keys)
    g = np.array([index[gallery[n]] for n in sorted(gallery)])
    p = np.array([index[k] for k, _ in probes])
    ident = ablation.identification(None, v.keys, {}, scores=np.nan_to_num(scorer(g, p, False), nan=-9.0))
    return {"one side masked": ver, "identification": ident}


def table(results: dict) -> str:
    """The rows as a Markdown table."""
    lines = ["| row | one side masked: accuracy | TAR@FAR1e-2 | TAR@FAR1e-3 | rank-1 | FNIR@FPIR1e-2 per fold "
             "| pooled |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ver, ident = r["one side masked"], r["identification"]
        lines.append(f"| {name} | {ver['accuracy'] * 100:.1f}% ± {ver['accuracy_std'] * 100:.1f} | "
                     f"{ver['tar_at_far_1e-2'] * 100:.1f}% | {ver['tar_at_far_1e-3'] * 100:.1f}% | "
                     f"{ident['rank1'] * 100:.1f}% | {ident['fnir_at_fpir_1e-2'] * 100:.1f}% ± "
                     f"{ident['fnir_at_fpir_1e-2_std'] * 100:.1f} | {ident['fnir_at_fpir_1e-2_pooled'] * 100:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="the first N pair photos only (a quick check)")
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), descriptors.CFG)
    net = featuremap.SFaceMaps(descriptors.fetch(descriptors.WHEELS["sface"]))
    with np.load(GAIN) as z:
        gain = z["mean"].astype(np.float32), z["gain"].astype(np.float32)
    pairs = ablation.devtest_pairs("DevTest")
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    path = ablation.cache_file(engine, "vectors.npz", descriptors.WHEELS["sface"].sha256, STYLES, RENDERINGS,
                               hashlib.sha256(GAIN.read_bytes()).hexdigest(), args.limit, folder=WORK)
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            built = {(k, v): ([tuple(x) for x in z[f"{k}.{v}.keys"]], z[f"{k}.{v}"]) for k in KINDS for v in VARIANTS}
    else:
        built = build(engine, net, gain, keys[:args.limit] if args.limit else keys)
        WORK.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f"{k}.{v}.keys": np.array(ks, dtype=object) for (k, v), (ks, _) in built.items()},
                 **{f"{k}.{v}": vs for (k, v), (_, vs) in built.items()})
    vectors = Vectors(built, keys)
    results = {name: measure(vectors, scorer) for name, scorer in rows(vectors).items()}
    meta = {"seconds": round(time.time() - t0, 1), "styles": STYLES, "limit": args.limit,
            "provenance": provenance()}
    write_results("overpaint", meta, results)
    print(table(results))
    print(f"\n{meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
