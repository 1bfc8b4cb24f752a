"""How the product enrols a face and decides who a probe is (shared by the site and the benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import Engine, Face
from .index import Index
from .quality import BLURRY, TOO_DARK

UNMASKED, SYNTHETIC_MASK = 0, 1
# Synthetic-mask variants drawn per enrolment photo, averaged into one template: the mean of 4
# masked embeddings beat 2 separate ones on unseen masks (bench/templates.py, 576 strangers: FNIR
# at FPIR 1e-2 63% -> 58%; at the product threshold 62% -> 54% for FPIR 1.2% -> 1.7%) with a
# smaller index (2 templates per photo, not 3).
MASK_VARIANTS = 4
# A person enrolled from several photos is matched against the quality-weighted mean of their
# templates (one per kind) instead of each photo's. A mean of different photos is closer to
# everyone, strangers too, so its scores are lowered by this margin before the thresholds apply
# (chosen on LFW DevTrain people with bench/aggregation.py --split DevTrain, re-checked with the
# upper-face fusion; DevTest results in docs/accuracy.md). The margin is scaled by how much the
# photos differ (1 - their mean pairwise cosine), in full from AGGREGATE_SPREAD_FULL: LFW photos of
# one person spread 0.06 or more (5th percentile; FaceRes joined with the ResNet descriptor, whose
# cosines are higher than FaceRes's alone: 0.16 then), a webcam burst of near-identical frames about
# 0.005, whose mean is no closer to strangers than one frame and must not be penalised.
AGGREGATE_MARGIN = 0.02
AGGREGATE_SPREAD_FULL = 0.06


@dataclass(frozen=True)
class Templates:
    """Enrollment templates of one photo: ``vectors`` (NxD, L2-normalised) and their ``kinds``
    (0 = as photographed, 1 = with a synthetic mask)."""

    vectors: np.ndarray
    kinds: np.ndarray


@dataclass(frozen=True)
class Decision:
    """The answer for one probe face.

    ``label``: best gallery identity or ``None`` (empty gallery). ``score``: its cosine
    similarity. ``threshold``: the threshold applied (masked probes have their own).
    ``accepted``: ``score >= threshold``.
    """

    label: str | None
    score: float
    threshold: float
    accepted: bool
    masked: bool


def masked_variants(engine: Engine, face: Face, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` copies of the aligned crop wearing the product's synthetic masks (BGR)."""
    from .masks import render_mask, transform_landmarks

    if face.landmarks is None or count <= 0:
        return np.zeros((0,) + face.aligned.shape, np.uint8)
    pts = transform_landmarks(face.landmarks, face.align_matrix)  # depth scaled with x and y
    return np.stack([render_mask(face.aligned, pts, rng) for _ in range(count)])


def enroll_templates(engine: Engine, face: Face, rng: np.random.Generator,
                     n_masked: int = MASK_VARIANTS, aggregate: bool = True) -> Templates:
    """Templates for an enrollment photo: its own embedding, plus the embeddings of ``n_masked``
    synthetic-mask variants, averaged into one template (``aggregate``) or kept apart."""
    vectors = [face.embedding[None]]
    variants = masked_variants(engine, face, rng, n_masked)
    if len(variants):
        # matched by masked probes, embedded as they are (cut on the photo's own five-point chip)
        masked = engine.embed_masked(variants, [face.chip_matrix] * len(variants))
        if aggregate:
            centroid = masked.mean(axis=0)
            masked = (centroid / max(float(np.linalg.norm(centroid)), 1e-12))[None]
        vectors.append(masked.astype(np.float32))
    vectors = np.concatenate(vectors)
    kinds = np.array([UNMASKED] + [SYNTHETIC_MASK] * (len(vectors) - 1), np.int8)
    return Templates(vectors, kinds)


def photo_templates(engine: Engine, face: Face, rng: np.random.Generator, synthetic: bool = True) -> Templates:
    """Templates of one enrolment photo's face, as the product stores them. Unmasked: its embedding
    plus one template from synthetic masks (:func:`enroll_templates`; ``synthetic`` false: the
    embedding alone). Masked: its own embedding only, tagged as a masked template, so that unmasked
    probes never match against it (:func:`identify` searches kind 0 for them)."""
    if face.masked:
        return Templates(face.embedding[None].astype(np.float32), np.array([SYNTHETIC_MASK], np.int8))
    if not synthetic:
        return Templates(face.embedding[None].astype(np.float32), np.array([UNMASKED], np.int8))
    return enroll_templates(engine, face, rng)


# An enrolment photo's face must also be one for FaceMesh (``Face.face_flag``): the detector finds
# "faces" in a cup or a cat that pass the quality gate and the masked/unmasked head calls masked.
# Measured with the engine's gate (bench/detection.py's sets): all 12 false faces past the gate in
# 779 images without a face had a flag under 0.1 (11 under 0.01), no LFW face under 0.5, and 38 of
# 505 real masked faces past the gate (rwmfd_part1) under 0.1. Enrolment only: at the kiosk a false
# face meets the strict match thresholds, and a masked employee's frame is not dropped.
ENROL_MIN_FACE_FLAG = 0.1

# An enrolment photo is a person's reference for every later frame: it must be lit as the quality
# gate required of every face until 2026-12-05. The kiosk's frames pass from 30
# (``EngineConfig.min_brightness``: dim probes match a well-lit gallery as often as well-lit ones,
# bench/light.py), a gallery of dim photos was not measured.
ENROL_MIN_BRIGHTNESS = 45.0
# ... and as sharp (the Laplacian's raw variance over the eye band, ``Quality.sharpness``): the gate
# judges a kiosk frame's blur by its light-independent focus, whose limit lets through a few soft
# photos the raw figure refused; enrolled, they made their people's templates (and the gallery's
# strangers) other than before (bench/identification.py: two more people, both missed)
ENROL_MIN_SHARPNESS = 12.0
# A photo under it that the gate's light-independent focus passes, darker than this, is sharp but
# dim (the raw figure falls with the square of the light): "too dark" says what would fix it
ENROL_DIM_BELOW = 100.0

# A new enrolment photo whose face scores at least this (by descriptor: ``EngineConfig.descriptor``)
# against one of the person's photos is the same picture saved again (another format, size or crop),
# which the admin is told of (enrollment.services.photo_repeats); a descriptor not named is not
# checked (ArcFace: not measured). Measured 2026-12-06 on LFW DevTrain, each person's first photo
# saved as PNG, WebP 80, JPEG 60, at twice and three quarters its size and cropped, against their
# other photos: SFace (80 people) scored the copies 0.974 at least (median 0.995, 476 copies) and two
# different photos of one person 0.913 at most (median 0.72, 228 pairs); FaceRes+ResNet (40 people)
# 0.992 at least (median 0.999, 237) against 0.982 at most (median 0.92, 104 pairs), a thin gap.
SAME_PICTURE_MIN_SCORE = {"sface": 0.95, "faceres+resnet": 0.99}
# A new unmasked enrolment photo whose face scores under this against every other unmasked photo of
# its person may show someone else, which the admin is told of (enrollment.services.photo_mismatch);
# a descriptor not named is not checked. Measured 2026-12-07 by bench/photo_mismatch.py on LFW pairs,
# one unmasked face against another as enrolment embeds them (docs/enrollment.md): at 0.25 SFace
# warned of 0.9% of DevTrain's two photos of one person and caught 95.4% of two people's (DevTest,
# never used to choose: 2.0% and 94.4%; at 0.30, 2.7% and 98.6%).
OTHER_PERSON_MAX_SCORE = {"sface": 0.25}


def _enrol_refusal(face: Face) -> str | None:
    """Why enrolment would refuse ``face`` (the gate's reason, ``too_dark`` under
    :data:`ENROL_MIN_BRIGHTNESS`, ``blurry`` under :data:`ENROL_MIN_SHARPNESS`, ``unclear_face``),
    or ``None``."""
    if not face.quality.ok:
        return face.quality.reason
    if face.quality.brightness < ENROL_MIN_BRIGHTNESS:
        return TOO_DARK
    if face.quality.sharpness < ENROL_MIN_SHARPNESS:
        return TOO_DARK if face.quality.brightness < ENROL_DIM_BELOW else BLURRY
    if face.face_flag < ENROL_MIN_FACE_FLAG:
        return "unclear_face"
    return None


def usable_face(faces: list[Face]) -> tuple[Face | None, str | None]:
    """The face an enrolment photo gives: exactly one face that passes the quality gate, is lit
    and sharp as an enrolment photo must be (:data:`ENROL_MIN_BRIGHTNESS`,
    :data:`ENROL_MIN_SHARPNESS`) and is a clear face for FaceMesh
    (:data:`ENROL_MIN_FACE_FLAG`), else ``(None, reason)``: ``several_faces`` when more than one
    does, else the largest face's reason (the gate's, ``too_dark``, ``blurry`` or ``unclear_face``)."""
    usable = [f for f in faces if _enrol_refusal(f) is None]
    if len(usable) == 1:
        return usable[0], None
    if len(usable) > 1:
        return None, "several_faces"
    return None, _enrol_refusal(faces[0]) or "unclear_face"


@dataclass(frozen=True)
class PersonTemplates:
    """What the index holds for one person: ``vectors`` (NxD), their ``kinds`` and ``margins``."""

    vectors: np.ndarray
    kinds: np.ndarray
    margins: np.ndarray


def aggregate_margin(per_photo: np.ndarray) -> float:
    """Margin of a template averaged from ``per_photo`` (one row per photo): :data:`AGGREGATE_MARGIN`
    times the photos' spread (1 - mean pairwise cosine) over :data:`AGGREGATE_SPREAD_FULL`, at most 1."""
    v = per_photo / np.maximum(np.linalg.norm(per_photo, axis=1, keepdims=True), 1e-12)
    n = len(v)
    if n < 2:
        return 0.0
    mean_cos = (float((v @ v.T).sum()) - n) / (n * (n - 1))
    return AGGREGATE_MARGIN * min(max(1.0 - mean_cos, 0.0) / AGGREGATE_SPREAD_FULL, 1.0)


def person_templates(photos: list[Templates], qualities: list[float | None]) -> PersonTemplates:
    """Combine the templates of a person's enrolment photos.

    Photos enrolled wearing a mask (no photographed template) keep their own templates. Of the
    others, for each kind that two or more photos contribute to, one template: the mean of theirs weighted
    by each photo's quality score (``Quality.score``; unknown counts as 0.5), with margin
    :data:`AGGREGATE_MARGIN` scaled by how much the photos differ (:func:`aggregate_margin`). A kind
    from a single photo keeps that photo's template(s), margin 0. With several photos the mean beat
    keeping each photo's templates (``bench/aggregation.py``).
    """
    if not photos:
        return PersonTemplates(np.zeros((0, 0), np.float32), np.zeros(0, np.int8), np.zeros(0, np.float32))
    vectors, kinds, margins = [], [], []
    # a photo enrolled wearing a real mask has no photographed template: its own masked embedding
    # stays a template of its own (it is not blended with synthetic masks; not measured averaged)
    for t in photos:
        if not (t.kinds == UNMASKED).any():
            vectors.append(t.vectors)
            kinds.extend(int(k) for k in t.kinds)
            margins.extend([0.0] * len(t.vectors))
    pairs = [(t, q) for t, q in zip(photos, qualities, strict=True) if (t.kinds == UNMASKED).any()]
    for kind in sorted({int(k) for t, _ in pairs for k in t.kinds}):
        rows = [(t.vectors[t.kinds == kind], q) for t, q in pairs if (t.kinds == kind).any()]
        if len(rows) == 1:
            vectors.append(rows[0][0])
            kinds.extend([kind] * len(rows[0][0]))
            margins.extend([0.0] * len(rows[0][0]))
            continue
        weights = [max(0.5 if q is None else float(q), 0.05) for _, q in rows]
        per_photo = np.stack([v.mean(axis=0) for v, _ in rows])
        mean = (np.asarray(weights)[:, None] * per_photo).sum(axis=0)
        vectors.append((mean / max(float(np.linalg.norm(mean)), 1e-12))[None])
        kinds.append(kind)
        margins.append(aggregate_margin(per_photo))
    return PersonTemplates(np.concatenate(vectors).astype(np.float32), np.array(kinds, np.int8),
                           np.array(margins, np.float32))


# a gallery of fewer people keeps the engine's thresholds: each person probes with one photo of each
# kind, so one pair of people is 2 / (n (n - 1)) of the impostor pairs, and under about 100 people
# a single pair of look-alikes (twins, someone enrolled twice) would be the 99.9th percentile by
# itself and lift the threshold over every check-in's score (12 people with one such pair:
# 0.43 -> 0.98, nobody checked in)
MIN_FIT_PEOPLE = 100


def fit_thresholds(index: Index, probes: Index, base: dict[str, float], max_templates: int = 2000) -> dict:
    """Site thresholds of a gallery: never below ``base`` (``{"unmasked": .., "masked": ..}``, the
    engine's), raised to the 99.9th percentile of impostor scores between the gallery's people
    (unmasked probes against photographed templates; masked probes against every template).

    ``probes``: what a probe looks like, one template per photo and kind, of which each person's
    first of each kind probes (so that a person with many photos weighs no more than one with one:
    twins enrolled from 20 photos each lifted a 120-person site's threshold from 0.43 to 0.88);
    ``index``'s templates are scored as a search scores them, less their margins. A gallery of
    fewer than :data:`MIN_FIT_PEOPLE` people, and a kind with fewer than 100 impostor pairs, keeps
    its base threshold (``source`` says which applied). Rows are sampled with a fixed seed.

    ``fitted`` holds the percentiles alone (``None`` for a kind with too few pairs): what
    :func:`probe_threshold` raises the engine's thresholds *of the day* to, so that an engine
    threshold lowered later (``MASKNET_THRESHOLD_OFFSET``, a recalibrating release) acts at once
    instead of after the next rebuild; ``unmasked``/``masked`` are the thresholds as built.
    """
    result = {"unmasked": base["unmasked"], "masked": base["masked"], "source": "engine", "impostor_pairs": 0,
              "fitted": {"unmasked": None, "masked": None}}
    if len(index.identities) < MIN_FIT_PEOPLE:
        return result
    rng = np.random.default_rng(0)

    def sample(rows: np.ndarray) -> np.ndarray:
        return rng.permutation(rows)[:max_templates] if len(rows) > max_templates else rows

    first: dict[tuple[str, int], int] = {}
    for row, key in enumerate(zip(probes.labels, probes.kinds.tolist(), strict=True)):
        first.setdefault(key, row)
    g, q = sample(np.arange(len(index))), sample(np.array(sorted(first.values()), dtype=np.int64))
    scores = probes.vectors[q] @ index.vectors[g].T
    if index.margins is not None:  # as a search would score them: less the matched template's margin
        scores = scores - index.margins[g][None, :]
    other = probes.labels[q][:, None] != index.labels[g][None, :]
    probe_unmasked, gallery_unmasked = probes.kinds[q] == UNMASKED, index.kinds[g] == UNMASKED
    imp_u = scores[np.ix_(probe_unmasked, gallery_unmasked)][other[np.ix_(probe_unmasked, gallery_unmasked)]]
    imp_m = scores[~probe_unmasked][other[~probe_unmasked]]
    for key, impostors in (("unmasked", imp_u), ("masked", imp_m)):
        if len(impostors) >= 100:
            fitted = round(float(np.quantile(impostors, 0.999)), 4)
            result["fitted"][key] = fitted
            result[key] = max(base[key], fitted)
            result["source"] = "site"
    result["impostor_pairs"] = int(len(imp_u) + len(imp_m))
    return result


def site_thresholds(recorded: dict | None, people: int | None = None) -> dict:
    """What a probe needs of a version's recorded thresholds (``metrics["thresholds"]``, as
    :func:`fit_thresholds` wrote them): ``masked`` and ``unmasked`` as built, and ``fitted`` when
    recorded (:func:`site_threshold`), as plain floats. The kiosks and the API pass this on.

    ``people``: the version's gallery size. Below :data:`MIN_FIT_PEOPLE` nothing recorded applies
    (the engine's thresholds do): releases before 2026-12-04 fitted galleries of any size, and an
    index they built, where one pair of look-alikes had lifted the threshold over everyone's
    check-ins, went on serving after the upgrade until somebody rebuilt it."""
    if people is not None and people < MIN_FIT_PEOPLE:
        return {}
    recorded = recorded or {}
    out: dict = {k: float(recorded[k]) for k in ("masked", "unmasked") if recorded.get(k) is not None}
    fitted = recorded.get("fitted")
    if isinstance(fitted, dict):
        out["fitted"] = {k: None if fitted.get(k) is None else float(fitted[k]) for k in ("masked", "unmasked")}
    return out


def site_threshold(base: float, site: dict | None, kind: str) -> float:
    """``base`` (the engine's threshold of ``kind``, ``"masked"`` or ``"unmasked"``, today) raised to
    the gallery's fitted one (``site``: :func:`fit_thresholds`' answer). A site dict without
    ``fitted`` (versions built before it) counts its thresholds as built, their day's floor included."""
    site = site or {}
    fitted = site["fitted"].get(kind) if isinstance(site.get("fitted"), dict) else site.get(kind)
    return base if fitted is None else max(base, float(fitted))


def probe_threshold(engine: Engine, masked: bool, site: dict | None = None) -> float:
    """The threshold a probe must reach: the engine's for masked or unmasked probes, raised to the
    gallery's fitted one (:func:`site_threshold`)."""
    return site_threshold(engine.threshold(masked), site, "masked" if masked else "unmasked")


def identify(engine: Engine, face: Face, index: Index, site: dict | None = None,
             exclude: frozenset[str] = frozenset()) -> Decision:
    """Best identity for a probe: masked probes search every template, unmasked ones only
    the photographed templates (so synthetic masks never hurt unmasked matching). Accepted only
    above both the engine's and the site's threshold (:func:`probe_threshold`). ``exclude``: labels
    no longer to be matched though still in the index (people deactivated or deleted before the
    rebuild that takes them out): the best of the others."""
    threshold = probe_threshold(engine, face.masked, site)
    found = index.search(face.embedding, k=1 + len(exclude), kinds=_searched_kinds(face))
    best = [m for m in found if m.label not in exclude][:1]
    if not best:
        return Decision(None, float("-inf"), threshold, False, face.masked)
    return Decision(best[0].label, best[0].score, threshold, best[0].score >= threshold, face.masked)


def score_for(face: Face, index: Index, label: str) -> float | None:
    """The score :func:`identify` gives ``label`` for this probe, its best match or not (the same
    templates searched); ``None`` when ``label`` has none in the index."""
    return index.label_score(face.embedding, label, kinds=_searched_kinds(face))


def _searched_kinds(face: Face) -> tuple[int, ...] | None:
    """The templates a probe is matched against: masked probes every one, unmasked ones the photographed."""
    return None if face.masked else (UNMASKED,)


def compare(engine: Engine, a: Face, b: Face) -> float:
    """Verification score of two faces (cosine similarity of their embeddings)."""
    return float(a.embedding @ b.embedding)
