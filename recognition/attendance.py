"""Attendance: who is expected on a day (:func:`expected_during`, :func:`is_expected`: the one rule that
the day page, its 30-day chart and the summary apply), and the attendance summary of a period
(``/attendance/summary/``): for each person, the days checked in, the working days missing and when they
came in.

A person is expected on day D (may be missing that day) when created by the end of D and active at
that end: active now or deactivated after D (``Person.deactivated_at`` at or after the end of D), and
in none of their past inactive periods then (``PersonInactivePeriod``, kept by each reactivation: from
a deactivation to the reactivation, begun before the end of D and not ended before it). Someone
deactivated today is still missing on the days before, someone deactivated last week on none since,
and someone away for a fortnight and reactivated on none of that fortnight's days but on those before
and since (the day of their reactivation too). An inactive person without a date (deactivated before
it was recorded and not found in the audit log: migration ``enrollment.0019``) is expected on no day,
as before; so is, on the days before it, one reactivated from such a state (a period without a start).

Who counts, and as what, follows the day page (:func:`recognition.views.daily_attendance`), so that a
period's figures add up to its days' pages: a person is listed when expected on a day of the period, or
checked in during it (at ``site`` when given), inactive or not; a day counts as checked in when the
person has a check-in that day (at ``site`` when given), any check-in, whoever or whatever recorded it;
a working day (``MASKNET_WORKING_DAYS``: :func:`is_working_day`) is missing for a person expected that day with
no check-in that day at any site. A day that is not a working day has nobody missing, on the day page and its
chart as in the summary: the page lists those expected who did not check in as "not checked in". Nor has a day
after today (local ``TIME_ZONE``), a working day or not: it has not happened (:func:`counts_missing`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, F, FilteredRelation, Min, Q
from django.db.models.functions import TruncDate, TruncTime
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR

from enrollment.models import Person, PersonInactivePeriod
from masknet_site.settings.base import working_weekdays

from .models import CheckIn

SUMMARY_MAX_DAYS = 366   # the longest period one summary covers (a year, a leap year's too)


@dataclass(frozen=True)
class SummaryRow:
    """One person's line of the summary.

    ``days_in``: days with a check-in (at the site asked for, when one was); ``missing``: the working
    days, up to today, the person was expected (:func:`is_expected`) with no check-in at any site, oldest
    first; ``earliest`` and ``latest``: the earliest and the latest of the days' first check-in times,
    local time of day (``TIME_ZONE``), ``None`` without a day in; ``days_masked``: days with a check-in
    (at that site) made with a mask; ``days_by_hand``: days with a check-in (at that site) recorded
    by hand and none by a kiosk (``CheckIn.source``); ``expected``: whether the person was expected on a
    day of the period (``False``: listed for their days in alone, e.g. inactive since before it, and never missing)."""

    person: Person
    days_in: int
    missing: tuple[date, ...]
    earliest: time | None
    latest: time | None
    days_masked: int
    expected: bool = True
    days_by_hand: int = 0


def workdays() -> frozenset[int]:
    """The weekdays (0 = Monday, as ``date.weekday()``) that ``MASKNET_WORKING_DAYS`` names."""
    return working_weekdays(settings.MASKNET_WORKING_DAYS)


def workdays_named() -> str:
    """The working weekdays as the pages name them: "Mon, Tue, Wed, Thu, Fri", in the active language
    ("Mo, Di, Mi, Do, Fr" in German) as the ``date`` filter names the days beside them (``"D"``), not in
    the server process's C locale (``calendar.day_abbr``), which no page's language changes."""
    return ", ".join(str(WEEKDAYS_ABBR[d]) for d in sorted(workdays()))


def days_off_named() -> str:
    """The weekdays that ``MASKNET_WORKING_DAYS`` leaves out, as :func:`workdays_named` names them: "Sat, Sun"
    by default, "" when every day is a working day."""
    return ", ".join(str(WEEKDAYS_ABBR[d]) for d in range(7) if d not in workdays())


def is_working_day(day: date) -> bool:
    """Whether ``MASKNET_WORKING_DAYS`` names ``day``'s weekday: people are missing on no other day."""
    return day.weekday() in workdays()


def counts_missing(day: date) -> bool:
    """Whether anyone can be missing on ``day``: a working day (:func:`is_working_day`) that has come (today
    or before, in ``TIME_ZONE``). On any other day the day page lists those not in as "not checked in"."""
    return day <= timezone.localdate() and is_working_day(day)


def working_days(first: date, last: date) -> list[date]:
    """The days from ``first`` to ``last`` (inclusive) that ``MASKNET_WORKING_DAYS`` names."""
    weekdays = workdays()
    return [d for d in (first + timedelta(days=i) for i in range((last - first).days + 1)) if d.weekday() in weekdays]


def day_end(day: date) -> datetime:
    """The end of local ``day`` (the next day's midnight, aware)."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _away(prefix: str, first: date, last: date | None = None) -> Q:
    """Whether the person (``prefix``: the path to them) was in a past inactive period at the end of
    ``first`` and at the end of ``last`` (of ``first`` alone without it): one period over both."""
    covers = Q(reactivated_at__gte=day_end(last or first)) & (
        Q(deactivated_at__isnull=True) | Q(deactivated_at__lt=day_end(first)))
    # not correlated: the database reads the few people away once, not once a person (the chart asks 30 days)
    return Q(**{f"{prefix}pk__in": PersonInactivePeriod.objects.filter(covers).values("person_id")})


def expected_during(first: date, last: date | None = None, *, prefix: str = "") -> Q:
    """People expected on at least one day from ``first`` to ``last`` (on ``first`` alone without
    ``last``), the module docstring's rule: created by the end of ``last``, active now or
    deactivated after ``first`` and after the day they were created (someone created and deactivated
    the same day, or created inactive, was expected on none), and not in one past inactive period over
    the whole span. ``prefix``: the path to the person from the model queried (``"person__"`` for
    check-ins). :func:`is_expected` is the same for one person, in Python.

    Exact for one day. Over several, a person whose days are covered by several periods together (or
    by past ones and their current deactivation), or by one begun on the day they were created within
    the span, is selected though expected on none:
    the summary, which asks :func:`is_expected` of each person, leaves them out; the chart counts
    each day by its own one-day rule."""
    gone = Q(**{f"{prefix}deactivated_at__gte": day_end(first)})
    if last is not None and last != first:   # one day: created by its end and gone after it says as much
        # local days, as the pages': deactivated_at__date is deactivated_at's in the current time zone
        gone &= Q(**{f"{prefix}deactivated_at__date__gt": TruncDate(f"{prefix}created_at")})
    return (Q(**{f"{prefix}created_at__lt": day_end(last or first)}) & (Q(**{f"{prefix}active": True}) | gone)
            & ~_away(prefix, first, last))


EXPECTED_FIELDS = ("created_at", "active", "deactivated_at")   # what is_expected reads of a person

Away = Sequence[tuple[datetime | None, datetime]]   # past inactive periods: (deactivated_at or None, reactivated_at)


def is_expected(first_end: datetime, last_end: datetime | None = None, *, created_at: datetime, active: bool,
                deactivated_at: datetime | None, away: Away = ()) -> bool:
    """Whether a person (their ``created_at``, ``active`` and ``deactivated_at``, and ``away``: their
    past inactive periods, those that may cover a day asked about at least) was expected (module
    docstring) on a day from the one ending at ``first_end`` to the one ending at ``last_end`` (on
    that first day alone without it), given as the days' ends (:func:`day_end`). What
    :func:`expected_during` selects, exactly over several days too."""
    if last_end is None:   # the summary asks this of each person and day: kept cheap
        return (created_at < first_end and (active or (deactivated_at is not None and deactivated_at >= first_end))
                and not (away and _away_at(first_end, away)))
    if created_at >= last_end or not (active or (deactivated_at is not None and deactivated_at >= first_end)):
        return False
    # the days they may first be active at the end of: the first they were enrolled at the end of,
    # and each day a past period ended on (a reactivation at midnight: the day it starts)
    enrolled = first_end if created_at < first_end else day_end(timezone.localdate(created_at))
    ends = [enrolled, *(day_end(timezone.localdate(ended)) for _, ended in away)]
    return any(enrolled <= end <= last_end and (active or deactivated_at >= end) and not _away_at(end, away)
               for end in ends)


def days_expected(ends: Sequence[datetime], *, created_at: datetime, active: bool, deactivated_at: datetime | None,
                  away: Away = ()) -> range | list[int]:
    """The positions in ``ends`` (days' ends, :func:`day_end`, ascending) of the days the person was
    expected on: :func:`is_expected` of each day, at once. The days ending after they were created
    and, unless active, by their deactivation are a run of the sorted ends, their past inactive
    periods (few people's) asked of each day of that run alone. The summary asked :func:`is_expected`
    of each person and day: 4.7 million calls, 5 of a year's 19 s at 20,000 people (a scale review)."""
    lo = bisect_right(ends, created_at)
    hi = len(ends) if active else 0 if deactivated_at is None else bisect_right(ends, deactivated_at)
    run = range(lo, max(lo, hi))
    return [i for i in run if not _away_at(ends[i], away)] if away else run


def _away_at(end: datetime, away: Away) -> bool:
    """Whether one of ``away`` (past inactive periods) covers the day ending at ``end``."""
    for began, ended in away:   # a loop, not any(): the summary asks it of each day of a year
        if end <= ended and (began is None or began < end):
            return True
    return False


def attendance_summary(first: date, last: date, site: str = "") -> list[SummaryRow]:
    """The summary from ``first`` to ``last`` (local days, inclusive; at most :data:`SUMMARY_MAX_DAYS`),
    at ``site`` or at every site, one row per person (module docstring), in the people's order.
    Two queries whatever the number of people or days: the people (with their past inactive periods
    joined), and their check-ins grouped by person and day. Days after today are never missing (they
    have not happened)."""
    if not first <= last or (last - first).days >= SUMMARY_MAX_DAYS:
        raise ValueError(f"a period of 1 to {SUMMARY_MAX_DAYS} days is expected, not {first} to {last}")
    here = Q(site=site) if site else Q()
    in_period = CheckIn.objects.between(first, last)
    # a subquery, as the day page's: one query whatever the number checked in
    # with their past inactive periods that end in the period or after it joined (a person once per
    # such period, in the people's order): the people's one query still
    joined = (Person.objects.filter(expected_during(first, last) | Q(pk__in=in_period.filter(here).values("person_id")))
              .annotate(spans=FilteredRelation("inactive_periods",
                                               condition=Q(inactive_periods__reactivated_at__gte=day_end(first))))
              .annotate(away_from=F("spans__deactivated_at"), away_to=F("spans__reactivated_at")))
    people: dict[int, Person] = {}
    away: dict[int, list[tuple[datetime | None, datetime]]] = {}
    for person in joined:
        people.setdefault(person.pk, person)
        if person.away_to is not None:
            away.setdefault(person.pk, []).append((person.away_from, person.away_to))
    zone = timezone.get_current_timezone()   # the pages' zone (TIME_ZONE), read once
    per_day = (in_period.values("person_id", "local_date").order_by()
               # the first check-in's local time of day, made by the database: psycopg parsing each
               # day's first check-in as an aware date-time was half of a year's summary at 20,000 people
               .annotate(first_at=TruncTime(Min("at", filter=here), tzinfo=zone), n_here=Count("pk", filter=here),
                         n_masked=Count("pk", filter=here & Q(masked=True)),
                         n_manual=Count("pk", filter=here & Q(source=CheckIn.Source.MANUAL)))
               .values_list("person_id", "local_date", "first_at", "n_here", "n_masked", "n_manual"))
    seen: dict[int, set[date]] = {}          # days with a check-in anywhere: not missing
    times: dict[int, list[time]] = {}        # the first check-in's time of each day in (at the site)
    masked: dict[int, int] = {}
    by_hand: dict[int, int] = {}             # days whose check-ins (at the site) were all recorded by hand
    for person_id, day, first_at, n_here, n_masked, n_manual in per_day.iterator():
        seen.setdefault(person_id, set()).add(day)
        if n_here:
            times.setdefault(person_id, []).append(first_at)
            masked[person_id] = masked.get(person_id, 0) + (n_masked > 0)
            by_hand[person_id] = by_hand.get(person_id, 0) + (n_manual == n_here)
    counted = working_days(first, min(last, timezone.localdate()))
    ends = [day_end(d) for d in counted]
    period = (day_end(first), day_end(last))
    rows = []
    for person in people.values():
        days = times.get(person.pk, [])
        facts = {name: getattr(person, name) for name in EXPECTED_FIELDS}
        facts["away"] = away.get(person.pk, ())
        expected = is_expected(*period, **facts)
        if not (expected or days):   # selected by expected_during's several days, expected on none of them
            continue
        checked = seen.get(person.pk, set())
        missing = tuple(counted[i] for i in days_expected(ends, **facts) if counted[i] not in checked)
        rows.append(SummaryRow(person=person, days_in=len(days), missing=missing, earliest=min(days, default=None),
                               latest=max(days, default=None), days_masked=masked.get(person.pk, 0),
                               expected=expected, days_by_hand=by_hand.get(person.pk, 0)))
    return rows
