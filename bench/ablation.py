"""Mask-robustness ablation on LFW DevTest pairs (issue 3): each lever on and off.

Stages (cached in ``var/bench/ablation``, under names keyed by the engine's settings and models:
:func:`cache_file`):
1. for every image of ``pairsDevTest.txt``: the aligned crop of the photo, two crops with the
   product's own masks (gallery augmentation), and the photo with a MaskTheFace template
   (masks the product never saw) found again by the detector;
2. FaceRes embeddings of each crop: whole face and upper face (lower part filled with the mean
   colour), each with its mirror; and dlib's ResNet descriptor of it (``rn``: with the mirror, as the
   product joins it; ``rn1``: without; ``rnup``: of the upper face at the product's cut, without the
   mirror, as the product fuses it into a masked face's ResNet part);
3. verification (LFW protocol, 10 folds of 100 pairs) on unmasked, one-side-masked and
   both-masked pairs for each combination of levers; threshold calibration at FAR 1e-3 and 1e-4
   on all cross-person pairs;
4. open-set identification of the same images for each combination (:func:`identification`):
   gallery, each person's first photo unmasked; probes, their other photos wearing the unseen
   MaskTheFace masks; ten folds of people: in fold k, fold k's people are left out of the gallery
   and their probes are the strangers, and fold k+1's are the enrolled probes measured, so that
   each probe is measured once as enrolled and once as a stranger, in no two folds alike: rank-1
   and FNIR at FPIR 1e-2 per fold, mean ± std over the folds.

``python bench/ablation.py --identification`` recomputes only stage 4 from the cached embeddings
and updates ``bench/results/ablation.json``.

Usage: ``python bench/ablation.py`` (about 40 minutes on 2 idle cores the first time);
``python bench/ablation.py --calibrate-split DevTrain`` repeats only the threshold calibration on
DevTrain pairs (about 20 minutes), to check that thresholds fitted on DevTest do not flatter it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provenance import provenance, results_path, settings_digest, write_json, write_results  # noqa: E402  (bench/ is on sys.path)

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.adapter import DEFAULT_PATH as ADAPTER_PATH  # noqa: E402
from recognition.engine.adapter import Adapter  # noqa: E402
from recognition.engine.align import transform_points  # noqa: E402
from recognition.engine.embed import fuse_upper, join, l2_normalise, preprocess, upper_face  # noqa: E402
from recognition.engine.evaluation import (  # noqa: E402
    identification_metrics,
    stratified_folds,
    threshold_at_far,
    verification_metrics,
)
from recognition.engine.landmarks import five_points  # noqa: E402
from recognition.engine.masks import choose_template, load_templates, render_mask, transform_landmarks, warp_template  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
WORK = REPO / "var" / "bench" / "ablation"
# the product's upper-face fusion (a masked face is matched by normalise((1 - w) whole + w upper))
FUSE, FUSE_CUT = EngineConfig().upper_face_weight, EngineConfig().upper_face_cut
# the product's second descriptor (dlib's ResNet), its weight in the joined score and its upper-face
# fusion for masked faces (bench/ensemble.py)
RESNET, RESNET_UPPER = EngineConfig().resnet_weight, EngineConfig().resnet_upper_weight
UPPER_CUTS = tuple(sorted({0.56, 0.62, FUSE_CUT}))  # fraction of the crop's height below which the face is hidden
# (cut, zoom) of upper crops enlarged about the eye line, embedded too (``upper_key``; bench/fusion.py --zoom)
UPPER_ZOOMS: tuple[tuple[float, float], ...] = ()


def upper_key(cut: float, zoom: float = 1.0) -> str:
    """Key of the upper-face embeddings at ``cut`` (enlarged by ``zoom`` about the eye line if > 1)."""
    return f"up{cut}" if zoom <= 1 else f"up{cut}z{zoom}"


def split_work(split: str) -> Path:
    """Cache folder of another split's crops (``--calibrate-split``; whole faces and the product's cut)."""
    return REPO / "var" / "bench" / f"ablation-{split.lower()}-cut{FUSE_CUT}"


def crop_of(rec: dict, kind: str) -> np.ndarray | None:
    """The crop of one image for a kind (``orig``, ``mtf``, ``prod0``, ``prod1``...; ``None`` when the
    photo has no such rendering)."""
    if kind.startswith("prod"):
        i = int(kind[4:])
        return rec["prod"][i] if "prod" in rec and i < len(rec["prod"]) else None
    return rec.get(kind)


def five_of(rec: dict, kind: str) -> np.ndarray | None:
    """The five points (pixels of the crop) that a chip descriptor's five-point chip of ``kind``'s crop
    is cut on, as the engine's ``Face.chip_matrix``: the masked photo's own landmarks for ``mtf``; the
    photo's for ``orig`` and its synthetic masks (drawn on its crop); ``None`` without landmarks."""
    return rec.get("mtf_five") if kind == "mtf" else rec.get("five")


def devtest_pairs(split: str = "DevTest") -> list[tuple[tuple[str, int], tuple[str, int], bool]]:
    """The pairs of ``pairs<split>.txt`` as ``((name, number), (name, number), same)``."""
    rows = [ln.split() for ln in (SHARED / "lfw" / f"pairs{split}.txt").read_text().splitlines()[1:] if ln.strip()]
    return [((r[0], int(r[1])), (r[0], int(r[2])), True) if len(r) == 3 else
            ((r[0], int(r[1])), (r[2], int(r[3])), False) for r in rows]


# the settings that only decide on vectors already made: crops and the networks' raw outputs do not
# follow them, so a recalibrated threshold or the masked-face gain keeps these caches (40 min to rebuild)
DECIDING = {"threshold_unmasked": 0.0, "threshold_masked": 0.0, "masked_gain": False}


def cache_file(engine, name: str, *extra: object, folder: Path | None = None) -> Path:
    """``<folder or WORK>/<name>`` with a digest of the engine's settings (but :data:`DECIDING`), its
    models and ``extra`` in the name: crops or embeddings made under other settings or models are never
    replayed."""
    stem, _, ext = name.partition(".")
    return (folder or WORK) / f"{stem}-{settings_digest(engine.config.with_(**DECIDING), *extra)}.{ext}"


def image_crops(engine, img: np.ndarray, rng: np.random.Generator, templates: list, unseen: bool = True,
                renderings: int = 2) -> tuple[dict | None, np.ndarray | None, np.ndarray | None]:
    """One image's record of :func:`prepare_crops` (``None`` when no face is found), and the photo's
    and the masked photo's FaceMesh landmarks in their crops' pixels (``transform_landmarks``; the
    masked one's are the photo's where the detector lost the masked face; ``None`` without landmarks
    or ``unseen``). ``rng`` is drawn in the same order whatever ``renderings`` is: two product masks,
    the unseen mask, the rest. The record's ``mtf_mask`` names the unseen mask's type (its template's
    ``base``)."""
    try:
        face = engine.analyze(img, max_faces=3, embed=False)[0]
    except NoFaceFound:
        return None, None, None
    rec = {"orig": face.aligned}
    pts = masked_points = None
    if face.landmarks is not None:
        pts = transform_landmarks(face.landmarks, face.align_matrix)
        rec["prod"] = [render_mask(face.aligned, pts, rng) for _ in range(2)]
        rec["five"] = transform_points(five_points(face.landmarks), face.align_matrix)
    if face.landmarks is not None and unseen:
        template = choose_template(templates, face.landmarks, rng)   # as masks.apply_mask draws it
        masked = warp_template(img, face.landmarks, template)
        rec["mtf_mask"] = template.base
        try:
            seen = engine.analyze(masked, max_faces=3, embed=False)[0]
            rec["mtf"] = seen.aligned
            if seen.landmarks is not None:
                rec["mtf_five"] = transform_points(five_points(seen.landmarks), seen.align_matrix)
                masked_points = transform_landmarks(seen.landmarks, seen.align_matrix)
        except NoFaceFound:  # the detector lost the masked face: keep the unmasked alignment
            rec["mtf"] = cv2.warpAffine(masked, face.align_matrix, (224, 224))
            rec["mtf_five"] = rec["five"]
            rec["mtf_lost"] = True
            masked_points = pts
    if face.landmarks is not None and renderings > 2:
        rec["prod"] += [render_mask(face.aligned, pts, rng) for _ in range(renderings - 2)]
    return rec, pts, masked_points


def image_rng(index: int) -> np.random.Generator:
    """The random stream of the ``index``-th image (in sorted key order) of :func:`prepare_crops`."""
    return np.random.default_rng([index, 7])


def read_image(name: str, num: int) -> np.ndarray:
    """An LFW photo (deep-funneled), BGR."""
    return cv2.imread(str(SHARED / "lfw" / "images_deepfunneled" / name / f"{name}_{num:04d}.jpg"))


def prepare_crops(engine, keys, unseen: bool = True, cache: bool = True, renderings: int = 2) -> dict:
    """Stage 1: aligned crops per image (cached unless ``cache`` is false). ``unseen``: also the photo
    wearing a MaskTheFace template (``"mtf"``); without it only the product's own masks. ``renderings``:
    how many of the product's masks each photo wears (``prod0``...; the product averages four into a
    template); those past the second are drawn after the unseen mask, so the first two and the unseen
    mask are the same whatever the count (:func:`image_crops`)."""
    path = cache_file(engine, "crops.pkl", unseen, *((("renderings", renderings),) if renderings != 2 else ()))
    if cache and path.exists():
        return pickle.loads(path.read_bytes())
    templates = load_templates(SHARED / "masks") if unseen else []
    out: dict = {}
    for k, (name, num) in enumerate(keys):
        out[(name, num)] = image_crops(engine, read_image(name, num), image_rng(k), templates, unseen, renderings)[0]
        if k % 100 == 0:
            print(f"  crops {k}/{len(keys)}", file=sys.stderr, flush=True)
    if cache:
        WORK.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out))
    return out


def embed_variants(engine, crops: dict, kinds: tuple[str, ...] = ("orig", "mtf", "prod0", "prod1"),
                   path: Path | None = None) -> dict:
    """Stage 2: whole/upper-face embeddings with mirrors, per crop kind (cached in ``path``; a cut
    missing from the cache is added to it)."""
    path = path or cache_file(engine, "embeddings.pkl")
    out = pickle.loads(path.read_bytes()) if path.exists() else {}
    variants = [(cut, 1.0) for cut in UPPER_CUTS] + list(UPPER_ZOOMS)
    if out and all(upper_key(*v) in d for d in out.values() for v in variants) and (
            engine.resnet is None or all("rnup" in d for d in out.values())):
        return out
    serve = engine.embedder._serve

    def emb(batch):
        return l2_normalise(np.concatenate([serve(preprocess(batch[i:i + 32]))["embedding"]
                                            for i in range(0, len(batch), 32)]))

    for kind in kinds:
        keys, batch = [], []
        for key, rec in crops.items():
            if rec is None:
                continue
            c = crop_of(rec, kind)
            if c is not None:
                keys.append(key)
                batch.append(c)
        batch = np.stack(batch)
        d = out.get(kind) or {"keys": keys, "full": emb(batch), "full_f": emb(batch[:, :, ::-1])}
        if "rn1" not in d and engine.resnet is not None:  # the ResNet descriptor, with and without the mirror
            d["rn"], d["rn1"] = engine.resnet(batch, flip=True), engine.resnet(batch, flip=False)
        if "rnup" not in d and engine.resnet is not None:  # and of the upper face, as the product fuses it
            d["rnup"] = engine.resnet(upper_face(batch, FUSE_CUT), flip=False)
        for cut, zoom in (v for v in variants if upper_key(*v) not in d):
            up, key = upper_face(batch, cut, zoom, EngineConfig().eye_y), upper_key(cut, zoom)
            d[key], d[f"{key}_f"] = emb(up), emb(up[:, :, ::-1])
        out[kind] = d
        print(f"  embedded {kind}", file=sys.stderr, flush=True)
    path.write_bytes(pickle.dumps(out))
    return out


class Scorer:
    """Verification score of a pair under a set of levers."""

    def __init__(self, emb: dict, engine, adapter: Adapter | None) -> None:
        self.emb, self.clf, self.adapter = emb, engine.mask_classifier, adapter
        self.idx = {kind: {k: i for i, k in enumerate(d["keys"])} for kind, d in emb.items()}
        self._masked: dict = {}

    def masked(self, kind, key, v) -> bool:
        """The classifier's call on a face (``v``: its mirrored whole-face vector), once per face."""
        if (kind, key) not in self._masked:
            self._masked[(kind, key)] = bool(self.clf(v[None])[0] >= 0.5)
        return self._masked[(kind, key)]

    def vec(self, kind, key, part="full", flip=True):
        i = self.idx[kind].get(key)
        if i is None:
            return None
        d = self.emb[kind]
        return l2_normalise(d[part][i] + d[part + "_f"][i]) if flip else d[part][i]

    def fused(self, kind, key, flip=True, fuse=0.0, cut=0.56):
        """A masked face's matching vector: whole face fused with the upper face (``Engine.embed_masked``)."""
        v = self.vec(kind, key, flip=flip)
        if v is None or not fuse:
            return v
        return fuse_upper(v, self.vec(kind, key, f"up{cut}", flip), fuse)

    def resnet(self, kind, key, flip=True, upper=0.0):
        """The ResNet descriptor (with its mirror if ``flip``), fused with the upper face's by
        ``upper`` (the product does so for a masked face: ``EngineConfig.resnet_upper_weight``)."""
        r = self.vec(kind, key, "rn" if flip else "rn1", False)
        if r is None or not upper:
            return r
        return fuse_upper(r, self.vec(kind, key, "rnup", False), upper)

    def __call__(self, a, b, akind, bkind, flip=True, aug=False, upper=0.0, cut=0.56, adapter=False, fuse=0.0,
                 resnet=0.0, resnet_upper=0.0):
        fa, fb = self.vec(akind, a, flip=flip), self.vec(bkind, b, flip=flip)
        if fa is None or fb is None:
            return -1.0

        ma = self.masked(akind, a, fa) if flip else bool(self.clf(fa[None])[0] >= 0.5)
        mb = self.masked(bkind, b, fb) if flip else bool(self.clf(fb[None])[0] >= 0.5)

        def joined(s: float, kind: str, key) -> float:  # embed.join: (1 - w) cos_FaceRes + w cos_ResNet
            if not resnet:
                return s
            gallery_masked = ma if kind == akind else True  # a synthetic-mask template is a masked face
            ra = self.resnet(kind, key, flip, resnet_upper if gallery_masked else 0.0)
            return (1 - resnet) * s + resnet * float(ra @ self.resnet(bkind, b, flip, resnet_upper if mb else 0.0))

        if fuse:  # the classifier reads the whole face; a masked face is then matched by the fusion
            fa = self.fused(akind, a, flip, fuse, cut) if ma else fa
            fb = self.fused(bkind, b, flip, fuse, cut) if mb else fb
        probe = fb  # synthetic-mask templates are matched without the adapter
        if adapter and self.adapter is not None:
            fa = self.adapter(fa) if ma else fa
            fb = self.adapter(fb) if mb else fb
        s = joined(float(fa @ fb), akind, a)
        if aug and mb and not ma:  # masked probe vs unmasked enrolment: also its synthetic-mask templates
            for kind in ("prod0", "prod1"):
                v = self.fused(kind, a, flip, fuse, cut)
                if v is not None:
                    s = max(s, joined(float(v @ probe), kind, a))
        if upper > 0 and (ma or mb):
            s = (1 - upper) * s + upper * float(self.vec(akind, a, f"up{cut}", flip) @
                                                self.vec(bkind, b, f"up{cut}", flip))
        return s


LEVERS = [
    ("plain (no mirror)", {"flip": False}),
    ("+ mirror TTA", {}),
    ("+ mirror + synthetic-mask gallery", {"aug": True}),
    ("+ mirror + upper-face fusion 0.3", {"upper": 0.3}),
    ("+ mirror + upper-face fusion 0.5 (cut 0.62)", {"upper": 0.5, "cut": 0.62}),
    ("+ mirror + gallery + upper 0.3", {"aug": True, "upper": 0.3}),
    ("+ mirror + upper-face embedding fusion", {"fuse": FUSE, "cut": FUSE_CUT}),
    ("+ mirror + gallery + upper-face embedding fusion", {"aug": True, "fuse": FUSE, "cut": FUSE_CUT}),
    ("+ mirror + gallery + upper-face fusion + ResNet descriptor",
     {"aug": True, "fuse": FUSE, "cut": FUSE_CUT, "resnet": RESNET}),
    ("+ mirror + gallery + upper-face fusion + ResNet descriptor with its upper face (the product)",
     {"aug": True, "fuse": FUSE, "cut": FUSE_CUT, "resnet": RESNET, "resnet_upper": RESNET_UPPER}),
    ("+ mirror + adapter", {"adapter": True}),
    ("+ mirror + adapter + gallery + upper 0.3", {"adapter": True, "aug": True, "upper": 0.3}),
]
SETS = {"unmasked": ("orig", "orig"), "one side masked": ("orig", "mtf"), "both masked": ("mtf", "mtf")}


def identification_sets(keys, enrolled: int = 1) -> tuple[dict, list[tuple[tuple[str, int], str]]]:
    """Gallery (each person with two photos or more: the first, unmasked) and probes (their other
    photos, and every one-photo person's photo, to be worn with unseen masks): ``(gallery, probes)``
    with ``gallery`` = ``{person: key}`` and ``probes`` = ``[(key, person)]``. ``enrolled`` = n: people
    with more than n photos are enrolled from their first n (``gallery`` still names the first; the
    caller reads the others from ``keys``), their other photos the probes; people with n photos or
    fewer are strangers only, every photo a probe."""
    people: dict[str, list] = {}
    for key in sorted(keys):
        people.setdefault(key[0], []).append(key)
    gallery = {p: ks[0] for p, ks in people.items() if len(ks) > enrolled}
    probes = [(k, p) for p, ks in people.items() for k in (ks[enrolled:] if len(ks) > enrolled else ks)]
    return gallery, probes


def person_folds(probes: list, n_folds: int = 10) -> dict[str, int]:
    """Each probe person's fold in :func:`identification` (a fixed draw, seed 0): ``probes`` are
    :func:`identification_sets`' ``(key, person)`` pairs."""
    everyone = sorted({p for _, p in probes})
    return {p: i % n_folds for i, p in enumerate(np.random.default_rng(0).permutation(everyone))}


def identification(score: Scorer | None, keys, kw: dict, n_folds: int = 10,
                   scores: np.ndarray | None = None, margin: float = 0.0, enrolled: int = 1) -> dict:
    """Open-set identification under the levers ``kw``: masked probes (MaskTheFace) against an
    unmasked gallery, scored pair by pair as verification is. Folds of people (one-photo people
    too): fold k's people are left out of the gallery and their probes are the strangers; the
    probes of fold k+1's people are the enrolled ones measured. Rank-1 and FNIR at FPIR 1e-2 per
    fold (DevTest: about 60 enrolled and 120 stranger probes each, disjoint between folds), mean and spread;
    ``fnir_at_fpir_1e-2_pooled``: every fold's probes thresholded at once (1% of all strangers).
    ``scores``: the probes x gallery matrix already computed (in :func:`identification_sets`' order),
    instead of calling ``score`` pair by pair (then ``score`` may be ``None``). ``margin`` = m: a probe
    is decided by ``best - m * second best`` (its two best-matching people of the fold's gallery), not
    by its best score alone (``bench/gallery_views.py``). ``enrolled``: :func:`identification_sets`'
    (people enrolled from their first n photos; ``scores`` must then be given)."""
    gallery, probes = identification_sets(keys, enrolled)
    names = sorted(gallery)
    if scores is None:
        scores = np.array([[score(gallery[g], k, "orig", "mtf", **kw) for g in names] for k, _ in probes])
    fold_of = person_folds(probes, n_folds)
    truth = np.array([p for _, p in probes])
    fold = np.array([fold_of[p] for p in truth])
    enrolled = np.array([p in gallery for p in truth])
    per_fold = []
    # every fold's top matches, for the pooled threshold: labels, scores, truths, known flags
    labels: list = []
    top_scores: list = []
    truths: list = []
    knowns: list = []
    for f in range(n_folds):
        columns = np.array([fold_of[g] != f for g in names])
        known, stranger = enrolled & (fold == (f + 1) % n_folds), fold == f
        rows = known | stranger
        sub, kept = scores[np.ix_(rows, columns)], np.array(names)[columns]
        label, best = list(kept[sub.argmax(1)]), sub.max(1)
        if margin:
            best = best - margin * np.sort(sub, axis=1)[:, -2]
        per_fold.append(identification_metrics(label, best, list(truth[rows]), known[rows],
                                                np.full(int(rows.sum()), np.inf)))
        labels += label
        top_scores += list(best)
        truths += list(truth[rows])
        knowns += list(known[rows])
    out = {}
    for metric in ("rank1", "fnir_at_fpir_1e-2"):
        values = np.array([m[metric] for m in per_fold])
        out[metric], out[f"{metric}_std"] = float(values.mean()), float(values.std())
    # every fold's probes at once, each scored against its own fold's gallery: FPIR 1e-2 is then the
    # score that lets 1% of all strangers in (DevTest ~1,190) rather than one of a fold's (~120): a finer quantile
    whole = identification_metrics(labels, np.array(top_scores), truths, np.array(knowns),
                                   np.full(len(top_scores), np.inf))
    out["fnir_at_fpir_1e-2_pooled"] = whole["fnir_at_fpir_1e-2"]
    out.update(gallery=len(names), probes=len(probes), folds=n_folds,
               known_probes_per_fold=float(np.mean([m["n_known_probes"] for m in per_fold])),
               unknown_probes_per_fold=float(np.mean([m["n_unknown_probes"] for m in per_fold])))
    return out


def calibrate_split(split: str) -> None:
    """Only the threshold calibration, on another split's pairs (``--calibrate-split DevTrain``: the
    people the thresholds may be fitted on, never measured on); writes
    ``bench/results/calibration-<split>.json``."""
    global WORK, UPPER_CUTS
    # whole faces, and the upper face at the product's cut only
    WORK, UPPER_CUTS = split_work(split), (FUSE_CUT,)
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), EngineConfig())
    pairs = devtest_pairs(split)
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    cal = calibrate(embed_variants(engine, prepare_crops(engine, keys)))
    cal.update(split=split, images=len(keys), seconds=round(time.time() - t0, 1), provenance=provenance())
    write_json(results_path(f"calibration-{split}", REPO), cal)
    print(json.dumps(cal, indent=2, default=float))


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the ablation needs ../shared/data")
    if len(sys.argv) == 3 and sys.argv[1] == "--calibrate-split":
        calibrate_split(sys.argv[2])
        return
    if sys.argv[1:] == ["--identification"]:
        identification_only()
        return
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), EngineConfig())
    pairs = devtest_pairs()
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    crops = prepare_crops(engine, keys)
    emb = embed_variants(engine, crops)
    adapter = Adapter.load(ADAPTER_PATH) if ADAPTER_PATH.exists() else None
    score = Scorer(emb, engine, adapter)
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    results = {}
    for name, kw in LEVERS:
        if kw.get("adapter") and adapter is None:  # no weights (manage.py train_adapter): no rows, not copies
            continue
        results[name] = {}
        for set_name, (ak, bk) in SETS.items():
            s = np.array([score(a, b, ak, bk, **kw) for a, b, _ in pairs])
            results[name][set_name] = verification_metrics(s, same, folds)
        results[name]["identification"] = identification(score, keys, kw)
        print(f"  {name}: {results[name]['identification']}", file=sys.stderr, flush=True)
    orig_flags = score.clf(emb["orig"]["full"])
    mtf_flags = score.clf(emb["mtf"]["full"])
    calib = calibrate(emb)
    meta = {"seconds": round(time.time() - t0, 1), "pairs": len(pairs), "images": len(keys),
            "mtf_lost_by_detector": sum(1 for r in crops.values() if r and r.get("mtf_lost")),
            "classifier_unmasked_correct": float((orig_flags < 0.5).mean()),
            "classifier_mtf_masked_detected": float((mtf_flags >= 0.5).mean()),
            "adapter": adapter.version if adapter else None, "calibration": calib, "provenance": provenance()}
    write_results("ablation", meta, results, REPO)
    print(table(results))
    print(json.dumps(meta, indent=2, default=float))


def identification_only() -> None:
    """Stage 4 alone, from the cached crops and embeddings: each lever's identification figures
    replace those in ``bench/results/ablation.json`` (its verification figures stay)."""
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), EngineConfig())
    pairs = devtest_pairs()
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    score = Scorer(embed_variants(engine, prepare_crops(engine, keys)), engine, None)
    path = results_path("ablation", REPO)
    recorded = json.loads(path.read_text())
    for name, kw in LEVERS:
        if name in recorded["results"]:
            recorded["results"][name]["identification"] = identification(score, keys, kw)
            print(f"  {name}: {recorded['results'][name]['identification']}", file=sys.stderr, flush=True)
    recorded["meta"]["identification_seconds"] = round(time.time() - t0, 1)
    recorded["meta"]["identification_provenance"] = provenance()
    write_json(path, recorded)
    print(table(recorded["results"]))


def calibrate(emb: dict, fars: tuple[float, ...] = (1e-3, 1e-4), resnet_weight: float | None = None,
              flip: bool = True, resnet_upper: float | None = None) -> dict:
    """Thresholds at each false-accept rate over every cross-person pair of DevTest photos
    (``resnet_weight``: of the ResNet descriptor in the joined vectors, ``resnet_upper``: its
    upper-face fusion for masked faces, the product's by default; ``flip``: mirror TTA on both
    networks)."""
    w = RESNET if resnet_weight is None else resnet_weight
    wu = RESNET_UPPER if resnet_upper is None else resnet_upper

    def vec(d, part):
        return l2_normalise(d[part] + d[part + "_f"]) if flip else l2_normalise(d[part])

    def joined(kind, v, masked=False):
        r = emb[kind]["rn" if flip else "rn1"]
        if masked and wu:
            r = fuse_upper(r, emb[kind]["rnup"], wu)
        return join(v, r, w) if w else v

    def full(kind):
        d = emb[kind]
        return d["keys"], joined(kind, vec(d, "full"))

    def fused(kind):  # a masked face's matching vector, as the product computes it
        d = emb[kind]
        whole = vec(d, "full")
        if FUSE:
            whole = fuse_upper(whole, vec(d, f"up{FUSE_CUT}"), FUSE)
        return joined(kind, whole, masked=True)

    keys, o = full("orig")
    return thresholds(np.array([k[0] for k in keys]), o, fused("prod0"), fused("prod1"), fused("mtf"), fars)


def thresholds(names: np.ndarray, o: np.ndarray, p0: np.ndarray, p1: np.ndarray, m: np.ndarray,
               fars: tuple[float, ...]) -> dict:
    """Thresholds at each false-accept rate over every cross-person pair, and the TAR there: ``o`` the
    photographed faces' vectors, ``p0`` / ``p1`` the matching vectors of two product-mask renderings,
    ``m`` of the unseen masks (rows aligned with ``names``, the people)."""
    diff = names[:, None] != names[None, :]
    same = ~diff & ~np.eye(len(names), dtype=bool)
    unmasked = o @ o.T
    masked = np.maximum(p0 @ o.T, p0 @ p1.T)  # product-masked probe vs photographed + masked templates
    unseen = np.maximum(m @ o.T, m @ p1.T)
    out: dict = {"n_impostor_pairs": int(diff.sum())}
    for far in fars:
        tu = threshold_at_far(unmasked[diff], far)
        tm = threshold_at_far(masked[diff], far)
        out[f"{far:.0e}"] = {
            "unmasked": {"threshold": tu, "tar": float((unmasked[same] >= tu).mean())},
            "masked": {"threshold": tm, "tar_product_masks": float((masked[same] >= tm).mean()),
                       "far_on_unseen_masks": float((unseen[diff] >= tm).mean()),
                       "tar_on_unseen_masks": float((unseen[same] >= tm).mean())}}
    return out


def table(results: dict, first: str = "levers", missing: str = "–") -> str:
    """The markdown table of docs/accuracy.md: verification per set, then identification (``missing`` for a
    row without it); ``first`` heads the rows' names (bench/descriptors.py's table is this one)."""
    lines = [f"| {first} | " + " | ".join(f"{s}: accuracy ± std / TAR@FAR1e-2" for s in SETS)
             + " | identification, masked probes: rank-1 ± std / FNIR@FPIR1e-2 ± std |",
             "|---|" + "---|" * (len(SETS) + 1)]
    for name, r in results.items():
        cells = [f"{r[s]['accuracy'] * 100:.1f}% ± {r[s]['accuracy_std'] * 100:.1f} / "
                 f"{r[s]['tar_at_far_1e-2'] * 100:.1f}%" for s in SETS]
        i = r.get("identification")
        cells.append(f"{i['rank1'] * 100:.1f}% ± {i['rank1_std'] * 100:.1f} / {i['fnir_at_fpir_1e-2'] * 100:.1f}% ± "
                     f"{i['fnir_at_fpir_1e-2_std'] * 100:.1f}" if i else missing)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
