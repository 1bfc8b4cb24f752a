"""Faces cut off by the image's edge: what the quality gate's ``partial`` check refuses, and why.

A person at the side of a kiosk's picture, or an enrolment photo cropped too tight, shows the
detector part of a face. The alignment then fills the missing part of the crop with replicated
border pixels and the embedding describes a face that is not there. ``EngineConfig.max_outside``
refuses a face when more than that share of its core (brows to chin, cheek to cheek) lies outside
the image; the kiosk then asks the person to move to the middle.

For LFW DevTest people with two photos or more, the first photo is enrolled uncut and the second is
the probe, cut so that the face's detector box loses a share (``--depths``) of its width or height on
one side (left, right, top, bottom; depth 0 is the uncut probe). For the cut probes that pass every
other check of the gate:

* the share of them whose best match is their own person above the engine's threshold, and the share
  that match another person above it, with the cut's mean ``quality.outside``;
* for candidate values of ``max_outside``: the share refused, the match rate of those kept, and the
  share of the refused ones that would have matched (what the check costs).

Usage: ``python bench/partial_faces.py [--people 200]``; prints a table and writes
``bench/results/partial_faces.json``.
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

from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.quality import PARTIAL  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
SIDES = ("left", "right", "top", "bottom")


def cut(img: np.ndarray, box: tuple, side: str, depth: float) -> np.ndarray:
    """``img`` cut so that ``depth`` of the face box's width (height) on ``side`` is outside it
    (``depth`` 0: the whole image)."""
    if depth <= 0:
        return img
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
    ap.add_argument("--people", type=int, default=150, help="LFW DevTest people with two photos or more")
    ap.add_argument("--depths", type=float, nargs="+", default=[0.0, 0.15, 0.3, 0.45])
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the benchmark needs ../shared/data")
    t0 = time.time()
    models = Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))
    cfg = EngineConfig()
    # the gate without the check (every other reason still applies); the check is then read from
    # quality.outside, so one pass measures every candidate value
    engine = load_engine(models, cfg.with_(max_outside=1.0))
    people = [ln.split() for ln in (SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:] if ln.strip()]
    photos = SHARED / "lfw" / "images_deepfunneled"
    gallery, probes, boxes = [], [], []
    for name, count in people:
        if int(count) < 2 or len(probes) >= args.people:
            continue
        try:
            enrolled = engine.analyze(cv2.imread(str(photos / name / f"{name}_0001.jpg")), max_faces=1)[0]
            probe = cv2.imread(str(photos / name / f"{name}_0002.jpg"))
            box = engine.analyze(probe, max_faces=1, embed=False)[0].box
        except NoFaceFound:
            continue
        if enrolled.quality.ok:
            gallery.append(enrolled.embedding)
            probes.append(probe)
            boxes.append(box)
    matrix = np.stack(gallery)
    faces = []   # (side, depth, outside, matched, wrong) of every cut probe past the other checks
    rows = []
    for side in SIDES:
        for depth in args.depths:
            if depth == 0 and side != SIDES[0]:
                continue
            n = found = usable = 0
            for k, (img, box) in enumerate(zip(probes, boxes, strict=True)):
                n += 1
                try:
                    face = engine.analyze(np.ascontiguousarray(cut(img, box, side, depth)), max_faces=1)[0]
                except NoFaceFound:
                    continue
                found += 1
                if not face.quality.ok:
                    continue
                usable += 1
                scores = matrix @ face.embedding
                threshold = cfg.threshold_masked if face.masked else cfg.threshold_unmasked
                best = int(np.argmax(scores))
                matched = bool(best == k and scores[k] >= threshold)
                wrong = bool(best != k and scores[best] >= threshold)
                faces.append((side if depth else "uncut", depth, face.quality.outside, matched, wrong))
            mine = [f for f in faces if f[0] == (side if depth else "uncut") and f[1] == depth]
            rows.append({"side": side if depth else "uncut", "depth": depth, "n": n, "found": found, "usable": usable,
                         "mean_outside": float(np.mean([f[2] for f in mine])) if mine else None,
                         "matched": sum(f[3] for f in mine), "wrong": sum(f[4] for f in mine)})
    cut_faces = [f for f in faces if f[1] > 0]
    candidates = []
    for limit in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 1.0):
        kept = [f for f in cut_faces if f[2] <= limit]
        refused = [f for f in cut_faces if f[2] > limit]
        candidates.append({"max_outside": limit, "cut": len(cut_faces), "refused": len(refused),
                           "kept_matched": sum(f[3] for f in kept), "kept": len(kept),
                           "kept_wrong": sum(f[4] for f in kept), "refused_would_match": sum(f[3] for f in refused)})
    results = {"args": vars(args), "people": len(probes), "max_outside": cfg.max_outside, "reason": PARTIAL,
               "rows": rows, "candidates": candidates, "seconds": round(time.time() - t0, 1),
               "provenance": provenance()}
    print(table(results))
    write_json(results_path("partial_faces", REPO), results)


def table(results: dict) -> str:
    """Two markdown tables: the cuts, and the candidate values of ``max_outside``."""
    def pct(v: int, of: int) -> str:
        return f"{100 * v / of:.1f}% ({v})" if of else "-"

    out = ["| probe | face found | past the gate's other checks | mean share of the face outside "
           "| matched to its person | matched another person |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        what = "uncut" if r["side"] == "uncut" else f"{r['side']} {r['depth']:.0%} of the box cut off"
        outside = "-" if r["mean_outside"] is None else f"{r['mean_outside']:.2f}"
        out.append(f"| {what} | {pct(r['found'], r['n'])} | {pct(r['usable'], r['n'])} | {outside} "
                   f"| {pct(r['matched'], r['usable'])} | {pct(r['wrong'], r['usable'])} |")
    out += ["", "| max_outside | cut probes refused | kept: matched to their person | kept: matched another person "
            "| refused that would have matched |", "|---|---|---|---|---|"]
    for c in results["candidates"]:
        out.append(f"| {c['max_outside']} | {pct(c['refused'], c['cut'])} | {pct(c['kept_matched'], c['kept'])} "
                   f"| {pct(c['kept_wrong'], c['kept'])} | {pct(c['refused_would_match'], c['refused'])} |")
    out.append(f"\n{results['people']} LFW DevTest people (first photo enrolled uncut, second photo the probe); "
               f"the engine's max_outside is {results['max_outside']}. {results['seconds']} s.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
