"""Faces that fill the picture: photos cut to the face, found or "no face"?

A photo cut close around the face (an ID card's portrait cropped to it, the face crops many masked
face data sets are published as) shows a face larger than any BlazeFace looks for in a whole image,
and the detector often misses it: enrolment then refused the photo ("no face"), the API answered
``no_face``, and ``evaluate_pairs`` fell back to aligning the image as if the face were centred in it
(``Engine.assume_centred_face``). ``Engine.analyze(search_filled=True)`` looks again in such an image
within a plain border (``EngineConfig.fill_border``) and keeps a face at least ``fill_min_share`` of
the image's shorter side wide (``Engine._filling_faces``). Measured here, the search off and on:

* **LFW DevTest pairs cut to the face** (``pairsDevTest.txt``, 500 same and 500 different pairs; each
  250 px photo cut to its middle, 140, 110 and 80 px: about the brows to the chin at 110), one side
  wearing an unseen MaskTheFace template drawn before the cut, and both sides bare: images with no face
  found, and verification as ``evaluate_pairs`` scores it (a face not found is aligned as if centred);
* **real masked photos** (``rwmfd_part1``, 1,193): photos with a face found and past the gate;
* **images without a face** (bench/detection.py's: scikit-image's sample images whole and as 40
  random square crops each): false faces, and false faces past the quality gate.

Also InsightFace's 112 px five-point chips of the same pairs (the form MLFW, masked LFW, and the data
sets ArcFace networks train on come in), drawn from the whole photo's landmarks.

Usage: ``python bench/filled.py [--margins 55 70 85] [--no-chips] [--pairs-only]``; prints the tables and writes
``bench/results/filled.json``. ``--timing``: only what the search costs, the time to find and align a
photo's face (``analyze(embed=False)``) off and on, over the same pairs' photos uncut and cut to 110 px
(run it alone on the machine; ``MASKNET_MODEL_THREADS=1`` for one core); writes
``bench/results/filled-timing.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from detection import non_face_images  # noqa: E402
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.align import five_point_similarity  # noqa: E402
from recognition.engine.embed import ARCFACE_SIZE, ARCFACE_TEMPLATE  # noqa: E402
from recognition.engine.evaluation import parse_pairs, verification_metrics  # noqa: E402
from recognition.engine.gallery import compare  # noqa: E402
from recognition.engine.landmarks import five_points  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
SETTINGS = ("off", "on")


def analysed(engines: dict, img: np.ndarray, embed: bool = True) -> dict:
    """Per setting, the image's largest face (``None``: none found)."""
    out = {}
    for name, engine in engines.items():
        try:
            out[name] = engine.analyze(img, max_faces=3, embed=embed)[0]
        except NoFaceFound:
            out[name] = None
    return out


def detection_counts(engines: dict, images: list[np.ndarray]) -> dict:
    """Per setting: images with a face found, and with their largest face past the quality gate."""
    counts = {name: {"n": len(images), "found": 0, "past_gate": 0} for name in engines}
    for img in images:
        for name, face in analysed(engines, img, embed=False).items():
            counts[name]["found"] += face is not None
            counts[name]["past_gate"] += face is not None and face.quality.ok
    return counts


def pairs_by_margin(engines: dict, margins: list[int], seed: int, chips: bool = True) -> dict:
    """Verification of DevTest pairs cut to ``margins`` from each side, and (``chips``) as InsightFace's
    112 px five-point chips, per setting: one side masked (the pair's second photo) and both bare."""
    images = SHARED / "lfw" / "images_deepfunneled"
    pairs = parse_pairs(images, SHARED / "lfw" / "pairsDevTest.txt")
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    templates = load_templates(SHARED / "masks")
    full, chip_of = {}, {}
    for k, path in enumerate(paths):
        img = cv2.imread(str(path))
        try:   # the mask drawn on the whole photo, then cut with it (a photo without a face stays bare)
            face = engines["off"].analyze(img, max_faces=3, embed=False)[0]
            masked = apply_mask(img, face.landmarks, np.random.default_rng([seed, k]), templates)
            # InsightFace's 112 px five-point chip of the photo (as MLFW and ArcFace's training sets come)
            chip_of[path] = five_point_similarity(five_points(face.landmarks), ARCFACE_TEMPLATE)
        except (NoFaceFound, TypeError):
            masked = img
        full[path] = {"bare": img, "masked": masked}
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out = {}
    for m in [*margins, *(["chip"] if chips else [])]:
        faces = {}
        for path, versions in full.items():
            for version, img in versions.items():
                if m != "chip":
                    cut = np.ascontiguousarray(img[m:img.shape[0] - m, m:img.shape[1] - m])
                elif path in chip_of:
                    cut = cv2.warpAffine(img, chip_of[path], (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
                else:   # no face in the whole photo: its middle, at the chip's size
                    cut = cv2.resize(img[55:195, 55:195], (ARCFACE_SIZE, ARCFACE_SIZE))
                found = analysed(engines, cut)
                fallback = engines["off"].assume_centred_face(cut) if None in found.values() else None
                faces[path, version] = {name: (f or fallback, f is None) for name, f in found.items()}
        row = {}
        for name in engines:
            row[name] = {}
            for kind, second in (("one_masked", "masked"), ("bare", "bare")):
                used = [(faces[p.a, "bare"][name], faces[p.b, second][name]) for p in pairs]
                scores = np.array([compare(engines[name], a[0], b[0]) for a, b in used])
                metrics = verification_metrics(scores, same, folds)
                metrics["not_found"] = len({(p.a, "bare") for p, (a, _) in zip(pairs, used, strict=True) if a[1]}
                                           | {(p.b, second) for p, (_, b) in zip(pairs, used, strict=True) if b[1]})
                row[name][kind] = metrics
        row["side_px"] = 250 - 2 * m if m != "chip" else ARCFACE_SIZE
        out[str(m)] = row
        print(f"margin {m}: done", file=sys.stderr)
    return out


def timing(engines: dict, margins: tuple[int, ...] = (0, 70), rounds: int = 3) -> dict:
    """Per margin cut from DevTest's pair photos (0: uncut) and setting, milliseconds a photo to find
    and align its largest face (``analyze(embed=False)``; a photo without a face counted too): the
    fastest of ``rounds`` passes over every photo, the settings taking turns so that both see the
    machine alike."""
    images = SHARED / "lfw" / "images_deepfunneled"
    pairs = parse_pairs(images, SHARED / "lfw" / "pairsDevTest.txt")
    photos = [cv2.imread(str(p)) for p in sorted({p.a for p in pairs} | {p.b for p in pairs})]
    out: dict = {}
    for m in margins:
        cuts = [np.ascontiguousarray(img[m:img.shape[0] - m, m:img.shape[1] - m]) for img in photos]
        analysed(engines, cuts[0], embed=False)   # warm
        best = dict.fromkeys(engines, float("inf"))
        for _ in range(rounds):
            for name in engines:
                t0 = time.perf_counter()
                for img in cuts:
                    analysed({name: engines[name]}, img, embed=False)
                best[name] = min(best[name], (time.perf_counter() - t0) / len(cuts) * 1000)
        out[str(m)] = {"photos": len(cuts), "side_px": 250 - 2 * m, **{f"{name}_ms": round(best[name], 2)
                                                                        for name in engines}}
    return out


def timing_table(rows: dict) -> str:
    """The markdown table of :func:`timing`'s rows."""
    lines = ["| LFW DevTest pair photos | photos | search off: ms a photo | search on: ms a photo |",
             "|---|---|---|---|"]
    for m, r in rows.items():
        cut = "uncut (250 px)" if m == "0" else f"cut to {r['side_px']} px (margin {m})"
        lines.append(f"| {cut} | {r['photos']} | {r['off_ms']:.1f} | {r['on_ms']:.1f} |")
    return "\n".join(lines)


def tables(results: dict) -> str:
    """Markdown tables of the results."""
    lines = ["| LFW DevTest pair, cut to | search | images with no face found | one side masked: accuracy ± std "
             "/ TAR@FAR1e-2 | both bare: accuracy ± std / TAR@FAR1e-2 |", "|---|---|---|---|---|"]
    for m, row in results["pairs"].items():
        for name in SETTINGS:
            cells = []
            for kind in ("one_masked", "bare"):
                r = row[name][kind]
                cells.append(f"{100 * r['accuracy']:.1f}% ± {100 * r['accuracy_std']:.1f} / "
                             f"{100 * r['tar_at_far_1e-2']:.1f}%")
            lost = f"{row[name]['one_masked']['not_found']} masked side, {row[name]['bare']['not_found']} bare"
            cut = "a 112 px five-point chip" if m == "chip" else f"{row['side_px']} px (margin {m})"
            lines.append(f"| {cut} | {name} | {lost} | " + " | ".join(cells) + " |")
    if "rwmfd" in results:
        lines += ["", "| set | search | images | face found | past the gate |", "|---|---|---|---|---|"]
    for label, key in (("real masked photos (rwmfd_part1)", "rwmfd"), ("images without a face", "non_face")):
        for name in SETTINGS if key in results else ():
            r = results[key][name]
            lines.append(f"| {label} | {name} | {r['n']} | {100 * r['found'] / r['n']:.1f}% ({r['found']}) | "
                         f"{100 * r['past_gate'] / r['n']:.1f}% ({r['past_gate']}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margins", type=int, nargs="*", default=[55, 70, 85],
                    help="pixels cut from each side of LFW's 250 px photos")
    ap.add_argument("--crops", type=int, default=40, help="random crops of each image without a face")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--descriptor", default="sface", help="the face descriptor (the site's default: sface)")
    ap.add_argument("--no-chips", action="store_true", help="leave out the 112 px five-point chips")
    ap.add_argument("--pairs-only", action="store_true", help="leave out the real masked photos and no-face images")
    ap.add_argument("--timing", action="store_true", help="only the time to find and align a photo's face, off and on")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: this benchmark needs ../shared/data")
    t0 = time.time()
    models = Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))
    config = EngineConfig.for_descriptor(args.descriptor)
    engines = {"off": load_engine(models, config.with_(fill_border=0.0)), "on": load_engine(models, config)}
    results = {"args": vars(args), "fill_border": config.fill_border, "fill_min_share": config.fill_min_share}
    if args.timing:
        results.update(timing=timing(engines), threads=os.environ.get("MASKNET_MODEL_THREADS", "default"),
                       seconds=round(time.time() - t0, 1), provenance=provenance())
        print(timing_table(results["timing"]))
        write_json(results_path("filled-timing", REPO), results)
        return
    if not args.pairs_only:
        results["non_face"] = detection_counts(engines, non_face_images(args.crops, args.seed))
        results["rwmfd"] = detection_counts(engines, [cv2.imread(str(p))
                                                      for p in sorted((SHARED / "rwmfd_part1").rglob("*.jpg"))])
    results["pairs"] = pairs_by_margin(engines, args.margins, args.seed, chips=not args.no_chips)
    results["seconds"] = round(time.time() - t0, 1)
    results["provenance"] = provenance()
    print(tables(results))
    write_json(results_path("filled", REPO), results)


if __name__ == "__main__":
    main()
