"""Dim light and blur at the kiosk: what the quality gate's light and blur checks refuse, and what
the frames they refuse would have decided.

The gate refuses a face whose skin above any mask (brows to nose bridge) reads darker than
``min_brightness`` (the kiosk says "too dark") and one whose eye band is out of focus ("blurry").
Until 2026-12-05 both were judged as set on well-lit photos: darker than 45, and a Laplacian
variance under 12, a figure that falls with the square of the light. This benchmark dims and
blurs LFW DevTest probes, as a camera in dim light or a moving face would show them, and
identifies every frame with the gate's light and blur checks bypassed (its size, edge and pose
checks kept), to tell how dark a frame may be before it decides wrongly, not merely less often,
and which blur measure tells blur from dim light.

Gallery and probes are those of ``bench/identification.py`` (the first photo of ``--known`` DevTest
people enrolled as the product enrols them, the thresholds fitted on the gallery as a rebuild fits
them; probes: another photo of each plus one photo of ``--unknown`` people not enrolled, unmasked
and wearing MaskTheFace masks the product never saw). Each probe is seen in each of
``--conditions`` (light factor : blur sigma): blurred by a Gaussian of that sigma (source pixels),
then dimmed to that factor of the scene's light (in linear light: a 2.2 gamma, then Gaussian
sensor noise of ``--noise`` grey levels), then encoded at the kiosk's JPEG quality 0.8, and
analysed as a kiosk frame.

Reported: per condition, the frames' skin brightness, the share refused as too dark (before and
now) and as blurred by each blur measure (``sharpness_measures``), enrolled people's frames matched
to themselves and strangers' frames accepted at the site's thresholds; per band of the measured
skin brightness (unblurred frames), the same matches and false accepts.

Usage: ``python bench/light.py [--known 250] [--unknown 500] [--conditions 1:0,0.1:0,1:2.5,...]``
(about 12 minutes on two cores; ``--from-rows`` tabulates the last run's frames again). Prints
tables and writes ``bench/results/light.json``.
"""


from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from identification import SHARED, build  # noqa: E402
from provenance import provenance, results_path, write_json  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.benchmark import enrol_gallery, person_images  # noqa: E402
from recognition.engine.errors import EngineError  # noqa: E402
from recognition.engine.gallery import UNMASKED, identify  # noqa: E402
from recognition.engine.quality import BLURRY, TOO_BRIGHT, TOO_DARK  # noqa: E402
from recognition.presence import SCORED_WHEN_REFUSED, WELCOME_FAR_MARGIN  # noqa: E402

# bands of the measured skin brightness (0-255) the decisions are counted in
BANDS = (0, 20, 25, 30, 35, 40, 45, 55, 70, 256)
# light factor : blur sigma (source pixels): full light, three dimmer scenes, blur in full and dim light
DEFAULT_CONDITIONS = "1:0,0.25:0,0.1:0,0.055:0,0.04:0,1:1.5,1:2.5,1:3.5,0.1:2.5,0.04:2.5"
ROWS = REPO / "var" / "bench" / "light" / "rows.json"
BRIGHTNESS_BEFORE, SHARPNESS_BEFORE = 45.0, 12.0   # the gate's light and blur limits until 2026-12-05


def dim(image: np.ndarray, factor: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` as the scene would look with ``factor`` of its light: scaled in linear light
    (gamma 2.2), plus Gaussian noise of ``noise`` grey levels (a camera's gain in the dark)."""
    linear = (image.astype(np.float32) / 255.0) ** 2.2 * factor
    out = linear ** (1 / 2.2) * 255.0 + rng.normal(0.0, noise, image.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def sharpness_measures(quality) -> dict[str, float]:
    """Sharpness measures of the gate's eye band: ``raw`` (the variance of its Laplacian, which
    the gate judged blur by until 2026-12-05 and which falls with the square of the light),
    ``lit`` (raw scaled up by ``(128 / brightness)^2`` for a face darker than 128) and ``focus``
    (the gate's since: the same of the band smoothed by a 1.5 px Gaussian first, so that a dim
    frame's noise is not taken for detail; :class:`recognition.engine.quality.Quality`)."""
    gain = max(1.0, 128.0 / max(quality.brightness, 1.0)) ** 2
    return {"raw": quality.sharpness, "lit": quality.sharpness * gain, "focus": quality.focus}


def frames(engine, config: EngineConfig, probes: dict[str, list[Path]], known: set[str], index, site,
           conditions: list[tuple[float, float]], noise: float, seed: int, min_face_px: float,
           label: str) -> list[dict]:
    """Every probe in every condition (light factor, blur sigma), analysed and identified as a
    kiosk frame (the gate's light and sharpness checks bypassed): one row per frame."""
    rows = []
    labels = np.unique(index.labels.astype(str), return_inverse=True)
    jobs = [(person, path) for person, files in probes.items() for path in files]
    t0 = time.time()
    for n, (person, path) in enumerate(jobs):
        image = cv2.imread(str(path))
        for ci, (light, blur) in enumerate(conditions):
            rng = np.random.default_rng([seed, n, ci])
            frame = cv2.GaussianBlur(image, (0, 0), blur) if blur > 0 else image   # optics first
            frame = frame if light == 1.0 else dim(frame, light, noise, rng)
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
            row = {"set": label, "person": person, "known": person in known, "light": light, "blur": blur,
                   "face": False}
            try:
                face = engine.analyze(data.tobytes(), max_faces=3)[0]
            except EngineError:
                rows.append(row)
                continue
            q = face.quality
            # the gate's other checks, as the kiosk applies them (its own minimum width included)
            other_ok = (q.face_px >= config.min_face_px and face.width >= min_face_px
                        and q.outside <= config.max_outside and abs(q.yaw) <= config.max_yaw
                        and abs(q.pitch) <= config.max_pitch)
            d = identify(engine, face, index, site)
            row.update({"face": True, "other_ok": bool(other_ok), "brightness": q.brightness,
                        "reason": q.reason, "masked": bool(face.masked), "accepted": bool(d.accepted),
                        "label": d.label if d.accepted else None, "score": float(d.score),
                        "threshold": float(d.threshold), **sharpness_measures(q),
                        **against_welcomed(face, person, index, labels, d.threshold)})
            rows.append(row)
        if (n + 1) % 100 == 0:
            print(f"  {label}: {n + 1}/{len(jobs)} probes, {time.time() - t0:.0f} s", flush=True)
    return rows


def against_welcomed(face, person: str, index, labels: tuple[np.ndarray, np.ndarray], threshold: float) -> dict:
    """A frame scored against each enrolled person as the kiosk scores a refused face against the
    person whose welcome stands (``recognition.presence.SCORED_WHEN_REFUSED``, for light): ``own_margin``, its
    own person's score less the threshold (``None``: not enrolled); ``others`` / ``others_near``, the
    other enrolled people, and how many of them it scores within ``WELCOME_FAR_MARGIN`` of the
    threshold (their welcome would not be hidden by it)."""
    names, codes = labels
    best = np.full(len(names), -np.inf, np.float32)
    np.maximum.at(best, codes, index.scores(face.embedding, kinds=None if face.masked else (UNMASKED,)))
    own = np.flatnonzero(names == person)
    others = np.delete(best, own)
    return {"own_margin": float(best[own[0]] - threshold) if len(own) else None, "others": len(others),
            "others_near": int((others >= threshold - WELCOME_FAR_MARGIN).sum())}


# the refusals the table measures: the kiosk scores those of SCORED_WHEN_REFUSED against the person
# whose welcome stands (light; blur measured, not scored: its own people fell far below too often)
LIGHT_OR_BLUR = (TOO_DARK, TOO_BRIGHT, BLURRY)


def welcome_table(rows: list[dict], conditions: list[tuple[float, float]]) -> list[dict]:
    """Per set and condition, the frames the gate refuses for their light or blur (the kiosk scores
    those of ``SCORED_WHEN_REFUSED`` against the person whose welcome stands): enrolled people's own frames more than
    ``WELCOME_FAR_MARGIN`` below their threshold (each hides their own welcome when two come in a
    row), and of every frame against every other enrolled person, the pairs within the margin (a
    stranger whose frames would not hide that person's welcome)."""
    out = []
    for label in sorted({r["set"] for r in rows}):
        for light, blur in conditions:
            rs = [r for r in rows if r["set"] == label and r["light"] == light and r["blur"] == blur
                  and r["face"] and r.get("reason") in LIGHT_OR_BLUR]
            own = [r for r in rs if r.get("own_margin") is not None]
            out.append({"set": label, "light": light, "blur": blur, "refused": len(rs), "own": len(own),
                        "own_far": sum(r["own_margin"] < -WELCOME_FAR_MARGIN for r in own),
                        "pairs": sum(r.get("others", 0) for r in rs),
                        "pairs_near": sum(r.get("others_near", 0) for r in rs)})
    return out


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "-"


def decided(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Enrolled people's and strangers' frames with a face that passes the gate's other checks."""
    rs = [r for r in rows if r["face"] and r["other_ok"]]
    return [r for r in rs if r["known"]], [r for r in rs if not r["known"]]


def condition_table(rows: list[dict], conditions: list[tuple[float, float]], limits: dict[str, float],
                    min_brightness: float) -> list[dict]:
    """Per set and condition: faces found, median brightness, the share refused as too dark (at
    the gate's limit before 2026-12-05, 45, and at ``min_brightness``) and, by each sharpness
    measure at its limit, as blurred (of those light enough); enrolled people's frames matched
    to themselves and strangers' frames accepted (every frame, the gate's light checks bypassed)."""
    out = []
    for label in sorted({r["set"] for r in rows}):
        for light, blur in conditions:
            rs = [r for r in rows if r["set"] == label and r["light"] == light and r["blur"] == blur]
            fs = [r for r in rs if r["face"]]
            known, strangers = decided(rs)
            lit = [r for r in fs if r["brightness"] >= min_brightness]
            out.append({"set": label, "light": light, "blur": blur, "frames": len(rs), "faces": len(fs),
                        "median_brightness": float(np.median([r["brightness"] for r in fs])) if fs else None,
                        "too_dark_before": sum(r["brightness"] < BRIGHTNESS_BEFORE for r in fs),
                        "too_dark": sum(r["brightness"] < min_brightness for r in fs),
                        **{f"blurry_{m}": sum(r[m] < t for r in lit) for m, t in limits.items()},
                        "lit": len(lit),
                        "known": len(known), "self": sum(r["label"] == r["person"] for r in known),
                        "strangers": len(strangers), "stranger_accepted": sum(r["accepted"] for r in strangers)})
    return out


def band_table(rows: list[dict]) -> list[dict]:
    """Per set and band of skin brightness, unblurred frames only: enrolled people's frames
    matched to themselves / to someone else, strangers' frames accepted."""
    out = []
    for label in sorted({r["set"] for r in rows}):
        for lo, hi in itertools.pairwise(BANDS):
            known, strangers = decided([r for r in rows if r["set"] == label and r["blur"] == 0 and r["face"]
                                        and lo <= r["brightness"] < hi])
            out.append({"set": label, "band": f"{lo}-{hi}", "known_frames": len(known),
                        "self": sum(r["label"] == r["person"] for r in known),
                        "other": sum(r["accepted"] and r["label"] != r["person"] for r in known),
                        "stranger_frames": len(strangers), "stranger_accepted": sum(r["accepted"] for r in strangers)})
    return out


def limits_for(rows: list[dict], focus_limit: float) -> dict[str, float]:
    """The limits the measures are judged at: ``raw`` the gate's before (12), ``focus`` the
    gate's now, ``lit`` the one that refuses as many of the blurred frames in full light as
    ``raw`` does (the same power to catch blur where light is no excuse)."""
    blurred = [r for r in rows if r["face"] and r["light"] == 1.0 and r["blur"] > 0]
    share = np.mean([r["raw"] < SHARPNESS_BEFORE for r in blurred]) if blurred else 0.0
    lit = float(np.quantile([r["lit"] for r in blurred], share)) if blurred else SHARPNESS_BEFORE
    return {"raw": SHARPNESS_BEFORE, "lit": lit, "focus": focus_limit}


def focus_matched(rows: list[dict]) -> float | None:
    """The focus limit that refuses as many blurred well-lit frames as the raw figure at 12 (how
    the gate's ``min_focus`` is chosen)."""
    blurred = [r for r in rows if r["face"] and r["light"] == 1.0 and r["blur"] > 0]
    if not blurred:
        return None
    share = np.mean([r["raw"] < SHARPNESS_BEFORE for r in blurred])
    return float(np.quantile([r["focus"] for r in blurred], share))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--known", type=int, default=250)
    ap.add_argument("--unknown", type=int, default=500)
    ap.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                    help="light factor:blur sigma (source pixels) pairs; light 1 and blur 0 is the photo as it is")
    ap.add_argument("--noise", type=float, default=3.0, help="sensor noise of a dimmed frame, grey levels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--descriptor", default="sface")
    ap.add_argument("--min-brightness", type=float, default=None,
                    help="the light limit the condition table applies (default: the engine's)")
    ap.add_argument("--from-rows", action="store_true", help=f"tabulate {ROWS.relative_to(REPO)} again, run nothing")
    args = ap.parse_args()
    try:
        conditions = [(float(a), float(b)) for a, b in (c.split(":") for c in args.conditions.split(","))]
    except ValueError:
        sys.exit("--conditions: light:blur pairs, e.g. 1:0,0.1:0,1:2")
    if not conditions or any(not 0 < a <= 1 or b < 0 for a, b in conditions):
        sys.exit("--conditions: light factors in (0, 1], blur sigmas of 0 or more")
    t0 = time.time()
    config = EngineConfig.for_descriptor(args.descriptor)
    if args.from_rows:
        saved = json.loads(ROWS.read_text())
        rows, site, conditions = saved["rows"], saved["thresholds"], [tuple(c) for c in saved["conditions"]]
    else:
        if not SHARED.is_dir():
            sys.exit(f"{SHARED} not found: the light benchmark needs ../shared/data")
        engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), config)
        gallery, plain, masked = build(engine, args.known, args.unknown, args.seed)
        index, site, _failed = enrol_gallery(engine, person_images(gallery), np.random.default_rng(args.seed))
        known = set(index.identities)
        min_face_px = float(os.environ.get("MASKNET_KIOSK_MIN_FACE_PX", "80"))
        rows = []
        for label, root in (("unmasked", plain), ("masked", masked)):
            rows += frames(engine, config, person_images(root), known, index, site, conditions, args.noise,
                           args.seed, min_face_px, label)
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        ROWS.write_text(json.dumps({"args": vars(args), "thresholds": site, "conditions": conditions, "rows": rows}))
    min_brightness = config.min_brightness if args.min_brightness is None else args.min_brightness
    limits = limits_for(rows, config.min_focus)
    by_condition, by_band = condition_table(rows, conditions, limits, min_brightness), band_table(rows)
    named = ", ".join(f"{m} {t:.1f}" for m, t in limits.items())
    matched = focus_matched(rows)
    named += "" if matched is None else f" (the focus limit matched to raw: {matched:.2f})"
    print(f"\nthresholds: {site}; light limit {min_brightness:g} (before: {BRIGHTNESS_BEFORE:g}); blur limits "
          f"(raw: the gate's before; lit: as many blurred well-lit frames refused as raw; focus: the gate's): "
          f"{named}\n")
    print("| set | light | blur | faces found | median skin brightness | too dark: before / now | blurry: raw / lit / "
          "focus (of those light enough) | enrolled matched to themselves | strangers accepted |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in by_condition:
        mb = "-" if r["median_brightness"] is None else f"{r['median_brightness']:.0f}"
        blurry = " / ".join(pct(r[f"blurry_{m}"], r["lit"]) for m in limits)
        print(f"| {r['set']} | {r['light']:g} | {r['blur']:g} | {pct(r['faces'], r['frames'])} | {mb} | "
              f"{pct(r['too_dark_before'], r['faces'])} / {pct(r['too_dark'], r['faces'])} | {blurry} |"
              f" {pct(r['self'], r['known'])} | "
              f"{pct(r['stranger_accepted'], r['strangers'])} |")
    print("\n| set | skin brightness (unblurred frames) | enrolled frames | matched to themselves | to someone else | "
          "strangers' frames | strangers accepted |\n|---|---|---|---|---|---|---|")
    for r in by_band:
        print(f"| {r['set']} | {r['band']} | {r['known_frames']} | {pct(r['self'], r['known_frames'])} | "
              f"{pct(r['other'], r['known_frames'])} | {r['stranger_frames']} | "
              f"{pct(r['stranger_accepted'], r['stranger_frames'])} |")
    by_welcome = welcome_table(rows, conditions)
    print(f"\nA welcome standing: frames refused for their light or blur, scored against the person welcomed "
          f"(far: more than {WELCOME_FAR_MARGIN:g} below the threshold; two in a row hide the welcome; the kiosk "
          f"scores {', '.join(sorted(SCORED_WHEN_REFUSED))})\n\n"
          "| set | light | blur | refused for light or blur | enrolled people's own frames far below them | "
          "frame-person pairs not far (a stranger not told apart) |\n|---|---|---|---|---|---|")
    for r in by_welcome:
        if r["refused"]:
            print(f"| {r['set']} | {r['light']:g} | {r['blur']:g} | {r['refused']} | {pct(r['own_far'], r['own'])}"
                  f" of {r['own']} | {100.0 * r['pairs_near'] / max(r['pairs'], 1):.2f}% of {r['pairs']} |")
    write_json(results_path("light", REPO),
               {"args": vars(args), "seconds": round(time.time() - t0, 1), "provenance": provenance(config),
                "thresholds": site, "limits": limits, "focus_matched": matched, "by_condition": by_condition,
                "by_band": by_band, "by_welcome": by_welcome})
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
