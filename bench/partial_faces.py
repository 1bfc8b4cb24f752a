"""Faces cut off by the image's edge: what the quality gate's ``partial`` check refuses, and why.

A person at the side of a kiosk's picture, or an enrolment photo cropped too tight, shows the
detector part of a face. The alignment then fills the missing part of the crop with replicated
border pixels and the embedding describes a face that is not there. ``EngineConfig.max_outside``
refuses a face when more than that share of its core (brows to chin, cheek to cheek) lies outside
the image; the kiosk then asks the person to move to the middle.

For the first photo of LFW DevTest people, each photo is cut so that the face's detector box loses
a share (``--depths``) of its width or height on one side (left, right, top, bottom), and measured:

* how many cut faces are still found, and pass the gate without and with the ``partial`` check;
* for the cut faces that pass the gate without it: the cosine between the cut face's matching vector
  and the uncut photo's (the same photo), the share of them still matched to it at the engine's
  threshold, and the share that would match *another* person of the set above the threshold;
* for the uncut photos: how many the check refuses (it should be none).

Usage: ``python bench/partial_faces.py [--people 200]``; prints a table and writes
``bench/results/partial_faces.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provenance import provenance  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.quality import PARTIAL  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
SIDES = ("left", "right", "top", "bottom")


def cut(img: np.ndarray, box: tuple, side: str, depth: float) -> np.ndarray:
    """``img`` cut so that ``depth`` of the face box's width (height) on ``side`` is outside it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if side == "left":
        return img[:, max(int(x1 + depth * w), 0):]
    if side == "right":
        return img[:, :max(int(x2 - depth * w), 1)]
    if side == "top":
        return img[max(int(y1 + depth * h), 0):]
    return img[:max(int(y2 - depth * h), 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=200, help="LFW DevTest people (first photo of each)")
    ap.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.45])
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the benchmark needs ../shared/data")
    t0 = time.time()
    models = Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))
    cfg = EngineConfig()
    # the gate without the check: every other reason still applies; the check is then read from
    # quality.outside, so one pass measures both
    engine = load_engine(models, cfg.with_(max_outside=1.0))
    people = [ln.split()[0] for ln in (SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:]
              if ln.strip()][:args.people]
    refs, images, boxes = [], [], []
    uncut_refused = 0
    for name in people:
        img = cv2.imread(str(SHARED / "lfw" / "images_deepfunneled" / name / f"{name}_0001.jpg"))
        try:
            face = engine.analyze(img, max_faces=1)[0]
        except NoFaceFound:
            continue
        if not face.quality.ok:
            continue
        uncut_refused += face.quality.outside > cfg.max_outside
        refs.append(face.embedding)
        images.append(img)
        boxes.append(face.box)
    gallery = np.stack(refs)
    rows = []
    for side in SIDES:
        for depth in args.depths:
            n = found = passed_before = passed_after = same = other = 0
            cosines = []
            for k, (img, box) in enumerate(zip(images, boxes, strict=True)):
                n += 1
                try:
                    face = engine.analyze(np.ascontiguousarray(cut(img, box, side, depth)), max_faces=1)[0]
                except NoFaceFound:
                    continue
                found += 1
                if not face.quality.ok:
                    continue
                passed_before += 1
                passed_after += face.quality.outside <= cfg.max_outside
                scores = gallery @ face.embedding
                threshold = cfg.threshold_masked if face.masked else cfg.threshold_unmasked
                cosines.append(float(scores[k]))
                same += scores[k] >= threshold
                other += bool((np.delete(scores, k) >= threshold).any())
            rows.append({"side": side, "depth": depth, "n": n, "found": found, "passed_without_check": passed_before,
                         "passed_with_check": passed_after,
                         "mean_cosine_to_uncut": float(np.mean(cosines)) if cosines else None,
                         "matched_to_uncut": same, "matched_another_person": other})
    results = {"args": vars(args), "people": len(images), "uncut_refused_by_check": int(uncut_refused),
               "max_outside": cfg.max_outside, "reason": PARTIAL, "rows": rows,
               "seconds": round(time.time() - t0, 1), "provenance": provenance()}
    print(table(results))
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "partial_faces.json").write_text(json.dumps(results, indent=2))


def table(results: dict) -> str:
    """Markdown table: one row per side and depth of the cut."""
    out = ["| cut off | face found | past the gate without the check | past it with the check "
           "| cosine to the uncut photo (those past without) | still matched to it | matched another person |",
           "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        def pct(v: int, of: int) -> str:
            return f"{100 * v / of:.1f}% ({v})" if of else "-"
        cos = "-" if r["mean_cosine_to_uncut"] is None else f"{r['mean_cosine_to_uncut']:.3f}"
        out.append(f"| {r['side']} {r['depth']:.0%} of the box | {pct(r['found'], r['n'])} "
                   f"| {pct(r['passed_without_check'], r['n'])} | {pct(r['passed_with_check'], r['n'])} | {cos} "
                   f"| {pct(r['matched_to_uncut'], r['passed_without_check'])} "
                   f"| {pct(r['matched_another_person'], r['passed_without_check'])} |")
    out.append(f"\n{results['people']} LFW DevTest photos whose uncut face passes the gate; the check "
               f"(max_outside {results['max_outside']}) refused {results['uncut_refused_by_check']} of them uncut. "
               f"{results['seconds']} s.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
