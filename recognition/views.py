"""HTTP views of the recognition app: health, the kiosk page and its pairing, attendance for staff.

Kiosk views authenticate with the device cookie only (no staff login on a kiosk); attendance
views need a staff login with ``recognition.view_checkin`` and are never cached (names and times
must not come back from the browser's cache, nor its back button, after logout).
"""

from __future__ import annotations

import calendar
import logging
import re
import time as time_module
from collections.abc import Callable
from datetime import date, timedelta
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import urlencode as urlencode_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from audit.services import audit_list_export
from enrollment import recognizer
from enrollment.models import Person, inactive_periods_described
from enrollment.recognizer import engine_loaded
from enrollment.services import storage_low
from masknet_site.csv_export import cross_site_refusal, csv_response
from masknet_site.middleware import PERMISSIONS_POLICY_HEADER, permissions_policy, with_sockets
from recognition.engine.install import installed_manifest, models_ready

from . import services
from .attendance import (
    SUMMARY_MAX_DAYS,
    SummaryRow,
    attendance_summary,
    counts_missing,
    day_end,
    days_off_named,
    expected_during,
    is_working_day,
    workdays,
    workdays_named,
    working_days,
)
from .consumers import KIOSK_COOKIE
from .exports import CHECKIN_CSV_HEADER, checkin_csv_rows, checkin_filters_described
from .kiosk_page import PAGE_CONFIG, page_build, page_context
from .kiosk_text import screen_text
from .models import CheckIn, Kiosk, known_sites
from .privacy import kiosk_notice, privacy_language, privacy_page_context

KIOSK_COOKIE_AGE = 365 * 24 * 3600
log = logging.getLogger(__name__)
KIOSK_RETRY_S = 15          # the "temporarily unavailable" kiosk page reloads itself this often
CHART_DAYS = 30
# the days an attendance page can show: its 30-day chart and its day links stay within ``date``
FIRST_DAY = date.min + timedelta(days=CHART_DAYS - 1)
LAST_DAY = date.max - timedelta(days=1)
# the largest id a database integer holds (larger ones overflow on SQLite)
MAX_ID = 2**63 - 1
# The kiosk page loads only its own script and style and talks only to its own socket.
KIOSK_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
             "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; "
             "base-uri 'none'; form-action 'self'")
# The kiosk screen films (its own origin only, never a frame) and keeps the screen awake; nothing else.
KIOSK_PERMISSIONS_POLICY = permissions_policy("camera", "screen-wake-lock")


HEALTH_TTL_S = 2.0    # a probe's answer is reused this long: anyone can call it, and each one opens a connection
_health: tuple[float, dict] | None = None
_health_failing: set[str] = set()   # checks failing at the last probe: logged when that changes, not each time


def _reachable(check: Callable[[], object]) -> bool:
    name = getattr(check, "__name__", str(check)).lstrip("_")
    try:
        check()
    except Exception:  # noqa: BLE001 - any failure means "not ready"; logged, never shown
        if name not in _health_failing:
            log.warning("healthz: the %s check fails", name, exc_info=True)
        _health_failing.add(name)
        return False
    if name in _health_failing:
        log.warning("healthz: the %s check passes again", name)
        _health_failing.discard(name)
    return True


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    # Redis when REDIS_URL is set (login lockouts, rate limits), which the cache itself stands in for
    # while it is away (masknet_site.cache): asked directly
    ping = getattr(cache, "ping", None)
    if ping is not None:
        ping()
    else:
        cache.get("masknet:healthz")


def _retention_purge_overdue() -> bool | None:
    """Whether the retention purge is overdue (:func:`.services.retention_purge_status`), ``None`` when
    that cannot be read (logged as the other checks are)."""
    found: list = []

    def retention_purge() -> None:
        found.append(services.retention_purge_status()[1])

    return found[0] if _reachable(retention_purge) else None


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness probe for a load balancer: 200 when this node can serve (its models installed,
    those of ``MASKNET_DESCRIPTOR`` included; the database reachable), else 503 and which part is
    missing; ``cache`` says whether Redis answers, for monitoring (the site works on without it);
    with the npm models' version and the descriptor this node matches with (nodes behind one
    balancer must agree on it: each builds the index its descriptor reads). No
    secrets, no biometric data. Answers are reused for :data:`HEALTH_TTL_S`. Beside them, for monitoring
    (not readiness: ``ok`` ignores it), whether the retention purge is overdue
    (:func:`.services.retention_purge_status`; ``null`` while the database is away). Not when it
    last ran: anyone can call this, and the audit log says it to those who may read it. And which of
    the node's storages (``media``, ``index``, a SQLite ``database``) have less free space than
    ``MASKNET_STORAGE_LOW_MB`` (``storage_low``, a list, empty when none): names only, not how much.

    ``models`` says the models are installed, not loaded: a node answers 200 while it loads them (a
    few seconds after its start, ``MASKNET_PRELOAD_MODELS``; with it off, until its first kiosk or
    photo check). ``models_loaded`` says whether this process has them loaded (a kiosk's first frame
    is answered at once), read afresh at each probe, so that a balancer can wait for a warm node;
    ``ok`` does not depend on it (a node whose models load on first use must stay in service).
    ``?warm=1`` is for balancers that read the status alone: 503 also while ``models_loaded`` is false,
    and such a probe starts the load where none is under way (``recognizer.warm_soon``, once a process):
    a node with ``MASKNET_PRELOAD_MODELS`` off would otherwise wait for a first frame that its balancer,
    seeing 503, never sends it. Never cached by a proxy (``Cache-Control: no-cache, no-store``):
    ``models_loaded`` is this moment's."""
    global _health
    now = time_module.monotonic()
    if _health is None or now - _health[0] >= HEALTH_TTL_S:
        models_dir = settings.MASKNET_MODELS_DIR
        manifest = installed_manifest(models_dir)
        models = manifest is not None and models_ready(models_dir, settings.MASKNET_DESCRIPTOR)
        checks = {"models": models, "database": _reachable(_database), "cache": _reachable(_cache)}
        purge = _retention_purge_overdue() if checks["database"] else None
        # the cache is reported, not required: while Redis is away kiosks check people in, and
        # sign-ins and the API count their limits in each process (masknet_site.cache); a balancer
        # that took every node out for it stopped what goes on working
        _health = (now, {"ok": checks["models"] and checks["database"], **checks,
                         "models_version": manifest["version"] if manifest else None,
                         "descriptor": settings.MASKNET_DESCRIPTOR,
                         "retention_purge_overdue": purge,
                         "storage_low": sorted(storage_low())})
    body = {**_health[1], "models_loaded": engine_loaded()}
    warm = request.GET.get("warm") == "1"
    if warm and body["models"] and not body["models_loaded"]:
        recognizer.warm_soon()   # returns at once; nothing when loaded or loading
    ready = body["ok"] and (body["models_loaded"] or not warm)
    return JsonResponse(body, status=200 if ready else 503)


# ----------------------------------------------------------------------------------------------
# kiosk


def _kiosk_headers(response: HttpResponse, request: HttpRequest | None = None, *, camera: bool = True) -> HttpResponse:
    """The kiosk pages' headers; with ``request``, its own socket's origin is allowed (this host only:
    :func:`masknet_site.middleware.socket_sources`). The site's default policy leaves this one as it is.
    ``camera``: the page at ``/kiosk/`` may film (:data:`KIOSK_PERMISSIONS_POLICY`); the pairing pages,
    which never do, keep the site's default Permissions-Policy, which denies it."""
    response["Content-Security-Policy"] = KIOSK_CSP if request is None else with_sockets(KIOSK_CSP, request)
    # the origin alone, even to this site: the pairing page's own URL (its one-time code) went as the
    # Referer of its stylesheet and icon into the proxy's access log (which the pairing path's own
    # "access_log off" does not cover); not no-referrer: browsers then send "Origin: null" and CSRF fails
    response["Referrer-Policy"] = "strict-origin"
    if camera:
        response[PERMISSIONS_POLICY_HEADER] = KIOSK_PERMISSIONS_POLICY
    return response


def _device_kiosk(request: HttpRequest) -> Kiosk | None:
    return Kiosk.objects.for_device_token(request.COOKIES.get(KIOSK_COOKIE))


@never_cache
@require_GET
def kiosk_page(request: HttpRequest) -> HttpResponse:
    """The kiosk screen for a paired device; a short explanation for any other browser.

    While the database is unreachable: 503 with a page that reloads itself every
    :data:`KIOSK_RETRY_S` seconds, so a kiosk started during an outage recovers by itself.
    """
    try:
        kiosk = _device_kiosk(request)
    except (OperationalError, InterfaceError):
        response = render(request, "kiosk/unavailable.html", {"retry_s": KIOSK_RETRY_S, **page_context(None)},
                          status=503)
        response["Retry-After"] = str(KIOSK_RETRY_S)
        return _kiosk_headers(response, camera=False)   # these two pages never film: the site's policy
    if kiosk is None:
        # its command names the site as this browser reached it (create_kiosk guessed make run's
        # http://127.0.0.1:8000 without --base-url: a link to nothing on any other address)
        context = {**page_context(None), "site_origin": request.build_absolute_uri("/").rstrip("/")}
        return _kiosk_headers(render(request, "kiosk/unpaired.html", context, status=403), camera=False)
    # the page sends at most 8 frames a second, and never more than its socket takes (0: no limit)
    socket_fps = settings.MASKNET_KIOSK_MAX_FPS
    speech = page_context(kiosk)
    # the banners' words come with the page, in its language (the kiosk's own, else the site's): the
    # page fetches nothing else, and its CSP stays as strict
    config = {**PAGE_CONFIG, "max_fps": min(8, socket_fps) if socket_fps > 0 else 8,
              "time_zone": settings.TIME_ZONE, "build": page_build(),
              "language": speech["lang"], "text": screen_text(speech["lang"])}
    response = render(request, "kiosk/kiosk.html", {"kiosk": kiosk, "config": config, **speech,
                                                    "notice": kiosk_notice(request, speech["lang"])})
    # each load renews the device cookie: a kiosk in use never finds it expired ("unpaired")
    _set_device_cookie(request, response, request.COOKIES[KIOSK_COOKIE])
    return _kiosk_headers(response, request)


def _set_device_cookie(request: HttpRequest, response: HttpResponse, token: str) -> None:
    response.set_cookie(KIOSK_COOKIE, token, max_age=KIOSK_COOKIE_AGE, httponly=True, samesite="Strict",
                        secure=request.is_secure(), path="/")


@never_cache
@require_GET
def kiosk_status(request: HttpRequest) -> JsonResponse:
    """Whether this device is (still) a paired kiosk: the page asks after its socket is refused,
    and once a day (a paired device's answer renews its cookie).

    While the database is unreachable: 503 (the page keeps reconnecting, like for any answer
    but 401/403), not a server error for every kiosk's every attempt.
    """
    try:
        kiosk = _device_kiosk(request)
    except (OperationalError, InterfaceError):
        return JsonResponse({"paired": None, "error": "unavailable"}, status=503)
    if kiosk is None:
        return JsonResponse({"paired": False}, status=401)
    response = JsonResponse({"paired": True, "kiosk": kiosk.name})
    # the open page asks once a day: a kiosk never reloaded keeps its cookie
    _set_device_cookie(request, response, request.COOKIES[KIOSK_COOKIE])
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def kiosk_pair(request: HttpRequest, code: str) -> HttpResponse:
    """GET: what this one-time link will do, with a button (so that link previews cannot spend
    it). POST: pair this device; the device token goes into an HttpOnly cookie."""
    if request.method == "GET":
        kiosk = Kiosk.objects.for_pairing_code(code)
        if kiosk is None:
            return _pair_invalid(request)
        return _kiosk_headers(render(request, "kiosk/pair.html", {"kiosk": kiosk, **page_context(kiosk)}),
                              camera=False)
    result = services.kiosk_pair(code=code)
    if result is None:
        return _pair_invalid(request)
    _kiosk, token = result
    response = redirect("kiosk")
    _set_device_cookie(request, response, token)
    return _kiosk_headers(response, camera=False)


def _pair_invalid(request: HttpRequest) -> HttpResponse:
    """The answer to a link that cannot pair: 404, and, on a device that is a paired kiosk already
    (the link opened again after it paired this very device, a tab restored), which kiosk it is and
    the way to its screen, rather than only "ask for a new link", which it does not need."""
    paired = _device_kiosk(request)
    context = {"paired_kiosk": paired, **page_context(paired)}
    return _kiosk_headers(render(request, "kiosk/pair_invalid.html", context, status=404), camera=False)


@require_GET
def privacy_notice(request: HttpRequest) -> HttpResponse:
    """The public privacy page the kiosk screen points to (no login, no personal data, the site's
    default policy): what a kiosk does with a face and what the site keeps, for how long, and whom
    to ask for access or erasure, from this site's settings (:mod:`.privacy`); in the language its
    ``?lang=`` names (a kiosk's notice line carries its kiosk's), else the site's ``MASKNET_KIOSK_LANGUAGE``.
    Cacheable as before: it varies by its query string alone, which caches key on."""
    return render(request, "privacy/notice.html", privacy_page_context(privacy_language(request)))


# ----------------------------------------------------------------------------------------------
# attendance (staff)


def home(request: HttpRequest) -> HttpResponse:
    """The site's root (the admin's "View site"): staff who may read check-ins land on today's
    attendance, other staff (Enrollers) on the admin, whose pages are theirs; anyone else on the
    attendance page, which asks them to log in. It sent Enrollers to a 403."""
    user = request.user
    if user.is_active and user.is_staff and not user.has_perm("recognition.view_checkin"):
        return redirect("admin:index")
    return redirect("attendance-day")


def _staff_context(request: HttpRequest, title: str) -> dict:
    if not request.user.has_perm("recognition.view_checkin"):
        raise PermissionDenied
    return {**admin.site.each_context(request), "title": title}


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_day(value: str | None) -> date | None:
    """``value`` (YYYY-MM-DD), today when it is empty, ``None`` when it is not a date or not one
    a page can show (:data:`FIRST_DAY` to :data:`LAST_DAY`)."""
    if not value:
        return timezone.localdate()
    if not _DAY.fullmatch(value):   # fromisoformat also reads "20261204" and "2026-W49-5"
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def daily_attendance(day: date, site: str = "") -> dict:
    """Who is in (their first check-in of ``day``, at ``site`` when given), who checked in only
    at other sites (``elsewhere``: their first check-in there; empty without ``site``), who is not in
    (``not_in``): the people expected that day (:func:`.attendance.expected_during`: enrolled by its
    end, and active at its end) with no check-in that day at all, and who is missing:
    those on a working day that has come (``counted``: :func:`.attendance.counts_missing`), nobody on
    another day, as the summary counts them. ``working_day``: :func:`.attendance.is_working_day`;
    ``future``: a day after today."""
    checkins = CheckIn.objects.listed().on_day(day).select_related("person", "kiosk").order_by("at", "id")
    first: dict[int, CheckIn] = {}
    other: dict[int, CheckIn] = {}
    for c in checkins:
        (first if not site or c.site == site else other).setdefault(c.person_id, c)
    elsewhere = [c for pk, c in other.items() if pk not in first]
    # a subquery, not the ids read above: one query whatever the number checked in (a list of
    # 700 ids was 700 bound parameters)
    missing = list(Person.objects.filter(expected_during(day))
                   .exclude(pk__in=CheckIn.objects.on_day(day).values("person_id")))
    counted = counts_missing(day)
    return {"present": list(first.values()), "elsewhere": elsewhere, "not_in": missing,
            "missing": missing if counted else [], "counted": counted, "working_day": is_working_day(day),
            "future": day > timezone.localdate()}


def _missing_per_day(first: date, last: date) -> dict[date, int]:
    """How many people :func:`daily_attendance` calls missing on each day from ``first`` to ``last``:
    on a working day up to today those expected that day (:func:`.attendance.expected_during`), less those
    of them checked in anywhere that day; 0 on any other day (:func:`.attendance.counts_missing`), as the
    summary counts them (two queries, one count per such day in each, whatever the number of days or people)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counted = dict(enumerate(working_days(first, min(last, timezone.localdate()))))
    expected = Person.objects.filter(expected_during(first, last)).aggregate(
        **{f"d{i}": Count("pk", filter=expected_during(day)) for i, day in counted.items()})
    checked = CheckIn.objects.between(first, last).aggregate(
        **{f"d{i}": Count("person", distinct=True, filter=Q(local_date=day) & expected_during(day, prefix="person__"))
           for i, day in counted.items()})
    missing = dict.fromkeys(days, 0)
    missing.update({day: expected[f"d{i}"] - checked[f"d{i}"] for i, day in counted.items()})
    return missing


def _chart(last: date, site: str, active: int) -> dict:
    """Bars of the last :data:`CHART_DAYS` days up to ``last`` (plain SVG, drawn by the template),
    each with the day's number of people checked in (at ``site`` when given) and missing; ``weekend``:
    a day ``MASKNET_WORKING_DAYS`` leaves out, ``future``: a day after today (nobody missing on either)."""
    first = last - timedelta(days=CHART_DAYS - 1)
    weekdays = workdays()
    today = timezone.localdate()
    qs = CheckIn.objects.filter(site=site) if site else CheckIn.objects.all()
    counts = qs.daily_counts(first, last)
    missing = _missing_per_day(first, last)
    top = max([active, *counts.values(), 1])
    width, height, gap = 22, 160, 4
    bars = []
    for i, (day, n) in enumerate(counts.items()):
        h = round(height * n / top)
        bars.append({"day": day, "n": n, "missing": missing[day], "x": i * (width + gap), "y": height - h, "h": h,
                     "w": width, "weekend": day.weekday() not in weekdays,
                     "future": day > today,
                     "label": day.day if (i % 5 == 0 or day == last) else ""})
    return {"bars": bars, "width": len(bars) * (width + gap), "height": height, "top": top, "active": active,
            "active_y": height - round(height * active / top) if active else None}


def _month_end(day: date, today: date) -> date:
    """The last day of the day page's "Summary of <month>": the month's last, or today in this month."""
    last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    return today if day.replace(day=1) <= today < last else last


# a primary key no row has: where it stands in a reversed address, each row's own goes
_ANY_PK = 987654321987


def _person_page() -> tuple[str, str]:
    """A person's attendance page's address around its id (``before``, ``after``): the day page
    lists everyone expected, and a ``{% url %}`` for each row was a third of its time at 5,000
    people (docs/performance.md, "Staff pages and the API at size")."""
    before, _, after = reverse("attendance-person", args=[_ANY_PK]).partition(str(_ANY_PK))
    return before, after


def _record_query(day: date, site: str) -> str:
    """What follows a person's id in the day page's "Record check-in" links (the admin's form for
    that day and site, back to this page afterwards), made once for every row."""
    return f"&date={day.isoformat()}" + (f"&site={urlencode_filter(site)}" if site else "") + "&return=attendance"


@never_cache
@staff_member_required
def attendance_day(request: HttpRequest) -> HttpResponse:
    """Who is in and who is missing on a day (``?date=YYYY-MM-DD``, ``?site=``), a 30-day chart,
    and the same list as CSV with ``?format=csv``. On a day that is not a working day, or after today, nobody
    is missing: the page lists those expected who did not check in as "not checked in", without a rate; the
    CSV keeps its ``status`` values and calls them ``missing`` on every day (docs/kiosk.md, Attendance)."""
    context = _staff_context(request, "Daily attendance")
    csv_format = request.GET.get("format") == "csv"
    if csv_format and (refused := cross_site_refusal(request)):
        return refused
    day = _parse_day(request.GET.get("date"))
    if day is None:
        problem = f"Not a day this page can show (YYYY-MM-DD, {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})"
        if csv_format:  # a script asked for that day: today's list instead would be a silent lie
            return JsonResponse({"errors": {"date": [problem]}}, status=400)
        messages.warning(request, f"{problem}: showing today.")
        day = timezone.localdate()
    site = request.GET.get("site", "").strip()
    data = daily_attendance(day, site)
    if csv_format:
        # with its UTC offset, as export.csv's times: in the hour a DST change repeats, 01:30 is two times
        # (the time part of the whole local timestamp: a time of day alone, timetz(), has no offset
        # in a zone with summer time)
        rows = [[status, timezone.localtime(c.at).isoformat(timespec="seconds").partition("T")[2], c.person.staff_id,
                 c.person.full_name, c.person.department, c.site, c.kiosk.name if c.kiosk else "",
                 "yes" if c.masked else "no", c.source]
                for status in ("present", "elsewhere") for c in data[status]]
        # "missing" on a day off or to come too: the column's values are a contract (docs/kiosk.md), the day is
        # in the name
        rows += [["missing", "", p.staff_id, p.full_name, p.department, "", "", "", ""] for p in data["not_in"]]
        audit_list_export(request, object_type="recognition.checkin", what=f"the attendance of {day.isoformat()}",
                          rows=len(rows), filters=[f"site={site[:60]}"] if site else [])
        return csv_response(f"attendance-{day.isoformat()}{'-' + site if site else ''}.csv",
                            ["status", "first_check_in", "staff_id", "name", "department", "site", "kiosk", "masked",
                             "source"],
                            rows)
    # those in elsewhere are neither in nor missing here
    active = len(data["present"]) + len(data["not_in"])
    counted = data["counted"]
    today = timezone.localdate()
    # a button beside each missing person, for staff who may record a check-in by hand, on a day one can be
    can_record = (request.user.has_perm("recognition.add_checkin")
                  and today - timedelta(days=services.MANUAL_CHECKIN_MAX_DAYS) <= day <= today)
    context.update(day=day, site=site, sites=known_sites(), today=today, can_record=can_record,
                   # each row's links made from these, not reversed again for each row
                   person_page=_person_page(), record_url=reverse("admin:recognition_checkin_add"),
                   record_query=_record_query(day, site),
                   # the summary of the day's month: the whole month, or up to today for this one (a later
                   # month's, a day typed in, whole too: up to today would end before it began, refused)
                   month_start=day.replace(day=1),
                   month_end=_month_end(day, today),
                   prev_day=day - timedelta(days=1), next_day=day + timedelta(days=1),
                   # each list's first DAY_LIST_SHOWN rows (the counts and the CSV: everyone): at 20,000
                   # people the page was 8 MB, 2 s, mostly the thousands not in (a scale review)
                   shown_max=DAY_LIST_SHOWN, shown_slice=f":{DAY_LIST_SHOWN}",
                   present=data["present"], elsewhere=data["elsewhere"], missing=data["missing"], active=active,
                   not_in=data["not_in"], counted=counted, working_day=data["working_day"], future=data["future"],
                   workdays_named=workdays_named(), days_off_named=days_off_named(),
                   masked=sum(c.masked for c in data["present"]),
                   # no rate on a day off or to come: those in came in, nobody else was expected to (yet)
                   rate=percent(len(data["present"]), active) if counted else None,
                   chart=_chart(day, site, Person.objects.active().count()))
    return render(request, "attendance/day.html", context)


DAY_LIST_SHOWN = 1000   # rows of each of the day page's lists shown (the CSV holds them all)


def percent(part: int, whole: int) -> int:
    """``part`` of ``whole`` in whole percent, never 100 while some are not in it nor 0 while some are
    (199 of 200 read "100%" beside "1 missing"); 0 of nobody is 0."""
    if not whole:
        return 0
    rounded = round(100 * part / whole)
    return min(max(rounded, 1 if part else 0), 99 if part < whole else 100)


@never_cache
@staff_member_required
def attendance_person(request: HttpRequest, pk: int) -> HttpResponse:
    """One person's check-ins, newest first (``?format=csv`` for all of them). ``?date_from=&date_to=``: those
    of that period alone, read, defaulted and refused as the summary's (:class:`SummaryPeriod`, 400 with the
    reason), as the summary's names link to it; ``?site=``: those at that site alone (read as the summary's,
    whose names carry it), over the period when one is given too, else over the whole history; without
    any of them, the whole history."""
    context = _staff_context(request, "Attendance history")
    person = get_object_or_404(Person, pk=pk)
    csv_format = request.GET.get("format") == "csv"
    if csv_format and (refused := cross_site_refusal(request)):
        return refused
    # the admin's list of the person's check-ins: of what is shown, below; of them all beside a refusal
    context.update(person=person, title=f"Attendance: {person.full_name}",
                   admin_query=_checkin_admin_query(person, {}, ""))
    checkins = CheckIn.objects.listed().filter(person=person).select_related("kiosk")
    period: dict[str, date] = {}
    site = ""
    asked = {name for name in ("date_from", "date_to", "site") if request.GET.get(name)}
    if asked:
        form = SummaryPeriod(request.GET)
        if not form.is_valid():
            return _period_refused(request, form, csv_format, "attendance/person.html", context)
        if asked - {"site"}:   # a site alone is its whole history there, not this month's (the form's default)
            period = {k: form.cleaned_data[k] for k in ("date_from", "date_to")}
        site = form.cleaned_data["site"]
        checkins = checkins.filtered(**period, site=site)
    shown = {**{k: d.isoformat() for k, d in period.items()}, **({"site": site} if site else {})}
    if csv_format:
        # by id, as a subject-access export of this person finds the record
        audit_list_export(request, object_type="recognition.checkin", what="a person's check-ins (attendance page)",
                          rows=checkins.count(),
                          filters=checkin_filters_described({**period, "site": site, "person": person.pk}))
        return csv_response(f"attendance-{person.staff_id}{''.join(f'-{v}' for v in shown.values())}.csv",
                            CHECKIN_CSV_HEADER, checkin_csv_rows(checkins.select_related("person")))
    page = Paginator(checkins.order_by("-at"), 50).get_page(request.GET.get("page"))
    # the cards' figures in one query: the check-ins; the days checked in, counted as the summary counts them
    # (days with any check-in: several a day with a numeric MASKNET_CHECKIN_COOLDOWN, one day all the same), so
    # that a summary's name leads to its figure; those with a mask; those of the last 30 days of the whole
    # history (a period shown has its own count)
    figures = checkins.aggregate(
        total=Count("pk"), days=Count("local_date", distinct=True), masked=Count("pk", filter=Q(masked=True)),
        last30=Count("pk", filter=Q(local_date__gt=timezone.localdate() - timedelta(days=30))))
    last30 = None if period else figures["last30"]
    # why someone is not missing on days they were expected: their past inactive periods (those over the
    # period shown), and their deactivation when inactive now; one query whatever their number
    away = person.inactive_periods.all()
    if period:
        away = away.overlapping(day_end(period["date_from"] - timedelta(days=1)), day_end(period["date_to"]))
    context.update(page=page, total=figures["total"], days=figures["days"], last30=last30, masked=figures["masked"],
                   first=period.get("date_from"), last=period.get("date_to"), site=site,
                   period_query=urlencode(shown), admin_query=_checkin_admin_query(person, period, site),
                   inactive=inactive_periods_described(person, away))
    return render(request, "attendance/person.html", context)


def _checkin_admin_query(person: Person, period: dict[str, date], site: str) -> str:
    """The check-in admin's query string for what the history page shows: the person, the period as its time
    filter reads one (``at__gte``, ``at__lt``: local midnights, written as its own "This month" link writes
    them) and the site as its site filter reads one. The admin filters by the time, the page by the day each
    check-in was recorded on: the same check-ins unless ``TIME_ZONE`` changed since some were recorded."""
    query: dict[str, object] = {"person__id__exact": person.pk}
    if period:
        # the start of date_from: the end of the day before it
        query.update(at__gte=str(day_end(period["date_from"] - timedelta(days=1))),
                     at__lt=str(day_end(period["date_to"])))
    if site:
        query["site"] = site
    return urlencode(query)


class StrictNullBooleanField(forms.Field):
    """A yes/no filter read as the API reads it (DRF's ``BooleanField``, any case): true/false,
    1/0, yes/no, on/off, t/f, y/n; empty (or ``null``) means no filter, anything else is invalid.
    ``forms.NullBooleanField`` turns every value it does not know (``0``, ``yes``, typos) into
    "no filter", which would answer with the unfiltered list."""

    TRUE_VALUES = frozenset({"true", "1", "yes", "on", "t", "y"})
    FALSE_VALUES = frozenset({"false", "0", "no", "off", "f", "n"})
    NULL_VALUES = frozenset({"", "null"})
    default_error_messages = {"invalid": "Must be a valid boolean (true/false, 1/0, yes/no, on/off, t/f, y/n)."}

    def to_python(self, value: object) -> bool | None:
        """``True``, ``False`` or ``None`` (no filter); raises ``ValidationError`` otherwise."""
        text = "" if value is None else str(value).lower()
        if text in self.TRUE_VALUES:
            return True
        if text in self.FALSE_VALUES:
            return False
        if text in self.NULL_VALUES:
            return None
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class PeriodForm(forms.Form):
    """A period, ``date_from`` to ``date_to`` (each optional) and a ``site``, as the attendance pages read them.
    The errors' words name the fields by their names in the URL (the JSON ``errors`` of a CSV answer, a
    contract); a page names them by their labels (:func:`_page_errors`)."""

    # ISO days only: Django's default formats also read "03/04/2026" and "Mar 4 2026" the US way, so
    # a day-first user asking for 3 April got 4 March's check-ins (the API and the day page say 400)
    date_from = forms.DateField(required=False, label="start date", input_formats=["%Y-%m-%d"])
    date_to = forms.DateField(required=False, label="end date", input_formats=["%Y-%m-%d"])
    site = forms.CharField(required=False, max_length=100, label="site")

    def clean(self) -> dict:
        """``date_from`` must not be after ``date_to``, as the API says (an empty CSV answered it)."""
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", forms.ValidationError("must not be before date_from", code="reversed"))
        return data


class CheckInFilter(PeriodForm):
    """Filters of :func:`attendance_export` (every field optional)."""

    person = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    kiosk = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    masked = StrictNullBooleanField(required=False)

    def apply(self, queryset: QuerySet[CheckIn]) -> QuerySet[CheckIn]:
        """The filtered queryset (call after ``is_valid()``)."""
        return queryset.filtered(**self.cleaned_data)


@never_cache
@staff_member_required
@require_GET
def attendance_export(request: HttpRequest) -> HttpResponse:
    """Check-ins as CSV, filtered by ``date_from``, ``date_to``, ``person``, ``kiosk``, ``site``, ``masked``;
    each download audited (``list_export``: the filters and the row count)."""
    _staff_context(request, "export")
    if refused := cross_site_refusal(request):
        return refused
    form = CheckInFilter(request.GET)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    queryset = form.apply(CheckIn.objects.all())
    audit_list_export(request, object_type="recognition.checkin", what="check-ins (attendance export)",
                      rows=queryset.count(), filters=checkin_filters_described(form.cleaned_data))
    return csv_response(f"checkins-{timezone.localdate().isoformat()}.csv", CHECKIN_CSV_HEADER,
                         checkin_csv_rows(queryset))


class SummaryPeriod(PeriodForm):
    """The period of :func:`attendance_summary_page`: by default from the first of ``date_to``'s month
    to ``date_to``, itself today by default; at most :data:`SUMMARY_MAX_DAYS` days, within the days
    the attendance pages show."""

    def clean(self) -> dict:
        """The defaults filled in; a reversed, too long or unshowable period refused."""
        data = super().clean()
        if self.errors:
            return data
        last = data.get("date_to") or timezone.localdate()
        first = data.get("date_from") or last.replace(day=1)
        span = {"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()}
        for name, day in (("date_from", first), ("date_to", last)):
            if not FIRST_DAY <= day <= LAST_DAY:
                self.add_error(name, forms.ValidationError("must be from %(first)s to %(last)s", code="out_of_range",
                                                           params=span))
        if first > last:   # date_from alone, after today
            self.add_error("date_to", forms.ValidationError(
                "must not be before date_from (date_to is today, %(today)s, when not given)", code="reversed_today",
                params={"today": last.isoformat()}))
        elif (last - first).days >= SUMMARY_MAX_DAYS:
            self.add_error("date_to", forms.ValidationError(
                "a summary covers at most %(most)s days: %(asked)s asked for", code="too_long",
                params={"most": SUMMARY_MAX_DAYS, "asked": (last - first).days + 1}))
        data.update(date_from=first, date_to=last, site=data.get("site", "").strip())
        return data


# The summary page's words for its period's refusals, by the error's code: the fields named by their labels,
# the words the page's form shows beside them ("Start date", "End date"; %(<name>_label)s), where the JSON's
# words name them by the URL's names (a contract, kept). Any other error (a date it cannot read, a site too
# long) is the field's label and Django's words.
PAGE_ERRORS = {
    "reversed": "The %(date_to_label)s must not be before the %(date_from_label)s.",
    "reversed_today": "The %(date_to_label)s must not be before the %(date_from_label)s (without an "
                      "%(date_to_label)s, it is today, %(today)s).",
    "out_of_range": "The %(label)s must be from %(first)s to %(last)s.",
    "too_long": "A period covers at most %(most)s days: %(asked)s asked for.",
}


def _period_refused(request: HttpRequest, form: forms.Form, csv_format: bool, template: str,
                    context: dict) -> HttpResponse:
    """A 400 for a period ``form`` refuses: its JSON ``errors`` (by the URL's names, a contract) for a CSV,
    else ``template`` with ``errors`` in the page's words (:func:`_page_errors`)."""
    if csv_format:
        return JsonResponse({"errors": form.errors}, status=400)
    context.update(errors=_page_errors(form))
    return render(request, template, context, status=400)


def _page_errors(form: forms.Form) -> list[str]:
    """``form``'s errors as a page says them: by the fields' labels, not their names in the URL."""
    said = []
    labels = {f"{name}_label": field.label or name for name, field in form.fields.items()}
    for name, errors in form.errors.as_data().items():
        label = form.fields[name].label if name in form.fields else ""
        for error in errors:
            params = {**labels, "label": label, **(error.params or {})}
            if error.code in PAGE_ERRORS:
                said.append(PAGE_ERRORS[error.code] % params)
            else:
                said.extend(f"{label.capitalize()}: {message}" if label else message for message in error.messages)
    return said


SUMMARY_CSV_HEADER = ["staff_id", "name", "department", "active", "days_checked_in", "working_days_missing",
                      "missing_days", "earliest_first_check_in", "latest_first_check_in", "days_masked",
                      "days_by_hand"]


def _summary_csv_row(row: SummaryRow) -> list[object]:
    p = row.person
    return [p.staff_id, p.full_name, p.department, "yes" if p.active else "no", row.days_in,
            len(row.missing) if row.expected else "", " ".join(d.isoformat() for d in row.missing),
            row.earliest.strftime("%H:%M") if row.earliest else "", row.latest.strftime("%H:%M") if row.latest else "",
            row.days_masked, row.days_by_hand]


SUMMARY_PAGE_SIZE = 500   # people in one page of the summary's table (the CSV holds everyone)


def _summary_table(rows: list[SummaryRow], site: str = "") -> list[tuple[SummaryRow, str]]:
    """The summary page's rows, each with its missing days as the page's links (each day's link to its day
    page, at ``site`` when one is chosen, "Tue 3 Nov" by the template's own ``date`` filter), joined
    with ", ": each day's link made once, not once for each person missing it, and each row's list
    joined here rather than looped over by the template (at 2,000 people over a month, the links'
    ``url`` and ``date`` tags were half the template's time; at 5,000 people over a year, 1 million links,
    the template's loop took 11 of the page's 16 s: docs/performance.md, "The attendance summary" and
    "Staff pages and the API at size")."""
    day_url = reverse("attendance-day")
    at_site = format_html("&amp;site={}", urlencode_filter(site)) if site else ""
    links = {d: format_html('<a href="{}?date={}{}">{}</a>', day_url, date_filter(d, "Y-m-d"), at_site,
                            date_filter(d, "D j M"))
             for d in {d for r in rows for d in r.missing}}
    return [(r, mark_safe(", ".join(links[d] for d in r.missing))) for r in rows]   # each link escaped above


@never_cache
@staff_member_required
@require_safe
def attendance_summary_page(request: HttpRequest) -> HttpResponse:
    """For a period (``?date_from=&date_to=``, the current month to today by default; ``?site=``), each
    person's days checked in, working days missing, earliest and latest first check-in and days with
    a mask (:func:`.attendance.attendance_summary`); ``?format=csv`` for the same table, audited
    (``list_export``). A period it cannot read, reversed or too long: 400 with the reason."""
    context = _staff_context(request, "Attendance summary")
    csv_format = request.GET.get("format") == "csv"
    if csv_format and (refused := cross_site_refusal(request)):
        return refused
    form = SummaryPeriod(request.GET)
    if not form.is_valid():
        context.update(rows=None, sites=known_sites(), form=form,
                       date_from=request.GET.get("date_from", ""), date_to=request.GET.get("date_to", ""),
                       site=request.GET.get("site", ""))
        return _period_refused(request, form, csv_format, "attendance/summary.html", context)
    first, last, site = (form.cleaned_data[k] for k in ("date_from", "date_to", "site"))
    rows = attendance_summary(first, last, site)
    if csv_format:
        audit_list_export(request, object_type="recognition.checkin",
                          what=f"the attendance summary of {first.isoformat()} to {last.isoformat()}",
                          rows=len(rows), filters=[f"site={site[:60]}"] if site else [])
        name = f"attendance-summary-{first.isoformat()}-{last.isoformat()}{'-' + site if site else ''}.csv"
        return csv_response(name, SUMMARY_CSV_HEADER, (_summary_csv_row(r) for r in rows))
    today = timezone.localdate()
    counted_to = min(last, today)
    # the table a page of people at a time (the cards count everyone): a year at 20,000 people was a
    # 255 MB page of 4.5 million day links, 30 s, and Daphne 800 MB larger for good (a scale review)
    page = Paginator(rows, SUMMARY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({"date_from": first.isoformat(), "date_to": last.isoformat(), **({"site": site} if site else {})})
    context.update(rows=rows, page=page, period_query=query, table=_summary_table(page.object_list, site),
                   page_links=list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)),
                   first=first, last=last, site=site, sites=known_sites(),
                   today=today, form=form,
                   workdays_named=workdays_named(),
                   date_from=first.isoformat(), date_to=last.isoformat(),
                   working=len(working_days(first, counted_to)) if first <= counted_to else 0,
                   counted_to=counted_to, future=last > today,
                   days_in=sum(r.days_in for r in rows), missing=sum(len(r.missing) for r in rows))
    return render(request, "attendance/summary.html", context)
