"""The kiosk's presence rules (:mod:`recognition.presence`) driven directly: no socket, no database,
a clock the test moves. The socket's behaviour as a whole is tested through the consumer
(test_consumer.py, test_consumer_engine.py); these pin a few transitions of the state machine."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from recognition import presence as pr
from recognition.engine.gallery import Decision
from recognition.presence import FrameAnalysis, Outcome, Presence, Timing
from recognition.voting import ACCEPTED, UNKNOWN, Observation, Verdict, Voter

SIZE = (640, 480)


def _face(*, masked: bool = False, reason: str | None = None, across_edge: bool = False,
          box: tuple[float, ...] = (256.0, 144.0, 384.0, 300.0)) -> SimpleNamespace:
    """A face as the engine leaves it: embedded when it passed the quality gate."""
    return SimpleNamespace(box=box, masked=masked, across_edge=across_edge, aligned=np.zeros((8, 8, 3), np.uint8),
                           embedding=np.ones(8, np.float32) if reason is None else None,
                           quality=SimpleNamespace(ok=reason is None, reason=reason))


def _seen(label: str, score: float, *, masked: bool = False, welcomed: tuple | None = None) -> FrameAnalysis:
    threshold = 0.38 if masked else 0.42
    return FrameAnalysis(size=SIZE, face=_face(masked=masked), welcomed=welcomed,
                         decision=Decision(label, score, threshold, score >= threshold, masked))


def _presence(**timing) -> Presence:
    return Presence(Voter(min_frames=3, min_frames_masked=4, min_frames_after_unknown=5),
                    min_face_px=40, timing=Timing(**timing))


def _frames(p: Presence, frames: list[FrameAnalysis], start: float = 0.0, every: float = 0.15) -> list[pr.Step]:
    return [p.frame(a, start + i * every, searched=True) for i, a in enumerate(frames)]


def test_a_vote_asks_for_a_check_in_once_and_again_only_in_a_new_cooldown_window():
    p = _presence()
    steps = _frames(p, [_seen("7", 0.9)] * 3)
    assert [s.verdict for s in steps[:2]] == [None, None]
    verdict = steps[2].verdict
    assert verdict.kind == ACCEPTED and verdict.label == "7"
    assert p.verdict_due(verdict, lambda: "w1") == pr.Due(pr.CHECK_IN)
    assert p.shown(dict(steps[2].reply))["state"] == "recognising"   # nothing recorded yet: nothing shown
    p.checked_in(verdict, created=True, name="Ana", time="08:59", window="w1")
    shown = p.shown(dict(steps[2].reply))
    assert (shown["state"], shown["name"], shown["time"], shown["progress"]) == ("checked_in", "Ana", "08:59", 1.0)
    assert p.welcome_label == "7"
    assert p.verdict_due(verdict, lambda: "w1") is None            # the same person, the same window
    assert p.verdict_due(verdict, lambda: "w2") == pr.Due(pr.CHECK_IN)   # past midnight: recorded again


def test_an_unknown_near_the_person_welcomed_is_audited_once_and_the_welcome_stays():
    p = _presence()
    p.outcome = Outcome("checked_in", "7", "Ana", "08:59", window="w1")
    near = Verdict(UNKNOWN, None, 0.37, True, 6, 0.38, nearest="7", nearest_margin=-pr.WELCOME_DOUBT_MARGIN)
    due = p.verdict_due(near, lambda: "w1")
    assert due.action == pr.AUDIT_DOUBT and "person #7" in due.detail
    p.unknown_recorded(near, due)
    assert p.outcome.state == "checked_in" and p.verdict_due(near, lambda: "w1") is None
    far = Verdict(UNKNOWN, None, 0.2, True, 6, 0.38, nearest="7", nearest_margin=-0.18)
    due = p.verdict_due(far, lambda: "w1")
    assert due == pr.Due(pr.AUDIT_UNKNOWN)
    p.unknown_recorded(far, due)
    assert (p.outcome.state, p.outcome.masked, p.welcome_label) == ("unknown", True, None)
    bare = Verdict(UNKNOWN, None, 0.2, False, 6, 0.42, nearest="7", nearest_margin=-0.22)
    assert p.verdict_due(bare, lambda: "w1") is None and p.outcome.masked is False   # not again; as it is now


def test_quality_refusals_are_audited_once_a_presence_and_faces_across_the_edge_not_at_all():
    p = _presence()
    edge = FrameAnalysis(size=SIZE, face=_face(reason="partial", across_edge=True))
    blurry = FrameAnalysis(size=SIZE, face=_face(reason="blurry"))
    steps = _frames(p, [edge] * 3 + [blurry] * (pr.QUALITY_AUDIT_FRAMES + 1))
    assert {(s.reply["state"], s.reply["reason"]) for s in steps} == {("adjust", "partial"), ("adjust", "blurry")}
    audits = [s.quality_audit for s in steps]
    due = [i for i, a in enumerate(audits) if a is not None]
    assert due == [3 + pr.QUALITY_AUDIT_FRAMES - 1, 3 + pr.QUALITY_AUDIT_FRAMES]   # until it is written
    assert audits[due[0]] == pr.QualityAudit(frames=pr.QUALITY_AUDIT_FRAMES, detail="blurry x8", masked=None)
    p.quality_audited()
    assert p.frame(blurry, 10.0, searched=False).quality_audit is None
    small = FrameAnalysis(size=SIZE, face=_face(box=(300.0, 200.0, 330.0, 240.0)))   # under min_face_px
    assert p.frame(small, 10.1, searched=False).reply["reason"] == "too_small"


def test_two_people_side_by_side_forget_the_votes_and_hold_for_two_frames_of_one_face():
    p = _presence()
    pair = FrameAnalysis(size=SIZE, face=_face(), several=True)
    steps = _frames(p, [_seen("7", 0.9)] * 2 + [pair] + [_seen("7", 0.9)] * (pr.SEVERAL_HOLD_FRAMES + 3))
    assert (steps[2].reply["state"], steps[2].reply["reason"], steps[2].reply["box"]) == ("adjust", "several", None)
    held = steps[3:3 + pr.SEVERAL_HOLD_FRAMES]
    assert all(s.reply["reason"] == "several" and s.verdict is None for s in held)
    counted = steps[3 + pr.SEVERAL_HOLD_FRAMES:]
    assert [s.verdict is not None for s in counted] == [False, False, True]   # three of one face, afresh


def test_a_presence_ends_without_a_face_and_after_a_long_pause():
    p = _presence()
    p.outcome = Outcome("checked_in", "7", "Ana")
    p.frame(_seen("7", 0.9), 0.0, searched=False)
    p.frame(FrameAnalysis(size=SIZE), 0.5, searched=True)   # a missed face, within LOST_AFTER_S
    assert p.outcome is not None
    p.frame(FrameAnalysis(size=SIZE), 1.2, searched=True)
    assert p.outcome is None
    p.outcome = Outcome("checked_in", "7", "Ana")
    p.frame(_seen("7", 0.9), 1.3, searched=False)
    p.frame(_seen("8", 0.1), 1.3 + pr.VOTE_MAX_GAP_CAP_S + 0.1, searched=False)   # no frame at all meanwhile
    assert p.outcome is None
    # an engine error is answered as such and leaves the presence alone
    p.outcome = Outcome("unknown")
    assert p.frame(FrameAnalysis(error="unreadable_image"), 100.0, searched=True).error == "unreadable_image"
    assert p.outcome is not None


def test_a_slow_server_stretches_the_vote_gap_and_the_presence():
    p = _presence()
    _frames(p, [_seen("7", 0.1)] * 6, every=2.0)
    assert p.voter.max_gap_s > pr.VOTE_MAX_GAP_S
    assert p.voter.max_gap_s <= pr.VOTE_MAX_GAP_CAP_S


def test_an_empty_scene_is_searched_across_the_edge_now_and_then_and_a_still_edge_face_is_let_go():
    p = _presence(edge_still_s=1.0)
    assert p.edges.due(0.0)
    p.frame(FrameAnalysis(size=SIZE), 5.0, searched=True)   # nobody, nobody lately
    assert not p.edges.due(5.0 + pr.EDGE_SEARCH_EVERY_S - 0.01) and p.edges.due(5.0 + pr.EDGE_SEARCH_EVERY_S)
    edge = FrameAnalysis(size=SIZE, face=_face(reason="partial", across_edge=True, box=(500.0, 100.0, 640.0, 260.0)))
    steps = [p.frame(edge, 6.0 + t, searched=True) for t in (0.0, 0.5, 1.0)]
    assert [s.reply["reason"] for s in steps] == ["partial", "partial", None]   # still for edge_still_s: let go


def test_a_blurred_face_that_stays_in_one_place_is_let_go_as_the_background():
    """A window behind the person in front, out of focus, found as a face beside them: a review's
    kiosk said "One person at a time" for good. Its place, timed from a frame with a face in focus, is
    let go after ``edge_still_s`` found there (missed for a frame or two meanwhile: the detector finds
    it in most frames); a blurred face that moves (someone beside, walking) is timed afresh at each
    new place; one found in focus there is someone, and the place is forgotten (two people side by
    side, each blurred when they move: a diff review); a blurred face alone is never timed (a camera
    out of focus); a pause forgets every place."""
    p = _presence(edge_still_s=1.0, lost_after_s=0.7)
    window, front = (0.65, 0.35, 0.89, 0.67), (0.3, 0.3, 0.55, 0.65)

    def frame(*blurred: tuple[float, ...], in_focus: tuple = (front,)) -> FrameAnalysis:
        return FrameAnalysis(size=SIZE, face=_face(), blurred=tuple(blurred), in_focus=in_focus)

    p.frame(frame(window), 0.0, searched=False)
    p.frame(frame(), 0.3, searched=False)                    # missed once: still timed
    p.frame(frame(tuple(v + 0.01 for v in window)), 0.6, searched=False)
    assert p.background.boxes(0.99) == () and p.background.boxes(1.0) == (window,)
    assert p.background.boxes(1.0 + 0.71) == ()              # not found lately: not let go
    # someone beside, walking: a new place every frame, never let go
    walker = [(0.1 + 0.1 * i, 0.3, 0.3 + 0.1 * i, 0.6) for i in range(8)]
    for i, box in enumerate(walker):
        p.frame(frame(window, box), 1.0 + 0.15 * i, searched=False)
    assert p.background.boxes(2.1) == (window,)
    p.frame(frame(), 2.5, searched=False)
    p.frame(frame(), 2.9, searched=False)                    # gone for longer than lost_after_s
    assert p.background.boxes(2.9) == ()
    for t in (3.0, 3.5, 4.0):
        p.frame(frame(window), t, searched=False)
    assert p.background.boxes(4.0) == (window,)
    p.frame(frame(in_focus=(front, window)), 4.2, searched=False)   # someone in focus there: forgotten
    assert p.background.boxes(4.2) == ()
    # two people side by side, each blurred in turn: each place is in focus every other frame
    left, right = (0.05, 0.3, 0.45, 0.7), (0.55, 0.3, 0.95, 0.7)
    for i in range(20):
        blurred, sharp = (left, right) if i % 2 else (right, left)
        p.frame(frame(blurred, in_focus=(sharp,)), 5.0 + 0.15 * i, searched=False)
        assert p.background.boxes(5.0 + 0.15 * i) == ()
    # a blurred face alone (nobody in focus beside it) is never timed
    for i in range(20):
        p.frame(frame(window, in_focus=()), 9.0 + 0.15 * i, searched=False)
    assert p.background.boxes(12.0) == ()
    for t in (13.0, 13.5, 14.0):
        p.frame(frame(window), t, searched=False)
    assert p.background.boxes(14.0) == (window,)
    assert p.background.boxes(14.0 + p.timing.gap_cap_s + 1) == ()   # no frame for a while: not let go
    p.frame(frame(window), 14.0 + p.timing.gap_cap_s + 1, searched=False)   # and timed afresh
    assert p.background.boxes(14.0 + p.timing.gap_cap_s + 1.5) == ()


def test_a_welcome_that_replaces_another_directly_starts_its_counts_afresh():
    """The counts that end a welcome belong to it: when the next person's vote completes while the
    last welcome stands (their frames never made two in a row), a frame far below the threshold
    against the person welcomed before does not count towards ending the new welcome.
    (Moved from test_consumer.py, where it drove the consumer's private state, with the same frames.)"""
    kiosk = Presence(Voter(min_frames=3, max_gap_s=10.0), min_face_px=40)
    far = pr.WELCOME_FAR_MARGIN + 0.05
    ana = Outcome("checked_in", "1", "Ana")
    kiosk.outcome = ana
    obs = Observation(at=1.0, label="2", score=0.8, accepted=False, masked=True, threshold=0.4)
    assert not kiosk.welcome_ends(obs, ("1", 0.4 - far))          # one frame far below Ana's
    kiosk.outcome = Outcome("checked_in", "2", "Tom")    # Tom's vote done meanwhile
    obs = Observation(at=2.0, label="3", score=0.1, accepted=False, masked=True, threshold=0.4)
    assert not kiosk.welcome_ends(obs, ("2", 0.4 - far))          # Tom's first far frame: one, not two
    obs = Observation(at=3.0, label="3", score=0.1, accepted=False, masked=True, threshold=0.4)
    assert kiosk.welcome_ends(obs, ("2", 0.4 - far))              # the second ends it


def test_welcome_ends_says_why_and_a_presence_decides_by_the_welcome_rules_it_is_given(monkeypatch):
    """``welcome_ends`` names the count that ended a welcome (``"far"`` before ``"other"`` when one
    frame completes both: bench/voting.py reports them apart). A presence given :class:`WelcomeRules`
    ends and keeps welcomes by them (the bench replays other settings through it); one given none, the
    kiosk's, by this module's constants as they are at each frame."""
    def ends(p: Presence, n: int, *, against: float, accepted: bool = True) -> list[str | None]:
        p.outcome = Outcome("checked_in", "1", "Ana")
        return [p.welcome_ends(Observation(at=0.15 * i, label="2", score=0.8, accepted=accepted, masked=True,
                                           threshold=0.4), ("1", against)) for i in range(n)]

    def presence(**rules) -> Presence:
        return Presence(Voter(min_frames=3), min_face_px=40, welcome_rules=pr.WelcomeRules(**rules))

    far = 0.4 - pr.WELCOME_FAR_MARGIN - 0.05
    assert ends(_presence(), 2, against=far) == [None, "far"]          # Tom, accepted, far below Ana: both counts
    assert ends(_presence(), 2, against=0.39) == [None, "other"]       # Tom, accepted, close to Ana
    assert ends(_presence(), 3, against=far, accepted=False) == [None, "far", None]   # a stranger; counts again
    assert ends(presence(far_margin=float("inf"), other_frames=3), 3, against=far) == [None, None, "other"]
    assert ends(presence(far_frames=1), 1, against=far, accepted=False) == ["far"]
    monkeypatch.setattr(pr, "WELCOME_FAR_FRAMES", 3)
    assert ends(_presence(), 3, against=far, accepted=False) == [None, None, "far"]
    # an "unknown" whose nearest match is Ana, far below her threshold: "not recognised", unless the
    # doubt margin covers it
    unknown = Verdict(UNKNOWN, None, 0.1, True, 6, 0.4, nearest="1", nearest_margin=-0.3)
    for p, action in ((_presence(), pr.AUDIT_UNKNOWN), (presence(doubt_margin=float("inf")), pr.AUDIT_DOUBT)):
        p.outcome = Outcome("checked_in", "1", "Ana")
        assert p.verdict_due(unknown, lambda: "w").action == action


def _welcomed(p: Presence) -> list[pr.Step]:
    """Three usable frames of person 7 at the middle of the picture, and their welcome."""
    steps = _frames(p, [_seen("7", 0.9)] * 3)
    p.checked_in(steps[2].verdict, created=True, name="Ana", time="08:59", window="w1")
    return steps


def test_a_welcome_is_hidden_when_someone_else_unusable_stands_in_front():
    """The next person, too far away (or in the dark), read the last person's name and check-in time
    for as long as they stayed unusable: a refused frame was no evidence either way. Two refused
    frames in a row of a face elsewhere hide it, and their prompt shows. Found by a helper's review."""
    p = _presence()
    _welcomed(p)
    far = FrameAnalysis(size=SIZE, face=_face(box=(100.0, 100.0, 130.0, 140.0)))   # under min_face_px
    assert p.shown(p.frame(far, 0.6, searched=True).reply)["name"] == "Ana"   # one frame: a detection's slip
    shown = p.shown(p.frame(far, 0.75, searched=True).reply)
    assert (shown["state"], shown["reason"], shown["name"], shown["time"]) == ("adjust", "too_small", None, None)


def test_someone_elses_refusals_that_hide_a_welcome_are_audited_apart_from_the_person_welcomeds():
    """While a welcome stood, no quality refusal was audited, so the next person, too far away or in
    the dark for a whole presence, went unrecorded: the audit log's "every decision" missed them.
    Once their frames hide the welcome, their refusals are counted afresh (not mixed with the person
    welcomed's own) and audited as anyone's are. Found in session 65's notes."""
    p = _presence()
    _welcomed(p)
    turned = FrameAnalysis(size=SIZE, face=_face(reason="pose", box=(262.0, 140.0, 392.0, 298.0)))
    t = 0.45
    for _ in range(3):   # the person welcomed looks away a moment: not audited, the welcome stands
        assert p.frame(turned, t, searched=True).quality_audit is None
        t += 0.15
    far = FrameAnalysis(size=SIZE, face=_face(box=(100.0, 100.0, 130.0, 140.0)))   # someone else, too small
    steps = []
    for _ in range(pr.WELCOME_OTHER_FRAMES - 1 + pr.QUALITY_AUDIT_FRAMES):
        steps.append(p.frame(far, t, searched=True))
        t += 0.15
    audits = [s.quality_audit for s in steps]
    assert audits[:-1] == [None] * (len(audits) - 1), audits
    assert audits[-1] == pr.QualityAudit(frames=pr.QUALITY_AUDIT_FRAMES, detail="too_small x8", masked=False)
    assert p.shown(dict(steps[-1].reply))["name"] is None
    p.quality_audited()
    assert p.frame(far, t, searched=True).quality_audit is None   # once a presence
    back = [p.frame(_seen("7", 0.9), t + 0.15 * (i + 1), searched=True) for i in range(3)]
    assert p.shown(dict(back[0].reply))["name"] == "Ana"   # the person welcomed, back: shown again
    assert back[-1].verdict.label == "7" and p.verdict_due(back[-1].verdict, lambda: "w1") is None


def test_the_person_welcomeds_own_refusals_after_a_passer_by_and_a_flickering_welcome_are_not_audited():
    """Two frames of a face elsewhere hid the welcome "by someone else", and from then on the person
    welcomed's own refused frames, back in their place, were counted and audited as the other's; and
    each time the welcome showed again and was hidden again, the other's refusals were audited again,
    three rows for one presence. Found by the review of the change above."""
    def run(frames: list[FrameAnalysis], p: Presence, t: float) -> tuple[list[pr.QualityAudit], float]:
        audits = []
        for a in frames:
            step = p.frame(a, t, searched=True)
            t += 0.15
            if step.quality_audit is not None:
                audits.append(step.quality_audit)
                p.quality_audited()   # as the consumer does once it is written
        return audits, t

    far = FrameAnalysis(size=SIZE, face=_face(box=(100.0, 100.0, 130.0, 140.0)))   # someone else, too small
    turned = FrameAnalysis(size=SIZE, face=_face(reason="pose", box=(262.0, 140.0, 392.0, 298.0)))
    p = _presence()
    _welcomed(p)
    audits, _ = run([far] * pr.WELCOME_OTHER_FRAMES + [turned] * (pr.QUALITY_AUDIT_FRAMES + 4), p, 0.45)
    assert audits == [], audits

    p = _presence()
    _welcomed(p)
    t, audits = 0.45, []
    for _ in range(3):   # the other hides the welcome; the person welcomed shows it again
        said, t = run([far] * 10 + [_seen("7", 0.9)], p, t)
        audits += said
        assert p.shown(dict(p.frame(_seen("7", 0.9), t, searched=True).reply))["name"] == "Ana"
        t += 0.15
    assert len(audits) == 1 and audits[0].detail == "too_small x8", audits

    # someone else who hid the welcome from aside, then stepped into the welcomed person's place step
    # by step and stayed there refused: counted (a review found them never audited); the person
    # welcomed back in their place by a jump after a passer-by, looking down for 6 s: not (the next
    # review found a time limit auditing them)
    def refused(x: float, reason: str = "pose") -> FrameAnalysis:
        return FrameAnalysis(size=SIZE, face=_face(reason=reason, box=(x, 140.0, x + 130.0, 298.0)))

    p = _presence()
    _welcomed(p)
    steps = [refused(100.0, "blurry")] * 3 + [refused(150.0), refused(200.0)]
    audits, _ = run(steps + [refused(262.0)] * int(6.0 / 0.15), p, 0.45)
    assert len(audits) == 1 and "pose" in audits[0].detail, audits
    for before in ([], [turned] * int(3.5 / 0.15)):   # looking down before the passer-by too
        p = _presence()
        _welcomed(p)
        audits, _ = run(before + [far] * pr.WELCOME_OTHER_FRAMES + [turned] * int(6.0 / 0.15), p, 0.45)
        assert audits == [], audits
    # a passer-by crossing the welcomed person's place took that place away with them, and the person's
    # own refusals after were counted as theirs (a review)
    p = _presence()
    _welcomed(p)
    crossing = [refused(x, "blurry") for x in (40.0, 100.0, 160.0, 220.0, 280.0, 340.0)]
    audits, _ = run(crossing + [refused(262.0)] * int(6.0 / 0.15), p, 0.45)
    assert audits == [], audits
    # a stranger who got into the welcomed person's place by a jump (or between two slow answers) and
    # stays there refused: held back, counted once nobody was usable for WELCOME_HELD_S (a review)
    p = _presence()
    _welcomed(p)
    dark = FrameAnalysis(size=SIZE, face=_face(reason="too_dark", box=(262.0, 140.0, 392.0, 298.0)))
    audits, t = run([refused(60.0, "blurry")] * 3 + [dark] * int((pr.WELCOME_HELD_S - 2.0) / 0.15), p, 0.45)
    assert audits == [], audits   # a long look at a phone, as far as anyone can tell
    audits, _ = run([dark] * int(4.0 / 0.15), p, t)
    assert len(audits) == 1 and "too_dark" in audits[0].detail, audits


def test_a_welcome_hidden_by_its_own_persons_refused_frames_shows_again_and_writes_nothing_again():
    """The person welcomed looking down at a phone is refused where they stand: the welcome stays, but
    not past WELCOME_REFUSED_MAX_S of refused frames alone (by then it has been read, and someone else
    may stand in the same place). Hidden, not ended: when they look up it shows again, and neither a
    second check-in nor a quality audit is asked for (ending it did both: a helper's review)."""
    p = _presence()
    _welcomed(p)
    turned = FrameAnalysis(size=SIZE, face=_face(reason="pose", box=(262.0, 140.0, 392.0, 298.0)))
    n = int(pr.WELCOME_REFUSED_MAX_S / 0.15)
    steps, shown = [], []
    for i in range(n + 2):
        steps.append(p.frame(turned, 0.45 + i * 0.15, searched=True))
        shown.append(p.shown(steps[-1].reply))
    names = [s["name"] for s in shown]
    assert names[:n - 1] == ["Ana"] * (n - 1) and names[-1] is None, names
    assert (shown[-1]["state"], shown[-1]["reason"]) == ("adjust", "pose")
    assert all(s.quality_audit is None for s in steps)
    back = [p.frame(_seen("7", 0.9), 0.45 + (n + 2 + i) * 0.15, searched=True) for i in range(3)]
    assert p.shown(dict(back[0].reply))["name"] == "Ana"
    assert back[-1].verdict.label == "7" and p.verdict_due(back[-1].verdict, lambda: "w1") is None


def test_a_hidden_welcome_shows_again_when_its_persons_frames_come_back_borderline():
    """Only a frame accepted as the person showed a hidden welcome again: back with a mask on, just
    under their threshold, they read "Recognising…" for as long as they stood there, where a welcome
    never hidden stays on screen through such frames. Found by a helper's review in a real browser."""
    p = _presence()
    _welcomed(p)
    turned = FrameAnalysis(size=SIZE, face=_face(reason="pose", box=(262.0, 140.0, 392.0, 298.0)))
    n = int(pr.WELCOME_REFUSED_MAX_S / 0.15) + 2
    for i in range(n):
        p.frame(turned, 0.45 + i * 0.15, searched=True)
    assert p.shown(p.frame(turned, 0.45 + n * 0.15, searched=True).reply)["name"] is None
    start = 0.45 + (n + 1) * 0.15
    near = [p.frame(_seen("7", 0.36, masked=True), start + i * 0.15, searched=True) for i in range(8)]
    verdict = next(s.verdict for s in near if s.verdict is not None)
    assert p.verdict_due(verdict, lambda: "w1").action == pr.AUDIT_DOUBT
    assert p.shown(dict(near[-1].reply))["name"] == "Ana"


def test_a_stranger_in_the_dark_where_the_welcomed_person_stood_hides_the_welcome_at_once():
    """A stranger in a shadow who stepped into the welcomed person's place (their boxes overlap) read
    the name until WELCOME_REFUSED_MAX_S: a refused frame said nothing of who it was. A face refused
    for its light or blur is now scored against the person welcomed, and two such frames far below
    their threshold hide the welcome; the person's own dark frames, scoring near it, keep it. Found
    by a helper's review in a real browser."""
    box = (262.0, 140.0, 392.0, 298.0)
    threshold = 0.42

    def dark(score: float | None, label: str = "7") -> FrameAnalysis:
        return FrameAnalysis(size=SIZE, face=_face(reason="too_dark", box=box), welcomed=(label, score),
                             welcomed_threshold=threshold)

    far = threshold - pr.WELCOME_FAR_MARGIN - 0.05
    p = _presence()
    _welcomed(p)
    first = p.shown(p.frame(dark(far), 0.45, searched=True).reply)
    second = p.shown(p.frame(dark(far), 0.6, searched=True).reply)
    assert first["name"] == "Ana"                   # one frame: a shadow passing over the person welcomed
    assert (second["state"], second["reason"], second["name"]) == ("adjust", "too_dark", None)
    back = [p.frame(_seen("7", 0.9), 0.75 + i * 0.15, searched=True) for i in range(3)]
    assert p.shown(dict(back[0].reply))["name"] == "Ana"   # hidden, not ended: nothing written again
    assert back[-1].verdict.label == "7" and p.verdict_due(back[-1].verdict, lambda: "w1") is None

    for frames in ([dark(threshold - 0.05)] * 6,          # the person welcomed, in a shadow: near their own
                   [dark(far, label="8")] * 6,             # scored against someone else's welcome: no evidence
                   [dark(None)] * 6):                      # the person welcomed no longer in the index
        p = _presence()
        _welcomed(p)
        shown = [p.shown(p.frame(a, 0.45 + i * 0.15, searched=True).reply)["name"] for i, a in enumerate(frames)]
        assert shown == ["Ana"] * 6, shown
