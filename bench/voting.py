"""Multi-frame decisions: what the kiosk's vote does to false accepts (issue 3).

Sequences are built from the identification benchmark's photos (``bench/identification.py``:
250 enrolled LFW DevTest people, masked probes of them and of 100 people who are not enrolled,
all with MaskTheFace masks the product never saw). Each probe photo becomes one *presence*: a
person standing at the kiosk for ``--frames`` frames, each a fresh camera-like view of the same
photo (small shift, scale, rotation, exposure, sensor noise, JPEG at the page's quality). The
gallery is enrolled as the product enrols (``benchmark.enrol_gallery``: the quality gate refuses
photos as the admin does, the site thresholds fitted on it as a rebuild fits them), and every frame
goes through the kiosk's path: ``Engine.analyze``, then no decision for a face the quality gate
refuses or narrower than ``MASKNET_KIOSK_MIN_FACE_PX`` (80), else ``gallery.identify``. The
per-frame answers are cached (keyed by the engine's settings and models), then these decision
policies are replayed over them:

* **first frame**: the first usable frame decides (a recogniser without voting);
* **any frame**: a check-in as soon as any frame is accepted (what a naive kiosk loop does over a
  whole presence);
* **vote**: :class:`recognition.voting.Voter` with the kiosk's settings, fed at the kiosk's frame
  rhythm; a later accepted verdict in the same presence still counts (the kiosk would act on it),
  but after an "unknown" verdict it needs 5 of the window's 6 frames to agree
  (``MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN``);
* **vote, no stricter rule after unknown**: the same without that rule (the kiosk until now).

Reported per threshold offset (added to the engine's calibrated thresholds): the share of
stranger presences that end in a check-in (FPIR per presence), the share of enrolled people's
presences checked in as themselves (TPIR) and as someone else. Frames from one photo are more
alike than a real video's; the vote's gain here is a lower bound for independent errors.

Then what keeps a welcome on screen (:func:`welcome_doubt`): each presence replayed as if a welcome
stood when it began, per margin of ``recognition.consumers.WELCOME_DOUBT_MARGIN``.

Usage: ``python bench/voting.py [--frames 12] [--known 250] [--unknown 100] [--descriptor arcface]``
Prints a table and writes ``bench/results/voting.json`` (``voting-arcface.json`` for the opt-in descriptor).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import identification  # noqa: E402
from provenance import descriptor_suffix, provenance, results_path, settings_digest, write_json  # noqa: E402

from recognition.engine import EngineConfig, EngineError, load_engine  # noqa: E402
from recognition.engine.benchmark import enrol_gallery, person_images  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.gallery import MASK_VARIANTS, identify  # noqa: E402
from recognition.voting import ACCEPTED, UNKNOWN, Observation, Voter  # noqa: E402

CACHE = REPO / "var" / "bench" / "voting"
FRAME_GAP_S = 0.15          # one answered frame every ~150 ms (docs/performance.md, 1 kiosk)
OFFSETS = (-0.08, -0.06, -0.04, -0.02, 0.0, 0.02)
MIN_FACE_PX = float(os.environ.get("MASKNET_KIOSK_MIN_FACE_PX", "80"))   # the kiosk's "come closer"


def camera_view(img: np.ndarray, rng: np.random.Generator) -> bytes:
    """One camera-like frame of a photo: jitter, exposure, noise, JPEG quality 80 (the page's)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 + rng.normal(0, 3), h / 2 + rng.normal(0, 3)), rng.normal(0, 3),
                                rng.uniform(0.95, 1.05))
    out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    out = out * rng.uniform(0.85, 1.15) + rng.normal(0, 3, out.shape)
    ok, buf = cv2.imencode(".jpg", np.clip(out, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


def record(engine, gallery: Path, probes: Path, n_frames: int, seed: int, people: str = "") -> dict:
    """Per-frame answers of every presence (cached in var/bench/voting)."""
    # the answers depend on every setting of the engine (thresholds included: they are recorded),
    # its models and how the gallery is enrolled: any change is a new cache
    digest = settings_digest(engine.config, MASK_VARIANTS, MIN_FACE_PX)
    cache = CACHE / f"frames-{n_frames}-{seed}-{people}{digest}{descriptor_suffix(engine.config.descriptor)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    rng = np.random.default_rng(seed)
    index, site, _refused = enrol_gallery(engine, person_images(gallery), rng)
    presences = []
    sets = person_images(probes)
    for i, (person, files) in enumerate(sets.items()):
        img = cv2.imread(str(files[0]))
        frames = []
        for _ in range(n_frames):
            try:
                face = engine.analyze(camera_view(img, rng), max_faces=3)[0]
            except EngineError:
                frames.append(None)      # no face in this frame: the kiosk says "searching"
                continue
            if not face.quality.ok or face.width < MIN_FACE_PX:
                frames.append({"usable": False})   # the kiosk asks them to adjust and decides nothing
                continue
            d = identify(engine, face, index, site)
            frames.append({"label": d.label, "score": round(float(d.score), 5), "threshold": d.threshold,
                           "masked": bool(face.masked), "usable": True})
        presences.append({"person": person, "known": person in index.identities, "frames": frames})
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(sets)} presences", flush=True)
    doc = {"n_frames": n_frames, "seed": seed, "gallery_people": len(index.identities), "site_thresholds": site,
           "presences": presences}
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(doc))
    return doc


def _vote(usable: list[dict], accepted: list[str | None], offset: float, voter: Voter) -> str | None:
    """The identity the voter checks in during one presence (``None``: nobody)."""
    for i, f in enumerate(usable):
        v = voter.add(Observation(at=i * FRAME_GAP_S, label=f["label"], score=f["score"],
                                  accepted=accepted[i] is not None, masked=f["masked"],
                                  threshold=f["threshold"] + offset))
        if v is not None and v.kind == ACCEPTED:
            return v.label
    return None


def replay(presences: list[dict], offset: float, min_frames: int, min_frames_masked: int,
           after_unknown: int) -> dict:
    """The policies over the recorded presences at ``threshold + offset``."""
    policies = ("first", "any", "vote_plain", "vote")
    out = {p: {"known": 0, "right": 0, "wrong": 0, "strangers": 0, "false": 0} for p in policies}
    for pres in presences:
        usable = [f for f in pres["frames"] if f and f["usable"]]
        accepted = [f["label"] if f["score"] >= f["threshold"] + offset else None for f in usable]
        decided = {"first": accepted[0] if accepted else None,
                   "any": next((a for a in accepted if a is not None), None),
                   "vote_plain": _vote(usable, accepted, offset, Voter(
                       min_frames=min_frames, min_frames_masked=min_frames_masked, min_frames_after_unknown=1)),
                   "vote": _vote(usable, accepted, offset, Voter(
                       min_frames=min_frames, min_frames_masked=min_frames_masked,
                       min_frames_after_unknown=after_unknown))}
        for policy, label in decided.items():
            r = out[policy]
            if pres["known"]:
                r["known"] += 1
                r["right"] += label == pres["person"]
                r["wrong"] += label is not None and label != pres["person"]
            else:
                r["strangers"] += 1
                r["false"] += label is not None
    return {p: {"tpir": r["right"] / max(r["known"], 1), "wrong_person": r["wrong"] / max(r["known"], 1),
                "fpir": r["false"] / max(r["strangers"], 1), **r} for p, r in out.items()}


DOUBT_MARGINS = (None, 0.2, 0.15, 0.1, 0.05, 0.0)


def welcome_doubt(presences: list[dict], min_frames: int, min_frames_masked: int, after_unknown: int) -> dict:
    """What keeps a welcome on screen (``recognition.consumers.WELCOME_DOUBT_MARGIN``), per margin.

    Each presence is replayed as if a welcome stood when it began: for an enrolled person, their own
    (their frames turning borderline as a mask goes on); for a stranger, the welcome of their
    nearest match (the most common label of their frames: the case the rule is about, a stranger
    stepping in right after the person they look most like). The kiosk keeps the welcome through an
    "unknown" verdict whose nearest match is the person welcomed and whose frames came within the
    margin of the threshold (``None``: the nearest match alone, the rule until 2026-12-05), and
    through no verdict at all. Reported: enrolled people told "not recognised" after their own
    welcome, and strangers left reading someone else's welcome."""
    rows = {}
    for margin in DOUBT_MARGINS:
        known = told = strangers = misled = 0
        for pres in presences:
            usable = [f for f in pres["frames"] if f and f["usable"]]
            if not usable:
                continue
            labels = [f["label"] for f in usable if f["label"] is not None]
            welcomed = pres["person"] if pres["known"] else (Counter(labels).most_common(1) or [(None, 0)])[0][0]
            voter = Voter(min_frames=min_frames, min_frames_masked=min_frames_masked,
                          min_frames_after_unknown=after_unknown)
            kept = True
            for i, f in enumerate(usable):
                v = voter.add(Observation(at=i * FRAME_GAP_S, label=f["label"], score=f["score"],
                                          accepted=f["score"] >= f["threshold"], masked=f["masked"],
                                          threshold=f["threshold"]))
                if v is not None and v.kind == UNKNOWN:
                    kept = v.nearest == welcomed and (margin is None or v.nearest_margin >= -margin)
                    break
                if v is not None and v.label != welcomed:   # accepted as someone else: a new welcome
                    kept = False
                    break
            if pres["known"]:
                known += 1
                told += not kept
            else:
                strangers += 1
                misled += kept
        rows["nearest alone" if margin is None else f"{margin:.2f}"] = {
            "known": known, "told_not_recognised": told, "strangers": strangers, "left_reading_welcome": misled}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12, help="frames per presence (default 12)")
    ap.add_argument("--known", type=int, default=250)
    ap.add_argument("--unknown", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-frames", type=int, default=3, help="MASKNET_KIOSK_VOTE_FRAMES")
    ap.add_argument("--min-frames-masked", type=int, default=4, help="MASKNET_KIOSK_VOTE_FRAMES_MASKED")
    ap.add_argument("--after-unknown", type=int, default=5, help="MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN")
    ap.add_argument("--descriptor", choices=DESCRIPTORS, default=DESCRIPTORS[0],
                    help="default faceres+resnet; sface (the site's), arcface write voting[...]-<descriptor>.json")
    args = ap.parse_args()
    if not identification.SHARED.is_dir():
        sys.exit(f"{identification.SHARED} not found: this benchmark needs ../shared/data")
    t0 = time.time()
    config = EngineConfig.for_descriptor(args.descriptor)
    engine = load_engine(REPO / "models", config)
    gallery, _plain, masked = identification.build(engine, args.known, args.unknown, args.seed)
    doc = record(engine, gallery, masked, args.frames, args.seed, f"{args.known}+{args.unknown}-")
    rows = {f"{o:+.2f}": replay(doc["presences"], o, args.min_frames, args.min_frames_masked, args.after_unknown)
            for o in OFFSETS}
    print(f"\n{len(doc['presences'])} masked presences x {args.frames} frames, gallery {doc['gallery_people']} people")
    print("| threshold offset | policy | TPIR (right person) | wrong person | FPIR (strangers checked in) |")
    print("|---|---|---|---|---|")
    for off, res in rows.items():
        for policy, r in res.items():
            print(f"| {off} | {policy} | {r['tpir']:.3f} | {r['wrong_person']:.3f} | {r['fpir']:.3f} "
                  f"({r['false']}/{r['strangers']}) |")
    welcome = welcome_doubt(doc["presences"], args.min_frames, args.min_frames_masked, args.after_unknown)
    print("\nA welcome standing when the presence begins (their own, or a stranger's nearest match's):")
    print("| kept through an unknown within | enrolled told \"not recognised\" after their welcome "
          "| strangers left reading someone else's welcome |")
    print("|---|---|---|")
    for margin, r in welcome.items():
        print(f"| {margin} | {r['told_not_recognised'] / max(r['known'], 1):.1%} ({r['told_not_recognised']}/"
              f"{r['known']}) | {r['left_reading_welcome'] / max(r['strangers'], 1):.1%} "
              f"({r['left_reading_welcome']}/{r['strangers']}) |")
    out = write_json(results_path(f"voting{descriptor_suffix(args.descriptor)}", REPO), {
        "args": vars(args), "mask_variants": MASK_VARIANTS, "n_presences": len(doc["presences"]),
        "seconds": round(time.time() - t0, 1), "provenance": provenance(config), "results": rows, "welcome": welcome})
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
