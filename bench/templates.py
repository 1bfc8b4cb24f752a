"""Synthetic-mask templates at enrolment: how many, and how to score them (issue 3).

The identification benchmark's people (``bench/identification.py``: 250 enrolled LFW DevTest
people, masked probes of them and of 100 people who are not enrolled, MaskTheFace masks the
product never saw). Each enrolment photo gets its embedding plus up to 8 embeddings of the photo
wearing the product's synthetic masks; masked probes are then scored against each person by:

* **max over 1 + n**: the best of separate templates (the product's rule until now, n = 2);
* **max(photo, centroid of n)**: the photo's template or the mean of the n masked ones (an
  aggregated template: mask-specific noise averages out; the product's rule, n = 4);
* **mean of the best 2 of 1 + n**.

Probes the classifier calls unmasked meet only the photographed template, as in the product, so
unmasked faces are not affected. Probes the detector loses are left out here
(``bench/identification.py`` counts them as misses). Thresholds are the
product's, calibrated for its rule: FPIR at threshold rises with more templates.

Usage: ``python bench/templates.py [--known 250] [--unknown 100] [--descriptor arcface]``; prints a
table and writes ``bench/results/templates.json`` (``--descriptor arcface``: the opt-in descriptor with
its own thresholds, ``templates-arcface.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import identification  # noqa: E402
from provenance import descriptor_suffix, provenance, results_path, settings_digest, write_json  # noqa: E402

from recognition.engine import EngineConfig, EngineError, load_engine  # noqa: E402
from recognition.engine.benchmark import main_face, person_images  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.evaluation import identification_metrics  # noqa: E402
from recognition.engine.gallery import MASK_VARIANTS, masked_variants  # noqa: E402

CACHE = REPO / "var" / "bench" / "templates"
MAX_MASKED = 8
Rule = Callable[[np.ndarray, np.ndarray], float]


def embeddings(engine, gallery: Path, probes: Path, seed: int = 0) -> tuple[dict, dict]:
    """``({person: (1 + MAX_MASKED) x D templates}, {person: (probe embedding, masked)})`` (cached
    per person: a run with more people embeds only the new ones)."""
    cfg = engine.config
    other = descriptor_suffix(cfg.descriptor)
    # keyed by every setting and the models (masked probes are fused, templates rendered)
    path = CACHE / f"embeddings-{seed}-{settings_digest(cfg, MAX_MASKED)}{other}.npz"
    g, p = {}, {}
    if path.exists():
        d = np.load(path, allow_pickle=True)
        g, p = d["gallery"].item(), d["probes"].item()
    wanted_g, wanted_p = person_images(gallery), person_images(probes)
    for person, files in wanted_g.items():
        if person in g:
            continue
        # each person's masks from their own seed: the same whichever people were cached before
        rng = np.random.default_rng([seed, zlib.crc32(person.encode())])
        face, fail = main_face(engine, files[0])
        if face is not None and not fail:
            g[person] = np.concatenate([face.embedding[None],
                                        engine.embed_masked(masked_variants(engine, face, rng, MAX_MASKED),
                                                            [face.chip_matrix] * MAX_MASKED)])
    for person, files in wanted_p.items():
        if person in p:
            continue
        try:
            face = engine.analyze(files[0].read_bytes(), max_faces=3)[0]
        except EngineError:
            continue
        p[person] = (face.embedding, bool(face.masked))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, gallery=np.array(g, dtype=object), probes=np.array(p, dtype=object))
    return {k: v for k, v in g.items() if k in wanted_g}, {k: v for k, v in p.items() if k in wanted_p}


def evaluate(engine, gallery: dict, probes: dict, rule: Rule) -> dict:
    """Open-set identification of the masked probes under a scoring rule."""
    people = sorted(gallery)
    labels, scores, truth, known, thresholds = [], [], [], [], []
    for person, (e, masked) in probes.items():
        thresholds.append(engine.threshold(masked))
        s = np.array([rule(gallery[g], e) if masked else float(gallery[g][0] @ e) for g in people])
        i = int(np.argmax(s))
        labels.append(people[i])
        scores.append(s[i])
        truth.append(person)
        known.append(person in gallery)
    return identification_metrics(labels, np.array(scores), truth, np.array(known), np.array(thresholds))


def rules() -> dict[str, Rule]:
    """The scoring rules compared (templates ``t``: row 0 the photo, then the masked ones)."""
    def top(n: int) -> Rule:
        return lambda t, e: float((t[:1 + n] @ e).max())

    def centroid(n: int) -> Rule:
        def score(t: np.ndarray, e: np.ndarray) -> float:
            c = t[1:1 + n].mean(0)
            return max(float(t[0] @ e), float(c @ e) / float(np.linalg.norm(c)))
        return score

    def best2(n: int) -> Rule:
        return lambda t, e: float(np.sort(t[:1 + n] @ e)[-2:].mean())

    out: dict[str, Rule] = {f"max over 1 + {n}" + (" (the product until now)" if n == 2 else ""): top(n)
                            for n in (0, 2, 4, 8)}
    out.update({f"max(photo, centroid of {n})" + (" (the product)" if n == MASK_VARIANTS else ""): centroid(n)
                for n in (2, 4, 8)})
    out.update({f"mean of best 2 of 1 + {n}": best2(n) for n in (2, 4, 8)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--known", type=int, default=250)
    ap.add_argument("--unknown", type=int, default=100)
    ap.add_argument("--descriptor", choices=DESCRIPTORS, default=DESCRIPTORS[0],
                    help="default faceres+resnet; sface (the site's), arcface write templates[...]-<descriptor>.json")
    args = ap.parse_args()
    if not identification.SHARED.is_dir():
        sys.exit(f"{identification.SHARED} not found: this benchmark needs ../shared/data")
    t0 = time.time()
    engine = load_engine(REPO / "models", EngineConfig.for_descriptor(args.descriptor))
    gallery_dir, _plain, masked_dir = identification.build(engine, args.known, args.unknown, 0)
    gallery, probes = embeddings(engine, gallery_dir, masked_dir)
    results = {name: evaluate(engine, gallery, probes, rule) for name, rule in rules().items()}
    n_known = sum(p in gallery for p in probes)
    print(f"\n{len(gallery)} enrolled, {n_known} known + {len(probes) - n_known} unknown masked probes")
    print("| rule | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rank1'] * 100:.1f}% | {r['fnir_at_fpir_1e-2'] * 100:.1f}% | "
              f"{r['fpir_at_threshold'] * 100:.1f}% | {r['fnir_at_threshold'] * 100:.1f}% |")
    suffix = descriptor_suffix(args.descriptor)
    out = write_json(results_path(f"templates{suffix}", REPO), {
        "descriptor": args.descriptor, "n_gallery": len(gallery), "n_known_probes": n_known,
        "n_unknown_probes": len(probes) - n_known, "seconds": round(time.time() - t0, 1),
        "provenance": provenance(engine.config), "results": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
