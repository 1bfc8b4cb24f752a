"""Enrollment photos: the checks a candidate photo must pass (:func:`photo_inspect`, with the
refusal codes of :data:`REFUSALS`), adding one (:func:`photo_add`, from uploads, the webcam, imports
or gallery adaptation's confident check-ins), the look-alike check, removing photos, the retention
purge of photos kept from check-ins and the sweep of photo files no row names."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from audit.services import audit_record, audit_records
from recognition.engine import Engine, EngineError, Face, FrameTooLarge, NoFaceFound, UnreadableImage
from recognition.engine.decode import animated, image_extension, refuse_costly, turn_clockwise, without_metadata
from recognition.engine.gallery import (
    OTHER_PERSON_MAX_SCORE,
    SAME_PICTURE_MIN_SCORE,
    UNMASKED,
    Decision,
    Templates,
    identify,
    person_templates,
)
from recognition.engine.quality import BLURRY, TOO_DARK

from .. import recognizer
from ..models import FacePhoto, IndexVersion, Person, PhotoTemplates, TrainingRun
from .common import Action, EnrollmentError, StorageFull, amount, counted, people_locked, storage_full
from .index import EMBED_ERRORS, _templates_store, index_rebuild_request

log = logging.getLogger(__name__)

# a photo turned (:func:`_usable_turned`): the turned pixels, their faces and the face chosen
Turned = tuple[np.ndarray, list[Face], recognizer.PhotoFace]

# Refusal codes of photo_add, with the sentence shown to the administrator.
REFUSALS = {
    "empty": "The file is empty (0 bytes).",
    "file_type": "Not a JPEG, PNG or WebP image.",
    "too_large": "The file is too large.",
    "unreadable": "The image cannot be decoded (damaged or truncated file).",
    "no_face": "No face found in the photo.",
    "several_faces": "More than one usable face: use a photo of this person alone.",
    # a masked face is often accepted, but not always (a mask up to the eyes lowers FaceMesh's
    # confidence): the advice that always works is a photo without one
    "unclear_face": "No clear face: this may not be a face, or too much of it is covered or turned away. Use a "
                    "photo without a mask if you can (masked check-ins are matched against masks drawn on it).",
    "too_small": "The face is too small: come closer or use a larger photo.",
    "partial": "Part of the face is outside the photo: use one that shows the whole face.",
    # no longer given (an upside-down photo is stored turned upright: photo_inspect); kept for
    # clients that name the code
    "upside_down": "The photo is upside down: turn it upright and add it again.",
    "sideways": "The photo is on its side: turn it upright and add it again.",
    "too_dark": "Too dark: add light in front of the face.",
    "too_bright": "Too bright: the face is overexposed.",
    "blurry": "Blurry: hold still or use a sharper photo.",
    "pose": "The face is turned away: look straight at the camera.",
    "quality": "The face is not good enough to recognise.",
    "duplicate": "This photo is already enrolled for this person.",
    "enrolled_elsewhere": "This photo is already enrolled for another person.",
    "enough_photos": "This person already has as many photos as allowed here.",
    "adaptation_stopped": "Gallery adaptation was stopped for this person, or they were deactivated.",
    "not_stored": "The photo could not be stored (the server's storage or database failed): try it again.",
}
class PhotoRefused(EnrollmentError):
    """A photo that cannot be enrolled; ``code`` is a key of :data:`REFUSALS`."""

    def __init__(self, code: str, detail: str = "", message: str | None = None) -> None:
        self.code = code
        self.message = (message or REFUSALS.get(code, code)) + (f" ({detail})" if detail else "")
        super().__init__(self.message)


@dataclass(frozen=True)
class PhotoInspection:
    """What the engine says of a candidate photo.

    ``ok``: usable for enrollment; else ``code``/``message`` say why (see :data:`REFUSALS`).
    ``box``: chosen face ``[x1, y1, x2, y2]`` (pixels; for a refusal, the largest face, if any).
    ``width``/``height``: image size in pixels. ``faces``: faces detected. ``turned``: degrees
    clockwise the photo was turned because it lay on its side (90, 270: :func:`_quarter_turn`) or
    upside down (180: :func:`_half_turn`, :func:`_turned_upright`), else 0; every other fact is of
    the photo so turned, which is how :func:`photo_add` stores it.
    """

    ok: bool
    code: str | None
    message: str
    width: int = 0
    height: int = 0
    faces: int = 0
    box: list[float] | None = None
    quality_score: float | None = None
    quality_verdict: str = ""
    masked: bool = False
    masked_prob: float | None = None
    turned: int = 0
    face: Face | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict:
        """JSON-safe view (no embedding, no pixels)."""
        return {"ok": self.ok, "code": self.code, "message": self.message, "width": self.width,
                "height": self.height, "faces": self.faces, "box": self.box, "quality_score": self.quality_score,
                "quality_verdict": self.quality_verdict, "masked": self.masked, "masked_prob": self.masked_prob,
                "turned": self.turned}


def _refusal(code: str, message: str | None = None, **kwargs) -> PhotoInspection:
    return PhotoInspection(ok=False, code=code, message=message or REFUSALS[code], **kwargs)


def _too_many_pixels(width: int | None = None, height: int | None = None, *,
                     pixels: int | None = None) -> PhotoInspection:
    """``too_large`` for the pixel limit, saying so: compressing the file (the size limit's cure)
    would not help. ``pixels``: the count alone, where the size is not known (Pillow's refusal of a
    header over its own limit names only the count)."""
    limit = settings.MASKNET_MAX_PIXELS
    size = (f"It is {width}×{height} pixels; at most" if width and height
            else f"It is {amount(pixels, 'pixels')}; at most" if pixels else "At most")
    side = math.isqrt(limit)
    square = f" (e.g. {side}×{side})" if side * side == limit else ""   # a size an editor's resize box takes
    return _refusal("too_large", f"{REFUSALS['too_large']} {size} {amount(limit, 'pixels')}{square}: "
                                 f"scale it down (compressing the file would not help).",
                    width=width, height=height)


def photo_too_large(*, size: int) -> PhotoInspection | None:
    """:func:`photo_inspect`'s refusal of a file of ``size`` bytes over ``MASKNET_MAX_PHOTO_BYTES``
    (saying its size, the limit and what to do), else ``None``; for a caller that knows the size
    before reading the file (the import: a huge file is refused without being read)."""
    limit = settings.MASKNET_MAX_PHOTO_BYTES
    if size <= limit:
        return None
    # the callers read at most the limit and one byte: that much says "more than", not the size
    shown = f"more than {amount(limit, 'bytes')}" if size == limit + 1 else amount(size, "bytes")
    # and what to do: the refusal alone left the uploader with the same file and no way in
    return _refusal("too_large", f"{REFUSALS['too_large']} It is {shown}; at most {amount(limit, 'bytes')}. "
                                 f"Scale it down or save it as a smaller JPEG.")


def photo_inspect(*, data: bytes, engine: Engine | None = None) -> PhotoInspection:
    """Check a candidate photo without saving anything: type, size, exactly one usable face,
    quality. Used by :func:`photo_add` and the capture page's live feedback. A photo on its side
    (:func:`_quarter_turn`) or upside down (:func:`_half_turn`, :func:`_turned_upright`) is judged
    turned upright, as :func:`photo_add` then stores it."""
    too_large = photo_too_large(size=len(data))
    if too_large:
        return too_large
    if not data:
        return _refusal("empty")
    if image_extension(data) is None:
        return _refusal("file_type")
    try:
        refuse_costly(data)   # before Pillow reads the header: see recognition.engine.decode
    except UnreadableImage:
        return _refusal("unreadable")
    try:
        # Pillow raises DecompressionBombError (not an OSError) above 179 Mpx while reading the
        # header (its warning above 89 Mpx is ignored: recognition.engine.decode); both are
        # answered by the pixel limit below
        header = Image.open(io.BytesIO(data))
        width, height = header.size
        # an animated WebP (or APNG): the first picture alone was kept, the others dropped unsaid
        several = animated(header)
    except Image.DecompressionBombError as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))   # "Image size (400000000 pixels) exceeds limit ..."
        return _too_many_pixels(pixels=int(claimed.group(1)) if claimed else None)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return _refusal("unreadable")
    if width * height > settings.MASKNET_MAX_PIXELS:
        return _too_many_pixels(width, height)
    if several:
        return _refusal("file_type", message="An animated image: use a still photo (JPEG, PNG or WebP).",
                        width=width, height=height)
    engine = engine or recognizer.get_engine()
    try:
        image = engine.decode(data)
        height, width = image.shape[:2]  # after EXIF rotation, like the boxes
        if min(width, height) < engine.config.min_face_px:
            # no room for a face the gate would take (a face's box is inside the photo): "no face
            # found" sent people looking for a better face rather than a larger photo
            return _refusal("too_small", message=f"{REFUSALS['too_small']} This photo is {width}x{height} "
                                                 f"pixels; a face needs {engine.config.min_face_px} at least.",
                            width=width, height=height)
        faces = engine.analyze(image)
    except FrameTooLarge:
        return _too_many_pixels(width, height)
    except UnreadableImage:
        return _refusal("unreadable", width=width, height=height)
    except NoFaceFound:
        faces = []
    chosen = recognizer.choose_face(faces) if faces else None
    turned = 0
    if chosen is None or chosen.reason in HALF_TURN_AFTER:
        # upside down without EXIF orientation: no face found, or none FaceMesh sees clearly, as it
        # is; one more analysis, for those photos alone (:func:`_half_turn`)
        half = _half_turn(engine, image)
        if half is not None:
            image, faces, chosen, turned = *half, 180
    if chosen is None:
        if float(image.mean()) < engine.config.min_brightness:
            # nobody found in a picture too dark to find anyone in: said as the light, not as "no face"
            # (a dark capture check flipped between the two from frame to frame: an admin UX review)
            return _refusal("too_dark", width=width, height=height)
        return _refusal("no_face", width=width, height=height)
    stood = _stood_up(engine, image, faces, chosen, turned)
    if stood is None:
        return _refusal("sideways", width=width, height=height, faces=chosen.faces)
    image, faces, chosen, turned = stood
    face = chosen.face or faces[0]
    upright = _turned_upright(engine, image, face) if face.masked and not chosen.reason else None
    if upright is not None and upright[0] == "upside_down" and not turned:
        # upside down, its face read as masked: stored turned half a circle, as one on its side is
        # turned a quarter, and judged so (the face of the turned photo is usable and unmasked);
        # a quarter more where that face's eyes say it lay on its side (its roll misread as level)
        stood = _stood_up(engine, upright[1][0], upright[1][1], upright[1][2], 180)
        if stood is None or stood[2].reason or stood[2].face.masked:
            return _refusal("sideways", width=width, height=height, faces=chosen.faces)
        image, faces, chosen, turned = stood
        face, upright = chosen.face, None
    height, width = image.shape[:2]
    # the gate's verdict, or enrolment's own (too dark or blurred for a reference photo, though a
    # kiosk frame would pass: gallery.ENROL_MIN_BRIGHTNESS / ENROL_MIN_SHARPNESS)
    verdict = face.quality.reason or (chosen.reason if chosen.reason in (TOO_DARK, BLURRY) else "ok")
    facts = {"width": width, "height": height, "faces": chosen.faces, "box": [round(float(v), 1) for v in face.box],
             "quality_score": round(face.quality.score, 3), "quality_verdict": verdict,
             "masked": face.masked, "masked_prob": round(face.masked_prob, 3), "turned": turned}
    if chosen.reason:
        return PhotoInspection(ok=False, code=chosen.reason, message=REFUSALS.get(chosen.reason, chosen.reason),
                               **facts)
    if upright is not None:
        # on its side, its face read as masked; or turned a quarter the wrong way round (the eyes
        # of a face called masked misread): upside down now, but the photo as sent is on its side
        return _refusal("sideways", **facts)
    return PhotoInspection(ok=True, code=None, message="Good photo.", face=face, **facts)


def photo_choose(*, photos: Iterable[bytes], engine: Engine | None = None) -> tuple[int | None, list[PhotoInspection]]:
    """The best of a burst (the capture page's frames of one moment): each photo inspected
    (:func:`photo_inspect`), and the position of the one with the highest quality score among those
    that pass every check (the first of equals), or ``None`` when none passes. A burst's frames are
    nearly identical and count about as one photo (docs/enrollment.md): one is all that is worth
    storing. Saves nothing; pass the chosen inspection to :func:`photo_add`, which then does not
    analyse the face again. A frame identical to an earlier one (a frozen camera sends the same
    picture again) gets that one's inspection, not another analysis."""
    seen: dict[bytes, PhotoInspection] = {}
    inspections = []
    for data in photos:
        digest = hashlib.sha256(data).digest()
        if digest not in seen:
            seen[digest] = photo_inspect(data=data, engine=engine)
        inspections.append(seen[digest])
    good = [i for i, inspection in enumerate(inspections) if inspection.ok]
    best = max(good, key=lambda i: inspections[i].quality_score or 0.0, default=None)
    return best, inspections


def _roll(face: Face) -> float:
    """How far ``face``'s eyes are turned from level, in degrees (the alignment's rotation)."""
    return math.degrees(math.atan2(face.align_matrix[1][0], face.align_matrix[0][0]))


def _stood_up(engine: Engine, image: np.ndarray, faces: list[Face], chosen: recognizer.PhotoFace,
              turned: int) -> tuple[np.ndarray, list[Face], recognizer.PhotoFace, int] | None:
    """``image`` (the photo as sent turned ``turned`` degrees clockwise), its ``faces`` and ``chosen``
    face, turned a quarter more when that face is usable and its eyes lie nearer upright than
    level (:func:`_quarter_turn`), and analysed again, with the degrees the photo as sent is then
    turned; as they are otherwise. ``None`` when the turned photo shows no face. A photo refused as
    it is stays refused for the same reason (a false face, a cup, turned gave another one)."""
    quarter = _quarter_turn(chosen.face) if chosen.face is not None and not chosen.reason else 0
    if not quarter:
        return image, faces, chosen, turned
    # stored upright, as an EXIF orientation is applied: else kept on its side, the thumbnail too
    # (its face found turned by the detector's eyes, the template as good); judged as stored
    image = turn_clockwise(image, quarter)
    try:
        faces = engine.analyze(image)
    except NoFaceFound:
        return None
    return image, faces, recognizer.choose_face(faces), (turned + quarter) % 360


def _quarter_turn(face: Face) -> int:
    """Degrees clockwise to turn the photo for ``face`` to stand upright: 90 or 270 when its eyes
    lie nearer upright than level (a photo on its side that has no EXIF orientation: a scan, an
    editor's copy), else 0. The detector's eye points find a face at any roll, and FaceMesh and the
    alignment stand it up, so such a photo passed every check and was stored on its side (its
    template met the upright photo's at 0.99, its thumbnail lay on its side). Upright and
    upside-down photos are read within 16 degrees of level (:func:`_turned_upright`): an upside-down
    one is found by the turns tried where the photo as it is fails."""
    roll = _roll(face)
    if 45 <= roll <= 135:
        return 90
    if -135 <= roll <= -45:
        return 270
    return 0


# what the photo as it is refused for before it is tried upside down (:func:`_half_turn`), besides
# no face at all: a face the detector finds upside down is mostly one FaceMesh does not read
HALF_TURN_AFTER = ("unclear_face",)


def _usable_turned(engine: Engine, image: np.ndarray, degrees: int, *, search_tiles: bool = True) -> Turned | None:
    """``image`` turned ``degrees`` clockwise, its faces and the chosen one, when that one is usable
    and shows no mask (:func:`recognizer.choose_face`); else ``None``. One more analysis
    (``search_tiles``: as :meth:`Engine.analyze`'s)."""
    turned = turn_clockwise(image, degrees)
    try:
        faces = engine.analyze(turned, search_tiles=search_tiles)
    except NoFaceFound:
        return None
    chosen = recognizer.choose_face(faces)
    if chosen.face is None or chosen.reason or chosen.face.masked:
        return None
    return turned, faces, chosen


def _half_turn(engine: Engine, image: np.ndarray) -> Turned | None:
    """``image`` turned half a circle, when that shows a usable face without a mask
    (:func:`_usable_turned`); asked of photos that as they are show no face, or none clear
    (:data:`HALF_TURN_AFTER`). An upside-down photo without EXIF orientation (an editor's copy, a
    scan fed the wrong way) was refused so, when its face was not read as masked
    (:func:`_turned_upright`): LFW DevTrain, 60 people's first photos as PNG turned upside down, 13
    ``unclear_face`` and 2 ``no_face`` (docs/enrollment.md). Unmasked only, as for a face read as
    masked: a masked face that FaceMesh does not read clearly upright is not taken upside down.

    Its cost is a photo without a face's: one more analysis, a detection alone when no face is
    found, and without the tiles a large photo where nobody is found is searched again in (an
    upside-down portrait's face is large): about 8 ms more for a 640x480 photo, 50 to 110 ms for
    12 megapixels, where the tiles made its refusal 0.4 to 0.6 s slower (docs/enrollment.md)."""
    return _usable_turned(engine, image, 180, search_tiles=False)


def _turned_upright(engine: Engine, image: np.ndarray, face: Face) -> tuple[str, Turned] | None:
    """``"upside_down"`` or ``"sideways"`` when ``image`` turned half a circle or, for a face not level,
    a quarter either way shows a usable face without a mask, with that turn's analysis
    (:func:`_usable_turned`); else ``None``. Asked of faces the mask head called masked alone (one
    more analysis each, three for a face not level). :func:`photo_inspect` stores an upside-down
    photo turned half a circle, and refuses the others as ``sideways``.

    An upside-down photo (its EXIF orientation lost by an editor, a scan fed the wrong way) passes
    every check, and the mask head calls its face masked (192 of 193 LFW photos turned so; 6 of 199
    upright): it was enrolled as a masked template that matches nobody. An engine review's rule: 61
    of 62 such photos refused, none of 47 real masked photos nor 92 upright ones; they are now
    stored turned upright instead. The alignment reads an upside-down face as upright (its roll
    within 16 degrees of level), so that turn is tried whatever the roll.

    A photo on its side is mostly analysed as if upright (FaceMesh stands the face up), but a few
    are called masked and were enrolled as such a template (LFW DevTest, 150 people's first photos
    turned a quarter each way, JPEG 90: 4 of 300 taken as masked; this rule refuses 2 of them and
    none of the upright photos). Those the alignment misread, so the roll says neither that they
    lie on their side nor which way (-24 degrees for one turned clockwise): both quarter turns are
    tried once the roll passes 20 degrees (upright and upside-down LFW photos: within 16). None of
    94 real masked photos (RWMFD) the engine takes is refused by any of the three turns (2026-12-05)."""
    turns = [("upside_down", 180)]
    if abs(_roll(face)) > 20:
        turns += [("sideways", 90), ("sideways", 270)]
    for code, degrees in turns:
        found = _usable_turned(engine, image, degrees)
        if found is not None:
            return code, found
    return None


def photo_add(*, person: Person, data: bytes, actor: object | None, filename: str = "photo.jpg",
              source: str = FacePhoto.Source.UPLOAD, embed: bool = False,
              schedule_rebuild: bool = True, why: str = "", inspection: PhotoInspection | None = None,
              check_lookalike: bool = True, max_photos: int | None = None,
              while_adapting: bool = False, seen: dict[int, np.ndarray] | None = None,
              kept_from_checkin: int | None = None) -> FacePhoto:
    """Validate and store one enrollment photo; raises :class:`PhotoRefused` with the reason, or
    ``Person.DoesNotExist`` when the person was erased (or deleted) meanwhile.

    ``embed``: also compute and cache its templates now (bulk imports; otherwise the rebuild
    does it). ``schedule_rebuild``: queue a (debounced) index rebuild after commit. ``why``: added
    to the audit record's summary. ``inspection``: :func:`photo_inspect`'s of these very bytes, when
    the caller has it. ``check_lookalike``: look for another person with this face (below).
    ``max_photos``: refuse (``enough_photos``) when the person already has that many photos, checked
    where adds to one person take turns, so that two adds at once cannot both pass it.
    ``while_adapting`` (gallery adaptation): refuse (``adaptation_stopped``) unless the person is
    still active with adaptation on, read there too (an administrator may have stopped it, removed
    a kept photo or deactivated them while the face was checked). ``seen``: a batch's own memo (one
    request's uploads), the face embeddings of the photos it stored before, by id, which the
    same-picture check (:func:`photo_repeats`) reads instead of analysing their files again; this
    photo's is added to it once stored. ``kept_from_checkin``: the check-in whose face it is (gallery
    adaptation; deleting that check-in points to the photo).
    """
    sha = hashlib.sha256(data).hexdigest()
    _refuse_known(person, sha)
    engine = recognizer.get_engine()
    inspection = inspection or photo_inspect(data=data, engine=engine)
    if not inspection.ok:
        raise PhotoRefused(inspection.code, message=inspection.message)
    photo = FacePhoto(person=person, source=source, kept_from_checkin=kept_from_checkin, sha256=sha,
                      width=inspection.width, height=inspection.height,
                      box=inspection.box, quality_score=inspection.quality_score,
                      quality_verdict=inspection.quality_verdict, masked=inspection.masked,
                      masked_prob=inspection.masked_prob,
                      added_by=actor if getattr(actor, "is_authenticated", False) else None)
    # kept without its metadata (a phone photo's EXIF holds where and when it was taken); the
    # duplicate checks go by the upload's digest
    stored = without_metadata(data, max_bytes=settings.MASKNET_MAX_PHOTO_BYTES, max_pixels=settings.MASKNET_MAX_PIXELS,
                              turn=inspection.turned)
    if stored is not data:
        _scale_to_stored(photo, stored)
    # named before it is written: a write that fails part-way (a full disk) leaves the file it began
    # (Django's storage does not remove it), which is deleted below. The name is a new random one
    # (photo_upload_to), which no other file has: the storage writes it under that name
    name = photo.image.field.generate_filename(photo, Path(filename).stem[:40] + image_extension(stored))
    try:
        photo.image = photo.image.storage.save(name, ContentFile(stored), max_length=photo.image.field.max_length)
        with transaction.atomic():
            # adds to one person take turns from here (PostgreSQL): the same photo sent twice at
            # once (a double submit) is refused as a duplicate instead of stored twice
            # (FOR NO KEY UPDATE: a check-in of the person, which locks the row the same way,
            # waits a moment, and neither waits for the other's foreign keys); an erasure
            # that committed while the photo was inspected left no row to add it to (its insert
            # would break the foreign key at commit)
            row = (Person.objects.select_for_update(no_key=True).filter(pk=person.pk)
                   .values_list("active", "gallery_adaptation").first())
            if row is None:
                raise Person.DoesNotExist(f"person #{person.pk} was erased while their photo was being added")
            # and adds of this file take turns whoever they are for, until the photo is stored:
            # the person's lock alone let one file sent to two people at once pass both checks
            _photo_digest_take_turns(sha)
            _refuse_known(person, sha)
            if max_photos is not None and FacePhoto.objects.filter(person_id=person.pk).count() >= max_photos:
                raise PhotoRefused("enough_photos")
            if while_adapting and not all(row):
                raise PhotoRefused("adaptation_stopped")
            photo.save()
            audit_record(actor=actor, action=Action.PHOTO_ADD, obj=photo,
                         summary=f"added photo #{photo.pk} ({source}) to person #{person.pk}"
                                 + (f": {why}" if why else ""))
            if schedule_rebuild:
                # a kept check-in photo's run does not name the person: the runs' times, which
                # Enrollers see, would tell them when that person checked in
                index_rebuild_request(actor=actor, reason="a photo kept from a check-in (gallery adaptation)"
                                      if source == FacePhoto.Source.CHECKIN else f"photo added to person #{person.pk}")
    except BaseException as exc:
        stored_as = photo.image.name or name
        # the person gone: their folder too, which this file made again after the erasure emptied it
        gone = isinstance(exc, Person.DoesNotExist)
        _delete_media([stored_as], folder=str(Path(stored_as).parent) if gone else None)
        if storage_full(exc):
            raise StorageFull("media") from exc
        raise
    if embed:  # after the photo's transaction (embedding takes a second): a failure leaves it to the rebuild
        try:
            _templates_store(photo=photo, templates=recognizer.face_templates(engine, inspection.face, seed=photo.pk),
                             version=recognizer.template_version())
        except (*EMBED_ERRORS, DatabaseError) as exc:
            log.warning("photo #%s stored; its templates were not (the next rebuild makes them): %s", photo.pk, exc)
    photo.lookalike = photo.repeats = photo.mismatch = None
    try:   # advice only: the photo is stored, whatever happens here
        if check_lookalike:
            photo.lookalike = photo_lookalike(person=person, face=inspection.face, engine=engine)
    except Exception:  # noqa: BLE001 - photo.lookalike stays None
        log.warning("photo #%s stored; the look-alike check failed", photo.pk, exc_info=True)
    try:   # nobody reads a kept check-in's warnings, and that face is never the same picture as a photo
        descriptor = engine.config.descriptor   # one neither check is measured for: nothing analysed
        checked = descriptor in SAME_PICTURE_MIN_SCORE or descriptor in OTHER_PERSON_MAX_SCORE
        if source != FacePhoto.Source.CHECKIN and checked:
            # the person's other photos scored once for both checks (an earlier photo without templates
            # is analysed again from its file: twice was the square-law cost the memo had removed)
            scores = _own_scores(photo=photo, face=inspection.face, engine=engine, seen=seen)
            photo.repeats = photo_repeats(photo=photo, face=inspection.face, engine=engine, scores=scores)
            photo.mismatch = photo_mismatch(photo=photo, face=inspection.face, engine=engine, scores=scores)
    except Exception:  # noqa: BLE001 - photo.repeats and photo.mismatch stay None
        log.warning("photo #%s stored; the same-picture check failed", photo.pk, exc_info=True)
    if seen is not None and inspection.face is not None and inspection.face.embedding is not None:
        seen[photo.pk] = inspection.face.embedding
    return photo


def _scale_to_stored(photo: FacePhoto, stored: bytes) -> None:
    """Fit ``photo``'s size and face box (the upload's) to ``stored``, which :func:`without_metadata`
    scaled down to keep under the size limit (the box picks the face again at each rebuild)."""
    with Image.open(io.BytesIO(stored)) as img:
        width, height = img.size
    if (width, height) == (photo.width, photo.height):
        return
    sx, sy = width / photo.width, height / photo.height
    photo.box = [round(v * s, 1) for v, s in zip(photo.box, (sx, sy, sx, sy), strict=True)]
    photo.width, photo.height = width, height


def photo_lookalike(*, person: Person, face: Face, engine: Engine) -> tuple[Person, float] | None:
    """Another active person whom this enrolment face matches in the active index, as a kiosk would
    decide it (the site's thresholds), with the score; ``None`` when nobody else or no usable index.
    The same face under two people (a photo filed under the wrong person, someone enrolled twice)
    would send check-ins to either: the admin says so when the photo is added."""
    decision = _index_decision(face, engine)
    if (decision is None or not decision.accepted or not decision.label or not decision.label.isdigit()
            or decision.label == str(person.pk)):
        return None
    other = Person.objects.active().filter(pk=int(decision.label)).first()
    return (other, float(decision.score)) if other is not None else None


def photo_lookalike_shown(*, photo: FacePhoto, actor: object, may_search: bool,
                          via: str) -> tuple[Person, float] | None:
    """The other person a just-added photo's face matches (:func:`photo_lookalike`), for a caller
    who may search faces (``may_search``: ``enrollment.recognise_face``, or the API's scope
    ``recognise``); the answer is a face search's, so it is on record as identify's are (``via``
    says where: "photo upload", "admin photo upload"). ``None`` when nobody else, or for a caller
    who may not search faces: they are told only that the face matches someone, which is a face
    search's answer too (one bit of it: an enrol-only token could upload each face to a person of its
    own to learn whether it is enrolled), so it is on record as well, saying the caller was not told
    whom (a helper's review of the API)."""
    found = getattr(photo, "lookalike", None)
    if found is None:
        return None
    other, score = found
    audit_record(actor=actor, action=Action.API_IDENTIFY, object_type="enrollment.facephoto", object_id=photo.pk,
                 summary=f"{via}: looks like person #{other.pk} {score:.3f}"
                         + ("" if may_search else " (told only that it looks like someone: no face search)"))
    return (other, score) if may_search else None


def photo_repeats(*, photo: FacePhoto, face: Face | None, engine: Engine,
                  seen: dict[int, np.ndarray] | None = None,
                  scores: list[tuple[FacePhoto, float]] | None = None) -> tuple[FacePhoto, float] | None:
    """The person's other photo that ``photo`` (whose face is ``face``) repeats, the same picture saved
    again (its face scores at least :data:`gallery.SAME_PICTURE_MIN_SCORE`, measured there), with the
    score; the closest one, ``None`` when none (or for a descriptor not measured). A copy adds nothing
    to recognition (a second *different* photo is what helps a masked face most: docs/accuracy.md)
    and takes a place another photo would fill, while the admin counted it as one more photo. Only
    the file's SHA-256 caught copies: the same picture as a JPEG, a PNG and a WebP was stored three
    times, "3 photos added".

    Each other photo's face is its cached templates' first vector for this recognizer (its own
    embedding: :func:`gallery.photo_templates`) or, for a photo not embedded yet (one added moments
    before, in the same upload), its face as ``seen`` holds it (the upload's own memo,
    :func:`photo_add`), else its file analysed again as a rebuild would: analysing each earlier
    photo of a batch again at each photo made an admin upload of 8 photos 4 times slower (0.7 s ->
    2.8 s), growing with the square of its size. Photos the rebuild failed on are left out. Masked
    and unmasked faces are embedded differently: each is compared with photos of its own kind."""
    level = SAME_PICTURE_MIN_SCORE.get(engine.config.descriptor)
    if level is None:
        return None
    if scores is None:   # ``scores``: :func:`_own_scores`' answer, when the caller has it
        scores = _own_scores(photo=photo, face=face, engine=engine, seen=seen)
    best = max(scores, key=lambda found: found[1], default=None)
    return best if best is not None and best[1] >= level else None


def photo_mismatch(*, photo: FacePhoto, face: Face | None, engine: Engine,
                   seen: dict[int, np.ndarray] | None = None,
                   scores: list[tuple[FacePhoto, float]] | None = None) -> tuple[FacePhoto, float, int] | None:
    """When ``photo``'s unmasked face scores under :data:`gallery.OTHER_PERSON_MAX_SCORE` (measured
    there) against every other unmasked photo of its person, the closest of them, its score and how
    many were compared; else ``None`` (a match, no other such photo, a masked face, a descriptor not
    measured). A photo of someone else filed under the person is averaged into their templates, and
    check-ins of either went to them without a word: the look-alike check compares a new face with
    other people's, the same-picture check with the person's own for copies."""
    level = OTHER_PERSON_MAX_SCORE.get(engine.config.descriptor)
    if level is None or face is None or face.masked:
        return None
    if scores is None:   # as for photo_repeats
        scores = _own_scores(photo=photo, face=face, engine=engine, seen=seen)
    best = max(scores, key=lambda found: found[1], default=None)
    return (*best, len(scores)) if best is not None and best[1] < level else None


def _own_scores(*, photo: FacePhoto, face: Face | None, engine: Engine,
                seen: dict[int, np.ndarray] | None) -> list[tuple[FacePhoto, float]]:
    """``photo``'s face scored against each other photo of its person of the same kind (masked or
    not), those the rebuild failed on left out, for :func:`photo_repeats` and :func:`photo_mismatch`
    (the other faces found as :func:`photo_repeats` says)."""
    if face is None or face.embedding is None:
        return []
    others = {p.pk: p for p in FacePhoto.objects.filter(person_id=photo.person_id, masked=face.masked)
              .exclude(pk=photo.pk).exclude(embedding_state=FacePhoto.Embedding.FAILED).order_by("pk")}
    vectors = {pk: PhotoTemplates.unpack(dim, count, blob, kinds)[0][0] for pk, dim, count, blob, kinds in
               PhotoTemplates.objects.filter(photo_id__in=list(others), template_version=recognizer.template_version())
               .values_list("photo_id", "dim", "count", "vectors", "kinds")}
    scores = []
    for pk, other in others.items():
        vector = vectors.get(pk)
        if vector is None and seen:
            vector = seen.get(pk)
        if vector is None:
            vector = _stored_embedding(other, engine)
        if vector is None or len(vector) != len(face.embedding):
            continue
        scores.append((other, float(vector @ face.embedding)))
    return scores


def _stored_embedding(photo: FacePhoto, engine: Engine) -> np.ndarray | None:
    """The embedding of a stored photo's face, found again in its file as a rebuild finds it
    (:func:`recognizer.face_near`), or ``None`` (no file, no face)."""
    try:
        with photo.image.open("rb") as fh:
            data = fh.read()
        return recognizer.face_near(engine.analyze(engine.decode(data)), photo.box).embedding
    except (OSError, EngineError):
        return None


def _named(person: Person, by_name: bool) -> str:
    """How a warning names ``person``: their full name, or ``person #id`` for a caller who may not
    read people (an enrol-only API token, which gets a person's id and version alone)."""
    return person.full_name if by_name else f"person #{person.pk}"


def photo_lookalike_warning(*, photo: FacePhoto, shown: tuple[Person, float] | None, name: str = "") -> str | None:
    """What to tell whoever added ``photo`` when its face also matches another active person
    (``photo.lookalike``, set by :func:`photo_add`), else ``None``: said by the admin (upload, webcam
    capture) and ``import_people``. ``shown``: that person and the score, as
    :func:`photo_lookalike_shown` gives them to a caller who may search faces (``None``: "another
    enrolled person"); ``name``: the file as uploaded, quoted first (the admin capitalises a
    message's first letter: "eileen-2.jpg" read "Eileen-2.jpg"), else "This face"."""
    if getattr(photo, "lookalike", None) is None:
        return None
    who = f"{shown[0].full_name} (#{shown[0].pk}, score {shown[1]:.2f})" if shown else "another enrolled person"
    return (f"{f'“{name}”: this' if name else 'This'} face also matches {who}: check-ins could go to either. "
            f"Check that the photo is of {photo.person.full_name}; if not, remove it.")


def photo_repeat_warning(*, photo: FacePhoto, name: str = "", by_name: bool = True) -> str | None:
    """What to tell whoever added ``photo`` when it repeats another photo of the person
    (``photo.repeats``, set by :func:`photo_add`), else ``None``; ``name``: the file as uploaded,
    quoted first (else "This photo"); ``by_name`` false: the person named by id (:func:`_named`)."""
    found = getattr(photo, "repeats", None)
    if found is None:
        return None
    other, score = found
    return (f"{f'“{name}”' if name else 'This photo'} is the same picture as photo #{other.pk} of "
            f"{_named(photo.person, by_name)}, saved again (face score {score:.2f}): a copy adds nothing to "
            f"recognition. Remove one of the two and add a different photo.")


def photo_mismatch_warning(*, photo: FacePhoto, name: str = "", by_name: bool = True) -> str | None:
    """What to tell whoever added ``photo`` when its face may be someone else's (``photo.mismatch``,
    set by :func:`photo_add`), else ``None``; ``name`` and ``by_name`` as for :func:`photo_repeat_warning`."""
    found = getattr(photo, "mismatch", None)
    if found is None:
        return None
    other, score, compared = found
    who = _named(photo.person, by_name)
    this = f"“{name}”" if name else f"This photo (#{photo.pk})"
    if compared == 1:   # two photos that disagree: either may be the wrong one (the first stored is not checked)
        return (f"{this} and photo #{other.pk} do not look like one person (face score {score:.2f}, where two photos "
                f"of one person nearly always score more): one of them is probably not {who}. Check both and "
                f"remove the one that is someone else: check-ins of either would go to this person.")
    return (f"{this} may not be {who}: its face scores {score:.2f} at most against each of their {compared} other "
            f"photos without a mask, where two photos of one person nearly always score more. Check it; if it is "
            f"someone else, remove it: check-ins of either would go to this person.")


def photos_masked_only_warning(*, person: Person, by_name: bool = True) -> str | None:
    """A warning when every photo of ``person`` shows a face mask, else ``None``: their templates
    are masked ones, which an unmasked face is never compared with, so the kiosk told them "not
    recognised" without a mask while the admin had said only "1 photo added". Said by the admin
    (upload, webcam capture, a removal) and the API's upload; ``by_name`` as for
    :func:`photo_repeat_warning`."""
    photos = FacePhoto.objects.filter(person=person)
    if not photos.exists() or photos.filter(masked=False).exists():
        return None
    return (f"Every photo of {_named(person, by_name)} shows a face mask: they are recognised only while wearing one "
            f"(a face without a mask is compared with photos without one). Add a photo without a mask.")


def photos_inactive_warning(*, person: Person, by_name: bool = True) -> str | None:
    """A warning when a photo was added to an inactive person, else ``None``: their photos wait in
    the gallery, and "1 photo added; the index is being rebuilt" read as "recognised now". Said by
    the admin (upload, webcam capture) and the API's upload; ``by_name`` as for
    :func:`photo_repeat_warning`."""
    if Person.objects.filter(pk=person.pk, active=True).exists():
        return None
    return (f"Not recognised yet: {_named(person, by_name)} is inactive; kiosks recognise them once they are "
            "reactivated.")


def _index_decision(face: Face, engine: Engine) -> Decision | None:
    """``face`` identified in the active index as a kiosk would decide it (the site's thresholds);
    ``None`` without a usable index (none, made by another recognizer, whose scores mean nothing
    here, unreadable, empty or of another size) or without an embedding."""
    version = IndexVersion.objects.current()
    if version is None or version.outdated or face.embedding is None:
        return None
    try:
        index = version.load()
    except EngineError:    # a damaged index file: the kiosks answer "unavailable" meanwhile
        return None
    if index is None or not len(index) or index.dim != engine.dim:
        return None
    return identify(engine, face, index, version.site_thresholds())


ADAPTATION_STOPPED = "stopped gallery adaptation for person #"   # its audit record's summary, then the id
# what a photo removal's audit record says when it stopped adaptation (audit.restore applies it again)
ADAPTATION_STOPPED_BY_REMOVAL = "gallery adaptation stopped for them"


def person_gallery_adaptation_stop(*, person: Person, actor: object | None, note: str = "") -> bool:
    """Gallery adaptation adds no more photos of this person (their photos stay); audited (``note``
    ends the summary: a stop applied again after a restore says so). Whether it was on (``False``:
    stopped already, maybe by someone else meanwhile)."""
    with transaction.atomic():
        # a new version (updated_at): a copy read before it, written back with If-Match, is a 412
        stopped = bool(Person.objects.filter(pk=person.pk, gallery_adaptation=True).update(
            gallery_adaptation=False, updated_at=timezone.now()))
        if stopped:
            audit_record(actor=actor, action=Action.UPDATE, obj=person,
                         summary=(f"{ADAPTATION_STOPPED}{person.pk}" + (f"; {note}" if note else ""))[:300])
    person.gallery_adaptation = False
    return stopped


ADAPTATION_RESUMED = "resumed gallery adaptation for person #"   # its audit record's summary, then the id


def person_gallery_adaptation_resume(*, person: Person, actor: object | None) -> bool:
    """Gallery adaptation may add photos of this person again, after it was stopped (by the people
    list's action, or by removing a photo it had kept): an administrator's decision, audited. Whether
    it was off (``False``: on already, maybe resumed by someone else meanwhile)."""
    with transaction.atomic():
        resumed = bool(Person.objects.filter(pk=person.pk, gallery_adaptation=False).update(
            gallery_adaptation=True, updated_at=timezone.now()))
        if resumed:
            audit_record(actor=actor, action=Action.UPDATE, obj=person, summary=f"{ADAPTATION_RESUMED}{person.pk}")
    person.gallery_adaptation = True
    return resumed


def people_gallery_adaptation_set(*, people: Iterable[int], on: bool, actor: object | None) -> list[int]:
    """:func:`person_gallery_adaptation_resume` (``on``) or :func:`person_gallery_adaptation_stop` of
    each of ``people`` (ids) it changes, in one transaction, batches of people locked in id order,
    each audited as those audit one (one insert a batch): a person at a time took 69 s for 19,961
    people, a minute with nothing shown (an admin review at 20,000). Returns the ids changed here
    (not those already so, nor changed meanwhile by someone else)."""
    now, done = timezone.now(), []
    with transaction.atomic():
        for locked in people_locked(people, gallery_adaptation=not on):
            batch = list(locked.values_list("pk", flat=True))
            if not batch:
                continue
            # a new version (updated_at) for each: a copy read before, written back with If-Match, is a 412
            Person.objects.filter(pk__in=batch).update(gallery_adaptation=on, updated_at=now)
            said = ADAPTATION_RESUMED if on else ADAPTATION_STOPPED
            audit_records(actor=actor, action=Action.UPDATE, object_type="enrollment.person",
                          rows=[(pk, f"{said}{pk}") for pk in batch])
            done += batch
    return done


def photo_add_from_checkin(*, person_id: int, data: bytes, checkin_id: int) -> FacePhoto | None:
    """Gallery adaptation (``MASKNET_GALLERY_ADAPT``): keep the face of a confident check-in as one
    more photo of the person checked in (source ``checkin``), so that someone enrolled from one
    photo soon has two, which masked recognition needs most (docs/accuracy.md, "Gallery adaptation").

    ``data``: the JPEG the kiosk cut around the face (:func:`recognition.consumers.face_photo`).
    The photo is checked again as it will be stored, and kept only if every condition holds: the
    setting is on; the person is active, has fewer than ``MASKNET_GALLERY_ADAPT_MAX_PHOTOS`` photos
    (counted again as the photo is stored, so that two kiosks at once cannot both pass it)
    and adaptation was not stopped for them (``Person.gallery_adaptation``); the photo passes
    enrolment's checks (:func:`photo_inspect`, not a duplicate) unmasked; the active index (current,
    made by this recognizer) names this person for it, accepted; and it scores at least
    ``MASKNET_GALLERY_ADAPT_MARGIN`` above that threshold against the person's own photos that were
    *not* kept this way (so that a wrong photo kept once cannot make the next one easier). Anything
    else returns ``None`` and keeps nothing (an INFO log line says why, without names or pixels,
    except when the first look finds the setting off, adaptation stopped or enough photos: the
    usual cases). The photo's audit record names the check-in; the admin lists it among the
    person's photos, where removing it stops adaptation for that person (:func:`photo_remove`).
    """
    def skip(why: str) -> None:
        log.info("check-in #%s: its face was not added to person #%s's photos: %s", checkin_id, person_id, why)

    if not settings.MASKNET_GALLERY_ADAPT:
        return None
    person = Person.objects.active().filter(pk=person_id).first()
    if person is None:
        return skip("not an active person")
    if not person.gallery_adaptation or person.photos.count() >= settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS:
        return None
    engine = recognizer.get_engine()
    inspection = photo_inspect(data=data, engine=engine)
    if not inspection.ok:
        return skip(f"refused as an enrolment photo ({inspection.code})")
    face = inspection.face
    if inspection.masked or face is None or face.embedding is None:
        return skip("masked" if inspection.masked else "no embedding")
    decision = _index_decision(face, engine)
    if decision is None:
        return skip("no current index to confirm the identity with")
    if decision.label != str(person.pk) or not decision.accepted:
        return skip(f"the index names another identity or nobody (score {decision.score:.3f})")
    needed = decision.threshold + settings.MASKNET_GALLERY_ADAPT_MARGIN
    own = _own_unmasked_score(person, face.embedding)
    if own is None or own < needed:
        return skip("not confirmed by their own enrolment photos (score "
                    + ("none" if own is None else f"{own:.3f}") + f", {needed:.3f} needed)")
    try:
        return photo_add(person=person, data=data, actor=None, filename=f"checkin-{checkin_id}.jpg",
                         source=FacePhoto.Source.CHECKIN, inspection=inspection, check_lookalike=False,
                         max_photos=settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS, while_adapting=True,
                         kept_from_checkin=checkin_id,
                         why=f"gallery adaptation from check-in #{checkin_id} (score {own:.3f})")
    except PhotoRefused as exc:    # the same crop twice (a duplicate), or another site's kept first
        return skip(f"refused ({exc.code})")
    except Person.DoesNotExist:
        return skip("erased meanwhile")


def _own_unmasked_score(person: Person, embedding: np.ndarray) -> float | None:
    """``embedding``'s score against the person's unmasked template made from their photos that
    gallery adaptation did not add (their cached templates for this recognizer, combined as the
    index combines a person's photos: :func:`gallery.person_templates`, its margin taken off);
    ``None`` when none of those photos has an unmasked template yet."""
    rows = (PhotoTemplates.objects.filter(photo__person=person, template_version=recognizer.template_version())
            .exclude(photo__source=FacePhoto.Source.CHECKIN)
            .values_list("dim", "count", "vectors", "kinds", "photo__quality_score"))
    photos, qualities = [], []
    for d, count, blob, kind_blob, quality in rows:
        photos.append(Templates(*PhotoTemplates.unpack(d, count, blob, kind_blob)))
        qualities.append(quality)
    combined = person_templates(photos, qualities)
    unmasked = combined.kinds == UNMASKED
    if not unmasked.any() or combined.vectors.shape[1] != len(embedding):
        return None
    return float((combined.vectors[unmasked] @ embedding - combined.margins[unmasked]).max())


# PostgreSQL advisory lock class of photo files (below): "face" in ASCII. The two-key form: a key
# space apart from the single 64-bit key of INDEX_WRITERS_LOCK (index.py)
PHOTO_FILE_LOCK = 0x66616365


def _photo_digest_take_turns(sha: str) -> None:
    """Make this transaction's add of the file whose SHA-256 is ``sha`` wait for any other add of it
    to commit, whoever it is for, so that :func:`_refuse_known` then sees its row: two uploads of one
    file to two people at once each checked ``enrolled_elsewhere`` before the other had stored its
    photo, and both were stored. PostgreSQL: an advisory lock on the digest's first 32 bits, held to
    the end of the transaction (the rest of a short one: the face was inspected and the file
    written before it began; files that share those bits take turns for nothing, a moment); taken by
    photo adds alone, after the person's row and before anything else, so it waits on none of the
    rebuild's locks. SQLite runs one writer at a time anyway (its transactions take the write lock
    when they begin: ``transaction_mode`` ``IMMEDIATE``, settings)."""
    if connection.vendor == "postgresql":
        key = int(sha[:8], 16)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           [PHOTO_FILE_LOCK, key - 2**32 if key >= 2**31 else key])


def _refuse_known(person: Person, sha: str) -> None:
    """The same file again for this person (``duplicate``), or one enrolled for someone else
    (``enrolled_elsewhere``: one photo under two identities would make the index confuse them)."""
    owners = set(FacePhoto.objects.filter(sha256=sha).values_list("person_id", flat=True))
    if person.pk in owners:
        raise PhotoRefused("duplicate")
    if owners:
        raise PhotoRefused("enrolled_elsewhere")


def photo_remove(*, photo: FacePhoto, actor: object | None, note: str = "", stop_adaptation: bool = True) -> bool:
    """Delete a photo, its file (after commit) and its cached templates; queues a rebuild. ``note``
    ends the audit record's summary (a removal applied again after a restore says so). Removing a
    photo gallery adaptation kept stops it for the person, unless ``stop_adaptation`` is false (a
    removal applied again after a restore whose first one did not: the retention purge's). Returns
    whether gallery adaptation was stopped for the person, for the caller to tell the
    administrator, who cannot read the audit log where it is recorded."""
    pk, person_id, name = photo.pk, photo.person_id, photo.image.name
    adapted = photo.source == FacePhoto.Source.CHECKIN
    with transaction.atomic():
        if not FacePhoto.objects.select_for_update().filter(pk=pk).exists():   # locked: see person_erase
            return False   # removed meanwhile (another administrator, an erasure): nothing to record
        photo.delete()
        # a photo kept by gallery adaptation that an administrator removes was a wrong one, or one
        # they did not want: adaptation stops for this person rather than keep another the next day
        stopped = adapted and stop_adaptation and Person.objects.filter(
            pk=person_id, gallery_adaptation=True).update(gallery_adaptation=False, updated_at=timezone.now())
        audit_record(actor=actor, action=Action.PHOTO_REMOVE, object_type="enrollment.facephoto", object_id=pk,
                     summary=(f"removed photo #{pk} of person #{person_id}"
                              + (f"; {ADAPTATION_STOPPED_BY_REMOVAL}" if stopped else "")
                              + (f"; {note}" if note else ""))[:300])
        transaction.on_commit(lambda: _delete_media([name]))
        index_rebuild_request(actor=actor, reason=f"photo removed from person #{person_id}", photo_removed=True)
    return bool(stopped)


def photos_embed_again(*, photos: Iterable[FacePhoto], actor: object | None) -> tuple[int, TrainingRun | None]:
    """Have the next rebuild try again the ``photos`` that rebuilds of this recognizer version leave
    out (failed for a cause of their own: ``embed_failed_version``), e.g. once the cause is known to
    be gone; audited one by one, and a rebuild is queued as for other enrolment changes. Photos
    not left out (not failed, failed under other models, a file missing or unreadable: every
    rebuild tries those) are left as they are. Returns how many were marked, and the run queued
    (``None`` when none was)."""
    version = recognizer.template_version()
    done = 0
    with transaction.atomic():
        for photo in photos:
            # conditional: one embedded, removed or already asked for meanwhile is not counted twice
            if not FacePhoto.objects.filter(pk=photo.pk, embedding_state=FacePhoto.Embedding.FAILED,
                                            embed_failed_version=version).update(embed_failed_version="",
                                                                                 embed_attempts=0):
                continue
            done += 1
            # it stays "failed" (its error kept) until the rebuild's outcome: counted "failed before"
            audit_record(actor=actor, action=Action.UPDATE, obj=photo,
                         summary=f"photo #{photo.pk} of person #{photo.person_id} to be tried again at the next "
                                 f"rebuild (left out after: {photo.embedding_error})")
        run = index_rebuild_request(actor=actor, reason=f"{counted(done, 'photo')} to try again") if done else None
    return done, run


# photos one transaction of the purge deletes: each row takes its templates and an audit record with it
# (the decision records' PURGE_BATCH, 10,000, would hold SQLite's write lock past a kiosk's timeout)
ADAPTED_PURGE_BATCH = 200


def adapted_photo_expiry(photo: FacePhoto) -> date | None:
    """The day (local time) ``photo``'s retention ends, for a photo kept by gallery adaptation while
    ``MASKNET_RETENTION_ADAPTED_DAYS`` is set; else ``None``. The daily purge
    (:func:`adapted_photos_purge`, 03:30) deletes it at its first run after that moment: that night,
    or the next one for a photo kept after the purge's hour of the day (not "the day it deletes it",
    as this said: a helper's review of time zones)."""
    days = int(settings.MASKNET_RETENTION_ADAPTED_DAYS)
    if photo.source != FacePhoto.Source.CHECKIN or days <= 0 or photo.created_at is None:
        return None
    return timezone.localdate(photo.created_at + timedelta(days=days))


def adapted_photos_purge(*, older_than_days: int, now: datetime | None = None, dry_run: bool = False,
                         failed: list[str] | None = None) -> int:
    """Retention of the photos gallery adaptation kept (source ``checkin``;
    ``MASKNET_RETENTION_ADAPTED_DAYS``): delete those kept more than ``older_than_days`` days before
    ``now``, with their templates and files; returns how many (would be) deleted; ``0`` keeps them as
    long as the person's other photos. Run by the daily retention purge.

    In batches of :data:`ADAPTED_PURGE_BATCH`. Unlike an administrator's removal (:func:`photo_remove`),
    adaptation goes on for the person: the next confident check-in may keep a newer face, so that a
    kept photo stays a recent one. Each photo's removal is audited as a removal (which makes the next
    rebuild delete the older index versions that hold its templates, :func:`.index._index_prune`) and one
    rebuild is queued per batch. Files are deleted once their rows are; those that could not be go to
    ``failed`` (and the photo sweep tries them again)."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 (keep forever) or more")
    if older_than_days == 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    expired = FacePhoto.objects.filter(source=FacePhoto.Source.CHECKIN, created_at__lt=cutoff)
    if dry_run:
        return expired.count()
    removed = 0
    while True:   # in short batches (SQLite's write lock), each its own transaction
        with transaction.atomic():
            # locked as photo_remove locks one: an erasure or removal meanwhile waits, or went first
            rows = list(expired.select_for_update().order_by("id").values_list("id", "person_id", "image")
                        [:ADAPTED_PURGE_BATCH])
            if rows:
                FacePhoto.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
                for pk, person_id, _ in rows:
                    audit_record(actor=None, action=Action.PHOTO_REMOVE, object_type="enrollment.facephoto",
                                 object_id=pk, summary=f"removed photo #{pk} of person #{person_id}: retention, "
                                                       f"kept from a check-in more than {older_than_days} days ago")
                index_rebuild_request(actor=None, reason="retention: photos kept from check-ins expired",
                                      photo_removed=True)
        for _, _, name in rows:
            try:
                default_storage.delete(name)
            except OSError as exc:
                log.warning("could not delete expired photo file %s: %s", name, exc)
                if failed is not None:
                    failed.append(name)
        for folder in {str(Path(name).parent) for _, _, name in rows}:
            _delete_media([], folder=folder)   # the person's folder, once empty
        removed += len(rows)
        if len(rows) < ADAPTED_PURGE_BATCH:
            return removed


def _delete_media(names: list[str], folder: str | None = None, everything: bool = False) -> None:
    """Delete the files ``names``, then ``folder`` if empty. ``everything`` (erasure): every file in
    ``folder`` too, also files no row names (an upload whose transaction rolled back after its file
    was written)."""
    # runs after commit, best effort: an error here must not skip the other after-commit work (the
    # rebuild hand-off, the index cache); a file left behind is found by photo_files_sweep
    try:
        for name in names:
            if name:
                default_storage.delete(name)
        if folder and everything and default_storage.exists(folder):
            for name in default_storage.listdir(folder)[1]:
                default_storage.delete(f"{folder}/{name}")
        if folder:
            path = Path(settings.MEDIA_ROOT) / folder
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    except OSError as exc:
        log.error("could not delete photo files (%s): %s; the daily purge deletes them", folder or names, exc)


ORPHAN_AGE_S = 3600  # a photo file no row names is deleted once this old (it may be mid-upload)


# the sweep deletes at most this many files, or a tenth of the photos if more: beyond, it refuses
ORPHAN_SWEEP_FLOOR = 50


def photo_files_sweep(*, now: float | None = None, dry_run: bool = False, failed: list[str] | None = None,
                      refused: list[str] | None = None) -> int:
    """Delete the photo files (``faces/<person>/…``) that no photo row names, once an hour old:
    files of an upload whose transaction rolled back (a photo's file is stored before its row
    commits), or that a failed delete left behind (erasure included). Returns how many
    (would be) deleted; the paths it could not delete are appended to ``failed``. Far more such files
    than rolled-back uploads leave are another database's photos: none is deleted, and they are
    appended to ``refused`` (to ``failed`` without it). Run by the daily retention purge.

    From the same listing, marks the photos whose file is not there ``file_missing``, and clears
    the mark of those whose file is back (:func:`_file_missing_mark`; not in a dry run)."""
    if not default_storage.exists("faces"):
        photos = FacePhoto.objects.count()
        if photos:   # every file gone at once: more likely a volume not mounted here than deleted
            log.error("photo sweep: no faces folder in the media storage, for %s: is the media volume mounted "
                      "on this node? (photos not marked file_missing)", counted(photos, "photo"))
        return 0
    # the rows before the listing: a row's file is stored before the row commits, so each file of
    # the rows read is in the listing unless deleted (its row then removed, or a photo to mark)
    rows = list(FacePhoto.objects.order_by("pk").values_list("pk", "image", "file_missing"))
    known = {image for _, image, _ in rows}
    cutoff = (now if now is not None else time.time()) - ORPHAN_AGE_S
    folders, files = default_storage.listdir("faces")
    listed, orphans = {f"faces/{name}" for name in files}, []
    for folder in folders:
        try:
            names = default_storage.listdir(f"faces/{folder}")[1]
        except FileNotFoundError:
            # deleted since "faces" was listed: its person erased meanwhile (their rows went first),
            # or a first upload that failed; a row still naming a file there is marked below
            continue
        for name in names:
            path = f"faces/{folder}/{name}"
            listed.add(path)
            try:
                if path not in known and default_storage.get_modified_time(path).timestamp() < cutoff:
                    orphans.append(path)
            except FileNotFoundError:
                # deleted since its folder was listed: by a sweep beside this one (a cron purge_expired
                # beside beat's), an erasure; nothing left, so no failure ("check the permissions")
                continue
            except OSError as exc:
                log.warning("could not sweep photo file %s: %s", path, exc)
                if failed is not None:
                    failed.append(path)
    if len(orphans) > max(ORPHAN_SWEEP_FLOOR, len(known) // 10):
        # far more than rolled-back uploads leave: this media folder is not this database's (a
        # restore that put the files back before the rows, a node pointed at another database):
        # deleting would lose enrolment photos for good. Nothing is deleted, nor any photo marked
        # file_missing from this listing (the rows' files are in another folder); the purge fails
        log.error("photo sweep refused: %d photo files that no photo row names against %d rows; is "
                  "DATABASE_URL this media folder's database? (docs/deployment.md, Backup and restore)",
                  len(orphans), len(known))
        out = refused if refused is not None else failed
        if out is not None:
            out.extend(orphans)
        return 0
    if not dry_run:
        _file_missing_mark(rows, listed)
    swept = 0
    for path in orphans:
        try:
            if not dry_run:
                default_storage.delete(path)
            swept += 1
        except OSError as exc:
            log.warning("could not sweep photo file %s: %s", path, exc)
            if failed is not None:
                failed.append(path)
    if not dry_run:
        for folder in folders:
            _delete_media([], folder=f"faces/{folder}")  # the folder, once empty
    if swept and not dry_run:
        log.warning("deleted %d photo files that no photo row named", swept)
    return swept


# photo ids one UPDATE names (SQLite's bound parameters), and how many a log line names
_MARK_BATCH, _MARK_NAMED = 500, 20


def _file_missing_mark(rows: list[tuple[int, str, bool]], listed: set[str]) -> None:
    """Mark ``file_missing`` the photos of ``rows`` (id, file name, mark) whose file is not among
    the ``listed`` paths (``faces/…`` as far as the sweep lists it, two levels), and clear the mark
    of those whose file is there; each change logged with the photo ids (a warning for files gone).

    A rebuild marks a photo only when it tries to embed it: one already embedded for the current
    recognizer whose file was then deleted (a disk restore, someone cleaning the media folder) went
    unseen until a new recognizer version needed it, while its thumbnail answered 404 and an export
    of the person's data lacked its file. The sweep lists the folder daily anyway: set differences,
    no stat per photo. The rebuild clears the mark too, when it embeds the photo."""
    walked = [(pk, name, marked) for pk, name, marked in rows if name.startswith("faces/") and name.count("/") <= 2]
    gone = [pk for pk, name, marked in walked if not marked and name not in listed]
    back = [pk for pk, name, marked in walked if marked and name in listed]
    for ids, mark in ((gone, True), (back, False)):
        # conditional: a photo removed, or marked or cleared by a rebuild, meanwhile is not counted
        changed = sum(FacePhoto.objects.filter(pk__in=ids[i:i + _MARK_BATCH], file_missing=not mark)
                      .update(file_missing=mark) for i in range(0, len(ids), _MARK_BATCH))
        if not changed:
            continue
        named = ", ".join(f"#{pk}" for pk in ids[:_MARK_NAMED]) + (", …" if len(ids) > _MARK_NAMED else "")
        if mark:
            log.warning("photo sweep: %s missing from storage (photos %s): restore the files, or remove the photos",
                        counted(changed, "photo file"), named)
        else:
            log.info("photo sweep: %s back in storage (photos %s)", counted(changed, "photo file"), named)

