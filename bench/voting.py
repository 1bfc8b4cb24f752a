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
stood when it began, per margin of ``recognition.consumers.WELCOME_DOUBT_MARGIN``. And what ends one
(:func:`welcome_end`): the kiosk's frame-by-frame rules (``WELCOME_FAR_MARGIN``, ``WELCOME_FAR_FRAMES``,
``WELCOME_OTHER_FRAMES``), each frame scored against the person welcomed as the kiosk scores it
(``gallery.score_for``), over the frames the kiosk would vote on (two people side by side: none, and
the votes forgotten, ``SEVERAL_HOLD_FRAMES``), per setting of the first two. Both replay each welcome
through the kiosk's own :class:`recognition.presence.Presence` (``welcome_ends``, ``verdict_due``), given
each row's setting as :class:`recognition.presence.WelcomeRules`: the bench keeps no copy of those rules.

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
from recognition.engine.gallery import MASK_VARIANTS, identify, score_for  # noqa: E402
from recognition.presence import AUDIT_DOUBT, CHECK_IN, Outcome, Presence, WelcomeRules  # noqa: E402
from recognition.voting import ACCEPTED, UNKNOWN, Observation, Verdict, Voter  # noqa: E402

CACHE = REPO / "var" / "bench" / "voting"
FRAME_GAP_S = 0.15          # one answered frame every ~150 ms (docs/performance.md, 1 kiosk)
OFFSETS = (-0.08, -0.06, -0.04, -0.02, 0.0, 0.02)
MIN_FACE_PX = float(os.environ.get("MASKNET_KIOSK_MIN_FACE_PX", "80"))   # the kiosk's "come closer"
FORGET = "forget"   # in :func:`kiosk_frames`: two people side by side, the votes so far forgotten
WINDOW = "replayed"  # the cooldown window of a replayed welcome: the same person's vote again keeps it


def kiosk_rules():
    """``recognition.consumers`` (Django set up with the test settings, nothing in the database is
    touched): the kiosk's own rules and constants, read from the product rather than copied."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.test")
    import django

    django.setup()
    from recognition import consumers

    return consumers


def kiosk_frames(frames: list[dict | None], hold_frames: int) -> list[dict | str]:
    """The recorded frames of one presence the kiosk votes on, in order, with :data:`FORGET` where it
    forgets the votes: a frame of two people side by side (``"several"``) is not voted on, nor are
    the next ``hold_frames`` frames with a face (``SEVERAL_HOLD_FRAMES``; one the quality gate
    refuses counts), and the votes so far go. Frames without a face (``None``) and refused ones are
    left out, as the kiosk leaves them out of the vote."""
    out: list[dict | str] = []
    hold = 0
    for f in frames:
        if f is None:
            continue
        if f.get("several"):
            hold = hold_frames
            if out and out[-1] != FORGET:
                out.append(FORGET)
            continue
        if hold:
            hold -= 1
            continue
        if f["usable"]:
            out.append(f)
    while out and out[-1] == FORGET:
        out.pop()
    return out


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
    """Per-frame answers of every presence (cached in var/bench/voting).

    A frame also says whether the kiosk saw two people side by side in it (``several``), and, for
    :func:`welcome_end`, what it scores against each person whose welcome is replayed over the
    presence (``welcomed``: ``{label: score}``, the kiosk's ``FrameAnalysis.welcomed``): an enrolled
    person's own, and for everyone their nearest match (``nearest``: the label most of the frames the
    kiosk votes on came closest to) and an enrolled person drawn at random (``random``: whoever stood
    before them in a queue; drawn with ``seed + 1`` in presence order)."""
    kiosk = kiosk_rules()
    # the answers depend on every setting of the engine (thresholds included: they are recorded),
    # its models, how the gallery is enrolled and what the kiosk counts as two people: any change is a new cache
    digest = settings_digest(engine.config, MASK_VARIANTS, MIN_FACE_PX, kiosk.SEVERAL_FACES_RATIO,
                             kiosk.SEVERAL_HOLD_FRAMES, "welcomed")
    cache = CACHE / f"frames-{n_frames}-{seed}-{people}{digest}{descriptor_suffix(engine.config.descriptor)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    rng = np.random.default_rng(seed)
    index, site, _refused = enrol_gallery(engine, person_images(gallery), rng)
    labels = sorted(index.identities)
    draw = np.random.default_rng(seed + 1)
    presences = []
    sets = person_images(probes)
    for i, (person, files) in enumerate(sets.items()):
        img = cv2.imread(str(files[0]))
        frames, faces = [], []
        for _ in range(n_frames):
            try:
                found = engine.analyze(camera_view(img, rng), max_faces=3)
            except EngineError:
                frames.append(None)      # no face in this frame: the kiosk says "searching"
                faces.append(None)
                continue
            face = found[0]
            several = kiosk._several_people(found, engine.config.detect_min_confidence)
            faces.append(face)
            if not face.quality.ok or face.width < MIN_FACE_PX:
                # the kiosk asks them to adjust and decides nothing
                frames.append({"usable": False, "several": several})
                continue
            d = identify(engine, face, index, site)
            frames.append({"label": d.label, "score": round(float(d.score), 5), "threshold": d.threshold,
                           "masked": bool(face.masked), "usable": True, "several": several})
        pres = {"person": person, "known": person in index.identities, "frames": frames}
        voted = [f for f in kiosk_frames(frames, kiosk.SEVERAL_HOLD_FRAMES) if f != FORGET]
        if voted and labels:
            pres["nearest"] = Counter(f["label"] for f in voted).most_common(1)[0][0]
            pres["random"] = labels[draw.integers(len(labels))]
            welcomed = {pres["nearest"], pres["random"]} | ({person} if pres["known"] else set())
            for f, face in zip(frames, faces, strict=True):
                if f is not None and f["usable"] and not f["several"]:
                    # as analyze_frame scores it: the decision's own score for its label, else score_for
                    f["welcomed"] = {w: round(float(f["score"] if f["label"] == w else score_for(face, index, w)), 5)
                                     for w in sorted(welcomed)}
        presences.append(pres)
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


def _welcome(presence: Presence, welcomed: str | None) -> None:
    """``welcomed``'s welcome stands from now on in ``presence`` (as if their check-in was just recorded)."""
    presence.outcome = Outcome("checked_in", welcomed, window=WINDOW)


def _verdict_ends_welcome(presence: Presence, verdict: Verdict) -> str | None:
    """What ``verdict`` does to the welcome standing in ``presence``, as the kiosk's
    :meth:`~recognition.presence.Presence.verdict_due` decides: ``"other"`` (someone else's check-in
    replaces it), ``"unknown"`` ("not recognised" replaces it) or ``None`` (it stays; an "unknown" kept
    through is recorded as the kiosk records it, so the next is judged as the kiosk judges it)."""
    due = presence.verdict_due(verdict, lambda: WINDOW)
    if due is None:
        return None
    if due.action == AUDIT_DOUBT:
        presence.unknown_recorded(verdict, due)
        return None
    return "other" if due.action == CHECK_IN else "unknown"


def welcome_doubt(presences: list[dict], min_frames: int, min_frames_masked: int, after_unknown: int) -> dict:
    """What keeps a welcome on screen (``recognition.consumers.WELCOME_DOUBT_MARGIN``), per margin.

    Each presence is replayed as if a welcome stood when it began: for an enrolled person, their own
    (their frames turning borderline as a mask goes on); for a stranger, the welcome of their
    nearest match (the most common label of their frames: the case the rule is about, a stranger
    stepping in right after the person they look most like). The kiosk keeps the welcome through an
    "unknown" verdict whose nearest match is the person welcomed and whose frames came within the
    margin of the threshold (``None``: the nearest match alone, the rule until 2026-12-05), and
    through no verdict at all: the kiosk's :meth:`~recognition.presence.Presence.verdict_due` at that
    margin, up to the first "unknown" verdict. Reported: enrolled people told "not recognised" after
    their own welcome, and strangers left reading someone else's welcome."""
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
            presence = Presence(voter, min_face_px=0, welcome_rules=WelcomeRules(
                doubt_margin=float("inf") if margin is None else margin))
            _welcome(presence, welcomed)
            kept = True
            for i, f in enumerate(usable):
                v = voter.add(Observation(at=i * FRAME_GAP_S, label=f["label"], score=f["score"],
                                          accepted=f["score"] >= f["threshold"], masked=f["masked"],
                                          threshold=f["threshold"]))
                if v is None:
                    continue
                ended = _verdict_ends_welcome(presence, v)
                if ended or v.kind == UNKNOWN:   # the first "unknown", or someone else's welcome
                    kept = ended is None
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


def _observed(frames: list[dict | str], voter: Voter):
    """``(i, frame, observation)`` of each frame of :func:`kiosk_frames` to feed ``voter`` (``i``: the
    voted frame's number, its time ``i`` frame gaps in); a :data:`FORGET` makes ``voter`` forget the votes."""
    i = -1
    for f in frames:
        if f == FORGET:
            voter.forget_votes()
            continue
        i += 1
        yield i, f, Observation(at=i * FRAME_GAP_S, label=f["label"], score=f["score"],
                                accepted=f["score"] >= f["threshold"], masked=f["masked"], threshold=f["threshold"])


def _welcome_stands(frames: list[dict | str], welcomed: str, voter: Voter, rules: WelcomeRules, start: int = 0,
                    key: str = "welcomed") -> tuple[int, str]:
    """One presence replayed with ``welcomed``'s welcome standing from its ``start``-th voted frame (the
    frames before only vote), through the kiosk's own :class:`recognition.presence.Presence` with
    ``rules`` (each voted frame to ``welcome_ends`` before the vote, as ``_interpret`` does, and each
    verdict to ``verdict_due``): ``(frames it was shown for, how it ended)``, ``"far"`` (frames in a
    row far below their threshold against ``welcomed``), ``"other"`` (frames in a row accepted as one
    other person, or their vote), ``"unknown"`` (a vote the welcome is not kept through) or ``"kept"``.
    ``key="score"`` scores each frame by its best match alone instead of against ``welcomed``."""
    presence = Presence(voter, min_face_px=0, welcome_rules=rules)
    shown = 0
    for i, f, obs in _observed(frames, voter):
        shown = i + 1
        if i == start:
            _welcome(presence, welcomed)
        if i >= start:
            ended = presence.welcome_ends(obs, (welcomed, f["score"] if key == "score" else f[key].get(welcomed)))
            if ended:
                return i, ended
        v = voter.add(obs)
        if i >= start and v is not None and (ended := _verdict_ends_welcome(presence, v)):
            return i, ended
    return shown, "kept"


def _own_vote(frames: list[dict | str], person: str, voter: Voter) -> int | None:
    """The voted frame at which the vote welcomes ``person`` (``None``: it welcomes nobody, or someone else)."""
    for i, _f, obs in _observed(frames, voter):
        v = voter.add(obs)
        if v is not None and v.kind == ACCEPTED:
            return i if v.label == person else None
    return None


WELCOME_FAR_ROWS = ((None, None), (0.05, 1), (0.05, 2), (0.08, 2), (0.1, 2), (0.15, 2), (0.1, 3))


def welcome_end(presences: list[dict], min_frames: int, min_frames_masked: int, after_unknown: int,
                kiosk: dict, settings: tuple = WELCOME_FAR_ROWS) -> dict:
    """What ends a welcome (``recognition.consumers.WELCOME_FAR_MARGIN``, ``WELCOME_FAR_FRAMES``), per
    ``(margin, frames)`` of ``settings`` (``(None, None)``: never, the vote alone), with the kiosk's
    other rules as ``kiosk`` gives them (``doubt_margin``, ``other_frames``, ``hold_frames``).

    Over the frames the kiosk votes on (:func:`kiosk_frames`) of each presence :func:`record` scored
    against the people welcomed, a welcome standing when the presence begins: for a stranger, that of
    an enrolled person drawn at random (a queue) and that of their nearest match (a look-alike), each
    reported as the frames the stranger reads it (``random``, ``nearest``: mean, median, 90th
    percentile, max, and how many read it through all their frames); for an enrolled person, their
    own, from the frame after their vote welcomed them (``own_after_vote``: how many such welcomes
    the frames end) and from their first frame (``own_from_start``, as if welcomed before a mask went
    on; ``told_unknown``: how many their vote tells "not recognised" instead). ``settings`` also takes
    ``(margin, frames, "score")``: each frame's best match's score in place of its score against the
    person welcomed."""
    def voter() -> Voter:
        return Voter(min_frames=min_frames, min_frames_masked=min_frames_masked, min_frames_after_unknown=after_unknown)

    def rules(margin: float | None, frames: int | None) -> WelcomeRules:
        return WelcomeRules(doubt_margin=kiosk["doubt_margin"], other_frames=kiosk["other_frames"],
                            far_margin=float("inf") if margin is None else margin, far_frames=frames)

    cases = []
    for pres in presences:
        frames = kiosk_frames(pres["frames"], kiosk["hold_frames"])
        if any(f != FORGET for f in frames):
            cases.append((pres, frames, _own_vote(frames, pres["person"], voter()) if pres["known"] else None))
    strangers = [(p, f) for p, f, _ in cases if not p["known"]]
    known = [(p, f, at) for p, f, at in cases if p["known"]]
    rows = {}
    for margin, n, *key in settings:
        ruled = rules(margin, n)
        key = key[0] if key else "welcomed"
        row: dict = {"margin": margin, "frames": n, "key": key}
        for who in ("random", "nearest"):
            ends = [_welcome_stands(f, p[who], voter(), ruled, key=key) for p, f in strangers]
            shown = np.array([e[0] for e in ends]) if ends else np.zeros(1)
            row[who] = {"mean": float(shown.mean()), "median": float(np.median(shown)),
                        "p90": float(np.percentile(shown, 90)), "max": int(shown.max()),
                        "kept": sum(e[1] == "kept" for e in ends), "strangers": len(ends)}
        after = [_welcome_stands(f, p["person"], voter(), ruled, start=at + 1, key=key)
                 for p, f, at in known if at is not None]
        start = [_welcome_stands(f, p["person"], voter(), ruled, key=key) for p, f, _ in known]
        row["own_after_vote"] = {"ended": sum(e[1] == "far" for e in after), "welcomed": len(after)}
        row["own_from_start"] = {"ended": sum(e[1] == "far" for e in start), "known": len(start),
                                 "told_unknown": sum(e[1] == "unknown" for e in start)}
        label = "never" if margin is None else f"X {margin:g}, N {n}" + (", best match alone" if key == "score" else "")
        rows[label] = row
    return rows


def own_margins(presences: list[dict], hold_frames: int) -> dict:
    """How far above their threshold enrolled people's own masked frames score against themselves
    (the frames the kiosk votes on): ``{"frames", "median", "p5"}``."""
    m = [f["welcomed"][p["person"]] - f["threshold"] for p in presences if p["known"]
         for f in kiosk_frames(p["frames"], hold_frames) if f != FORGET and f["masked"]]
    return {"frames": len(m), "median": float(np.median(m)) if m else None,
            "p5": float(np.percentile(m, 5)) if m else None}


def welcome_end_table(rows: dict, built: tuple[float, int]) -> list[str]:
    """The lines of :func:`welcome_end`'s table, the kiosk's own setting (``built``) in bold."""
    def shown(r: dict) -> str:
        return f"{r['mean']:.1f} / {r['median']:.0f} / {r['p90']:.0f}"

    lines = ["| ended at N frames in a row more than X below the threshold against the person welcomed "
             "| after a random person's welcome | after their nearest match's (strangers reading it through "
             "all their frames) | welcomed people's own welcome ended by their frames after it "
             "| all enrolled, from their first frame (told \"not recognised\" by their vote) |",
             "|---|---|---|---|---|"]
    for label, r in rows.items():
        cells = [label + (" (the kiosk's)" if (r["margin"], r["frames"], r["key"]) == (*built, "welcomed") else ""),
                 shown(r["random"]), f"{shown(r['nearest'])} ({r['nearest']['kept']} of {r['nearest']['strangers']})",
                 f"{r['own_after_vote']['ended']} of {r['own_after_vote']['welcomed']}",
                 f"{r['own_from_start']['ended']} of {r['own_from_start']['known']} "
                 f"({r['own_from_start']['told_unknown']})"]
        if (r["margin"], r["frames"], r["key"]) == (*built, "welcomed"):
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


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
    kiosk = kiosk_rules()
    built = (kiosk.WELCOME_FAR_MARGIN, kiosk.WELCOME_FAR_FRAMES)
    settings = sorted(set(WELCOME_FAR_ROWS) | {built}, key=lambda s: (s[0] is not None, s[1] or 0, s[0] or 0))
    ended = welcome_end(doc["presences"], args.min_frames, args.min_frames_masked, args.after_unknown,
                        {"doubt_margin": kiosk.WELCOME_DOUBT_MARGIN, "other_frames": kiosk.WELCOME_OTHER_FRAMES,
                         "hold_frames": kiosk.SEVERAL_HOLD_FRAMES}, (*settings, (*built, "score")))
    print("\nA welcome standing when the presence begins, what ends it (frames the kiosk votes on; frames a stranger "
          "reads it: mean / median / 90th percentile):")
    print("\n".join(welcome_end_table(ended, built)))
    own = own_margins(doc["presences"], kiosk.SEVERAL_HOLD_FRAMES)
    if own["frames"]:
        print(f"Enrolled people's own masked frames against themselves, less the threshold ({own['frames']} frames): "
              f"median {own['median']:+.2f}, 5th percentile {own['p5']:+.2f}")
    out = write_json(results_path(f"voting{descriptor_suffix(args.descriptor)}", REPO), {
        "args": vars(args), "mask_variants": MASK_VARIANTS, "n_presences": len(doc["presences"]),
        "seconds": round(time.time() - t0, 1), "provenance": provenance(config), "results": rows, "welcome": welcome,
        "welcome_end": ended, "welcome_own_margin": own})
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
