"""recognition.voting: several consistent frames before a check-in; strangers are let go."""

from __future__ import annotations

import pytest

from recognition.voting import ACCEPTED, UNKNOWN, Observation, Voter


def obs(t: float, label: str | None = "7", score: float = 0.8, masked: bool = False) -> Observation:
    threshold = 0.38 if masked else 0.42
    return Observation(at=t, label=label, score=score, accepted=score >= threshold, masked=masked,
                       threshold=threshold)


def feed(voter: Voter, observations: list[Observation]):
    verdicts = [voter.add(o) for o in observations]
    return [v for v in verdicts if v is not None], verdicts


def test_unmasked_faces_need_min_frames():
    voter = Voter(min_frames=3, min_frames_masked=4)
    found, all_ = feed(voter, [obs(0.0), obs(0.1), obs(0.2)])
    assert all_[:2] == [None, None]
    assert found[0].kind == ACCEPTED and found[0].label == "7" and found[0].frames == 3
    assert found[0].score == pytest.approx(0.8) and not found[0].masked
    assert voter.pending == 0   # resets after a verdict


def test_one_confident_masked_frame_is_never_enough():
    voter = Voter(min_frames=3, min_frames_masked=4)
    assert voter.add(obs(0.0, score=0.99, masked=True)) is None
    assert voter.progress() == pytest.approx(0.25)
    found, _ = feed(voter, [obs(0.1 * i, masked=True) for i in range(1, 4)])
    assert len(found) == 1 and found[0].masked and found[0].frames == 4 and found[0].threshold == 0.38


def test_a_second_identity_blocks_acceptance():
    voter = Voter(min_frames=3, window=6)
    found, _ = feed(voter, [obs(0.0), obs(0.1, label="8"), obs(0.2), obs(0.3), obs(0.4)])
    assert found == []


def test_unknown_when_the_window_is_full_without_agreement():
    voter = Voter(window=6)
    found, all_ = feed(voter, [obs(0.1 * i, score=0.2, masked=True) for i in range(6)])
    assert all_[:5] == [None] * 5
    assert found[0].kind == UNKNOWN and found[0].label is None and found[0].score == pytest.approx(0.2)
    assert found[0].masked


def test_a_borderline_face_ends_unknown_after_max_frames():
    voter = Voter(window=6, min_frames_masked=4, max_frames=10)
    pattern = [0.5, 0.3, 0.3, 0.5, 0.3, 0.3]   # two accepts in every window: never 4
    found, all_ = feed(voter, [obs(0.1 * i, score=pattern[i % 6], masked=True) for i in range(10)])
    assert all_[:9] == [None] * 9 and found[0].kind == UNKNOWN and found[0].frames == 10


def test_a_gap_starts_a_new_presence():
    voter = Voter(min_frames=3, max_gap_s=1.0)
    found, _ = feed(voter, [obs(0.0), obs(0.1), obs(5.0), obs(5.1)])
    assert found == []
    assert voter.add(obs(5.2)).kind == ACCEPTED


def test_after_an_unknown_verdict_the_same_presence_needs_the_whole_window():
    voter = Voter(window=6, min_frames=3, min_frames_masked=4)
    found, _ = feed(voter, [obs(0.1 * i, score=0.2, masked=True) for i in range(6)])
    assert found[0].kind == UNKNOWN and voter.doubted
    # four agreeing masked frames would decide a fresh presence; here they are not enough
    found, all_ = feed(voter, [obs(0.6 + 0.1 * i, masked=True) for i in range(5)])
    assert found == [] and all_ == [None] * 5
    verdict = voter.add(obs(1.2, masked=True))
    assert verdict.kind == ACCEPTED and verdict.frames == 6
    assert voter.doubted   # the presence goes on: still doubted


def test_a_gap_restarts_the_count_but_only_a_new_presence_forgets_the_unknown_verdict():
    voter = Voter(window=6, min_frames=3, max_gap_s=1.0)
    feed(voter, [obs(0.1 * i, score=0.2) for i in range(6)])
    assert voter.doubted
    # the stranger looked away (frames the quality gate refused never reach the voter), then
    # three lucky frames: not enough after an unknown, the whole window is needed
    found, _ = feed(voter, [obs(5.0), obs(5.1), obs(5.2)])
    assert voter.doubted and not found and voter.pending == 3
    found, _ = feed(voter, [obs(5.3), obs(5.4), obs(5.5)])
    assert found[0].kind == ACCEPTED and found[0].frames == 6
    feed(voter, [obs(6.0 + 0.1 * i, score=0.2) for i in range(6)])
    voter.reset()                                             # the consumer saw the face go
    assert not voter.doubted and voter.add(obs(6.6)) is None
    found, _ = feed(voter, [obs(6.7), obs(6.8)])
    assert found[0].kind == ACCEPTED and found[0].frames == 3


def test_a_new_gallery_drops_the_votes_but_not_the_unknown_verdict():
    """``forget_votes`` (a new index version): the frames counted against the old gallery go, the
    presence and its *unknown* stay."""
    voter = Voter(window=6, min_frames=3, min_frames_after_unknown=5)
    feed(voter, [obs(0.1 * i, score=0.2) for i in range(6)])
    feed(voter, [obs(0.6), obs(0.7), obs(0.8), obs(0.9)])
    assert voter.doubted and voter.pending == 4
    voter.forget_votes()
    assert voter.doubted and voter.pending == 0
    found, all_ = feed(voter, [obs(1.0 + 0.1 * i) for i in range(5)])
    assert all_[:4] == [None] * 4 and found[0].kind == ACCEPTED and found[0].frames == 5


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Voter(window=3, min_frames_masked=4)
    with pytest.raises(ValueError):
        Voter(window=6, min_frames_after_unknown=7)


def test_a_vote_is_completed_only_by_a_frame_of_the_person_it_accepts():
    # "8" blocks "7" until it leaves the window; the frames that push it out are somebody else's,
    # not accepted (a masked newcomer while the server is too slow to see the gap between them)
    voter = Voter(window=6, min_frames=3)
    found, _ = feed(voter, [obs(0.0, label="8"), obs(0.1), obs(0.2), obs(0.3),
                            obs(0.4, label="9", score=0.2), obs(0.5, label="9", score=0.2),
                            obs(0.6, label="9", score=0.2)])
    assert found == []   # "8" is out of the window now, but the newest frame is not a "7"
    verdict = voter.add(obs(0.7))   # the next frame of "7" decides
    assert verdict is not None and verdict.kind == ACCEPTED and verdict.label == "7" and verdict.frames == 3


def test_an_unknown_after_someone_accepted_reports_the_strangers_own_scores():
    """The unknown verdict's score was the best of every frame since the last verdict: the person
    accepted just before (0.8, unmasked) showed as a masked stranger's "best score", above the
    threshold, on a row that says rejected."""
    voter = Voter(window=6, min_frames=3, min_frames_masked=4)
    found, _ = feed(voter, [obs(0.1 * i) for i in range(3)]                        # "7" accepted
                    + [obs(0.3 + 0.1 * i, score=0.8) for i in range(2)]             # still them
                    + [obs(0.5 + 0.1 * i, label="7", score=0.2 + i / 100, masked=True) for i in range(6)])
    assert [v.kind for v in found] == [ACCEPTED, UNKNOWN]
    unknown = found[1]
    assert unknown.score == pytest.approx(0.24) and unknown.masked   # (one of theirs still in the window)
    assert unknown.nearest == "7" and unknown.nearest_margin == pytest.approx(0.24 - 0.38)


def test_how_close_the_nearest_came_is_measured_against_each_frames_own_threshold():
    """A mask going on mixes masked and unmasked frames, whose thresholds differ: the unknown's
    threshold is the highest of them, and the person's unmasked frames 0.01 under their own
    threshold read as 0.2 under the masked one's."""
    voter = Voter(window=6, min_frames=3, min_frames_masked=4)
    found, _ = feed(voter, [obs(0.1 * i, score=0.41) for i in range(5)]                   # 0.01 under 0.42
                    + [Observation(at=0.5, label="7", score=0.2, accepted=False, masked=True, threshold=0.6)])
    (unknown,) = found
    assert unknown.threshold == pytest.approx(0.6) and unknown.nearest_margin == pytest.approx(-0.01)
