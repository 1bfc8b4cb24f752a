"""Several enrolment photos per person: keep them apart, or aggregate them (issue 3).

LFW DevTest people with at least ``--photos`` + 1 photos are enrolled from their first 1 to
``--photos`` photos, exactly as the product enrols each photo (its embedding plus the centroid of
4 synthetic-mask embeddings); their last photo is the probe. ``--unknown`` people with a single
photo are probes who are not enrolled. Probes are identified unmasked and wearing MaskTheFace
masks the product never saw. A person's templates are scored by:

* **max over photos**: the best of every photo's templates (the product: the index keeps each
  photo's templates and takes the best per person);
* **mean**: one template per kind, the mean of the photos' templates (photographed and masked);
* **quality-weighted mean**: the same, each photo weighted by its quality score
  (``Quality.score``: size, sharpness, light, pose; what the admin shows per photo);
* **max over photos + weighted mean**: the weighted mean added as one more template;
* **quality-weighted mean - margin m**: the weighted mean, its score lowered by ``m`` (a mean of
  several photos is closer to everyone, strangers included: at the same threshold it lets more of
  them in); ``--split DevTrain`` runs the same on DevTrain people, where the margin is chosen (the
  DevTest figures are then a fair test);
* **the product**: ``gallery.person_templates`` itself: that mean with ``AGGREGATE_MARGIN`` scaled by
  how much the photos differ (full for photos like LFW's; the run also measures the spread of LFW
  photos and of simulated webcam bursts, near-identical frames whose mean needs no margin).

Masked probes meet both kinds of template, unmasked probes only the photographed ones, as in the
product; the product's thresholds throughout. Probes the detector loses are left out.

A second table (DevTest and DevTrain alike) asks whether the second enrolment photo should be taken
with the mask on: people with at least 3 photos enrolled from their first photo, their first two,
or their first plus the second wearing a MaskTheFace mask (enrolled as the site enrols a masked
photo), each set against the same probes.

Usage: ``python bench/aggregation.py [--photos 3] [--unknown 600] [--split DevTest|DevTrain]
[--no-upper-face] [--descriptor arcface]``; prints a table and writes
``bench/results/aggregation[-DevTrain][-no-upper][-arcface].json`` (embeddings cached in
``var/bench/aggregation``). ``--no-upper-face``: the same without the upper-face fusion of masked
faces, to measure it; ``--descriptor arcface``: the opt-in descriptor with its own thresholds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from identification import SHARED  # noqa: E402
from provenance import descriptor_suffix, provenance, results_path, settings_digest, write_json  # noqa: E402

from recognition.engine import EngineConfig, EngineError, load_engine  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.evaluation import identification_metrics  # noqa: E402
from recognition.engine.gallery import (  # noqa: E402
    MASK_VARIANTS,
    SYNTHETIC_MASK,
    UNMASKED,
    Templates,
    enroll_templates,
    person_templates,
)
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

CACHE = REPO / "var" / "bench" / "aggregation"
MARGINS = (0.01, 0.02, 0.03, 0.04)
# the masked threshold calibrated as the product's (FAR 1e-4, DevTest pairs) without the upper-face
# fusion (bench/fusion.py, weight 0): what --no-upper-face runs with
NO_FUSION_THRESHOLD = 0.731
# a person's enrolment: (photos x 2 x D templates [photographed, masked centroid], photos quality scores)
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, bool], float]


def people(min_photos: int, unknown: int, seed: int, split: str = "DevTest"
           ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(known, unknown)`` as (name, photo count) from ``people<split>.txt``."""
    rows = [ln.split() for ln in (SHARED / "lfw" / f"people{split}.txt").read_text().splitlines()[1:]
            if ln.strip()]
    rng = np.random.default_rng(seed)
    single = [(n, 1) for n, c in rows if int(c) == 1]
    rng.shuffle(single)
    return [(n, int(c)) for n, c in rows if int(c) >= min_photos], single[:unknown]


def image(name: str, number: int) -> Path:
    return SHARED / "lfw" / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg"


def probe_embeddings(engine, img: np.ndarray, rng: np.random.Generator, templates) -> dict:
    """Unmasked and MaskTheFace-masked probe: ``{"plain"|"masked": (embedding, masked flag)}``."""
    out = {}
    try:
        face = engine.analyze(img, max_faces=3)[0]
    except EngineError:
        return out
    out["plain"] = (face.embedding, bool(face.masked))
    try:
        masked = engine.analyze(apply_mask(img, face.landmarks, rng, templates), max_faces=3)[0]
        out["masked"] = (masked.embedding, bool(masked.masked))
    except (EngineError, TypeError):
        pass
    return out


def collect(engine, known, unknown, photos: int, seed: int, split: str) -> dict:
    """Enrolments and probes, cached per person (a larger run embeds only the new people)."""
    cfg = engine.config
    other = descriptor_suffix(cfg.descriptor)
    path = CACHE / f"embeddings-{split}-{seed}-{settings_digest(cfg, MASK_VARIANTS)}{other}.npz"
    data = np.load(path, allow_pickle=True)["data"].item() if path.exists() else {"gallery": {}, "probes": {}}
    templates = load_templates(SHARED / "masks")
    for k, (name, count) in enumerate(known + unknown):
        rng = np.random.default_rng([seed, k])
        if count > 1 and len(data["gallery"].get(name, ([], []))[0]) < photos:
            vecs, scores = [], []
            for number in range(1, min(photos, count - 1) + 1):
                try:
                    face = engine.analyze(image(name, number).read_bytes(), max_faces=3)[0]
                except EngineError:
                    continue
                t = enroll_templates(engine, face, rng)
                if len(t.vectors) == 2:
                    vecs.append(t.vectors)
                    scores.append(face.quality.score)
            data["gallery"][name] = (vecs, scores)
        if name not in data["probes"]:
            data["probes"][name] = probe_embeddings(engine, cv2.imread(str(image(name, count))), rng, templates)
        if count > 2 and name not in data.setdefault("masked_photo", {}):
            data["masked_photo"][name] = masked_enrolment(engine, image(name, 2), np.random.default_rng([seed, k, 2]),
                                                          templates)
        if (k + 1) % 100 == 0:
            print(f"  {k + 1}/{len(known) + len(unknown)} people", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=np.array(data, dtype=object))
    return data


def masked_enrolment(engine, path: Path, rng: np.random.Generator, templates) -> tuple[Templates, float] | None:
    """A photo enrolled wearing a mask (a MaskTheFace template, like a real mask the product never
    drew): its templates as the site makes them (``enrollment.recognizer.face_templates``: a face
    classified masked gives its own embedding as a masked template only) and its quality score."""
    from enrollment.recognizer import face_templates  # no Django models: importable without a site

    img = cv2.imread(str(path))
    try:
        face = engine.analyze(img, max_faces=3)[0]
        face = engine.analyze(apply_mask(img, face.landmarks, rng, templates), max_faces=3)[0]
    except (EngineError, TypeError):
        return None
    return face_templates(engine, face, seed=int(rng.integers(2**31))), face.quality.score


def evaluate_masked_enrolment(engine, data: dict, known: list[str], unknown: list[str], probe_kind: str) -> dict:
    """Open-set identification with each known person enrolled from their first photo, their first
    two, or their first photo plus the second wearing a mask (people with all three usable)."""
    def person(photos: list[Templates], qualities: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = person_templates(photos, qualities)
        return p.vectors, p.kinds, p.margins

    galleries: dict[str, dict] = {"1 photo": {}, "2 photos": {}, "1 photo + the 2nd wearing a mask": {}}
    for name in known:
        vecs, scores = data["gallery"].get(name, ([], []))
        extra = data.get("masked_photo", {}).get(name)
        if len(vecs) < 2 or extra is None:
            continue
        plain = [Templates(v, np.array([UNMASKED, SYNTHETIC_MASK], np.int8)) for v in vecs[:2]]
        galleries["1 photo"][name] = person(plain[:1], scores[:1])
        galleries["2 photos"][name] = person(plain, scores[:2])
        galleries["1 photo + the 2nd wearing a mask"][name] = person([plain[0], extra[0]], [scores[0], extra[1]])
    out = {}
    for rule, gallery in galleries.items():
        def score(g: str, e: np.ndarray, masked: bool, gallery: dict = gallery) -> float:
            v, kinds, margins = gallery[g]
            keep = np.ones(len(v), bool) if masked else kinds == UNMASKED
            return float((v[keep] @ e - margins[keep]).max())
        out[rule] = open_set(engine, data, known, unknown, probe_kind, sorted(gallery), score)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def rules() -> dict[str, Rule]:
    """Scoring rules: ``t`` photos x 2 x D templates, ``q`` their quality scores, ``e`` the probe."""
    def best(t: np.ndarray, e: np.ndarray, masked: bool) -> float:
        return float((t @ e).max() if masked else (t[:, 0] @ e).max())

    def mean(weighted: bool, margin: float = 0.0) -> Rule:
        def score(t, q, e, masked):
            if len(t) == 1:
                return best(t, e, masked)
            w = np.asarray(q, float) if weighted else np.ones(len(t))
            agg = np.stack([_unit((w[:, None] * t[:, k]).sum(0)) for k in range(2)])
            return best(agg[None], e, masked) - margin
        return score

    def both(t, q, e, masked):
        return max(best(t, e, masked), mean(True)(t, q, e, masked))

    def product(t, q, e, masked):
        p = person_templates([Templates(ti, np.array([0, 1], np.int8)) for ti in t], list(q))
        s = p.vectors @ e - p.margins
        return float(s.max() if masked else s[p.kinds == 0].max())

    out: dict[str, Rule] = {"max over photos (the product until now)": lambda t, q, e, m: best(t, e, m),
                            "mean": mean(False), "quality-weighted mean": mean(True),
                            "max over photos + weighted mean": both}
    for m in MARGINS:
        out[f"quality-weighted mean - margin {m:.2f}"] = mean(True, m)
    out["quality-weighted mean - margin by spread (the product)"] = product
    return out


def spreads(engine, data: dict, known: list[str], bursts: int = 40, seed: int = 0) -> dict:
    """Spread (1 - mean pairwise cosine of the photographed templates) of the enrolled people's first
    3 photos, and of bursts of 3 camera-like frames of one photo (``bench/voting.camera_view``)."""
    from voting import camera_view

    lfw = [1 - (float((v @ v.T).sum()) - len(v)) / (len(v) * (len(v) - 1))
           for v in (np.stack([t[0] for t in data["gallery"][n][0][:3]]) for n in known
                     if len(data["gallery"].get(n, ([], []))[0]) >= 2)]
    rng, burst = np.random.default_rng(seed), []
    for name in known[:bursts]:
        img = cv2.imread(str(image(name, 1)))
        frames = []
        for _ in range(3):
            try:
                frames.append(engine.analyze(camera_view(img, rng), max_faces=3)[0].embedding)
            except EngineError:
                continue
        if len(frames) >= 2:
            v = np.stack(frames)
            burst.append(1 - (float((v @ v.T).sum()) - len(v)) / (len(v) * (len(v) - 1)))
    pct = (5, 25, 50, 95)
    return {"lfw_percentiles": dict(zip(map(str, pct), np.percentile(lfw, pct).round(3).tolist(), strict=True)),
            "burst_percentiles": dict(zip(map(str, pct), np.percentile(burst, pct).round(3).tolist(), strict=True)),
            "n_lfw": len(lfw), "n_burst": len(burst)}


def evaluate(engine, data: dict, known: list[str], unknown: list[str], n_photos: int, probe_kind: str,
             rule: Rule) -> dict:
    """Open-set identification of one probe kind with each known person enrolled from ``n_photos``."""
    gallery = {}
    for name in known:
        vecs, scores = data["gallery"].get(name, ([], []))
        if vecs:
            gallery[name] = (np.stack(vecs[:n_photos]), np.array(scores[:n_photos]))
    return open_set(engine, data, known, unknown, probe_kind, sorted(gallery),
                    lambda g, e, masked: rule(gallery[g][0], gallery[g][1], e, masked))


def open_set(engine, data: dict, known: list[str], unknown: list[str], probe_kind: str, names: list[str],
             score: Callable[[str, np.ndarray, bool], float]) -> dict:
    """Identification metrics of every usable probe of ``probe_kind`` against the enrolled ``names``,
    ``score(name, embedding, masked)`` scoring one enrolled person (known people not enrolled are left out)."""
    enrolled = set(names)
    labels, top, truth, is_known, thresholds = [], [], [], [], []
    for name in known + unknown:
        probe = data["probes"].get(name, {}).get(probe_kind)
        if probe is None or (name in known and name not in enrolled):
            continue
        e, masked = probe
        s = np.array([score(g, e, masked) for g in names])
        i = int(np.argmax(s))
        labels.append(names[i])
        top.append(s[i])
        truth.append(name)
        is_known.append(name in enrolled)
        thresholds.append(engine.threshold(masked))
    return identification_metrics(labels, np.array(top), truth, np.array(is_known), np.array(thresholds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=3, help="enrolment photos per person at most (default 3)")
    ap.add_argument("--unknown", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("DevTest", "DevTrain"), default="DevTest",
                    help="LFW people file (DevTrain: where the margin is chosen)")
    ap.add_argument("--no-upper-face", action="store_true",
                    help="the product without the upper-face fusion of masked faces, for comparison "
                         f"(masked threshold {NO_FUSION_THRESHOLD}, calibrated without it)")
    ap.add_argument("--descriptor", choices=DESCRIPTORS, default=DESCRIPTORS[0],
                    help="default faceres+resnet; sface (the site's), arcface write aggregation[...]-<descriptor>.json")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: this benchmark needs ../shared/data")
    if args.no_upper_face and args.descriptor != "faceres+resnet":
        sys.exit("--no-upper-face has a threshold calibrated for faceres+resnet only")
    t0 = time.time()
    config = EngineConfig.for_descriptor(args.descriptor)
    if args.no_upper_face:
        config = config.with_(upper_face_weight=0.0, threshold_masked=NO_FUSION_THRESHOLD)
    engine = load_engine(REPO / "models", config)
    known, unknown = people(args.photos + 1, args.unknown, args.seed, args.split)
    data = collect(engine, known, unknown, args.photos, args.seed, args.split)
    known_names, unknown_names = [n for n, _ in known], [n for n, _ in unknown]
    results: dict = {}
    print("| probes | enrolment photos | rule | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |")
    print("|---|---|---|---|---|---|---|")
    for probe_kind in ("masked", "plain"):
        for n in range(1, args.photos + 1):
            for name, rule in (rules().items() if n > 1 else list(rules().items())[:1]):
                r = evaluate(engine, data, known_names, unknown_names, n, probe_kind, rule)
                results.setdefault(probe_kind, {}).setdefault(str(n), {})[name] = r
                print(f"| {probe_kind} | {n} | {name} | {r['rank1'] * 100:.1f}% | "
                      f"{r['fnir_at_fpir_1e-2'] * 100:.1f}% | {r['fpir_at_threshold'] * 100:.1f}% | "
                      f"{r['fnir_at_threshold'] * 100:.1f}% |", flush=True)
    print("\n| probes | enrolment | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |")
    print("|---|---|---|---|---|---|")
    masked_enrolment: dict = {}
    for probe_kind in ("masked", "plain"):
        by_rule = evaluate_masked_enrolment(engine, data, known_names, unknown_names, probe_kind)
        masked_enrolment[probe_kind] = by_rule
        for name, r in by_rule.items():
            print(f"| {probe_kind} | {name} | {r['rank1'] * 100:.1f}% | {r['fnir_at_fpir_1e-2'] * 100:.1f}% | "
                  f"{r['fpir_at_threshold'] * 100:.1f}% | {r['fnir_at_threshold'] * 100:.1f}% |", flush=True)
    spread = spreads(engine, data, known_names)
    print(f"photo spread, LFW: {spread['lfw_percentiles']}; webcam-like bursts: {spread['burst_percentiles']}")
    any_r = next(iter(results["masked"]["1"].values()))
    name = "aggregation" + ("" if args.split == "DevTest" else f"-{args.split}")
    name += "-no-upper" if args.no_upper_face else ""
    name += descriptor_suffix(args.descriptor)
    out = write_json(results_path(name, REPO), {
        "args": vars(args), "mask_variants": MASK_VARIANTS,
        "n_known_probes": any_r["n_known_probes"], "n_unknown_probes": any_r["n_unknown_probes"],
        "seconds": round(time.time() - t0, 1), "spread": spread, "provenance": provenance(config),
        "results": results, "masked_enrolment": masked_enrolment})
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
