"""Voting over a kiosk's recent frames: no check-in on the word of a single frame.

Plain Python (no Django, no engine): the consumer feeds one :class:`Observation` per analysed
frame with a usable face and acts on the :class:`Verdict` it gets back.

Rules (all counts are over the last ``window`` usable frames of one continuous presence):

* **accepted**: one identity has at least ``min_frames`` accepted frames (``min_frames_masked``
  when most of them are masked), no other identity has any, and the newest frame is one of them.
  A single confident frame is never enough, and a masked face needs more agreement than an open one.
* **unknown**: the window is full and no identity has more than one accepted frame, or
  ``max_frames`` usable frames went by without an accepted verdict (a borderline face).
* **after an unknown**: once a presence has been called unknown, a later acceptance in the same
  presence needs ``min_frames_after_unknown`` agreeing frames (the whole window if not given;
  the kiosk's ``MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN`` is 5 of 6): a
  stranger who keeps standing there must not be let in by the next lucky run of frames
  (``bench/voting.py`` measured that a vote without this rule let in more strangers than a
  first-frame decision).
* A gap of more than ``max_gap_s`` between usable frames starts the count again (someone else
  may be standing there now), but an unknown verdict stands until :meth:`Voter.reset` (the
  consumer's presence ends: no face at all for a while). Frames the quality gate refused (a
  turned head, blur) never reach the voter: a stranger called unknown who looks away for a moment
  must not come back to the easier first-vote rule.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

ACCEPTED, UNKNOWN = "accepted", "unknown"


@dataclass(frozen=True)
class Observation:
    """One analysed frame with a face that passed the quality gate.

    ``at``: monotonic seconds. ``label``: best gallery identity (``None``: empty gallery).
    ``score``: its cosine similarity. ``accepted``: score at or above the applicable threshold.
    ``masked``: the face wears a mask. ``threshold``: the threshold applied.
    """

    at: float
    label: str | None
    score: float
    accepted: bool
    masked: bool
    threshold: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """What the votes decided.

    ``kind``: :data:`ACCEPTED` or :data:`UNKNOWN`. ``label``: the identity (accepted only).
    ``score``: mean score of the agreeing frames (accepted) or the best score of the window's
    frames that were not accepted (unknown: not a frame of someone accepted before them, which
    the audit row reported as a stranger's "best score", above the threshold).
    ``masked``: most of the deciding frames were masked. ``frames``: frames that decided.
    ``threshold``: the highest threshold applied among those frames. ``nearest``: (unknown) the
    identity most of the window's frames came closest to, accepted or not, and ``nearest_margin``
    how close the closest of its frames that were not accepted came to its own threshold (score less
    threshold, frame by frame: a masked and an unmasked frame have thresholds of their own): the
    kiosk keeps a welcome standing when the same person's frames turn borderline (just under the
    threshold), not when someone else's do, nor when a stranger far below it merely comes closest
    to the person greeted.
    """

    kind: str
    label: str | None
    score: float
    masked: bool
    frames: int
    threshold: float
    nearest: str | None = None
    nearest_margin: float = float("-inf")


class Voter:
    """Accumulates observations of one kiosk session and says when they agree."""

    def __init__(self, *, window: int = 6, min_frames: int = 3, min_frames_masked: int = 4,
                 max_frames: int = 15, max_gap_s: float = 1.5,
                 min_frames_after_unknown: int | None = None) -> None:
        after = window if min_frames_after_unknown is None else min_frames_after_unknown
        if not all(1 <= n <= window for n in (min_frames, min_frames_masked, after)):
            raise ValueError("min_frames, min_frames_masked and min_frames_after_unknown must be "
                             "between 1 and window")
        self.window, self.min_frames, self.min_frames_masked = window, min_frames, min_frames_masked
        self.min_frames_after_unknown = after
        self.max_frames, self.max_gap_s = max_frames, max_gap_s
        self._recent: deque[Observation] = deque(maxlen=window)
        self._seen = 0
        self._doubted = False  # this presence has already been called unknown
        self._last_at: float | None = None  # time of the last usable frame (survives a verdict)

    @property
    def pending(self) -> int:
        """Usable frames seen since the last verdict or reset."""
        return self._seen

    def progress(self) -> float:
        """0-1: how close the leading identity is to a verdict (for the kiosk's progress ring)."""
        counts = Counter(o.label for o in self._recent if o.accepted)
        if not counts:
            return min(len(self._recent) / self.window, 1.0) * 0.3
        label, n = counts.most_common(1)[0]
        need = self._needed([o for o in self._recent if o.accepted and o.label == label])
        return min(n / need, 1.0)

    @property
    def doubted(self) -> bool:
        """This presence has been called unknown: a later acceptance needs more agreement."""
        return self._doubted

    def reset(self) -> None:
        """Forget everything: the face is gone (a new presence starts with the next frame)."""
        self._clear()
        self._doubted = False
        self._last_at = None

    def forget_votes(self) -> None:
        """The gallery changed: the frames counted so far were matched against the old one and are
        dropped; the presence goes on, and so does an *unknown* called in it."""
        self._clear()

    def _clear(self) -> None:
        """Start counting again after a verdict (the presence goes on)."""
        self._recent.clear()
        self._seen = 0

    def add(self, obs: Observation) -> Verdict | None:
        """Record a frame; returns a verdict when the recent frames decide, else ``None``.
        After a verdict the voter starts counting again; an unknown verdict lasts until
        :meth:`reset`. A gap longer than ``max_gap_s`` starts the count again."""
        if self._last_at is not None and obs.at - self._last_at > self.max_gap_s:
            self._clear()
        self._last_at = obs.at
        self._recent.append(obs)
        self._seen += 1
        verdict = self._decide()
        if verdict is not None:
            self._clear()
            self._doubted = self._doubted or verdict.kind == UNKNOWN
        return verdict

    def _needed(self, agreeing: list[Observation]) -> int:
        masked = sum(o.masked for o in agreeing) * 2 > len(agreeing)
        need = self.min_frames_masked if masked else self.min_frames
        return max(need, self.min_frames_after_unknown) if self._doubted else need

    def _decide(self) -> Verdict | None:
        accepted = [o for o in self._recent if o.accepted and o.label is not None]
        counts = Counter(o.label for o in accepted)
        latest = self._recent[-1]
        if len(counts) == 1:
            label, n = counts.most_common(1)[0]
            # decided on a frame of that person: a frame of someone else that only pushes an older
            # dissenting frame out of the window must not complete the vote (under load, answers come
            # so far apart that the gap between two people goes unseen and their frames share a window)
            if n >= self._needed(accepted) and latest.accepted and latest.label == label:
                return Verdict(ACCEPTED, label, sum(o.score for o in accepted) / n,
                               sum(o.masked for o in accepted) * 2 > n, n, max(o.threshold for o in accepted))
        top = counts.most_common(1)[0][1] if counts else 0
        if (len(self._recent) == self.window and top <= 1) or self._seen >= self.max_frames:
            recent = list(self._recent)
            refused = [o for o in recent if not o.accepted] or recent
            counted = Counter(o.label for o in recent if o.label is not None).most_common(1)
            nearest = counted[0][0] if counted else None
            near = [o.score - o.threshold for o in refused if o.label == nearest and not o.accepted]
            masked = sum(o.masked for o in recent) * 2 > len(recent)
            return Verdict(UNKNOWN, None, max(o.score for o in refused), masked, self._seen,
                           max(o.threshold for o in refused), nearest, max(near) if near else float("-inf"))
        return None
