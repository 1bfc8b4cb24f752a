"""``consumers.analyze_frame`` with the real engine: only the main face of a frame that can lead to
a decision is embedded, and its embedding and mask decision are those of ``Engine.analyze``."""

from __future__ import annotations

import numpy as np
import pytest

from recognition import consumers
from recognition.engine.index import Index

from . import faces

pytestmark = pytest.mark.models


@pytest.fixture
def frame(astronaut_bgr) -> bytes:
    return faces.jpeg(astronaut_bgr, 92)


def test_main_face_embedded_like_engine_analyze(engine, installed_models, frame, settings):
    settings.MASKNET_MODELS_DIR = installed_models
    reference = engine.analyze(frame, max_faces=3)[0]
    index = Index(engine.dim)
    index.add("7", reference.embedding[None])
    a = consumers.analyze_frame(frame, index, {})
    assert a.face is not None and a.face.embedding is not None
    assert float(a.face.embedding @ reference.embedding) > 0.9999
    assert a.face.masked == reference.masked and abs(a.face.masked_prob - reference.masked_prob) < 1e-4
    assert a.decision is not None and a.decision.label == "7" and a.decision.accepted


def test_the_face_is_scored_against_the_person_whose_welcome_stands(engine, installed_models, frame, settings):
    """``welcome``: the score the face gives that person, as identify would give it, their best
    match or not; ``None`` for someone no longer in the index."""
    settings.MASKNET_MODELS_DIR = installed_models
    reference = engine.analyze(frame, max_faces=3)[0]
    other = np.roll(reference.embedding, 7)
    index = Index(engine.dim)
    index.add("7", reference.embedding[None])
    index.add("8", other[None])
    assert consumers.analyze_frame(frame, index, {}).welcomed is None
    a = consumers.analyze_frame(frame, index, {}, welcome="7")
    assert a.welcomed == ("7", a.decision.score) and a.decision.label == "7"
    b = consumers.analyze_frame(frame, index, {}, welcome="8")
    expected = float(a.face.embedding @ (other / np.linalg.norm(other)))
    assert b.welcomed[0] == "8" and abs(b.welcomed[1] - expected) < 1e-4 and b.welcomed[1] < a.decision.score - 0.3
    assert consumers.analyze_frame(frame, index, {}, welcome="9").welcomed == ("9", None)


def test_a_face_refused_for_its_light_is_scored_against_the_person_welcomed_only(engine, installed_models,
                                                                                   astronaut_bgr, settings):
    """A welcome standing, a face too dark to decide on is still scored against its person (a stranger
    in the dark where they stood hides it: recognition.presence), with the threshold that score is
    held to; it is never decided on, nor embedded in the answer; without a welcome it is not scored."""
    settings.MASKNET_MODELS_DIR = installed_models
    reference = engine.analyze(astronaut_bgr, max_faces=3)[0]
    index = Index(engine.dim)
    index.add("7", reference.embedding[None])
    index.add("8", np.roll(reference.embedding, 7)[None])
    dark = faces.jpeg(np.clip(astronaut_bgr.astype(np.float32) * 0.08, 0, 255).astype(np.uint8), 92)
    a = consumers.analyze_frame(dark, index, {}, welcome="7")
    assert a.face is not None and a.face.quality.reason == "too_dark", a.face
    assert a.decision is None and a.face.embedding is None
    assert a.welcomed[0] == "7" and a.welcomed[1] > 0.3, a.welcomed   # its own person, even in the dark
    assert a.welcomed_threshold in (engine.threshold(True), engine.threshold(False))   # as it is classified
    b = consumers.analyze_frame(dark, index, {}, welcome="8")
    assert b.welcomed[0] == "8" and b.welcomed[1] < a.welcomed[1] - 0.3
    none = consumers.analyze_frame(dark, index, {})
    assert none.welcomed is None and none.welcomed_threshold is None


def test_face_too_small_for_the_kiosk_is_not_embedded(engine, installed_models, frame, settings):
    settings.MASKNET_MODELS_DIR = installed_models
    settings.MASKNET_KIOSK_MIN_FACE_PX = 10_000
    index = Index(engine.dim)
    index.add("7", np.ones((1, engine.dim), np.float32))
    a = consumers.analyze_frame(frame, index, {})
    assert a.face is not None and a.face.embedding is None and a.decision is None and a.error is None



def test_a_face_half_out_of_the_frame_is_asked_to_move_not_decided_on(engine, installed_models, astronaut_bgr,
                                                                     settings):
    """The kiosk's frame is the part of the picture its screen shows: Eileen half out of it is a
    face cut off by its edge ("partial": the page asks her to move to the middle), never embedded
    nor matched, even with her in the index."""
    settings.MASKNET_MODELS_DIR = installed_models
    reference = engine.analyze(astronaut_bgr, max_faces=3)[0]
    index = Index(engine.dim)
    index.add("7", reference.embedding[None])
    a = consumers.analyze_frame(faces.jpeg(faces.cut_by_the_screen(engine, astronaut_bgr, 0.5, "right")), index, {})
    assert a.error is None and a.face is not None and a.face.quality.reason == "partial"
    assert a.face.embedding is None and a.decision is None and not a.several
    assert a.face.box[2] == a.size[0]


def test_threshold_offset_moves_the_kiosk_threshold(engine, installed_models, frame, settings):
    """``MASKNET_THRESHOLD_OFFSET`` reaches the kiosk's decisions: a template just above the
    calibrated threshold is accepted without it and refused with +0.05."""
    settings.MASKNET_MODELS_DIR = installed_models
    face = engine.analyze(frame, max_faces=3)[0]
    base = engine.threshold(face.masked)
    other = np.random.default_rng(0).normal(size=engine.dim)
    other -= (other @ face.embedding) * face.embedding
    other /= np.linalg.norm(other)
    sim = base + 0.03
    index = Index(engine.dim)
    index.add("7", (sim * face.embedding + np.sqrt(1 - sim ** 2) * other)[None])
    plain = consumers.analyze_frame(frame, index, {})
    assert plain.decision.accepted and plain.decision.threshold == pytest.approx(base)
    settings.MASKNET_THRESHOLD_OFFSET = 0.05
    stricter = consumers.analyze_frame(frame, index, {})
    assert stricter.decision.label == "7" and stricter.decision.score == pytest.approx(plain.decision.score, abs=1e-4)
    assert not stricter.decision.accepted and stricter.decision.threshold == pytest.approx(base + 0.05)


def test_an_index_of_another_embedding_size_is_answered_updating(engine, installed_models, frame, settings):
    """After an upgrade that changed the embedding (FaceRes alone: 1,024 values; joined with the
    ResNet: 1,152), the old index cannot be searched: the kiosk says it is updating, and no
    decision (no "not recognised", no reject record) comes from it."""
    settings.MASKNET_MODELS_DIR = installed_models
    old = Index(1024)
    old.add("7", np.ones((1, 1024), np.float32))
    assert old.dim != engine.dim
    a = consumers.analyze_frame(frame, old, {})
    assert a.error == "updating" and a.decision is None
    assert "rebuilt" in consumers.ERROR_MESSAGES["updating"]


def _head_and_index(engine, photo: np.ndarray) -> tuple[np.ndarray, Index]:
    """The photo cut to its face with half its width around it, and an index of that face as person 7."""
    face = engine.analyze(photo)[0]
    x1, y1, x2, y2 = (int(v) for v in face.box)
    w = x2 - x1
    index = Index(engine.dim)
    index.add("7", face.embedding[None])
    return photo[max(0, y1 - w // 2): y2 + w // 2, max(0, x1 - w // 2): x2 + w // 2], index


def test_two_people_side_by_side_are_asked_to_come_one_at_a_time(engine, installed_models, astronaut_bgr, settings):
    """The largest of two faces of about one size flipped between them from frame to frame: one was
    greeted, told "not recognised", then "already checked in", and the other never checked in.
    Nobody is embedded or decided on while two such faces are in view; one a step behind (half
    the width) does not count."""
    import cv2

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)

    def frame_with(second: float, blur: float = 0.0) -> bytes:
        canvas = np.full((480, 640, 3), 128, np.uint8)
        big = cv2.resize(crop, (300, 300 * crop.shape[0] // crop.shape[1]))
        canvas[60:60 + big.shape[0], 20:320] = big[: 420]
        side = int(300 * second)
        small = cv2.resize(crop, (side, side * crop.shape[0] // crop.shape[1]))
        if blur:   # moving: the gate refuses it, but it is still someone beside
            small = cv2.GaussianBlur(small, (0, 0), blur)
        canvas[60:60 + small.shape[0], 330:330 + side] = small[: 420]
        return faces.jpeg(canvas, 92)

    pair = consumers.analyze_frame(frame_with(0.95), index, {})
    assert pair.several and pair.face is not None and pair.face.embedding is None and pair.decision is None
    moving = engine.analyze(frame_with(0.95, blur=4.0), embed=False)
    assert len(moving) == 2 and not min(moving, key=lambda f: f.width).quality.ok   # as the gate sees it
    assert consumers.analyze_frame(frame_with(0.95, blur=4.0), index, {}).several
    behind = consumers.analyze_frame(frame_with(0.6), index, {})
    assert len(engine.analyze(frame_with(0.6), embed=False)) == 2   # both found, both over the kiosk's size
    assert min(f.width for f in engine.analyze(frame_with(0.6), embed=False)) >= settings.MASKNET_KIOSK_MIN_FACE_PX
    assert not behind.several and behind.decision is not None and behind.decision.label == "7"


def test_a_blurred_face_that_stays_in_one_place_is_let_go_and_the_face_in_front_decided(
        engine, installed_models, astronaut_bgr, settings):
    """A press photo before the White House's windows: out of focus, the windows were found as a face
    as large as the person's (once larger), and the kiosk said "One person at a time" for good (a
    review). A blurred face is someone beside at first (they may be moving); once it has stayed in
    one place beside a face in focus for ``edge_still_s`` (:class:`recognition.presence.StillBlur`) it
    is the background's and left out: the face in front is decided on, whichever is the larger;
    alone, it is nobody. Two people side by side, each blurred in turn (moving), stay two people."""
    import cv2

    from recognition.presence import Presence, Timing
    from recognition.voting import Voter

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)

    def frame(behind: float, *, front: bool = True, swapped: bool = False) -> bytes:
        """A face in front on the left, a blurred one ``behind`` its size on the right (``swapped``:
        the left one blurred, the right one sharp)."""
        canvas = np.full((480, 640, 3), 128, np.uint8)
        side = int(290 * behind)
        left = cv2.resize(crop, (290, 290 * crop.shape[0] // crop.shape[1]))
        right = cv2.resize(crop, (side, side * crop.shape[0] // crop.shape[1]))
        if swapped:
            left = cv2.GaussianBlur(left, (0, 0), 5.0)
        else:
            right = cv2.GaussianBlur(right, (0, 0), 5.0)
        if front:
            canvas[40:40 + left.shape[0], 10:300] = left[: 440]
        canvas[40:40 + right.shape[0], 320:320 + side] = right[: 440]
        return faces.jpeg(canvas, 92)

    for behind in (0.95, 1.05):   # a little smaller than the face in front, and a little larger
        first = consumers.analyze_frame(frame(behind), index, {})
        assert first.several and first.decision is None and len(first.blurred) == 1, behind
        let_go = consumers.analyze_frame(frame(behind), index, {}, background=first.blurred)
        assert not let_go.several and let_go.decision is not None and let_go.decision.label == "7", behind
        assert let_go.blurred == first.blurred and len(let_go.in_focus) == 1   # its place stays timed
    alone = consumers.analyze_frame(frame(0.95, front=False), index, {})
    assert alone.face is not None and alone.face.quality.reason == "blurry"
    assert consumers.analyze_frame(frame(0.95, front=False), index, {}, background=alone.blurred).face is None

    # the kiosk's loop: the presence times the place, the engine leaves it out once let go
    presence = Presence(Voter(min_frames=3, min_frames_masked=4), min_face_px=40, timing=Timing(edge_still_s=1.0))
    states = []
    for i in range(10):
        now = i * 0.25
        a = consumers.analyze_frame(frame(1.05), index, {}, background=presence.background.boxes(now))
        step = presence.frame(a, now, searched=False)
        states.append((step.reply["state"], step.reply["reason"], step.verdict and step.verdict.label))
    assert states[:4] == [("adjust", "several", None)] * 4, states
    assert ("recognising", None, "7") in states[4:], states

    # two people, each blurred in turn: never let go, never decided on (the flip "several" prevents)
    presence = Presence(Voter(min_frames=3, min_frames_masked=4), min_face_px=40, timing=Timing(edge_still_s=1.0))
    for i in range(10):
        now = i * 0.25
        a = consumers.analyze_frame(frame(1.0, swapped=bool(i % 2)), index, {},
                                    background=presence.background.boxes(now))
        step = presence.frame(a, now, searched=False)
        assert (step.reply["reason"], step.verdict) == ("several", None), (i, step.reply)


def test_someone_half_out_beside_a_blurred_face_let_go_is_asked_to_move(engine, installed_models, astronaut_bgr,
                                                                        settings):
    """The engine searches across the frame's edge only where it found nobody: a blurred face found,
    then let go as the background's, kept it from searching, and someone half out of the picture was
    told "Looking for a face" instead of "move to the middle" (a diff review)."""
    import cv2

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)
    image = faces.cut_by_the_screen(engine, astronaut_bgr, 0.5, "right")
    h, w = image.shape[:2]
    head = cv2.GaussianBlur(cv2.resize(crop, (w // 2, w // 2 * crop.shape[0] // crop.shape[1])), (0, 0), 4.0)
    image[h // 2: h // 2 + head.shape[0], 5: 5 + head.shape[1]] = head[: h - h // 2]
    data = faces.jpeg(image)
    first = consumers.analyze_frame(data, index, {})
    assert first.face is not None and first.face.quality.reason == "blurry" and len(first.blurred) == 1
    a = consumers.analyze_frame(data, index, {}, background=first.blurred)
    assert a.face is not None and a.face.quality.reason == "partial" and a.face.across_edge, a.face
    assert a.blurred == first.blurred
    assert consumers.analyze_frame(data, index, {}, background=first.blurred, search_edges=False).face is None


@pytest.mark.parametrize("behind", ["blurred", "dark and blurred", "small and sharp"])
def test_someone_out_of_focus_in_front_is_not_let_go_for_a_face_behind_them(engine, installed_models, astronaut_bgr,
                                                                            settings, behind):
    """Only a face in focus and of a size the kiosk decides on times a blurred place beside it: a face
    behind the blurred person in front, smaller, blurred too (its reason "too small" or "too dark", the
    gate naming one) or sharp but too small, let them go after 4 s, and the kiosk then answered that face
    (a second diff review). A camera out of focus says "Hold still" for good."""
    import cv2

    from recognition.presence import Presence, Timing
    from recognition.voting import Voter

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)
    canvas = np.full((480, 640, 3), 128, np.uint8)
    front = cv2.GaussianBlur(cv2.resize(crop, (290, 290 * crop.shape[0] // crop.shape[1])), (0, 0), 5.0)
    canvas[40:40 + front.shape[0], 10:300] = front[:440]
    side = 160 if behind == "dark and blurred" else 110
    back = cv2.resize(crop, (side, side * crop.shape[0] // crop.shape[1]))
    if behind != "small and sharp":
        back = cv2.GaussianBlur(back, (0, 0), 5.0 * side / 290)
    if behind == "dark and blurred":
        back = (back * 0.12).astype(np.uint8)
    canvas[100:100 + back.shape[0], 420:420 + side] = back[:380]
    data = faces.jpeg(canvas, 92)
    presence = Presence(Voter(min_frames=3, min_frames_masked=4), min_face_px=40, timing=Timing(edge_still_s=1.0))
    reasons = []
    for i in range(10):
        now = i * 0.25
        a = consumers.analyze_frame(data, index, {}, background=presence.background.boxes(now))
        reasons.append(presence.frame(a, now, searched=False).reply["reason"])
    assert reasons == ["blurry"] * 10, reasons


def test_a_let_go_face_at_the_frames_edge_is_not_found_again_across_it(engine, installed_models, astronaut_bgr,
                                                                       settings):
    """The search across the edge, made when every face found was let go, found the same blurred face
    again in the mirrored frame: an empty kiosk said "Please move to the middle" (a second diff review)."""
    import cv2

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)
    canvas = np.full((480, 640, 3), 128, np.uint8)
    right = cv2.GaussianBlur(cv2.resize(crop, (290, 290 * crop.shape[0] // crop.shape[1])), (0, 0), 5.0)
    canvas[40:40 + right.shape[0], 440:640] = right[:440, :200]   # reaching the right edge
    data = faces.jpeg(canvas, 92)
    first = consumers.analyze_frame(data, index, {})
    assert first.face is not None and first.face.quality.reason == "blurry" and first.blurred
    assert consumers.analyze_frame(data, index, {}, background=first.blurred, search_edges=True).face is None


def test_two_people_side_by_side_one_just_under_the_kiosks_size_stay_two(engine, installed_models, astronaut_bgr,
                                                                         settings):
    """A place where any face is sharp is forgotten, whatever its size: someone just under
    ``MASKNET_KIOSK_MIN_FACE_PX`` beside a person over it, blurred in most frames and sharp in the
    others, was not "in focus" when sharp, so their place was let go after ``edge_still_s`` and the
    person beside them decided on alone (a third diff review)."""
    import cv2

    from recognition.presence import Presence, Timing
    from recognition.voting import Voter

    settings.MASKNET_MODELS_DIR = installed_models
    crop, index = _head_and_index(engine, astronaut_bgr)

    def frame(blurred: bool) -> bytes:
        canvas = np.full((480, 640, 3), 128, np.uint8)
        left = cv2.resize(crop, (290, 290 * crop.shape[0] // crop.shape[1]))
        right = cv2.resize(crop, (281, 281 * crop.shape[0] // crop.shape[1]))
        if blurred:
            right = cv2.GaussianBlur(right, (0, 0), 5.0)
        canvas[40:40 + left.shape[0], 10:300] = left[:440]
        canvas[40:40 + right.shape[0], 330:611] = right[:440]
        return faces.jpeg(canvas, 92)

    widths = sorted(f.width for f in engine.analyze(frame(False), embed=False))
    assert len(widths) == 2 and widths[0] + 1 < widths[1], widths
    settings.MASKNET_KIOSK_MIN_FACE_PX = int(widths[0]) + 1        # the one on the right just under it
    presence = Presence(Voter(min_frames=3, min_frames_masked=4), min_face_px=settings.MASKNET_KIOSK_MIN_FACE_PX,
                        timing=Timing(edge_still_s=1.0))
    for i in range(16):
        now = i * 0.25
        a = consumers.analyze_frame(frame(i % 4 != 3), index, {}, background=presence.background.boxes(now))
        step = presence.frame(a, now, searched=False)
        assert (step.reply["reason"], step.verdict) == ("several", None), (i, step.reply)
