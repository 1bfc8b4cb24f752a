"""Every write of the recognition app: kiosks (create, pair, revoke, update), check-ins (a kiosk's,
and those recorded by hand) and retention (the daily purge of expired snapshots, decision and login
records).

Functions are ``<entity>_<action>`` with keyword-only, typed arguments. Every decision a kiosk
makes (accepted, rejected as unknown, rejected for quality) is written to the audit log with
scores only: no names, no images.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import PURGE_BATCH, audit_decisions_purge, audit_record
from enrollment import events
from enrollment.models import FacePhoto, Person
from enrollment.services import adapted_photos_purge, index_files_sweep, photo_files_sweep
from enrollment.services.common import counted
from masknet_site.settings.base import RETENTION_DAYS_MAX, checkin_cooldown_minutes
from masknet_site.unique import save_unique

from .models import CheckIn, Kiosk, known_sites, token_digest

log = logging.getLogger(__name__)

Action = AuditEvent.Action
# Audit actions of kiosk decisions (also listed in the audit app's Action choices).
CHECKIN_ACCEPTED = "checkin_accepted"
CHECKIN_UNKNOWN = "checkin_unknown"
CHECKIN_QUALITY = "checkin_quality"

KIOSK_REVOKED = "kiosk.revoked"  # channel-layer message type: close the kiosk's sockets


def _token() -> str:
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------------------------
# kiosks


class KioskInactive(ValueError):
    """A pairing link was asked for a kiosk that is not active (it could never be used)."""


class KioskRevoked(Exception):
    """The kiosk was revoked, paired again, deactivated or deleted since its socket opened: it
    records no check-in (the socket closes as revoked)."""


def _kiosk_text(**fields: str | None) -> dict[str, str | None]:
    """A kiosk's text fields as stored: without spaces at their ends, as the admin's and the API's
    forms send them, for every other caller too (``None``, unchanged, kept). A name of spaces alone
    is then blank, which the model's validation refuses."""
    return {name: value if value is None else value.strip() for name, value in fields.items()}


def kiosk_create(*, actor: object | None, name: str, location: str = "", site: str = "main",
                 active: bool = True, with_link: bool = True, language: str = "") -> tuple[Kiosk, str | None]:
    """Create a kiosk and, when it is active and ``with_link``, its first one-time pairing code;
    returns ``(kiosk, code)``. The code is shown once (see :func:`pairing_path`); only its digest
    is stored. ``language``: its screen's (blank: the site's ``MASKNET_KIOSK_LANGUAGE``)."""
    kiosk = Kiosk(**_kiosk_text(name=name, location=location, site=site or "main", language=language or ""),
                  active=active)
    kiosk.full_clean()
    code = _token() if active and with_link else None
    if code:
        kiosk.pairing_hash = token_digest(code)
        kiosk.pairing_expires_at = timezone.now() + timedelta(seconds=settings.MASKNET_KIOSK_PAIRING_TTL_S)
    # the language only where one was chosen (blank follows the site's default)
    chosen = f", language {kiosk.language}" if kiosk.language else ""
    with transaction.atomic():
        save_unique(kiosk, "name")
        audit_record(actor=actor, action=Action.CREATE, obj=kiosk,
                     summary=f"created kiosk #{kiosk.pk} (site {kiosk.site}{chosen})"
                             f"{' with a pairing link' if code else '' if active else ', inactive'}")
    return kiosk, code


def kiosk_pairing_issue(*, kiosk: Kiosk, actor: object | None) -> str:
    """A new one-time pairing code for ``kiosk`` (any earlier unused code stops working). The
    device paired now keeps working until the new code is used. Raises :class:`KioskInactive` for
    an inactive kiosk."""
    code = _token()
    with transaction.atomic():
        if not Kiosk.objects.select_for_update().filter(pk=kiosk.pk, active=True).exists():
            raise KioskInactive(f"kiosk “{kiosk.name}” is inactive: activate it before pairing a device")
        Kiosk.objects.filter(pk=kiosk.pk).update(
            pairing_hash=token_digest(code),
            pairing_expires_at=timezone.now() + timedelta(seconds=settings.MASKNET_KIOSK_PAIRING_TTL_S))
        audit_record(actor=actor, action=Action.UPDATE, obj=kiosk,
                     summary=f"issued a pairing link for kiosk #{kiosk.pk}")
    kiosk.refresh_from_db()
    return code


def kiosk_pair(*, code: str) -> tuple[Kiosk, str] | None:
    """Use a pairing code: the kiosk gets a new device token (returned once, for the device's
    cookie) and the code is spent. A device paired before is disconnected. ``None`` when the
    code is unknown, used or expired, or the kiosk is inactive."""
    kiosk = Kiosk.objects.for_pairing_code(code)
    if kiosk is None:
        return None
    token = _token()
    with transaction.atomic():
        # the filter on the code's digest makes the code single-use even under concurrency
        spent = Kiosk.objects.filter(pk=kiosk.pk, pairing_hash=token_digest(code), active=True).update(
            pairing_hash="", pairing_expires_at=None, token_hash=token_digest(token), paired_at=timezone.now())
        if spent != 1:
            return None
        audit_record(actor=None, action=Action.UPDATE, obj=kiosk, summary=f"paired a device with kiosk #{kiosk.pk}")
        _recheck_on_commit(kiosk)  # a device paired before loses its socket (its token is void)
    kiosk.refresh_from_db()
    return kiosk, token


def kiosk_unpair(*, kiosk: Kiosk, actor: object | None, note: str = "") -> bool:
    """Unpair the kiosk's device: its token and any unused pairing link stop working and its open
    socket is closed at once. The kiosk stays, ready for a new pairing link; ``kiosk`` is refreshed.
    ``note``, if given, ends the audit record's summary.

    Returns whether a device was paired. Only then is "revoked the device" audited; a kiosk with
    just an unused link has the link's voiding audited, and one with neither is left untouched
    (no audit row for a revocation that did not happen)."""
    with transaction.atomic():
        # read under the row's lock: a device paired meanwhile is revoked and reported
        row = (Kiosk.objects.select_for_update().filter(pk=kiosk.pk)
               .values("token_hash", "pairing_hash").first())
        had_device, had_link = bool(row and row["token_hash"]), bool(row and row["pairing_hash"])
        if had_device or had_link:
            _unpair(kiosk)
            done = (f"revoked the device of kiosk #{kiosk.pk}" if had_device
                    else f"voided the unused pairing link of kiosk #{kiosk.pk} (no device was paired)")
            audit_record(actor=actor, action=Action.DEACTIVATE, obj=kiosk, summary=done + (f"; {note}" if note else ""))
            _recheck_on_commit(kiosk)
    kiosk.refresh_from_db()
    return had_device


def kiosk_revoke(*, kiosk: Kiosk, actor: object | None) -> Kiosk:
    """:func:`kiosk_unpair`, returning the refreshed kiosk (for callers that show it, e.g. the API);
    callers that report the outcome use :func:`kiosk_unpair`, which says whether a device was paired."""
    kiosk_unpair(kiosk=kiosk, actor=actor)
    return kiosk


def kiosk_update(*, kiosk: Kiosk, actor: object | None, name: str | None = None, location: str | None = None,
                 site: str | None = None, active: bool | None = None, language: str | None = None,
                 note: str = "") -> Kiosk:
    """Change the given fields (``None``: unchanged); an open socket of the kiosk takes a new site
    at once (its next check-in), its page a new name, location or language at once too. Deactivating
    disconnects the kiosk at once and unpairs it as :func:`kiosk_revoke` does (its device token and
    any unused link are void, so activating it again needs a new pairing). ``note``, if given, ends
    the audit record's summary. Text is trimmed as :func:`kiosk_create` trims it (the same text with
    spaces at its ends is no change); a blank name, or another refused value, raises Django's
    ``ValidationError`` and changes nothing."""
    new = {**_kiosk_text(name=name, location=location, site=site, language=language), "active": active}
    with transaction.atomic():
        # compared with the row as it is, locked: a change committed since it was read stays
        stored = Kiosk.objects.select_for_update().get(pk=kiosk.pk)
        changed = [k for k, v in new.items() if v is not None and getattr(stored, k) != v]
        if not changed:
            return kiosk
        for k in changed:
            setattr(kiosk, k, new[k])
        kiosk.full_clean()
        save_unique(kiosk, "name", update_fields=changed)
        summary = f"updated kiosk #{kiosk.pk}: {', '.join(changed)}" + (f"; {note}" if note else "")
        if "active" in changed and not kiosk.active:
            # a deactivation (and the revocation it is), not a mere edit: recorded as the revoke
            # action's is, so that the log's "deactivate" entries list every one
            device = "revoked its device" if stored.token_hash else "no device was paired"
            audit_record(actor=actor, action=Action.DEACTIVATE, obj=kiosk,
                         summary=f"deactivated kiosk #{kiosk.pk} ({device}); {summary}"[:300])
            _unpair(kiosk)
        else:
            audit_record(actor=actor, action=Action.UPDATE, obj=kiosk,
                         summary=summary + ("; reactivated" if "active" in changed else ""))
        # an open socket would otherwise record check-ins at the old site until its periodic recheck
        _recheck_on_commit(kiosk)
    if "active" in changed and not kiosk.active:
        kiosk.refresh_from_db()
    return kiosk


def kiosk_delete(*, kiosk: Kiosk, actor: object | None, note: str = "") -> None:
    """Delete a kiosk (its check-ins stay, without the kiosk) and close its socket now (``note``, if
    given, ends the audit record's summary)."""
    pk, group = kiosk.pk, kiosk.group_name
    with transaction.atomic():
        # locked first: a check-in being recorded at it commits before (and its row is then set
        # free of the kiosk with the others); deleted meanwhile by someone else, nothing is recorded
        if not Kiosk.objects.select_for_update().filter(pk=pk).exists():
            return
        kiosk.delete()
        audit_record(actor=actor, action=Action.DELETE, object_type="recognition.kiosk", object_id=pk,
                     summary=f"deleted kiosk #{pk}" + (f"; {note}" if note else ""))
        transaction.on_commit(lambda: events.publish(group, {"type": KIOSK_REVOKED}))


def kiosk_connect(*, token: str | None) -> Kiosk | None:
    """A socket's handshake: the active, paired kiosk whose device token is ``token`` (``None`` if
    none), seen now (``last_seen_at``) and with its ``connection_seq`` one higher, as returned.

    The number orders the kiosk's sockets (of two, the higher stays) by when their handshakes
    reached the database, whichever web node took them and whatever its clock says: one
    ``UPDATE ... SET connection_seq = connection_seq + 1`` read back in the same transaction (the
    row stays locked until it commits, so no other handshake takes the same number). An unknown
    token writes nothing and opens no transaction: it is looked up first, so a flood of handshakes
    with made-up cookies does not take SQLite's write lock (transactions begin ``IMMEDIATE``)."""
    if not Kiosk.objects.with_device_token(token).exists():
        return None
    with transaction.atomic():
        taken = Kiosk.objects.with_device_token(token).update(
            connection_seq=F("connection_seq") + 1, last_seen_at=timezone.now())
        return Kiosk.objects.for_device_token(token) if taken else None


def kiosk_seen(*, kiosk_id: int) -> None:
    """Record that the kiosk is connected now (``last_seen_at``)."""
    Kiosk.objects.filter(pk=kiosk_id).update(last_seen_at=timezone.now())


def _unpair(kiosk: Kiosk) -> None:
    """Void the kiosk's device token and any unused pairing link."""
    Kiosk.objects.filter(pk=kiosk.pk).update(token_hash="", pairing_hash="", pairing_expires_at=None, paired_at=None)


def _recheck_on_commit(kiosk: Kiosk) -> None:
    """After commit, the kiosk's open sockets read its row again: one whose token no longer opens
    an active kiosk closes, the others go on with the row as it is now (a new site applies to the
    next check-in; the page shows a new name or location at once: a ``kiosk`` message)."""
    group = kiosk.group_name
    transaction.on_commit(lambda: events.publish(group, {"type": KIOSK_REVOKED}))


def pairing_path(code: str) -> str:
    """The site-relative URL of a pairing code (``/kiosk/pair/<code>/``)."""
    from django.urls import reverse

    return reverse("kiosk-pair", kwargs={"code": code})


# --------------------------------------------------------------------------------------------
# check-ins


def cooldown_window(*, site: str, at: datetime) -> tuple[str, date]:
    """``(window key, local date)`` of a check-in at ``at`` on ``site`` under
    ``MASKNET_CHECKIN_COOLDOWN``: ``"day"`` (one per calendar day of ``TIME_ZONE``) or a number of
    minutes (fixed windows counted from local midnight, on the wall clock: a window never spans two
    days, or a check-in the evening before would hide today's from the attendance list; 1440 or more
    is one window a day)."""
    local = timezone.localtime(at)
    minutes = checkin_cooldown_minutes(settings.MASKNET_CHECKIN_COOLDOWN)   # ImproperlyConfigured if unreadable
    if minutes is None:
        return f"{site}|{local.date().isoformat()}", local.date()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # same tzinfo on both sides: the difference is wall-clock time (a DST day keeps its windows)
    slot = int((local - midnight).total_seconds()) // (min(minutes, 1440) * 60)
    # a window within the hour an autumn clock change repeats is a window of its own the second time
    # round (one key for both made it twice N minutes: an arrival an hour later was "already checked
    # in"); a window reaching outside that hour is one window that lasts an hour longer (a key of
    # its own for its repeated part let a person already checked in in it check in again)
    again = "|2nd" if local.fold and minutes < 1440 and _within_repeated_hour(midnight, slot, minutes) else ""
    return f"{site}|{minutes}m|{local.date().isoformat()}|{slot}{again}", local.date()


def _within_repeated_hour(midnight: datetime, slot: int, minutes: int) -> bool:
    """Whether the wall-clock window ``slot`` of ``minutes`` counted from ``midnight`` lies wholly in
    the time an autumn clock change repeats (its first and last instants both happen twice). The
    day's last window ends at midnight (a window never spans two days): in a zone whose clocks go
    back at midnight (Santiago, Cairo) it can lie wholly in the repeated hour."""
    day = midnight.replace(tzinfo=None)
    start = day + timedelta(minutes=slot * minutes)
    last = min(start + timedelta(minutes=minutes), day + timedelta(days=1)) - timedelta(microseconds=1)
    return all(wall_time_occurs(t, midnight.tzinfo) == 2 for t in (start, last))


def wall_time_occurs(naive: datetime, zone: tzinfo) -> int:
    """How many times the wall-clock time ``naive`` happens in ``zone``: 0 in the hour the clocks skip
    (01:30 on the night they go forward), 2 in the hour they go back over, else 1. The hand check-in's
    form and API read a time without an offset by it."""
    try:
        times = {naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
        return sum(t.astimezone(zone).replace(tzinfo=None) == naive for t in times)
    except OverflowError:   # the calendar's first or last hours, off UTC: no clock change there
        return 1


def cooldown_period() -> str:
    """What one cooldown window is called to staff: ``"day"`` (``MASKNET_CHECKIN_COOLDOWN=day``), else ``"period"``."""
    return "day" if checkin_cooldown_minutes(settings.MASKNET_CHECKIN_COOLDOWN) is None else "period"


@dataclass(frozen=True)
class CheckInOutcome:
    """What :func:`checkin_record` did. ``checkin``: the new row, or the person's existing one in
    this cooldown window; ``created``: False when they were already checked in."""

    checkin: CheckIn
    created: bool

    @property
    def first_name(self) -> str:
        """The first word of their full name."""
        return (self.checkin.person.full_name.split() or [""])[0]

    @property
    def greeting_name(self) -> str:
        """The name the kiosk greets them with (``MASKNET_KIOSK_GREETING``: full, or first)."""
        return self.first_name if settings.MASKNET_KIOSK_GREETING == "first" else self.checkin.person.full_name.strip()


def checkin_record(*, person_id: int, kiosk: Kiosk, score: float, threshold: float | None, masked: bool,
                   frames: int, index_version: int | None, snapshot: bytes | None = None,
                   at: datetime | None = None) -> CheckInOutcome | None:
    """Check a recognised person in, once per cooldown window (the database's unique constraint
    decides between concurrent kiosks), and audit the accepted decision.

    ``snapshot`` (an aligned face JPEG) is stored only when ``MASKNET_CHECKIN_SNAPSHOTS`` is on.
    Returns ``None`` when the person no longer exists or is inactive (the kiosk's index is older
    than the change); the caller treats the face as unknown. Raises :class:`KioskRevoked` when
    ``kiosk`` (the socket's row, as read at its last check) no longer opens with its token.

    The kiosk's and the person's rows are locked for the transaction, kiosk first: a revocation,
    deletion or erasure committed meanwhile is seen here (a socket hears of it only when the
    message or its periodic recheck arrives), and one that comes later waits for this check-in and
    then finds it (a deletion's cascade would otherwise miss it and fail on its foreign key).
    """
    at = at or timezone.now()
    keep = snapshot if settings.MASKNET_CHECKIN_SNAPSHOTS and snapshot else None
    facts = (f"score {score:.3f}" + (f" (threshold {threshold:.3f})" if threshold is not None else "")
             + f", {'masked' if masked else 'unmasked'}, {frames} frames, index v{index_version}")
    with transaction.atomic():
        live = (Kiosk.objects.select_for_update(no_key=True).active()
                .filter(pk=kiosk.pk, token_hash=kiosk.token_hash).first())
        if live is None:
            raise KioskRevoked(f"kiosk #{kiosk.pk} no longer opens with this socket's token")
        kiosk = live
        person = Person.objects.select_for_update(no_key=True).active().filter(pk=person_id).first()
        if person is None:
            return None
        window, local_date = cooldown_window(site=kiosk.site, at=at)
        for _ in range(3):
            try:
                with transaction.atomic():
                    checkin = CheckIn.objects.create(
                        person=person, kiosk=kiosk, site=kiosk.site, at=at, local_date=local_date, window=window,
                        score=score, threshold=threshold, masked=masked, frames=frames,
                        index_version=index_version, snapshot=keep)
                created = True
                break
            except IntegrityError:
                # the window's check-in exists; deleted meanwhile (an administrator's correction,
                # the retention purge), it is recorded anew
                checkin = CheckIn.objects.select_related("person").filter(person=person, window=window).first()
                created = False
                if checkin is not None:
                    break
        else:
            raise IntegrityError(f"check-in of person #{person.pk} neither recorded nor found")
        what = (f"checked in (check-in #{checkin.pk})" if created
                else f"already checked in (check-in #{checkin.pk})")
        audit_record(actor=None, action=CHECKIN_ACCEPTED, obj=kiosk,
                     summary=f"accepted person #{person.pk} at kiosk #{kiosk.pk}: {what}; {facts}"
                             + ("; snapshot kept" if created and keep else ""))
    checkin.person = person
    return CheckInOutcome(checkin, created)


# how far back a check-in may be recorded by hand, in local days (today and the 31 before it):
# a correction of this month's attendance, not a rewrite of its history
MANUAL_CHECKIN_MAX_DAYS = 31
MANUAL_REASON_MAX = 200   # characters of the reason (CheckIn.reason)
# a time this little ahead of the server's clock is taken as now: a badge reader or an HR tool whose
# clock runs a few seconds ahead of the server's sends "now" in the server's future
MANUAL_CLOCK_SKEW = timedelta(minutes=1)


def _refusal(cls: type[CheckInRefused], message: str, state: dict) -> CheckInRefused:
    """A pickled refusal rebuilt (:meth:`CheckInRefused.__reduce__`): its message and attributes,
    without its constructor, whose arguments (a person) the message no longer holds."""
    refusal = cls.__new__(cls)
    ValueError.__init__(refusal, message)
    refusal.__dict__.update(state)
    return refusal


class CheckInRefused(ValueError):
    """A check-in by hand that was not recorded. ``field``: the input at fault (``None``: the
    whole request); ``code``: a stable word for the API. The message names ids only."""

    field: str | None = None
    code = "refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field

    def __reduce__(self) -> tuple:
        # pickle would call the class with the message alone: a refusal built from a person (or
        # given a field) would fail to unpickle, or lose its field, crossing a process
        return _refusal, (type(self), str(self), dict(self.__dict__))

    @property
    def sentence(self) -> str:
        """The message as a sentence, for people: "The time is in the future: …"."""
        return self._as_sentence(str(self))

    @staticmethod
    def _as_sentence(words: str) -> str:
        return words[:1].upper() + words[1:] + "."


class CheckInPersonInactive(CheckInRefused):
    """The person is inactive: nobody checks them in, a kiosk or a hand, until they are reactivated."""

    field, code = "person", "person_inactive"


class CheckInTimeRefused(CheckInRefused):
    """The time is in the future, or more than :data:`MANUAL_CHECKIN_MAX_DAYS` days back."""

    field, code = "at", "time_refused"


class CheckInExists(CheckInRefused):
    """The person already has a check-in in that cooldown window (``checkin``: that one)."""

    code = "already_checked_in"

    def __init__(self, message: str, *, checkin: CheckIn) -> None:
        super().__init__(message)
        self.checkin = checkin


class CheckInContended(CheckInRefused):
    """The window's check-in was there at each insert and gone when looked for (check-ins of the
    person recorded and deleted meanwhile, twice): nothing recorded, and recording again may work.
    The message names the person by id (the API's detail, the logs); :meth:`naming` words it for a
    page that names them."""

    code = "try_again"
    WORDS = "the check-ins of {person} changed twice while this one was being recorded: record it again"

    def __init__(self, person: Person) -> None:
        super().__init__(self.WORDS.format(person=f"person #{person.pk}"))

    def naming(self, person: Person) -> str:
        """The refusal as a sentence (as :attr:`sentence`), ``person`` named as ``str()`` names them
        (name and staff id) where the message has their id."""
        return self._as_sentence(self.WORDS.format(person=person))


def checkin_manual_refusals(*, at: datetime, site: str, reason: str,
                            now: datetime | None = None) -> list[CheckInRefused]:
    """Every reason a check-in by hand at ``at`` cannot be recorded that is known before any row is
    read, at most one per input (the time, the reason, the site), in the order
    :func:`checkin_record_manual` raises them (which raises the first); empty: these pass. For a form
    that shows them all at once: no reason and a time in the future were one submit each."""
    now = now or timezone.now()
    reason, site = reason.strip(), site.strip()
    refusals: list[CheckInRefused] = []
    earliest = timezone.localdate(now) - timedelta(days=MANUAL_CHECKIN_MAX_DAYS)
    if at > now + MANUAL_CLOCK_SKEW:
        refusals.append(CheckInTimeRefused("the time is in the future: record a check-in once the person has "
                                           "arrived"))
    elif timezone.localdate(at) < earliest:
        refusals.append(CheckInTimeRefused(f"check-ins by hand go back at most {MANUAL_CHECKIN_MAX_DAYS} days "
                                           f"(to {earliest.isoformat()})"))
    if not reason:
        refusals.append(CheckInRefused("give the reason it is recorded by hand", field="reason"))
    elif len(reason) > MANUAL_REASON_MAX:
        refusals.append(CheckInRefused(f"the reason is longer than {MANUAL_REASON_MAX} characters", field="reason"))
    sites = known_sites()
    if site not in sites:
        refusals.append(CheckInRefused(f"no kiosk or check-in has the site {site[:100]!r}: choose one of "
                                       f"{', '.join(sites)}", field="site"))
    return refusals


def checkin_record_manual(*, person: Person, at: datetime, site: str, reason: str, actor: object,
                          now: datetime | None = None) -> CheckIn:
    """Record by hand that ``person`` arrived at ``at`` at ``site`` (their face was not recognised,
    the kiosk was offline, they came in by another door), for ``reason``, by the staff user
    ``actor``; audited as ``checkin_manual`` (ids, the site, the time and the reason's length: the
    reason, free text that may name someone, stays on the check-in, which an erasure deletes).

    The row has no kiosk, score, threshold or frames (no vote decided it) and counts in the cooldown
    window as a kiosk's does: a kiosk seeing them later answers "already checked in". Raises
    :class:`CheckInPersonInactive`, :class:`CheckInTimeRefused` (in the future, or more than
    :data:`MANUAL_CHECKIN_MAX_DAYS` local days back), :class:`CheckInExists` (one in that window
    already), :class:`CheckInContended` (one there at each of two tries, gone when looked for) or
    :class:`CheckInRefused` (no reason, one too long, an unknown site)."""
    now = now or timezone.now()
    reason, site = reason.strip(), site.strip()
    refusals = checkin_manual_refusals(at=at, now=now, site=site, reason=reason)
    if refusals:
        raise refusals[0]
    at = min(at, now)   # never recorded in the future (MANUAL_CLOCK_SKEW)
    window, local_date = cooldown_window(site=site, at=at)
    with transaction.atomic():
        # locked as a kiosk's check-in locks it: a deactivation or erasure committed meanwhile is seen
        locked = Person.objects.select_for_update(no_key=True).filter(pk=person.pk).first()
        if locked is None:
            raise CheckInRefused(f"person #{person.pk} no longer exists (erased)", field="person")
        if not locked.active:
            raise CheckInPersonInactive(f"person #{person.pk} is inactive: reactivate them to check them in")
        for _ in range(2):
            try:
                with transaction.atomic():
                    checkin = CheckIn.objects.create(
                        person=locked, kiosk=None, site=site, at=at, local_date=local_date, window=window,
                        score=None, threshold=None, masked=False, frames=0, index_version=None,
                        source=CheckIn.Source.MANUAL, recorded_by=actor if getattr(actor, "pk", None) else None,
                        reason=reason)
                break
            except IntegrityError:
                existing = CheckIn.objects.select_related("kiosk").filter(person=locked, window=window).first()
                if existing is not None:
                    raise CheckInExists(f"person #{person.pk} is already checked in at site {site} for that "
                                        f"{cooldown_period()} (check-in #{existing.pk}, "
                                        f"{timezone.localtime(existing.at):%Y-%m-%d %H:%M})",
                                        checkin=existing) from None
                # the check-in it met was deleted since (an administrator's correction, the retention
                # purge): tried once more, as a kiosk's is (it was a 500)
        else:
            raise CheckInContended(person)
        audit_record(actor=actor, action=Action.CHECKIN_MANUAL, obj=checkin,
                     summary=f"recorded check-in #{checkin.pk} of person #{locked.pk} by hand at site {site} for "
                             f"{timezone.localtime(at):%Y-%m-%d %H:%M}; reason of {len(reason)} characters")
    checkin.person = locked
    return checkin


def checkin_delete(*, checkin: CheckIn, actor: object | None, note: str = "") -> FacePhoto | None:
    """Delete a check-in (a correction by an administrator), audited as "deleted check-in #id of
    person #id": by ids alone, as every record, and with the person's, so that their data export
    (``audit.csv``, which finds records by "person #id") shows it next to the check-in's acceptance.
    ``note`` ends the summary (a deletion applied again after a restore says so). Returns the photo
    gallery adaptation kept from its face, if there is one: a check-in deleted because someone else
    was recognised as the person left that face among the person's photos, and the caller tells the
    administrator (removing it is theirs to decide: a check-in deleted for another cause, a test or a
    duplicate, may have kept a good photo)."""
    pk, person_id = checkin.pk, checkin.person_id
    with transaction.atomic():
        if not CheckIn.objects.select_for_update().filter(pk=pk).exists():
            return None   # deleted meanwhile (another administrator, the retention purge): not audited twice
        checkin.delete()
        audit_record(actor=actor, action=Action.DELETE, object_type="recognition.checkin", object_id=pk,
                     summary=(f"deleted check-in #{pk} of person #{person_id}"
                              + (" (recorded by hand)" if checkin.manual else "")
                              + (f"; {note}" if note else ""))[:300])
    return FacePhoto.objects.filter(kept_from_checkin=pk, person_id=person_id).select_related("person").first()


def checkin_reject_record(*, kiosk: Kiosk, reason: str, frames: int, score: float | None = None,
                          threshold: float | None = None, masked: bool | None = None, detail: str = "") -> None:
    """Audit a refused face: ``reason`` ``"unknown"`` (no identity agreed on above the
    threshold) or ``"quality"`` (``detail``: the quality gate's reasons)."""
    action = CHECKIN_QUALITY if reason == "quality" else CHECKIN_UNKNOWN
    parts = [f"rejected ({'quality' if reason == 'quality' else 'unknown'}) at kiosk #{kiosk.pk}", f"{frames} frames"]
    if score is not None and score > -1.5:
        parts.append(f"best score {score:.3f}" + (f" (threshold {threshold:.3f})" if threshold is not None else ""))
    if masked is not None:
        parts.append("masked" if masked else "unmasked")
    if detail:
        parts.append(detail)
    audit_record(actor=None, action=action, obj=kiosk, summary="; ".join(parts))


# --------------------------------------------------------------------------------------------
# retention


def checkin_snapshots_purge(*, older_than_days: int, now: datetime | None = None, dry_run: bool = False) -> int:
    """Remove the snapshot images (face crops) of check-ins made more than ``older_than_days``
    days before ``now``; returns how many check-ins lost theirs (or would, with ``dry_run``).
    ``0`` keeps them forever.

    The check-ins themselves (the attendance record) stay. Snapshots live in the check-in row
    (``CheckIn.snapshot``), not in files, so clearing the column deletes them. When anything is
    removed a ``purge`` audit record says how many, once its batches are done.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 (keep forever) or more")
    if older_than_days == 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    expired = CheckIn.objects.filter(at__lt=cutoff, snapshot__isnull=False)
    if dry_run:
        return expired.count()
    cleared = 0
    while True:   # in short batches, as the decision records' purge (SQLite's write lock)
        with transaction.atomic():
            ids = list(expired.order_by("id").values_list("id", flat=True)[:PURGE_BATCH])
            cleared += CheckIn.objects.filter(pk__in=ids, snapshot__isnull=False).update(snapshot=None) if ids else 0
        if len(ids) < PURGE_BATCH:
            break
    if cleared:
        audit_record(actor=None, action=Action.PURGE, object_type="recognition.checkin",
                     summary=f"retention: removed the snapshot images of {counted(cleared, 'check-in')} older than "
                             f"{older_than_days} days (the check-ins stay)")
    return cleared


@dataclass(frozen=True)
class RetentionOutcome:
    """What :func:`retention_purge` did (or would do, ``dry_run``): counts only.

    ``snapshot_days``/``decision_days``: the periods applied (0 = kept forever); ``snapshots``:
    check-ins whose snapshot image was removed; ``decisions``: decision and login records deleted per action;
    ``orphan_files``: photo files that no photo row named (``enrollment.services.photo_files_sweep``);
    ``index_files``: index files that no version named (``enrollment.services.index_files_sweep``);
    ``adapted_days``/``adapted_photos``: the period applied to photos kept by gallery adaptation and
    how many of them were deleted (``enrollment.services.adapted_photos_purge``);
    ``failed_files``: photo and index files that should have gone and could not be deleted (biometric data
    kept against the retention: the command exits non-zero); ``refused_files``: photo files no row
    names, so many that the media folder is taken for another database's, none deleted (the same).
    """

    snapshot_days: int
    decision_days: int
    snapshots: int
    decisions: dict[str, int]
    dry_run: bool
    orphan_files: int = 0
    index_files: int = 0
    failed_files: int = 0
    adapted_days: int = 0
    adapted_photos: int = 0
    refused_files: int = 0

    @property
    def decisions_total(self) -> int:
        """Decision records deleted, all actions together."""
        return sum(self.decisions.values())

    def as_dict(self) -> dict:
        """JSON-safe view (the Celery task's result)."""
        return {"snapshot_days": self.snapshot_days, "decision_days": self.decision_days,
                "snapshots": self.snapshots, "decisions": dict(self.decisions),
                "decisions_total": self.decisions_total, "orphan_files": self.orphan_files,
                "index_files": self.index_files, "adapted_days": self.adapted_days,
                "adapted_photos": self.adapted_photos, "failed_files": self.failed_files,
                "refused_files": self.refused_files, "dry_run": self.dry_run}

    def problems(self) -> list[str]:
        """Why the purge did not complete (biometric data kept against the retention), as ``purge_expired``
        and the Celery task say it; none when it did."""
        said = []
        if self.refused_files:   # not a permission to fix: running it again fails the same way (a review)
            said.append(f"the photo sweep refused {self.refused_files} photo files that no photo names, far more than "
                        "failed uploads leave: is DATABASE_URL this media folder's database (a restore that put the "
                        "media back before the rows)? Nothing was deleted (docs/deployment.md, Backup and restore)")
        if self.failed_files:
            said.append(f"{self.failed_files} photo or index files could not be deleted (see the log): check the "
                        "media and index folders' permissions; the next purge tries them again")
        return said


# a completed retention purge's own audit record (its object type), and how long after the last one
# /healthz calls the purge overdue: it runs daily (03:30), so a day missed and a few hours' retries
PURGE_RUN = "masknet.retention_purge"
PURGE_OVERDUE = timedelta(hours=50)
# the migration of the release that began recording completed runs (app, name)
PURGE_RUN_SINCE = ("recognition", "0002_checkin_site_index")


def _retention_days(name: str) -> int:
    days = int(getattr(settings, name))
    if not 0 <= days <= RETENTION_DAYS_MAX:
        raise ImproperlyConfigured(f"{name} must be 0 (keep forever) or a number of days up to {RETENTION_DAYS_MAX}")
    return days


def retention_purge(*, now: datetime | None = None, dry_run: bool = False) -> RetentionOutcome:
    """Apply the retention settings once: snapshot images of check-ins older than
    ``MASKNET_RETENTION_SNAPSHOT_DAYS`` and recognition decision records (audit rows of kiosk
    decisions and API identify/verify) and staff login records older than
    ``MASKNET_RETENTION_DECISION_DAYS`` are deleted, and photos kept by gallery adaptation older than
    ``MASKNET_RETENTION_ADAPTED_DAYS`` (:func:`enrollment.services.adapted_photos_purge`);
    0 keeps them forever. Each purge that deletes anything is itself audited with its counts, and each
    completed run once more (:data:`PURGE_RUN`, for :func:`retention_purge_status`). Photo
    files that no photo row names are deleted too (:func:`enrollment.services.photo_files_sweep`), and
    index files that no version names (:func:`enrollment.services.index_files_sweep`).
    Run daily by Celery beat (``recognition.purge_expired``) or ``manage.py purge_expired``.
    """
    now = now or timezone.now()
    snapshot_days = _retention_days("MASKNET_RETENTION_SNAPSHOT_DAYS")
    decision_days = _retention_days("MASKNET_RETENTION_DECISION_DAYS")
    adapted_days = _retention_days("MASKNET_RETENTION_ADAPTED_DAYS")   # each checked before anything goes
    snapshots = checkin_snapshots_purge(older_than_days=snapshot_days, now=now, dry_run=dry_run)
    decisions = audit_decisions_purge(older_than_days=decision_days, now=now, dry_run=dry_run)
    failed: list[str] = []
    # before the sweep, which tries again a file of theirs that could not be deleted: those the
    # sweep could not delete either count, once
    kept: list[str] = []
    adapted = adapted_photos_purge(older_than_days=adapted_days, now=now, dry_run=dry_run, failed=kept)
    refused: list[str] = []
    orphans = photo_files_sweep(now=now.timestamp(), dry_run=dry_run, failed=failed, refused=refused)
    failed += [name for name in kept if name not in failed and default_storage.exists(name)]
    if orphans and not dry_run:   # face photos deleted: on record like every other purge
        audit_record(actor=None, action=Action.PURGE, object_type="enrollment.facephoto",
                     summary=f"retention: deleted {orphans} photo files that no photo named (an upload rolled "
                             f"back, a failed delete)")
    stray = index_files_sweep(now=now.timestamp(), dry_run=dry_run, failed=failed)
    if not dry_run:   # expired staff sessions' rows (Django leaves them to `clearsessions`)
        import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    if stray and not dry_run:
        audit_record(actor=None, action=Action.PURGE, object_type="enrollment.indexversion",
                     summary=f"retention: deleted {stray} index files that no index version named (killed rebuilds)")
    outcome = RetentionOutcome(snapshot_days=snapshot_days, decision_days=decision_days, snapshots=snapshots,
                               decisions=decisions, dry_run=dry_run, orphan_files=orphans, index_files=stray,
                               failed_files=len(failed), adapted_days=adapted_days, adapted_photos=adapted,
                               refused_files=len(refused))
    if not dry_run and (snapshots or decisions or orphans or stray or adapted):
        log.info("retention purge: %s snapshot images, %s decision and login records, %s photos kept from "
                 "check-ins, %s orphan photo files, %s stray index files", snapshots, outcome.decisions_total,
                 adapted, orphans, stray)
    if not dry_run and not failed and not refused:   # a whole run, on record for /healthz's retention_purge_overdue
        audit_record(actor=None, action=Action.PURGE, object_type=PURGE_RUN,
                     summary=f"retention purge completed: {counted(snapshots, 'snapshot image')}, "
                             f"{counted(outcome.decisions_total, 'decision and login record')}, "
                             f"{counted(adapted, 'photo')} kept from check-ins, "
                             f"{counted(orphans, 'orphan photo file')}, {counted(stray, 'stray index file')} deleted")
    return outcome


def retention_purge_status(now: datetime | None = None) -> tuple[datetime | None, bool]:
    """``(last, overdue)``: when the retention purge last completed (:func:`retention_purge`, not a dry
    run, every photo and index file it meant to delete deleted), and whether that is more than
    :data:`PURGE_OVERDUE` ago (a Celery beat or cron job that stopped: biometric data then outlives its
    retention unseen). Before the first completed run, the clock starts when the release that records
    runs was migrated (:data:`PURGE_RUN_SINCE`), so an upgraded site is not overdue at once."""
    from django.db.migrations.recorder import MigrationRecorder

    now = now or timezone.now()
    last = (AuditEvent.objects.filter(object_type=PURGE_RUN, action=Action.PURGE)
            .order_by("-at").values_list("at", flat=True).first())
    since = last or (MigrationRecorder.Migration.objects.filter(app=PURGE_RUN_SINCE[0], name=PURGE_RUN_SINCE[1])
                     .values_list("applied", flat=True).first())
    return last, since is not None and now - since > PURGE_OVERDUE
