"""Every write of the API app (tokens) and the API's recognition verbs (identify, verify).

Functions are ``<entity>_<action>`` with keyword-only, typed arguments. People, photos, kiosks
and index rebuilds are written by the enrollment and recognition services, which the views call
directly; this module adds only what the API itself owns.
"""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from PIL import Image

from audit.models import AuditEvent
from audit.services import audit_record
from enrollment.models import IndexVersion, Person
from enrollment.recognizer import get_engine
from enrollment.services import index_refresh_if_outdated
from masknet_site.settings.base import API_RATE_PATTERN
from recognition.engine import Engine, EngineError, Face, NoFaceFound, UnreadableImage
from recognition.engine.decode import animated, decode_image
from recognition.engine.gallery import UNMASKED, Decision, identify, probe_threshold
from recognition.engine.index import Index

from .models import SCOPES, TOKEN_PREFIX, ApiToken, token_digest

Action = AuditEvent.Action
API_IDENTIFY = "api_identify"  # audit actions of recognition requests (scores only, no names)
API_VERIFY = "api_verify"
MAX_FACES = 10
TOUCH_EVERY = timedelta(minutes=1)


# --------------------------------------------------------------------------------------------
# tokens


def api_token_create(*, actor: object | None, name: str, scopes: list[str], rate: str = "",
                     expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token and its service account; returns ``(token, secret)``. The secret is shown
    once; only its SHA-256 digest is stored."""
    name = name.strip()
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValidationError({"scopes": f"choose one or more of {', '.join(SCOPES)}"
                                         + (f" (unknown: {', '.join(unknown)})" if unknown else "")})
    if rate:
        api_token_rate_validate(rate)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_model = get_user_model()
    username = api_token_username(name)
    with transaction.atomic():
        if user_model.objects.filter(username=username).exists():
            raise ValidationError({"name": "a token (or account) with this name exists already"})
        user = user_model(username=username, is_staff=False, is_active=True)
        user.set_unusable_password()
        user.save()
        token = ApiToken(name=name, prefix=secret[:10], digest=token_digest(secret), scopes=sorted(set(scopes)),
                         rate=rate, user=user, expires_at=expires_at,
                         created_by=actor if getattr(actor, "is_authenticated", False) else None)
        token.full_clean(exclude=["user"])
        token.save()
        audit_record(actor=actor, action=Action.CREATE, obj=token,
                     summary=f"created API token #{token.pk} with scopes {', '.join(token.scopes)}")
    return token, secret


def api_token_username(name: str) -> str:
    """The service account's username of a token named ``name``."""
    return f"api:{name.strip()}"[:150]


def api_token_rate_validate(rate: str) -> None:
    """Raise ``ValidationError`` unless ``rate`` is like ``600/min``, as the settings' rates: DRF
    reads a period by its first letter, so "3/month" was accepted and enforced as 3 a minute."""
    if not re.fullmatch(API_RATE_PATTERN, rate or ""):
        raise ValidationError({"rate": "use N/s, N/min, N/hour or N/day (N >= 1)"})


def api_token_revoke(*, token: ApiToken, actor: object | None, note: str = "") -> ApiToken:
    """Revoke a token at once (its next request is refused); the row stays for the record (``note``,
    if given, ends the audit record's summary)."""
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        now = timezone.now()
        # only a token not revoked meanwhile (another administrator): one record, the first time kept
        if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
            token.refresh_from_db(fields=["revoked_at"])
            return token
        token.revoked_at = now
        audit_record(actor=actor, action=Action.DEACTIVATE, obj=token,
                     summary=f"revoked API token #{token.pk}" + (f"; {note}" if note else ""))
    return token


def api_token_touch(*, token: ApiToken) -> None:
    """Record that the token was used (at most once a minute per token)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


# --------------------------------------------------------------------------------------------
# recognition


class IndexUnavailable(Exception):
    """There is no active index (nobody enrolled yet, or the first rebuild has not finished)."""


class NotInIndex(Exception):
    """The person has no templates in the active index (inactive, no photos, or not rebuilt yet)."""


@dataclass(frozen=True)
class FaceAnswer:
    """One face found in an API image.

    ``box``: ``[x1, y1, x2, y2]`` in pixels of the (EXIF-rotated) image. ``decision``: ``"match"``,
    ``"no_match"`` or ``"quality"`` (the face failed the quality gate: ``quality_reason`` says
    why). ``person``: the best match when ``decision`` is ``"match"``. ``score``: cosine
    similarity of the best candidate (``None`` for quality refusals); ``threshold``: the one applied.
    """

    box: list[float]
    masked: bool
    masked_prob: float
    quality_ok: bool
    quality_reason: str | None
    decision: str
    score: float | None = None
    threshold: float | None = None
    person: Person | None = None


@dataclass(frozen=True)
class IdentifyAnswer:
    """Every face of an image (largest first, at most :data:`MAX_FACES`) and the index used."""

    width: int
    height: int
    index_version: int
    faces: list[FaceAnswer] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyAnswer:
    """Whether the main (largest) face of an image is ``person``: ``match``, ``score`` (best
    cosine similarity over the person's templates), ``threshold``, ``masked``. A face that fails
    the quality gate (``quality_ok`` false, ``quality_reason`` says why) never matches. ``score``
    is ``None`` when the person has no template the face can be compared with."""

    person: Person
    match: bool
    score: float | None
    threshold: float
    masked: bool
    box: list[float]
    index_version: int
    quality_ok: bool
    quality_reason: str | None


def _active_index() -> tuple[IndexVersion, Index, dict]:
    version = IndexVersion.objects.current()
    if version is None:
        raise IndexUnavailable("no active index: enrol people and rebuild the index first")
    if version.outdated:
        index_refresh_if_outdated()   # after an upgrade, as the kiosks do; answered from it meanwhile
    try:
        index = version.load()
    except (EngineError, OSError) as exc:
        raise IndexUnavailable(f"the active index v{version.pk} cannot be loaded") from exc
    return version, index, version.site_thresholds()


def _engine_for(version: IndexVersion, index: Index) -> Engine:
    """The engine, if the active index holds vectors it can be searched with; after an upgrade that
    changed the embedding, :class:`IndexUnavailable` until the rebuild it asked for is active."""
    engine = get_engine()
    if len(index) and index.dim != engine.dim:
        raise IndexUnavailable(f"the active index v{version.pk} was made by an earlier version of the recognizer "
                               f"({index.dim}-d vectors, this version makes {engine.dim}-d); it is being rebuilt")
    return engine


def _decode(data: bytes) -> np.ndarray:
    """The image to analyse; an animated one (its first picture alone was answered, the others
    unsaid, where an upload refuses it) raises :class:`UnreadableImage`, a 400."""
    image = decode_image(data, max_bytes=settings.MASKNET_MAX_PHOTO_BYTES, max_pixels=settings.MASKNET_MAX_PIXELS)
    with Image.open(io.BytesIO(data)) as header:   # read whole above: its header is sound
        if animated(header):
            raise UnreadableImage("an animated image: use a still photo (JPEG, PNG or WebP)")
    return image


def _labels_not_active(index) -> frozenset[str]:
    """The index's labels that name no active person: deactivated, or their row gone, since it was
    built (a set of ids, a few hundred kB for 100,000 people, rather than a query of every label)."""
    active = {str(pk) for pk in Person.objects.active().values_list("pk", flat=True)}
    return frozenset(index.identities - active)


def _box(face: Face) -> list[float]:
    return [round(float(v), 1) for v in face.box]


def face_identify(*, data: bytes, actor: object | None) -> IdentifyAnswer:
    """Find the faces of an image and identify each against the active index. Raises
    :class:`IndexUnavailable`, or an :class:`~recognition.engine.EngineError` for bad images
    (``NoFaceFound`` is not raised: an image without faces answers with no faces)."""
    version, index, thresholds = _active_index()
    image = _decode(data)
    engine = _engine_for(version, index)
    try:
        faces = engine.analyze(image, max_faces=MAX_FACES)
    except NoFaceFound:
        faces = []
    # someone deactivated (or deleted) stays in the index until the rebuild it queued is done, and is
    # no match meanwhile, as at the kiosks (recognition.services.checkin_record): left out of the
    # search, so that the answer is the best of the others, not "no_match" with their score above
    # the threshold (and an active person next in line never offered)
    gone = _labels_not_active(index) if faces else frozenset()
    decided: list[tuple[dict, Decision | None]] = []
    for face in faces:
        common = {"box": _box(face), "masked": bool(face.masked), "masked_prob": round(float(face.masked_prob), 3),
                  "quality_ok": bool(face.quality.ok), "quality_reason": face.quality.reason or None}
        decided.append((common, identify(engine, face, index, thresholds, exclude=gone) if face.quality.ok else None))
    wanted = {int(d.label) for _c, d in decided if d and d.accepted and d.label and d.label.isdigit()}
    people = Person.objects.active().in_bulk(wanted)   # only the matched people: the index may hold thousands
    answers = []
    for common, d in decided:
        if d is None:
            answers.append(FaceAnswer(decision="quality", **common))
            continue
        person = people.get(int(d.label)) if d.accepted and d.label and d.label.isdigit() else None
        score = round(float(d.score), 4) if np.isfinite(d.score) else None
        answers.append(FaceAnswer(decision="match" if person else "no_match", score=score,
                                  threshold=round(float(d.threshold), 4), person=person, **common))
    matched = [a for a in answers if a.decision == "match"]
    # who the caller was told about (ids and scores, never names): "which integration looked up #12?"
    who = f" (person {', '.join(f'#{a.person.pk} {a.score:.3f}' for a in matched)})" if matched else ""
    audit_record(actor=actor, action=API_IDENTIFY, object_type="enrollment.indexversion", object_id=version.pk,
                 summary=f"identify: {len(answers)} faces, {len(matched)} matched{who}, index v{version.pk}")
    return IdentifyAnswer(width=int(image.shape[1]), height=int(image.shape[0]), index_version=version.pk,
                          faces=answers)


def face_verify(*, data: bytes, person_id: int, actor: object | None) -> VerifyAnswer:
    """Compare the main face of an image with one person's templates in the active index.
    Raises :class:`IndexUnavailable`, an engine error (``NoFaceFound`` included) for images
    without a usable face, then :class:`NotInIndex`, the same for a person who does not exist, is
    inactive or has no templates: the image is checked first, and the answer does not tell a
    caller without the ``read`` scope which ids exist."""
    version, index, thresholds = _active_index()
    image = _decode(data)
    engine = _engine_for(version, index)
    face = engine.analyze(image, max_faces=MAX_FACES)[0]
    label = str(person_id)
    # an inactive person stays in the index until the rebuild their deactivation queued is done
    person = Person.objects.active().filter(pk=person_id).first() if label in index.identities else None
    if person is None:
        # a refusal about a person id is a decision too: a probe of ids leaves a trace
        audit_record(actor=actor, action=API_VERIFY, object_type="enrollment.person", object_id=person_id,
                     summary=f"verify person #{person_id}: not in the gallery, index v{version.pk}")
        raise NotInIndex(f"person #{person_id} is not in the gallery of the active index v{version.pk} "
                         f"(unknown, inactive, or without usable photos)")
    kinds = None if face.masked else (UNMASKED,)
    scores = np.where(index.labels == label, index.scores(face.embedding, kinds), -np.inf)
    best = float(scores.max()) if len(scores) else float("-inf")
    threshold = probe_threshold(engine, face.masked, thresholds)
    match = bool(np.isfinite(best) and best >= threshold and face.quality.ok)
    # no template of the probe's kind (an unmasked face against someone enrolled only masked), or a
    # score that is no number: nothing was compared, which a score of -1 ("surely someone else") hid
    score = round(best, 4) if np.isfinite(best) else None
    shown = f"{score:.3f}" if score is not None else "none (no comparable template)"
    audit_record(actor=actor, action=API_VERIFY, obj=person,
                 summary=f"verify person #{person.pk}: {'match' if match else 'no match'}, score {shown} "
                         f"(threshold {threshold:.3f}), {'masked' if face.masked else 'unmasked'}, index v{version.pk}")
    return VerifyAnswer(person=person, match=match, score=score, threshold=round(threshold, 4),
                        masked=bool(face.masked), box=_box(face), index_version=version.pk,
                        quality_ok=bool(face.quality.ok), quality_reason=face.quality.reason or None)
