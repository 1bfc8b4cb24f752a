"""What a kiosk shows, frame by frame, and when a check-in is due: the kiosk socket's state machine.

Plain, synchronous Python, beside :mod:`recognition.voting` (which it uses): no socket, no database,
no clock of its own (the caller passes ``now``, monotonic seconds), no async. One :class:`Presence`
per kiosk socket; :class:`recognition.consumers.KioskConsumer` drives it and does every write::

    searched = presence.edges.due(now)              # search this frame across its edge?
    analysis = analyze_frame(..., search_edges=searched, welcome=presence.welcome_label,
                             background=presence.background.boxes(now))
    step = presence.frame(analysis, now, searched=searched, vote=...)
    # step.error: answer that error code, nothing else to do
    # step.quality_audit: write that audit row, then presence.quality_audited()
    # step.verdict: presence.verdict_due(verdict, ...) says what to write (a check-in, an "unknown"
    #   audit row, or nothing); once written, presence.checked_in(...) or presence.unknown_recorded(...)
    reply = presence.shown(step.reply)              # the answer's fields, the standing outcome over them

The words used here:

* a *presence* is one stretch of a face in front of the camera. It ends when no face was found for
  ``lost_after_s`` (longer on a slow server), or when no frame at all came for ``gap_cap_s`` (camera
  replugged, page stalled); the votes, the standing outcome and the quality counts end with it.
* an *outcome* (:class:`Outcome`: "checked_in", "already" or "unknown") stays on screen while its
  presence lasts. A *welcome* is one of the first two; it also ends when someone else steps in
  without a gap (:meth:`Presence.welcome_ends`), is hidden while someone stands in front unusable
  (refused frames away from the welcomed face or, scored for being too dark or too bright, far
  below its person; or refused frames alone for
  :data:`WELCOME_REFUSED_MAX_S`) until a frame accepted as its person, and is kept through borderline
  frames of the person greeted (:data:`WELCOME_DOUBT_MARGIN`).
* a frame is *refused* by the quality gate (answered "adjust" with the reason, never voted on), shows
  *two people side by side* (reason ``several``: nobody is decided on), or is *voted on*
  (:class:`recognition.voting.Voter`).
* the *edge search* (:class:`EdgeSearch`): a frame without a face is searched again across its edge,
  for someone half out of the picture; it costs a detector run, so an empty scene pays it only now
  and then, and a "face" there that never moves is the mirrored background's, and is let go.
* the *background* (:class:`StillBlur`): a face refused as blurred that stays in one place beside a
  face in focus is out of focus behind the person in front (a window, a poster), and is let go:
  neither someone beside them nor, once they leave, someone to ask to hold still.

Why each rule and number is as it is: docs/kiosk.md ("One frame, from camera to check-in", "What ends
a welcome: a stranger in a queue") and docs/accuracy.md ("Multi-frame decisions at the kiosk", "What
keeps a welcome on screen", "Faces cut through by a kiosk frame's edge").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from recognition.engine.detect import box_iou
from recognition.engine.quality import TOO_BRIGHT, TOO_DARK, TOO_SMALL

from .voting import ACCEPTED, Observation, Verdict, Voter

if TYPE_CHECKING:
    from recognition.engine import Face, Index
    from recognition.engine.gallery import Decision

# Presence and vote timing. On a slow server (many kiosks on few cores) answers come further apart:
# the limits then stretch to a number of analysis intervals (a smoothed average), up to the cap.
LOST_AFTER_S = 1.0          # no face for this long ends a presence (and its banner)...
LOST_AFTER_INTERVALS = 3.0  # ...or this many analysis intervals, if longer
VOTE_MAX_GAP_S = 1.5        # a longer gap between usable frames restarts the vote...
VOTE_GAP_INTERVALS = 3.0    # ...or this many analysis intervals, if longer
VOTE_MAX_GAP_CAP_S = 6.0    # both never longer than this; no frame at all for this long ends a presence

QUALITY_AUDIT_FRAMES = 8    # frames refused for quality in one presence before it is audited

WELCOMES = ("checked_in", "already")   # the outcomes that greet a person by name
# A welcome stays through an "unknown" verdict whose nearest match is the person greeted only when
# those frames came this close to their threshold (the person's own face turning borderline: a mask
# going on, a turned head); a stranger further below is told "not recognised". docs/accuracy.md,
# "What keeps a welcome on screen": 16% of strangers kept reading it (88% on the nearest match alone),
# 2.3% of enrolled people were told "not recognised" after their own welcome (6.6% at 0).
WELCOME_DOUBT_MARGIN = 0.05
# A welcome ends at this many usable frames in a row accepted as one other person (the next person in
# a queue, stepping in without a gap). Two: one look-alike or bad frame must not end a genuine welcome.
WELCOME_OTHER_FRAMES = 2
# ...or at this many in a row scoring more than WELCOME_FAR_MARGIN below the threshold against the
# person greeted, whoever their best match (a stranger matches nobody). docs/kiosk.md, "What ends a
# welcome: a stranger in a queue": a stranger reads the last welcome 1 frame (4.9 before), and no
# welcomed person's own frames ended theirs; 0.05 would end borderline people's (they hover 0.05-0.08
# below masked).
WELCOME_FAR_MARGIN = 0.1
WELCOME_FAR_FRAMES = 2
# Frames the quality gate refuses say nothing of who is there, so a welcome stood through any number
# of them: the next person in front, too far away or in the dark, read the last person's name and
# check-in time for as long as they stayed unusable. A welcome is now hidden (the frame's own prompt
# shown) at WELCOME_OTHER_FRAMES refused frames in a row whose face is not where the welcomed one was
# (their boxes overlapping less than WELCOME_SAME_IOU, each refused face that does overlap moving that
# place along, unless it is too dark or too bright and scores WELCOME_FAR_MARGIN below the person
# welcomed: a stranger in the dark where they stood), and after WELCOME_REFUSED_MAX_S of refused
# frames alone, wherever the face (as long as the page's own hold of an outcome, 4 s: it has been read
# by then). Hidden, not ended: a usable frame accepted as the person welcomed shows it again, and
# nothing is written again for them meanwhile. Hidden by someone else (the first two ways), the
# refusals from then on are that person's and audited as anyone's are (QUALITY_AUDIT_FRAMES).
WELCOME_SAME_IOU = 0.3
WELCOME_REFUSED_MAX_S = 4.0
# Refused frames in the welcomed person's place while someone else hid the welcome are theirs if they
# come back usable, and counted as anyone's after this long with nobody usable (a phone glance is over)
WELCOME_HELD_S = 15.0
HIDDEN_BY_OTHER = "other"   # why refused frames hid a welcome (Presence._refused_hides_welcome)
HIDDEN_BY_TIME = "time"
# The refusals whose face the descriptor can still read, if poorly: scored against the person whose
# welcome stands (recognition.consumers.analyze_frame). bench/light.py's last table: in dim light a
# stranger's frame stays within WELCOME_FAR_MARGIN of someone else's threshold in 0.2-0.4% of pairs,
# the person's own frame falls below it in 0-3% (unmasked; masked 5-14%). Blur is the person welcomed
# moving: their own blurred masked frames fell below it in 12-41%, so blurred faces are not scored, nor
# faces too small or cut by the edge (told apart by where they are), nor turned heads (their own
# person's score drops with the angle).
SCORED_WHEN_REFUSED = frozenset({TOO_DARK, TOO_BRIGHT})

SEVERAL = "several"   # the reason given for two people side by side (recognition.consumers.SEVERAL_FACES_RATIO)
# After a pair, this many frames of one face in a row before anyone is decided on again: when each of
# the two moves in turn, the other is blurred (refused) every other frame, and deciding on the frames
# between flipped from one person to the other.
SEVERAL_HOLD_FRAMES = 2

# An empty scene is searched across the frame's edge (one more detector run: an empty 640x480 frame
# 10 -> 22 ms) at most this often, every frame while someone was seen lately: an idle kiosk sends up
# to 8 frames a second, and searching each would halve the idle kiosks a core serves.
EDGE_SEARCH_EVERY_S = 0.5
# A face across the edge that stays this long where it is (its boxes overlapping at least
# EDGE_STILL_IOU) is the mirrored background's making (3 of 760 empty crops, bench/cut_faces.py), not
# someone half out of the picture, who moves once asked to: it is let go, or the empty kiosk said
# "Please move to the middle" for good. Nothing else found at that place is answered either.
EDGE_STILL_S = 4.0
EDGE_STILL_IOU = 0.7
# So is a face refused as blurred that stays where it is that long (Timing.edge_still_s, boxes overlapping
# EDGE_STILL_IOU): out of focus behind the person in front, a window's bars or a poster, which the detector
# can take for a face as large as theirs; it is left out of the frame (recognition.consumers.analyze_frame's
# ``background``). Taken for someone beside, it kept a press photo before the White House's windows
# (focus 1.2-1.5 there, 10-14 on the face in front; the gate's limit 2.4) at "One person at a time" for
# good (a review). Only a place beside a face in focus is timed, and one where a face is found in focus is
# forgotten (StillBlur): two people who move in turn stay two, and a blurred face alone still says "Hold
# still" (a camera out of focus; an empty kiosk before a blurred poster too, until someone stands there).

# what the consumer is asked to write for a verdict (:meth:`Presence.verdict_due`)
CHECK_IN = "check_in"           # services.checkin_record; with no active person, an "unknown" row instead
AUDIT_UNKNOWN = "unknown"       # services.checkin_reject_record(reason="unknown"); "not recognised" shows
AUDIT_DOUBT = "doubt"           # the same row, but the welcome standing stays on screen


@dataclass(frozen=True)
class FrameAnalysis:
    """The engine's view of one kiosk frame (made by :func:`recognition.consumers.analyze_frame`).

    ``size``: ``(width, height)`` pixels. ``face``: the main (largest) face or ``None``.
    ``decision``: identity for a face that passed the quality gate (``None`` otherwise or with
    an empty gallery). ``error``: an engine error code for undecodable frames. ``ms``: engine
    time in milliseconds. ``snapshot``: aligned face JPEG, only when asked for. ``adapt_photo``: the
    frame cut around an accepted unmasked face recognised well above its threshold, a JPEG for
    gallery adaptation (:func:`enrollment.services.photo_add_from_checkin`), only when asked for.
    ``several``: two people side by side (:func:`recognition.consumers._several_people`): ``face`` is
    the larger, not embedded. ``welcomed``: ``(label, score)``, the score this face gives the person
    whose welcome stands (asked for with ``welcome``; the score is ``None`` when that person is no
    longer in the index); for a face refused for its light (:data:`SCORED_WHEN_REFUSED`), scored while a
    welcome stands (never decided on), ``welcomed_threshold`` is the threshold that score is held to.
    ``blurred``: where the faces refused as blurred were (0-1 boxes: x1, y1, x2, y2), those let go as
    the background's (:class:`StillBlur`) too, which are left out of ``face`` and ``several``;
    ``sharp``: where the faces in focus by the gate's measure were (refused or not, but not for blur);
    ``in_focus``: those of them as large as a face the kiosk decides on.
    """

    size: tuple[int, int] = (0, 0)
    face: Face | None = None
    decision: Decision | None = None
    error: str | None = None
    ms: float = 0.0
    snapshot: bytes | None = field(default=None, repr=False)
    adapt_photo: bytes | None = field(default=None, repr=False)
    several: bool = False
    welcomed: tuple[str, float | None] | None = None
    welcomed_threshold: float | None = None
    blurred: tuple[tuple[float, ...], ...] = ()
    in_focus: tuple[tuple[float, ...], ...] = ()
    sharp: tuple[tuple[float, ...], ...] = ()


@dataclass
class Outcome:
    """What the kiosk shows while the same face stays in front of it."""

    state: str                  # "checked_in", "already" or "unknown"
    label: str | None = None
    name: str | None = None
    time: str | None = None
    masked: bool | None = None
    doubt_audited: bool = False  # an "unknown" near this welcome's person was audited, not shown
    window: str | None = None    # the cooldown window of the check-in shown (checked_in, already)


@dataclass(frozen=True)
class Timing:
    """The presence's time limits, in seconds (defaults: this module's constants, as shipped)."""

    lost_after_s: float = LOST_AFTER_S
    lost_after_intervals: float = LOST_AFTER_INTERVALS
    vote_max_gap_s: float = VOTE_MAX_GAP_S
    vote_gap_intervals: float = VOTE_GAP_INTERVALS
    gap_cap_s: float = VOTE_MAX_GAP_CAP_S
    edge_search_every_s: float = EDGE_SEARCH_EVERY_S
    edge_still_s: float = EDGE_STILL_S


@dataclass(frozen=True)
class WelcomeRules:
    """What keeps a welcome on screen and what ends it (:meth:`Presence.verdict_due`,
    :meth:`Presence.welcome_ends`). ``None``, the default and the kiosk's: this module's constant of
    that name (``WELCOME_DOUBT_MARGIN``...) as it is at each frame. Other settings are for
    ``bench/voting.py``, which replays them over recorded presences; a margin of ``float("inf")``
    keeps a welcome through any "unknown" nearest the person welcomed (``doubt_margin``), or never
    ends it for frames far below them (``far_margin``)."""

    doubt_margin: float | None = None
    other_frames: int | None = None
    far_margin: float | None = None
    far_frames: int | None = None


@dataclass(frozen=True)
class QualityAudit:
    """A presence's quality refusals to audit (``services.checkin_reject_record(reason="quality")``)."""

    frames: int
    detail: str                 # "blurry x5, pose x3"
    masked: bool | None


@dataclass(frozen=True)
class Due:
    """What a verdict asks the consumer to write: ``action`` :data:`CHECK_IN`, :data:`AUDIT_UNKNOWN`
    or :data:`AUDIT_DOUBT`; ``detail``: the audit row's."""

    action: str
    detail: str = ""


@dataclass
class Step:
    """One analysed frame's result. ``error``: the engine refused the frame (answered with that code;
    the presence did not see it). ``reply``: the answer's fields before :meth:`Presence.shown`.
    ``quality_audit`` and ``verdict``: what is to be written (in that order) before answering."""

    reply: dict = field(default_factory=dict)
    error: str | None = None
    quality_audit: QualityAudit | None = None
    verdict: Verdict | None = None


class EdgeSearch:
    """When to search a frame across its edge, and which face found there to let go.

    Nobody seen lately: at most every ``edge_search_every_s``; otherwise every frame, so that a face
    half out of the picture, found at one frame and missed at the next, is not told "Looking for a
    face" in between. A face found across the edge that stays where it is ``edge_still_s`` is let go
    (treated as no face), and stays so while nothing else is found there."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self._due_at = 0.0       # an empty frame is searched across its edge from then on
        self._box: tuple[float, ...] | None = None   # where a face across the edge was found (0-1)...
        self._since = 0.0                            # ...and since when
        self._seen_at = 0.0                          # ...and when last

    def due(self, now: float) -> bool:
        """Whether the next frame is to be searched across its edge."""
        return now >= self._due_at

    def rest(self, now: float) -> None:
        """An empty scene searched, and nobody lately: the next search in ``edge_search_every_s``."""
        self._due_at = now + self.timing.edge_search_every_s

    def seen(self, a: FrameAnalysis, now: float, *, searched: bool, paused: bool) -> FrameAnalysis:
        """Update the place timed with frame ``a``; returns ``a`` without its face when that face is
        across the edge and let go. ``searched``: ``a`` was searched across its edge. ``paused``: no
        frame came for a while before it (whoever is at the edge now is timed afresh)."""
        if paused:
            self._box = None
        if a.face is not None and a.face.across_edge:
            if self._still(a, now):
                return replace(a, face=None)
        elif a.face is not None:
            # a face away from the edge: one across it not let go yet is timed afresh next time; one
            # let go (the background's) stays so (else "move to the middle" after every visitor)
            if now - self._since < self.timing.edge_still_s:
                self._box = None
        elif searched and not a.error and now - self._seen_at > self.timing.edge_still_s:
            # nothing across the edge for that long: whoever is found there next is timed afresh
            # (else someone else half out at the same spot, hours later, was let go at once)
            self._box = None
        return a

    def _still(self, a: FrameAnalysis, now: float) -> bool:
        """Whether ``a``'s face, across the edge, has stayed where it is for ``edge_still_s``."""
        box = unit_box(a.face.box, a.size)
        self._seen_at = now
        if self._box is None or box_iou(box, self._box) < EDGE_STILL_IOU:
            self._box, self._since = box, now
            return False
        return now - self._since >= self.timing.edge_still_s


def unit_box(box: Sequence[float], size: tuple[int, int]) -> tuple[float, ...]:
    """``box`` (pixels: x1, y1, x2, y2) as shares of a frame of ``size`` (width, height)."""
    w, h = size
    return tuple(v / s for v, s in zip(box, (w, h, w, h), strict=True))


def let_go(box: Sequence[float], background: Sequence[Sequence[float]]) -> bool:
    """Whether a blurred face at ``box`` (0-1) is at one of the ``background``'s places
    (:meth:`StillBlur.boxes`): :func:`recognition.consumers.analyze_frame` then leaves it out."""
    return any(box_iou(box, place) >= EDGE_STILL_IOU for place in background)


class StillBlur:
    """Which faces refused as blurred are the background's (see :data:`EDGE_STILL_IOU`).

    A place is timed from a frame where a blurred face is found there beside a face in focus (someone
    in front of it), while a blurred face is found there again, missed for no longer than a
    presence's face may be (the detector finds a background's "face" in most frames, not all), and
    never found in focus: a face in focus there is someone, and the place is forgotten. One timed for
    ``edge_still_s`` is let go (:meth:`boxes`). So two people side by side, each blurred when they
    move, are never let go (each is sharp in between: a diff review found them flipped between after
    4 s, when any blurred place was timed), nor is someone blurred alone (a camera out of focus:
    "Hold still", not "Looking for a face"). Kept apart from :class:`EdgeSearch`: a frame holds a
    face in front and the background's at once."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self._places: list[tuple[tuple[float, ...], float, float]] = []   # (box first found, since, last found)
        self._lost_after_s = timing.lost_after_s
        self._frame_at: float | None = None

    def boxes(self, now: float) -> tuple[tuple[float, ...], ...]:
        """The places (0-1 boxes) whose blurred faces are let go at the frame taken at ``now``: none
        after a pause (the presence forgets them at that frame), nor one not found lately."""
        if self._frame_at is None or now - self._frame_at > self.timing.gap_cap_s:
            return ()
        return tuple(box for box, since, last in self._places
                     if now - since >= self.timing.edge_still_s and now - last <= self._lost_after_s)

    def seen(self, a: FrameAnalysis, now: float, *, paused: bool, lost_after_s: float) -> None:
        """Time the places of frame ``a``'s blurred faces (:attr:`FrameAnalysis.blurred`, beside those
        in focus, :attr:`FrameAnalysis.in_focus`; a place where any face is sharp,
        :attr:`FrameAnalysis.sharp`, is forgotten). ``paused``: no frame came for a while before it (the
        camera may point elsewhere now): every place is timed afresh. ``lost_after_s``: a place not
        found again for longer is forgotten (the presence's, stretched on a slow server: at one answer
        every 1.5 s, the 1 s of a fast one forgot every place between two frames)."""
        self._frame_at, self._lost_after_s = now, lost_after_s
        if paused:
            self._places = []
        # in_focus is a part of sharp in analyze_frame's answers; both are read, so that an answer giving
        # in_focus alone (a scripted one) forgets a place as the engine's would
        kept = [p for p in self._places if now - p[2] <= lost_after_s and not let_go(p[0], a.in_focus + a.sharp)]
        for box in a.blurred:
            match = next((i for i, p in enumerate(kept) if box_iou(box, p[0]) >= EDGE_STILL_IOU), None)
            if match is not None:
                first, since, _ = kept[match]
                kept[match] = (first, since, now)
            elif a.in_focus:   # behind someone in focus: timed from now
                kept.append((box, now, now))
        self._places = kept


@dataclass
class OtherFace:
    """Someone else in front while a welcome stands, unusable: their refused frames hid the welcome
    (:data:`HIDDEN_BY_OTHER`), and from then on are counted apart from the person welcomed's and
    audited as anyone's are, once a welcome however often it is hidden and shown again.

    A refused face in the place where the person welcomed stood is theirs, back by a jump, unless the
    other's face came there step by step (each frame overlapping the other's last counted one): a
    stranger stepping into their place went unaudited for as long as they stayed, and a time limit
    instead audited the person welcomed looking at their phone for 4 s after a passer-by (reviews).
    Such a refusal is held back, not dropped: counted after :data:`WELCOME_HELD_S` with nobody usable
    (a stranger who got there by a jump, or between two slow answers), forgotten when the person
    welcomed is seen again."""

    hiding: bool = False                        # the welcome hidden for now is hidden by them
    audited_for: Outcome | None = None          # the welcome whose other's refusals were audited
    box: tuple[float, ...] | None = None        # where their last counted refusal was
    held: Counter[str] = field(default_factory=Counter)   # refusals in the welcomed place, not counted yet

    def arrived(self) -> None:
        """Their refused frames hid the welcome just now: followed from here, nothing held back."""
        self.hiding, self.box = True, None
        self.held.clear()

    def counts(self, box: tuple[float, ...], reason: str, *, in_welcomed_place: bool, across_edge: bool,
               usable_for_s: float, counted: Counter[str]) -> bool:
        """Whether a refusal at ``box`` for ``reason``, while they hide the welcome, is counted as
        theirs (``in_welcomed_place``: where the person welcomed stood; ``usable_for_s``: seconds
        since the last usable frame). What was held back goes into ``counted`` once it is theirs."""
        mine = not in_welcomed_place or self.box is not None and box_iou(box, self.box) >= WELCOME_SAME_IOU
        if mine:
            self.box = box
        elif usable_for_s > WELCOME_HELD_S:
            counted.update(self.held)
            self.held.clear()
            mine = True
        elif not across_edge:
            self.held[reason] += 1
        return mine

    def welcomed_back(self) -> None:
        """The person welcomed was seen again: what was held back in their place was theirs."""
        self.held.clear()

    def forget(self) -> None:
        """The presence ended."""
        self.hiding, self.audited_for, self.box = False, None, None
        self.held.clear()


class Presence:
    """One kiosk socket's frames turned into what its page shows (see the module docstring).

    ``voter``: the socket's vote (its ``max_gap_s`` is stretched here on a slow server).
    ``min_face_px``: a face narrower than this is asked to come closer (``too_small``); the attribute
    of that name may be set again between frames (the consumer sets it from the setting at each one).
    ``welcome_rules``: what keeps and ends a welcome (the kiosk's when not given)."""

    def __init__(self, voter: Voter, *, min_face_px: int, timing: Timing | None = None,
                 welcome_rules: WelcomeRules | None = None) -> None:
        self.voter = voter
        self.timing = timing = timing or Timing()
        self.welcome_rules = welcome_rules or WelcomeRules()
        self.edges = EdgeSearch(timing)
        self.background = StillBlur(timing)
        self.outcome: Outcome | None = None
        self.min_face_px = min_face_px
        self._analysed_at: float | None = None
        self._interval = 0.15       # smoothed seconds between analysed frames (see _stretch_limits)
        self._lost_after_s = timing.lost_after_s   # seconds without a face that end a presence (ditto)
        self._last_face_at = 0.0
        self._quality_reasons: Counter[str] = Counter()
        self._quality_audited = False
        self._several_left = 0      # frames of one face still to see after a pair (SEVERAL_HOLD_FRAMES)
        # (person, frames in a row, when last) accepted as someone other than the person welcomed
        self._other: tuple[str, int, float] | None = None
        # (frames in a row, when last) far below the threshold against the person welcomed
        self._far: tuple[int, float] | None = None
        self._counted_for: Outcome | None = None   # the welcome those two counts are about
        # where the last face followed was (0-1 box), when a frame was last usable, and how many
        # refused frames in a row showed a face elsewhere (see WELCOME_SAME_IOU)
        self._followed_box: tuple[float, ...] | None = None
        self._usable_at = 0.0
        self._refused_elsewhere = 0
        self._hidden_for: Outcome | None = None   # the welcome those refused frames hid (not shown)
        # hidden by someone else's refused frames (not by the time limit alone)
        self._other_face = OtherFace()

    # -------------------------------------------------------------------------- reading

    @property
    def welcome_label(self) -> str | None:
        """The person whose welcome stands (each frame is also scored against them), else ``None``."""
        o = self.outcome
        return o.label if o is not None and o.state in WELCOMES else None

    def shown(self, reply: dict) -> dict:
        """``reply`` with the standing outcome over it: the page keeps showing it (with the live box)."""
        o = self.outcome
        if o is None or o is self._hidden_for:
            return reply
        reply.update(state=o.state, reason=None, name=o.name, time=o.time, progress=1.0)
        if o.masked is not None:
            reply["masked"] = o.masked
        return reply

    # -------------------------------------------------------------------------- frames

    def frame(self, a: FrameAnalysis, now: float, *, searched: bool, vote: bool = True) -> Step:
        """Take one analysed frame (``searched``: it was searched across its edge; ``vote``: its
        decision may be counted, false when it was matched against a gallery replaced meanwhile)."""
        paused = self._analysed_at is not None and now - self._analysed_at > self.timing.gap_cap_s
        a = self.edges.seen(a, now, searched=searched, paused=paused)
        if a.error:
            return Step(error=a.error)
        if paused:
            # no frame at all for that long (camera replugged, page stalled): whoever is here now is
            # not greeted with the last person's outcome, nor doubted for their "unknown"
            self.end()
        self._stretch_limits(now)
        self.background.seen(a, now, paused=paused, lost_after_s=self._lost_after_s)
        step = self._interpret(a, now, vote)
        if searched and a.face is None and now - self._last_face_at > self._lost_after_s:
            self.edges.rest(now)   # nobody, not even across the edge, and nobody lately
        return step

    def _stretch_limits(self, now: float) -> None:
        """Under load answers come slower than VOTE_MAX_GAP_S apart; the vote must then measure gaps
        in analysed frames, not seconds, or nobody is ever checked in. So must a presence: at one
        answer every 1.5 s a single missed detection must not end it (and forget an "unknown")."""
        t = self.timing
        # from the intervals *before* this frame: one long pause in a fast stream (somebody else may
        # be standing there now) still restarts the vote
        self.voter.max_gap_s = min(max(t.vote_max_gap_s, t.vote_gap_intervals * self._interval), t.gap_cap_s)
        self._lost_after_s = min(max(t.lost_after_s, t.lost_after_intervals * self._interval), t.gap_cap_s)
        if self._analysed_at is not None:
            step = min(now - self._analysed_at, t.gap_cap_s)
            self._interval = 0.7 * self._interval + 0.3 * step
        self._analysed_at = now

    def _interpret(self, a: FrameAnalysis, now: float, vote: bool) -> Step:
        """The page's state for one analysis: no face, two people, refused, or voted on."""
        face = a.face
        reply: dict = {"state": "searching", "reason": None, "box": None, "masked": None, "name": None,
                       "time": None, "progress": 0.0}
        if face is None:
            if now - self._last_face_at > self._lost_after_s:
                self.end()
            return Step(reply)
        self._last_face_at = now
        w, h = a.size
        reply["box"] = [round(min(max(v / s, 0.0), 1.0), 4) for v, s in zip(face.box, (w, h, w, h), strict=True)]
        # decided only for an embedded face (one that can lead to a decision): unknown, not "unmasked"
        masked = bool(face.masked) if face.embedding is not None else None
        reply["masked"] = masked
        if a.several or self._several_left:
            # two people side by side, or one of them alone for fewer than SEVERAL_HOLD_FRAMES
            # frames since: no vote (the votes so far may be either's), and no quality audit
            if a.several:
                self._several_left = SEVERAL_HOLD_FRAMES
                self.voter.forget_votes()
            else:
                self._several_left -= 1
            # no box: the larger of two near-equal faces changes from frame to frame
            reply.update(state="adjust", reason=SEVERAL, box=None)
            return Step(reply)
        reason = face.quality.reason
        if reason is None and face.box[2] - face.box[0] < self.min_face_px:
            reason = TOO_SMALL   # recognisable, but a kiosk can ask for better: come closer
        box = tuple(reply["box"])
        if reason is not None:
            hides, here = self._refused_hides_welcome(box, now, self._refused_far(a))
            other = self._other_face
            if hides:
                # someone else, or nobody usable for long: their prompt is shown, not the name. Hidden,
                # not ended: the person welcomed looking down or a mask going on is not checked in or
                # called unknown again, nor their refusals audited, once they are usable again
                if hides == HIDDEN_BY_OTHER and not self._hidden_by_someone_else:
                    # someone else's refusals from here on: counted apart from the person welcomed's
                    # and audited as anyone's are (they went unrecorded while the welcome stood), once
                    # a welcome however often it is hidden and shown again
                    self._quality_reasons.clear()
                    self._quality_audited = other.audited_for is self.outcome
                    other.arrived()
                elif self._hidden_for is not self.outcome:
                    other.hiding = False
                self._hidden_for = self.outcome
            reply.update(state="adjust", reason=reason)
            counted = True
            if self._hidden_by_someone_else:   # theirs, or held back (OtherFace)
                counted = other.counts(box, reason, in_welcomed_place=here, across_edge=face.across_edge,
                                       usable_for_s=now - self._usable_at, counted=self._quality_reasons)
            return Step(reply, quality_audit=self._refused(reason, face.across_edge, masked, counted=counted))
        self._followed_box, self._usable_at, self._refused_elsewhere = box, now, 0
        if not vote:
            reply.update(state="recognising", progress=0.0)
            return Step(reply)
        d = a.decision
        obs = Observation(at=now, label=d.label if d else None, score=d.score if d else float("-inf"),
                          accepted=bool(d and d.accepted), masked=bool(face.masked),
                          threshold=d.threshold if d else 0.0)
        if self.welcome_ends(obs, a.welcomed):
            self.outcome = None   # someone else in front: their frames are shown, not the welcome
        elif self._hidden_for is not None and self._hidden_for is self.outcome and obs.accepted \
                and obs.label == self.outcome.label:
            self._hidden_for = None   # the person welcomed, usable again: their welcome shows again
            self._other_face.welcomed_back()
        verdict = self.voter.add(obs)
        reply.update(state="recognising", progress=round(self.voter.progress(), 2))
        return Step(reply, verdict=verdict)

    def _refused_far(self, a: FrameAnalysis) -> bool:
        """Whether a refused face scored against the person welcomed (too dark or too bright:
        :data:`SCORED_WHEN_REFUSED`) is far below their threshold, as
        :meth:`welcome_ends` judges a usable frame: someone else, wherever their face."""
        o, w = self.outcome, a.welcomed
        if o is None or w is None or w[0] != o.label or w[1] is None or a.welcomed_threshold is None:
            return False
        r = self.welcome_rules
        return w[1] < a.welcomed_threshold - (WELCOME_FAR_MARGIN if r.far_margin is None else r.far_margin)

    def _refused_hides_welcome(self, box: tuple[float, ...], now: float, far: bool = False
                               ) -> tuple[str | None, bool]:
        """Whether a frame refused by the quality gate, its face at ``box``, hides the welcome standing,
        and why: :data:`HIDDEN_BY_OTHER`, :data:`WELCOME_OTHER_FRAMES` such frames in a row away from
        the face followed or scoring ``far`` below the person welcomed (:meth:`_refused_far`);
        :data:`HIDDEN_BY_TIME`, :data:`WELCOME_REFUSED_MAX_S` since the last usable frame; ``None``:
        it stays. Second: whether the face is in the place of the face followed (and not ``far``)."""
        if self.welcome_label is None:
            return None, False
        if far or self._followed_box is not None and box_iou(box, self._followed_box) < WELCOME_SAME_IOU:
            self._refused_elsewhere += 1
            return (HIDDEN_BY_OTHER if self._refused_elsewhere >= WELCOME_OTHER_FRAMES else
                    HIDDEN_BY_TIME if now - self._usable_at > WELCOME_REFUSED_MAX_S else None), False
        else:
            self._refused_elsewhere = 0
            if not self._hidden_by_someone_else:
                # moved along with the person welcomed; not with someone else's face once it hid the
                # welcome (a passer-by crossing their place took it away with them: a review)
                self._followed_box = box
        return HIDDEN_BY_TIME if now - self._usable_at > WELCOME_REFUSED_MAX_S else None, True

    @property
    def _hidden_by_someone_else(self) -> bool:
        """The welcome standing is hidden by someone else's refused frames (not by the time limit)."""
        return self.outcome is not None and self._hidden_for is self.outcome and self._other_face.hiding

    def _refused(self, reason: str, across_edge: bool, masked: bool | None, *, counted: bool = True
                 ) -> QualityAudit | None:
        """Count a quality refusal (unless not ``counted``); the presence's audit once
        QUALITY_AUDIT_FRAMES are counted and nothing stands on screen (or someone else hid it). A face
        found across the frame's edge alone is not counted: maybe nobody (the reflection's making),
        and never looked at beyond being found."""
        if counted and not across_edge:
            self._quality_reasons[reason] += 1
        frames = sum(self._quality_reasons.values())
        standing = self.outcome is not None and not self._hidden_by_someone_else
        if frames < QUALITY_AUDIT_FRAMES or self._quality_audited or standing:
            return None
        detail = ", ".join(f"{k} x{n}" for k, n in self._quality_reasons.most_common())
        return QualityAudit(frames=frames, detail=detail, masked=masked)

    def quality_audited(self) -> None:
        """The presence's quality audit was written (until then, each refused frame asks again)."""
        self._quality_audited = True
        if self._hidden_by_someone_else:
            self._other_face.audited_for = self.outcome   # not again for this welcome, hidden again or not

    def welcome_ends(self, obs: Observation, welcomed: tuple[str, float | None] | None = None) -> str | None:
        """Whether the welcome standing ends with this frame, and why: ``"far"``, it makes
        :data:`WELCOME_FAR_FRAMES` usable frames in a row (no further apart than the vote's gap) whose
        score against the person welcomed (``welcomed``, this frame's :attr:`FrameAnalysis.welcomed`)
        is more than :data:`WELCOME_FAR_MARGIN` below the frame's threshold (a stranger, who matches
        nobody); else ``"other"``, it makes :data:`WELCOME_OTHER_FRAMES` in a row accepted as one
        person other than the one welcomed; ``None``: the welcome stands (or none does). A frame that
        is neither starts that count again; one the quality gate refused is no evidence either way (it
        never gets here). Only the outcome goes: the votes, and an *unknown* called in this presence,
        stay as they are. The numbers: :attr:`welcome_rules`."""
        o = self.outcome
        if o is None or o.state not in WELCOMES or o is not self._counted_for:
            # counts are about one welcome: one that replaced another directly (the next person's
            # vote done while it stood) starts from none
            self._other = self._far = None
            self._counted_for = o
        if o is None or o.state not in WELCOMES:
            return None
        r = self.welcome_rules
        far_margin = WELCOME_FAR_MARGIN if r.far_margin is None else r.far_margin
        far_frames = WELCOME_FAR_FRAMES if r.far_frames is None else r.far_frames
        other_frames = WELCOME_OTHER_FRAMES if r.other_frames is None else r.other_frames
        gap = self.voter.max_gap_s
        far = (welcomed is not None and welcomed[0] == o.label and welcomed[1] is not None
               and welcomed[1] < obs.threshold - far_margin)
        n_far = self._far[0] + 1 if far and self._far and obs.at - self._far[1] <= gap else 1
        self._far = (n_far, obs.at) if far else None
        if not obs.accepted or obs.label == o.label:
            self._other = None
        else:
            label, n, at = self._other or (obs.label, 0, obs.at)
            n = n + 1 if label == obs.label and obs.at - at <= gap else 1
            self._other = (obs.label, n, obs.at)
        ended = ("far" if self._far is not None and self._far[0] >= far_frames else
                 "other" if self._other is not None and self._other[1] >= other_frames else None)
        if ended:
            self._other = self._far = None
        return ended

    # -------------------------------------------------------------------------- verdicts

    def verdict_due(self, verdict: Verdict, window_now: Callable[[], str]) -> Due | None:
        """What to write for ``verdict``, or ``None`` when nothing is to be written: the same verdict
        again is ignored, and so is "unknown" for the person whose welcome stands (their frames turned
        borderline), once audited. "Unknown" again over a standing "unknown" is not written, but the
        outcome takes the verdict's ``masked`` (the page's advice follows the face as it is now).
        ``window_now``: the cooldown window a check-in now falls in (called only when the same
        person's welcome stands)."""
        current = self.outcome
        if verdict.kind == ACCEPTED:
            # the same person again is not recorded again while their check-in's window lasts; past
            # it (midnight with the "day" cooldown) they are: someone greeted at 23:59 and still in
            # front at 00:00 read "already checked in today" of yesterday, and today had no check-in
            if current is not None and current.label == verdict.label and (
                    current.window is None or current.window == window_now()):
                return None
            return Due(CHECK_IN)
        if current is not None and current.state == "unknown":
            # "unknown" again, not recorded again; but masked or bare as the face is now: the page
            # tells a masked face to lower the mask for a moment, and a bare one to see reception
            current.masked = verdict.masked
            return None
        doubt = WELCOME_DOUBT_MARGIN if self.welcome_rules.doubt_margin is None else self.welcome_rules.doubt_margin
        if (current is not None and verdict.nearest == current.label
                and verdict.nearest_margin >= -doubt):
            # the person just greeted whose frames turned borderline (a mask, a turned head), or
            # someone who looks much like them: the welcome stays, and the decision goes in the audit
            # log once per welcome. One that refused frames hid shows again, as it stays unhidden
            # (else "Recognising…" for as long as they stood there borderline)
            if current is self._hidden_for:
                self._hidden_for = None
            if current.doubt_audited:
                return None
            return Due(AUDIT_DOUBT, f"not shown: the welcome of person #{current.label}, their nearest match, stayed")
        return Due(AUDIT_UNKNOWN)

    def checked_in(self, verdict: Verdict, *, created: bool, name: str, time: str, window: str) -> None:
        """The check-in ``verdict`` asked for was recorded (``created``: new, else already in its
        ``window``): the welcome shows ``name`` and the check-in's local ``time`` ("08:59")."""
        self.outcome = Outcome("checked_in" if created else "already", verdict.label, name, time, verdict.masked,
                               window=window)

    def unknown_recorded(self, verdict: Verdict, due: Due) -> None:
        """The "unknown" audit row for ``verdict`` was written (for ``due``; a :data:`CHECK_IN` whose
        person is no longer active ends so too). Until then the same verdict asks again."""
        if due.action == AUDIT_DOUBT:
            if self.outcome is not None:
                self.outcome.doubt_audited = True
            return
        # the label of an inactive match stays with the outcome: the same match again in this
        # presence is not looked up and recorded every few frames (only its first time)
        self.outcome = Outcome("unknown", verdict.label if verdict.kind == ACCEPTED else None, masked=verdict.masked)

    # -------------------------------------------------------------------------- endings

    def end(self) -> None:
        """Nobody in front of the camera any more: forget the votes and the standing outcome."""
        self.voter.reset()
        self.outcome = None
        self._other = self._far = None
        self._followed_box, self._refused_elsewhere, self._hidden_for = None, 0, None
        self._other_face.forget()
        self._quality_reasons.clear()
        self._quality_audited = False
        self._several_left = 0

    def forget_votes(self) -> None:
        """The gallery changed: votes cast against the old one are dropped; the presence goes on."""
        self.voter.forget_votes()

    def welcome_end_unless_in(self, index: Index | None) -> None:
        """End a standing welcome whose person the gallery now in use no longer holds (erased or
        deactivated while they stood in front): it went on showing their name until a vote against
        the new gallery called them unknown, several frames later."""
        o = self.outcome
        # Index.holds, asked only while a welcome stands: a set of every label, built at each load,
        # took 13.7 ms at 200,000 templates
        if o is not None and o.state in WELCOMES and (index is None or not index.holds(o.label)):
            self.outcome = None
