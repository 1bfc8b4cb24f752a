"""Kiosks (paired devices at the entrance) and check-ins (the attendance record).

Writes go through :mod:`recognition.services`; simple reads are QuerySet methods here.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count
from django.utils import timezone

from audit.admin_filters import distinct_values
from enrollment.models import Person

from .kiosk_text import languages


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a kiosk secret. Secrets are 256-bit random strings, so a fast hash
    is enough (no dictionary to guess from); only digests are stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def kiosk_language_choices() -> list[tuple[str, str]]:
    """The languages a kiosk's screen can speak (:mod:`recognition.kiosk_text`'s catalogs), after the
    blank choice, the site's ``MASKNET_KIOSK_LANGUAGE`` (named, so that the admin sees what blank means).
    A callable: a catalog added to the repository needs no migration."""
    default = languages()[settings.MASKNET_KIOSK_LANGUAGE]
    return [("", f"the site's default: {default}"),
            *((code, f"{name} ({code})") for code, name in languages().items())]


def kiosk_name_key(name: str) -> str:
    """A kiosk's name as names are compared: letter case (in any script) and runs of spaces aside."""
    return " ".join(name.split()).casefold()


class KioskQuerySet(models.QuerySet):
    """Reads of kiosks."""

    def with_name(self, name: str) -> KioskQuerySet:
        """The kiosks named ``name`` as names are compared (:func:`kiosk_name_key`; a site has tens
        of kiosks: compared here, alike on SQLite and PostgreSQL)."""
        key = kiosk_name_key(name)
        return self.filter(pk__in=[pk for pk, other in self.values_list("pk", "name") if kiosk_name_key(other) == key])

    def active(self) -> KioskQuerySet:
        """Kiosks allowed to check people in."""
        return self.filter(active=True)

    def with_device_token(self, token: str | None) -> KioskQuerySet:
        """The active, paired kiosks whose device token is ``token`` (one at most; none for a
        missing or oversized token, without a query)."""
        if not token or len(token) > 200:
            return self.none()
        return self.active().filter(token_hash=token_digest(token))

    def for_device_token(self, token: str | None) -> Kiosk | None:
        """The active, paired kiosk whose device token is ``token`` (``None`` if none)."""
        return self.with_device_token(token).first()

    def for_pairing_code(self, code: str | None) -> Kiosk | None:
        """The active kiosk whose unexpired one-time pairing code is ``code``."""
        if not code or len(code) > 200:
            return None
        return (self.active().filter(pairing_hash=token_digest(code), pairing_expires_at__gt=timezone.now())
                .first())


class Kiosk(models.Model):
    """A screen with a camera at an entrance. It authenticates with a device token (stored here
    only as a SHA-256 digest) that a one-time pairing link puts in a cookie on the device."""

    name = models.CharField(max_length=100, unique=True)
    location = models.CharField(max_length=200, blank=True, help_text="where it stands, e.g. 'Main entrance'")
    site = models.CharField(max_length=100, default="main",
                            help_text="kiosks of one site share the check-in cooldown (one check-in per person "
                                      "per day per site by default)")
    active = models.BooleanField(default=True,
                                 help_text="an inactive kiosk is disconnected at once and cannot check anyone in")
    language = models.CharField(
        max_length=16, blank=True, default="", db_default="", choices=kiosk_language_choices,
        help_text="the language of its screen; the site's default (MASKNET_KIOSK_LANGUAGE) when blank. "
                  "An open screen takes a change within seconds")
    token_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    pairing_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    pairing_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    paired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    # which of two sockets of this kiosk is the newer: counted by the database at each handshake
    # (services.kiosk_connect), so that no web node's clock is compared with another's
    connection_seq = models.PositiveBigIntegerField(
        default=0, db_default=0, editable=False,
        help_text="handshakes of this kiosk's sockets so far: of two open sockets the one with the higher number stays")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = KioskQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("pair_kiosk", "Can pair and revoke kiosks")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A new name must not be another kiosk's written otherwise (letter case, repeated spaces):
        "front  door" beside "Front door" was a second kiosk that staff and ``create_kiosk --new-link``
        took for the first. Names kept from before are left alone until renamed."""
        super().clean()
        before = Kiosk.objects.filter(pk=self.pk).values_list("name", flat=True).first() if self.pk else None
        if not self.name or self.name == before:
            return
        other = Kiosk.objects.exclude(pk=self.pk).with_name(self.name).exclude(name=self.name).first()
        if other is not None:
            raise ValidationError({"name": f"Another kiosk is named “{other.name}”: kiosk names are compared "
                                           "ignoring letter case and repeated spaces."})

    @property
    def paired(self) -> bool:
        """Whether a device holds a valid token for this kiosk."""
        return bool(self.token_hash)

    @property
    def screen_language(self) -> str:
        """The language its screen speaks: its own, else the site's ``MASKNET_KIOSK_LANGUAGE``; the
        site's too for a code this release has no catalog of (set by a newer release, during a rolling
        upgrade or after a rollback): its pages answered 500 for it, the kiosk out of use."""
        return self.language if self.language in languages() else settings.MASKNET_KIOSK_LANGUAGE

    @property
    def group_name(self) -> str:
        """Channel-layer group of this kiosk's open sockets (revocation closes them)."""
        return f"kiosk.{self.pk}"


class CheckInQuerySet(models.QuerySet):
    """Reads of check-ins."""

    def listed(self) -> CheckInQuerySet:
        """Without the snapshot images (8 KB each): for lists, pages and exports, which never show
        them (a day page of 700 check-ins held 6.8 MB); one check-in's page reads its own."""
        return self.defer("snapshot")

    def on_day(self, day: date) -> CheckInQuerySet:
        """Check-ins of one local calendar day (``TIME_ZONE``)."""
        return self.filter(local_date=day)

    def between(self, first: date, last: date) -> CheckInQuerySet:
        """Check-ins from ``first`` to ``last`` (local days, inclusive)."""
        return self.filter(local_date__gte=first, local_date__lte=last)

    def filtered(self, *, date_from: date | None = None, date_to: date | None = None,
                 person: int | None = None, kiosk: int | None = None, site: str | None = None,
                 masked: bool | None = None, after_id: int | None = None, **_ignored) -> CheckInQuerySet:
        """Check-ins matching the attendance/API filters (unset filters match everything).
        ``after_id``: recorded after check-in #after_id (ids grow in the order check-ins are
        recorded, whatever their ``at``: one recorded by hand for an earlier time has a new id)."""
        qs = self
        if after_id is not None:
            qs = qs.filter(pk__gt=after_id)
        if date_from:
            qs = qs.filter(local_date__gte=date_from)
        if date_to:
            qs = qs.filter(local_date__lte=date_to)
        if person:
            qs = qs.filter(person_id=person)
        if kiosk:
            qs = qs.filter(kiosk_id=kiosk)
        if site:
            qs = qs.filter(site=site)
        if masked is not None:
            qs = qs.filter(masked=masked)
        return qs

    def daily_counts(self, first: date, last: date) -> dict[date, int]:
        """People checked in per local day, every day from ``first`` to ``last`` (zeros included)."""
        rows = (self.between(first, last).values("local_date")
                .annotate(n=Count("person", distinct=True)).values_list("local_date", "n"))
        counts = dict(rows)
        return {first + timedelta(days=i): counts.get(first + timedelta(days=i), 0)
                for i in range((last - first).days + 1)}


class CheckIn(models.Model):
    """One person arriving, recognised by a kiosk or recorded by hand by a staff member
    (``source``). At most one per person per cooldown window (``window``), enforced by a unique
    constraint so that concurrent kiosks, and a kiosk and a hand, cannot duplicate."""

    class Source(models.TextChoices):
        KIOSK = "kiosk", "kiosk"
        MANUAL = "manual", "by hand"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="checkins")
    kiosk = models.ForeignKey(Kiosk, null=True, blank=True, on_delete=models.SET_NULL, related_name="checkins")
    site = models.CharField(max_length=100, help_text="the kiosk's site at check-in time")
    at = models.DateTimeField("time", default=timezone.now, db_index=True)
    local_date = models.DateField(db_index=True, help_text="the check-in's day in the site's time zone")
    window = models.CharField(max_length=160, help_text="the site and period this check-in counts for (one per "
                                                        "person each), e.g. 'main|2026-11-30'")
    score = models.FloatField(null=True, blank=True,
                              help_text="mean cosine similarity over the voting frames (none for a check-in by hand)")
    threshold = models.FloatField(null=True, blank=True, help_text="match threshold that was applied")
    masked = models.BooleanField(default=False)
    frames = models.PositiveSmallIntegerField(default=1, help_text="consistent frames that confirmed the identity")
    index_version = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="id of the gallery index version that matched")
    snapshot = models.BinaryField(null=True, blank=True, editable=False,
                                  help_text="aligned face JPEG (only when MASKNET_CHECKIN_SNAPSHOTS is on)")
    # a database default, as Kiosk.language's: the previous release, still serving while migrate
    # runs, inserts check-ins without these columns
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.KIOSK, db_default=Source.KIOSK,
                              help_text="how it was recorded: by a kiosk, or by hand (a staff member, with a reason)")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="the staff user who recorded it by hand")
    reason = models.CharField(max_length=200, blank=True, default="", db_default="",
                              help_text="why it was recorded by hand (e.g. 'not recognised', 'kiosk offline')")

    objects = CheckInQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        get_latest_by = "at"
        verbose_name = "check-in"
        constraints = [models.UniqueConstraint(fields=["person", "window"], name="one_checkin_per_window")]
        # site: for the admin's filter of sites (probes of the index: audit/admin_filters.py; a Meta index
        # rather than db_index, see audit.models.AuditEvent)
        indexes = [models.Index(fields=["local_date", "person"]), models.Index(fields=["site"], name="checkin_site")]

    def __str__(self) -> str:
        # ids, never the name: audit summaries keep this past an erasure of the person (the admin's
        # page names the person: recognition.admin.checkin_page_name); local time (TIME_ZONE), as
        # the admin shows every other time
        return f"check-in #{self.pk} of person #{self.person_id} at {timezone.localtime(self.at):%Y-%m-%d %H:%M}"

    @property
    def manual(self) -> bool:
        """Whether it was recorded by hand (no kiosk decided it: no score, threshold or frames)."""
        return self.source == self.Source.MANUAL


def known_sites() -> list[str]:
    """The sites this site knows of, sorted: those of its kiosks (active or not) and of its check-ins
    (a kiosk deleted or moved since); ``["main"]``, the kiosks' default, before there is any. The
    check-ins' by probes of their site index, not a DISTINCT over every check-in (160 ms for 2
    million on PostgreSQL, 3 ms so), as the check-ins admin's site filter reads them."""
    sites = set(Kiosk.objects.values_list("site", flat=True).order_by()) | set(
        distinct_values(CheckIn.objects.all(), "site", KNOWN_SITES_MAX))
    return sorted(sites) or ["main"]


# the check-ins' sites read at most (one index probe each): a site has a few, not thousands
KNOWN_SITES_MAX = 1000


def default_site(sites: list[str] | None = None) -> str:
    """The site a check-in by hand is at unless another is chosen: ``main``, the kiosks' default,
    where it is one of ``sites`` (:func:`known_sites` unless given), else the first of them."""
    sites = known_sites() if sites is None else sites
    return "main" if "main" in sites else sites[0]
