"""People, their face photos, cached templates, gallery index versions and training runs.

Writes go through :mod:`enrollment.services`; simple reads are QuerySet methods here.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.crypto import salted_hmac

from recognition.engine.errors import EngineError
from recognition.engine.index import Index

from .text import name_key, name_normal, name_words, staff_id_key, staff_id_key_0017

NOTES_MAX = 2000   # characters of free-text notes about a person


class PersonQuerySet(models.QuerySet):
    """Reads of people."""

    def active(self) -> PersonQuerySet:
        """People allowed to check in."""
        return self.filter(active=True)

    def with_staff_id(self, staff_id: str) -> PersonQuerySet:
        """The person whose staff id is ``staff_id`` as staff ids are compared, by their key
        (:func:`enrollment.text.staff_id_key`: letter case, Unicode and full-width forms, invisible
        characters, runs of spaces and dash look-alikes aside), the same on SQLite and PostgreSQL. A
        person that the release before added while ``migrate`` ran has no key yet (NULL): compared by
        their staff id."""
        key = staff_id_key(staff_id)
        unkeyed = [pk for pk, other in self.model.objects.filter(staff_key__isnull=True).values_list("pk", "staff_id")
                   if staff_id_key(other) == key]
        return self.filter(Q(staff_key=key) | Q(pk__in=unkeyed)) if unkeyed else self.filter(staff_key=key)

    def search(self, text: str, *, departments: bool = True) -> PersonQuerySet:
        """Name, staff id or department containing ``text`` (case-insensitive), ``text`` read as
        names are stored (:func:`enrollment.text.name_normal`: NFC, no zero-width spaces), names
        whose key holds each word of its key (accents and order aside: ``chavez hugo`` finds ``Hugo
        Chávez``), and staff ids
        whose key contains its key (``ＺＯＥ-1`` finds ``zoe-1``). ``departments`` false:
        names and staff ids only (for staff shown nothing more of a person, the manual check-in's
        chooser)."""
        text, key = name_normal(text), staff_id_key(text)
        found = Q(full_name__icontains=text) | Q(staff_id__icontains=text) | Q(staff_key__contains=key)
        if folded := name_words(text):
            # "chavez" finds "Hugo Chávez", and so does "chavez hugo": each word of its key in the
            # name's (enrollment.text.name_found tells the same of one name)
            every = Q()
            for word in folded:
                every &= Q(name_key__contains=word)
            found |= every
        return self.filter(found | Q(department__icontains=text) if departments else found)

    def with_photo_stats(self) -> PersonQuerySet:
        """Annotates ``photo_count`` and ``first_photo_id`` (for list thumbnails), each a subquery of the
        person's photos: not a join with every photo grouped by person, which every count of a list and
        every filter's choices (``DISTINCT department``) then computed over all people; a subquery they
        leave out."""
        photos = FacePhoto.objects.filter(person=OuterRef("pk")).order_by()
        count = photos.values("person").annotate(n=Count("pk")).values("n")
        return self.annotate(photo_count=Coalesce(Subquery(count, output_field=models.IntegerField()), 0),
                             # a photo whose file the daily sweep found gone last: its thumbnail is a 404
                             first_photo_id=Subquery(photos.order_by("file_missing", "id").values("id")[:1]))


STAFF_ID_TAKEN = ("Another person has this staff id written otherwise (staff ids are compared ignoring letter case, "
                  "full-width forms, repeated spaces and dashes that look like '-').")


class Person(models.Model):
    """Someone who may check in at a kiosk."""

    full_name = models.CharField(max_length=200)
    staff_id = models.CharField("employee / staff id", max_length=64, unique=True)
    # what decides whether two staff ids are one (enrollment.text.staff_id_key), set by save();
    # NULL only for a person the release before added while migrate ran (its inserts lack it)
    staff_key = models.CharField(max_length=None, unique=True, null=True, editable=False)
    # the name as a search compares it besides itself, without accents (enrollment.text.name_key), set
    # by save(); empty for a person the release before added while migrate ran, until their next save
    name_key = models.CharField(max_length=None, blank=True, default="", db_default="", editable=False)
    department = models.CharField(max_length=120, blank=True, db_index=True)
    active = models.BooleanField(default=True, db_index=True,
                                 help_text="Inactive people stay enrolled but are left out of the index.")
    # when they were deactivated: set by every deactivation (enrollment.services: person_deactivate,
    # person_update, person_create of an inactive person), cleared by a reactivation, which keeps it
    # as a PersonInactivePeriod's start (attendance's past days go by both). NULL for an
    # inactive person means unknown (inactive since before it was recorded, migration 0019, and not
    # found in the audit log): attendance then treats them as it did before, never expected
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # bounded: every people list (500 a page in the API) carries it
    notes = models.TextField(blank=True, max_length=NOTES_MAX, validators=[MaxLengthValidator(NOTES_MAX)])
    # db_default too: during an upgrade the previous release's processes (restarted after migrate)
    # insert people without this column, which NOT NULL alone refused (every new person a 500)
    gallery_adaptation = models.BooleanField(
        default=True, db_default=True,
        help_text="With MASKNET_GALLERY_ADAPT on, a confident unmasked check-in may add a photo; "
                  "off once an administrator stops it or removes such a photo.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["full_name", "id"]
        verbose_name_plural = "people"
        permissions = [
            ("erase_person", "Can erase a person's biometric data"),
            ("export_person", "Can export a person's data (subject access)"),
            ("rebuild_index", "Can rebuild the recognition index"),
            ("recognise_face", "Can identify and verify faces (API)"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.staff_id})"

    def save(self, *args, **kwargs) -> None:
        """Saved with the staff id's key (:attr:`staff_key`) and the name's (:attr:`name_key`), kept
        with every save of named fields too (a key the release before left stale while ``migrate``
        ran is then put right)."""
        self.staff_key = staff_id_key(self.staff_id) or None
        self.name_key = name_key(self.full_name)
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "staff_key", "name_key"}
        super().save(*args, **kwargs)

    def validate_unique(self, exclude: object = None) -> None:
        """Django's checks, and the staff id's by its key (``QA-1`` is ``qa-1`` and ``ＱＡ-1``: one
        person, whom attendance would list twice; the unique :attr:`staff_key` holds it in the
        database, migration 0017), said on the staff id (the key is no field of a form)."""
        errors: dict[str, list] = {}
        try:
            super().validate_unique(exclude={*(exclude or ()), "staff_key"})   # by the staff id, below
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "staff_id" not in (exclude or ()) and "staff_id" not in errors and self.staff_id:
            if Person.objects.with_staff_id(self.staff_id).exclude(pk=self.pk).exists():
                errors["staff_id"] = [ValidationError(STAFF_ID_TAKEN, code="unique")]
        if errors:
            raise ValidationError(errors)


class PersonInactivePeriodQuerySet(models.QuerySet):
    """Reads of past inactive periods."""

    def overlapping(self, start: datetime, end: datetime) -> PersonInactivePeriodQuerySet:
        """The periods with a moment from ``start`` to ``end`` (excluded): ended at or after ``start``,
        begun before ``end`` (or at an unknown time)."""
        return self.filter(Q(deactivated_at__isnull=True) | Q(deactivated_at__lt=end), reactivated_at__gte=start)


class PersonInactivePeriod(models.Model):
    """A time a person was inactive and is no longer: from a deactivation to the reactivation that
    ended it (written by ``enrollment.services.person_update``, the only way back; the current
    deactivation is :attr:`Person.deactivated_at`, which the reactivation clears). Attendance counts
    the person on none of its days (recognition.attendance). Deleted with the person (an erasure)."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="inactive_periods")
    # when it began: the person's deactivated_at then; NULL: unknown (inactive since before dates
    # were recorded, migration 0019), a period since their creation as far as attendance goes
    deactivated_at = models.DateTimeField(null=True, blank=True)
    reactivated_at = models.DateTimeField()

    objects = PersonInactivePeriodQuerySet.as_manager()

    class Meta:
        ordering = ["person", "reactivated_at", "id"]

    def __str__(self) -> str:
        start = self.deactivated_at.isoformat() if self.deactivated_at else "unknown"
        return f"person #{self.person_id} inactive {start} to {self.reactivated_at.isoformat()}"


def inactive_periods_described(person: Person, periods: Iterable[PersonInactivePeriod]) -> list[str]:
    """What the pages show of a person's times inactive, in local days (``TIME_ZONE``): each of
    ``periods`` (theirs, in order) as "3 Mar 2026 – 17 Mar 2026", or "until 17 Mar 2026" when its start
    is unknown; then, when inactive now, "since 20 Mar 2026" ("since an unknown date": NULL
    ``deactivated_at``, migration 0019)."""
    said = [f"{_day(p.deactivated_at)} – {_day(p.reactivated_at)}" if p.deactivated_at else
            f"until {_day(p.reactivated_at)}" for p in periods]
    if not person.active:
        said.append(f"since {_day(person.deactivated_at)}" if person.deactivated_at else "since an unknown date")
    return said


def _day(at: datetime) -> str:
    """``at``'s local day, "3 Mar 2026" (as the attendance pages write days)."""
    return date_filter(timezone.localtime(at), "j M Y")   # the filter, called, converts no time (a template's does)


# the salt of the keyed digests of erased staff ids (and of the site key's fingerprint beside them):
# fixed, since a digest can never be computed again once the staff id is gone; changing it lifts them all
ERASED_STAFF_ID_SALT = "masknet.enrollment.ErasedStaffId"


def site_secrets() -> list[str]:
    """The site's secret keys: ``SECRET_KEY``, then ``SECRET_KEY_FALLBACKS`` (a rotated key kept)."""
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _key_digest(key: str, secret: str | None) -> str:
    return salted_hmac(ERASED_STAFF_ID_SALT, key, secret=secret, algorithm="sha256").hexdigest()


def staff_id_digest(staff_id: str, secret: str | None = None) -> str:
    """The keyed digest of ``staff_id`` kept once its person is erased: HMAC-SHA256 of its key
    (:func:`enrollment.text.staff_id_key`: letter case, full-width forms, spaces and dash look-alikes
    aside) under a key derived from ``secret`` (``SECRET_KEY``). Not reversible, and without the
    secret key no staff id (few and guessable) can be tried against it. 64 hex digits."""
    return _key_digest(staff_id_key(staff_id), secret)


def staff_id_digests(staff_id: str, secrets: Iterable[str]) -> list[str]:
    """The digests an entry of ``staff_id`` may hold: :func:`staff_id_digest` under each of
    ``secrets``, and, where it differs from its key, of its key before enrollment 0020
    (:func:`enrollment.text.staff_id_key_0017`: dashes and a dotted ``İ`` as typed), which the
    erasures before that kept: ``A\u2011100``'s entry then was of ``a\u2010100``, now of ``a-100``."""
    keys = dict.fromkeys((staff_id_key(staff_id), staff_id_key_0017(staff_id)))
    return [_key_digest(key, secret) for secret in secrets for key in keys]


def secret_fingerprint(secret: str | None = None) -> str:
    """Which secret key a digest was made under (16 hex digits; the key cannot be read from it)."""
    return salted_hmac(f"{ERASED_STAFF_ID_SALT}.key", "", secret=secret, algorithm="sha256").hexdigest()[:16]


class ErasedStaffIdQuerySet(models.QuerySet):
    """Reads of erased staff ids."""

    def matching(self, staff_ids: Iterable[str], batch: int = 500) -> dict[str, ErasedStaffId]:
        """Each of ``staff_ids`` whose person was erased (compared by key, its key now or before
        enrollment 0020: :func:`staff_id_digests`, under the site's secret key or one of its
        fallbacks), with its entry (the latest erasure's when there are several)."""
        secrets = site_secrets()
        digests = {digest: sid for sid in dict.fromkeys(staff_ids) for digest in staff_id_digests(sid, secrets)}
        found: dict[str, ErasedStaffId] = {}
        listed = list(digests)
        for start in range(0, len(listed), batch):
            for entry in self.filter(digest__in=listed[start:start + batch]):
                sid = digests[entry.digest]
                if sid not in found or found[sid].erased_at < entry.erased_at:
                    found[sid] = entry
        return found

    def of(self, staff_id: str) -> ErasedStaffIdQuerySet:
        """The entries of ``staff_id`` (under any of the site's secret keys, of its key now or before
        enrollment 0020: :func:`staff_id_digests`)."""
        return self.filter(digest__in=staff_id_digests(staff_id, site_secrets()))

    def unmatched(self) -> ErasedStaffIdQuerySet:
        """Entries made under a secret key the site no longer holds (``SECRET_KEY`` rotated without
        the old one in ``SECRET_KEY_FALLBACKS``): they match no staff id any more."""
        return self.exclude(key_id__in=[secret_fingerprint(secret) for secret in site_secrets()])


class ErasedStaffId(models.Model):
    """The staff id of a person erased at their request, as a keyed digest alone
    (:func:`staff_id_digest`), and when: ``import_people`` skips a folder of that staff id, and the
    admin and the API ask before creating a person of it or giving it to one, so that an erasure is
    not undone by the next import of HR's folder. Kept until an administrator lifts it (deleting the
    row, audited) or the staff id is enrolled again on purpose. No name, no person id."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    # the fingerprint of the secret key the digest was made under (secret_fingerprint): tells the
    # entries a rotated SECRET_KEY no longer matches
    key_id = models.CharField(max_length=16, editable=False)
    erased_at = models.DateTimeField(editable=False)

    objects = ErasedStaffIdQuerySet.as_manager()

    class Meta:
        ordering = ["-erased_at", "-id"]
        verbose_name = "erased staff id"

    def __str__(self) -> str:
        return f"staff id erased on {self.erased_on}"

    @property
    def erased_on(self) -> str:
        """The erasure's date (``TIME_ZONE``), ``2026-03-02``."""
        return f"{timezone.localtime(self.erased_at):%Y-%m-%d}"


def photo_upload_to(photo: FacePhoto, filename: str) -> str:
    """``faces/<person id>/<random>.<ext>``: no names in paths, one folder per person."""
    ext = Path(filename).suffix.lower() or ".jpg"
    return f"faces/{photo.person_id}/{uuid.uuid4().hex}{ext}"


class FacePhotoQuerySet(models.QuerySet):
    """Reads of face photos."""

    def for_index(self) -> FacePhotoQuerySet:
        """Photos of active people (what an index is built from)."""
        return self.filter(person__active=True)

    def missing_templates(self, template_version: str) -> FacePhotoQuerySet:
        """Photos without cached templates for ``template_version``."""
        return self.exclude(templates__template_version=template_version)

    def to_embed(self, template_version: str) -> FacePhotoQuerySet:
        """Photos a rebuild of ``template_version`` embeds: those without its templates, less those
        it failed to embed for a cause of the photo's own (``embed_failed_version``), which would
        fail the same way at every rebuild of that version."""
        return self.missing_templates(template_version).exclude(embed_failed_version=template_version)

    def failed_for(self, template_version: str) -> FacePhotoQuerySet:
        """Photos left out of rebuilds of ``template_version``: it failed to embed them for a cause
        of the photo's own (no face found, an unreadable image, a computation failing on it)."""
        return self.missing_templates(template_version).filter(embed_failed_version=template_version)


class FacePhoto(models.Model):
    """One enrollment photo and what the engine found in it."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "upload"
        WEBCAM = "webcam", "webcam"
        IMPORT = "import", "import"
        CHECKIN = "checkin", "check-in"   # gallery adaptation: a confident check-in's face (settings)

    class Embedding(models.TextChoices):
        PENDING = "pending", "pending"
        EMBEDDED = "embedded", "embedded"
        FAILED = "failed", "failed"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="photos")
    image = models.FileField(upload_to=photo_upload_to, max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    # gallery adaptation: the check-in whose face this is (an id, no key: the check-in may be deleted,
    # and the photo is then the one to look at). Photos kept before 2026-12-07 have none.
    kept_from_checkin = models.PositiveBigIntegerField(null=True, blank=True, db_index=True,
                                                       help_text="the check-in whose face gallery adaptation kept")
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    box = models.JSONField(null=True, blank=True, help_text="detected face [x1, y1, x2, y2] in image pixels")
    quality_score = models.FloatField(null=True, blank=True, help_text="0-1 (1: large, sharp, frontal, well lit)")
    quality_verdict = models.CharField(max_length=20, default="ok", help_text="'ok' or the quality gate's reason")
    masked = models.BooleanField(default=False)
    masked_prob = models.FloatField(null=True, blank=True)
    embedding_state = models.CharField(max_length=10, choices=Embedding.choices, default=Embedding.PENDING)
    embedding_error = models.CharField(max_length=200, blank=True)
    # db_default too (0022, added after 0004 left it out): the previous release's processes, still
    # serving while migrate runs, insert photos without this column
    embed_attempts = models.PositiveSmallIntegerField(
        default=0, db_default=0,
        help_text="embeddings of this photo begun and never finished (the worker stopped during them)")
    # db_default too: a release still serving while the migration runs inserts photos without it
    embed_failed_version = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="the recognizer (template) version that failed to embed this photo for a cause of the photo's own: "
                  "its rebuilds leave the photo out; another version tries it again")
    file_missing = models.BooleanField(
        default=False, db_default=False,
        help_text="no file in storage for this photo when a rebuild last tried to embed it or the daily photo sweep "
                  "last listed the files (deleted from the disk or volume, or the volume not mounted); every rebuild "
                  "tries it again until it is restored or removed; cleared when its file is back")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FacePhotoQuerySet.as_manager()

    class Meta:
        ordering = ["person", "id"]

    def __str__(self) -> str:
        return f"photo #{self.pk} of person #{self.person_id}"


class PhotoTemplates(models.Model):
    """Cached templates of one photo for one template version (model + alignment + mask scheme):
    a rebuild embeds only photos without a row for the current version. Float32 ``NxD`` and
    int8 kinds, raw bytes; deleted with the photo."""

    photo = models.ForeignKey(FacePhoto, on_delete=models.CASCADE, related_name="templates")
    template_version = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    count = models.PositiveIntegerField()
    vectors = models.BinaryField()
    kinds = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "template_version"], name="one_template_set")]
        # a photo's delete confirmation listed "Photo templatess: 1" and "PhotoTemplates object (6)"
        verbose_name = verbose_name_plural = "photo templates"

    def __str__(self) -> str:
        return f"templates of photo #{self.photo_id} ({self.count}, version {self.template_version})"

    @staticmethod
    def unpack(dim: int, count: int, vectors: bytes, kinds: bytes) -> tuple[np.ndarray, np.ndarray]:
        """A row's stored columns as ``(vectors NxD float32, kinds N int8)``; for readers that fetch
        the columns with ``values_list`` rather than whole rows."""
        return (np.frombuffer(bytes(vectors), np.float32).reshape(count, dim),
                np.frombuffer(bytes(kinds), np.int8))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors NxD float32, kinds N int8)``."""
        return self.unpack(self.dim, self.count, self.vectors, self.kinds)


class IndexVersionQuerySet(models.QuerySet):
    """Reads of index versions."""

    def active(self) -> IndexVersionQuerySet:
        """The version kiosks use (at most one row)."""
        return self.filter(is_active=True)

    def current(self) -> IndexVersion | None:
        """The active version, or ``None`` before the first rebuild."""
        return self.active().first()

    def current_id(self) -> int | None:
        """The active version's id (one indexed column: cheap enough to poll)."""
        return self.active().values_list("pk", flat=True).first()


class IndexVersion(models.Model):
    """An immutable gallery index file and its facts. Exactly one version is active."""

    path = models.CharField(max_length=200, unique=True, help_text="file name under MASKNET_INDEX_DIR")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    people_count = models.PositiveIntegerField(default=0)
    photo_count = models.PositiveIntegerField(default=0)
    template_count = models.PositiveIntegerField(default=0)
    dim = models.PositiveIntegerField(default=0)
    model_version = models.CharField(max_length=64, help_text="template version (models, alignment, masks)")
    adapter_version = models.CharField(max_length=64, blank=True, help_text="empty: no embedding adapter")
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    built_by = models.ForeignKey("TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    objects = IndexVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        get_latest_by = "id"
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True),
                                               name="one_active_index")]

    def __str__(self) -> str:
        return f"index v{self.pk}{' (active)' if self.is_active else ''}"

    @property
    def file(self) -> Path:
        """Absolute path of the index file."""
        return Path(settings.MASKNET_INDEX_DIR) / self.path

    @property
    def outdated(self) -> bool:
        """Made by another recognizer version (other models, template scheme or mask head): kiosks
        and the API keep using it until a rebuild replaces it."""
        from .recognizer import template_version

        return self.model_version != template_version()

    def site_thresholds(self) -> dict:
        """The thresholds a probe needs of this version's gallery, beside the engine's
        (:func:`recognition.engine.gallery.site_thresholds`)."""
        from recognition.engine.gallery import site_thresholds

        return site_thresholds((self.metrics or {}).get("thresholds"), people=self.people_count)

    def load(self) -> Index:
        """The :class:`~recognition.engine.index.Index` of this version (cached per process by id;
        treat it as read-only). Raises ``EngineError`` when the file is unreadable or does not match
        the digest recorded when it was written (damaged, replaced or restored from elsewhere)."""
        return _load_index(self.pk, str(self.file), self.sha256)


# only the version in use is kept: a replaced one (an erasure's) leaves memory when the process
# next loads a version, hears index.updated (kiosk sockets) or erases (docs/security.md), and once
# no load asked for it for INDEX_IDLE_S (a process without kiosk sockets, which hears no event: a
# web node that answered an API identify, where an erased person's templates stayed until the
# next identify, for good if none came)
INDEX_IDLE_S = 300.0
_index_lock = threading.Lock()
_index_cached: tuple[tuple[int, str, str], Index] | None = None
_index_used_at = 0.0                           # time.monotonic() of the cached copy's last load
# the copy the idle expiry forgot, while something still holds it (a kiosk socket, which loads only on
# index.updated): answered again rather than read into a second copy beside it; no memory of its own
_index_idle: tuple[tuple[int, str, str], weakref.ref] | None = None
_index_reaper: threading.Thread | None = None
# loads in flight (token -> version id); a clear marks those of other versions than the one it
# keeps: such a load (maybe the replaced version) returns what it read but does not cache it
_index_loading: dict[int, int] = {}
_index_cancelled: set[int] = set()
_index_tokens = itertools.count()
# the load of each version in flight: a load of the same version meanwhile waits for it and answers
# the same copy (kiosk sockets loading at one moment, on connecting or on index.updated, each read
# their own 30 MB copy at 20,000 people and kept it until the next version: a memory review)
_index_pending: dict[tuple[int, str, str], Future] = {}


def _load_index(version_id: int, path: str, sha256: str) -> Index:
    global _index_cached, _index_used_at, _index_idle
    key = (version_id, path, sha256)
    with _index_lock:
        held = _index_idle[1]() if _index_idle is not None and _index_idle[0] == key else None
        if held is not None:
            _index_cached, _index_idle = (key, held), None
        if _index_cached is not None and _index_cached[0] == key:
            _index_used_at = time.monotonic()
            return _index_cached[1]
        pending = _index_pending.get(key)
        if pending is None:
            # another version (replaced, maybe with an erased person's templates) goes now: not only
            # once this one is read, and also when this one cannot be
            _index_cached = _index_idle = None
            token = next(_index_tokens)
            _index_loading[token] = version_id
            _index_pending[key] = loading = Future()
    if pending is not None:
        return pending.result()   # the same copy, or the same EngineError
    try:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read index {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise EngineError(f"index {path} does not match the digest recorded for version {version_id}")
        index = Index.load(Path(path), data)   # the bytes checked, not the file read again
        with _index_lock:
            if token not in _index_cancelled:
                _index_cached, _index_used_at = (key, index), time.monotonic()
                _index_reaper_start()
        loading.set_result(index)
        return index
    except BaseException as exc:
        loading.set_exception(exc)
        raise
    finally:
        with _index_lock:
            _index_loading.pop(token, None)
            _index_cancelled.discard(token)
            if _index_pending.get(key) is loading:
                del _index_pending[key]
        # a failed read's future holds its exception, whose traceback holds this frame and the bytes
        # read (30 MB at 20,000 people): a cycle left for the collector, not freed with the exception
        loading = data = None


def index_cache_expire(now: float | None = None) -> bool:
    """Forget the loaded index when no load asked for it for :data:`INDEX_IDLE_S` (``now``:
    ``time.monotonic()``'s); whether it was forgotten. A kiosk socket keeps its own reference (it
    drops it on hearing ``index.updated``, and a later load of the version answers that copy while
    one holds it); a later load once none does reads the file again."""
    global _index_cached, _index_idle
    now = time.monotonic() if now is None else now
    with _index_lock:
        if _index_cached is None or now - _index_used_at < INDEX_IDLE_S:
            return False
        _index_idle = (_index_cached[0], weakref.ref(_index_cached[1]))
        _index_cached = None
        return True


def _index_reaper_start() -> None:
    """Start, once per process (under ``_index_lock``), the thread that calls
    :func:`index_cache_expire` every tenth of :data:`INDEX_IDLE_S`."""
    global _index_reaper
    if _index_reaper is not None and _index_reaper.is_alive():
        return

    def reap() -> None:
        while True:
            time.sleep(INDEX_IDLE_S / 10)
            index_cache_expire()

    _index_reaper = threading.Thread(target=reap, name="masknet-index-expiry", daemon=True)
    _index_reaper.start()


def index_cache_clear(keep: int | None = None) -> None:
    """Forget the loaded index (after an erasure, so no old templates stay in memory); ``keep``:
    unless it is that version (every kiosk socket hears of a new version, and those that hear it
    after another socket loaded it must not make the process read it again)."""
    global _index_cached, _index_idle
    with _index_lock:
        _index_cancelled.update(token for token, loading in _index_loading.items() if keep is None or loading != keep)
        # and a load from now on reads anew, not joining a read begun before (the file maybe deleted
        # since, the copy holding an erased person's templates: a review); those that joined keep theirs
        for key in [key for key in _index_pending if keep is None or key[0] != keep]:
            del _index_pending[key]
        if _index_cached is not None and (keep is None or _index_cached[0][0] != keep):
            _index_cached = None
        if _index_idle is not None and (keep is None or _index_idle[0][0] != keep):
            _index_idle = None


class TrainingRunQuerySet(models.QuerySet):
    """Reads of training runs."""

    def queued(self) -> TrainingRunQuerySet:
        """Runs waiting to start."""
        return self.filter(state=TrainingRun.State.QUEUED)

    def running(self) -> TrainingRunQuerySet:
        """Runs in progress (or killed without a chance to say so: see :meth:`alive`)."""
        return self.filter(state=TrainingRun.State.RUNNING)

    def alive(self, stale_after: timedelta | None = None) -> TrainingRunQuerySet:
        """Running runs whose heartbeat is recent (a killed worker stops beating); ``stale_after``
        defaults to ``MASKNET_REBUILD_STALE_S``."""
        if stale_after is None:
            stale_after = timedelta(seconds=settings.MASKNET_REBUILD_STALE_S)
        return self.running().filter(heartbeat_at__gte=timezone.now() - stale_after)


class TrainingRun(models.Model):
    """One index rebuild: queued by changes (debounced), claimed and run by a worker."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    reason = models.CharField(max_length=200, blank=True, help_text="what asked for the rebuild")
    requests = models.PositiveIntegerField(default=1, help_text="changes folded into this run (debouncing)")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    requested_at = models.DateTimeField(default=timezone.now, help_text="last change that asked for it")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # a photo was removed (its request joined or made this run, which is therefore claimed after the
    # removal committed): every version built by an earlier run holds the photo's templates
    drops_older = models.BooleanField(default=False, db_default=False,
                                      help_text="a photo removal asked for it: older versions are not kept")
    index_version = models.ForeignKey(IndexVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    stats = models.JSONField(default=dict, blank=True)

    objects = TrainingRunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"training run #{self.pk} ({self.state})"
