"""The attendance summary of a period (``/attendance/summary/``): for each person, the days checked in,
the working days missing and when they came in.

Who counts, and as what, follows the day page (:func:`recognition.views.daily_attendance`), so that a
period's figures add up to its days' pages: a person is listed when active now and enrolled by the
end of the period, or checked in during it (at ``site`` when given), inactive or not; a day counts as
checked in when the person has a check-in that day (at ``site`` when given), any check-in, whoever or
whatever recorded it; a working day (``MASKNET_WORKING_DAYS``) is missing for an active person enrolled
by that day's end with no check-in that day at any site. Inactive people are never missing, as on the
day page (whether someone was active is known for now only, not for each past day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from enrollment.models import Person
from masknet_site.settings.base import working_weekdays

from .models import CheckIn

SUMMARY_MAX_DAYS = 366   # the longest period one summary covers (a year, a leap year's too)


@dataclass(frozen=True)
class SummaryRow:
    """One person's line of the summary.

    ``days_in``: days with a check-in (at the site asked for, when one was); ``missing``: the working
    days, up to today, with no check-in at any site, oldest first (always empty for an inactive person,
    who is never missing); ``earliest`` and ``latest``: the earliest and the latest of the days' first
    check-in times, local time of day (``TIME_ZONE``), ``None`` without a day in; ``days_masked``: days
    with a check-in (at that site) made with a mask."""

    person: Person
    days_in: int
    missing: tuple[date, ...]
    earliest: time | None
    latest: time | None
    days_masked: int


def working_days(first: date, last: date) -> list[date]:
    """The days from ``first`` to ``last`` (inclusive) that ``MASKNET_WORKING_DAYS`` names."""
    weekdays = working_weekdays(settings.MASKNET_WORKING_DAYS)
    return [d for d in (first + timedelta(days=i) for i in range((last - first).days + 1)) if d.weekday() in weekdays]


def _day_end(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def attendance_summary(first: date, last: date, site: str = "") -> list[SummaryRow]:
    """The summary from ``first`` to ``last`` (local days, inclusive; at most :data:`SUMMARY_MAX_DAYS`),
    at ``site`` or at every site, one row per person (module docstring), in the people's order.
    Two queries whatever the number of people or days: the people, and their check-ins grouped by
    person and day. Days after today are never missing (they have not happened)."""
    if not first <= last or (last - first).days >= SUMMARY_MAX_DAYS:
        raise ValueError(f"a period of 1 to {SUMMARY_MAX_DAYS} days is expected, not {first} to {last}")
    here = Q(site=site) if site else Q()
    in_period = CheckIn.objects.between(first, last)
    # a subquery, as the day page's: one query whatever the number checked in
    people = list(Person.objects.filter(Q(active=True, created_at__lt=_day_end(last))
                                        | Q(pk__in=in_period.filter(here).values("person_id"))))
    per_day = (in_period.values("person_id", "local_date").order_by()
               .annotate(first_at=Min("at", filter=here), n_here=Count("pk", filter=here),
                         n_masked=Count("pk", filter=here & Q(masked=True)))
               .values_list("person_id", "local_date", "first_at", "n_here", "n_masked"))
    seen: dict[int, set[date]] = {}          # days with a check-in anywhere: not missing
    times: dict[int, list[time]] = {}        # the first check-in's time of each day in (at the site)
    masked: dict[int, int] = {}
    for person_id, day, first_at, n_here, n_masked in per_day.iterator():
        seen.setdefault(person_id, set()).add(day)
        if n_here:
            times.setdefault(person_id, []).append(timezone.localtime(first_at).time())
            masked[person_id] = masked.get(person_id, 0) + (n_masked > 0)
    workdays = working_days(first, min(last, timezone.localdate()))
    rows = []
    for person in people:
        days = times.get(person.pk, [])
        missing: tuple[date, ...] = ()
        if person.active:
            enrolled = timezone.localtime(person.created_at).date()   # missing from the day they were enrolled
            checked = seen.get(person.pk, set())
            missing = tuple(d for d in workdays if d >= enrolled and d not in checked)
        rows.append(SummaryRow(person=person, days_in=len(days), missing=missing, earliest=min(days, default=None),
                               latest=max(days, default=None), days_masked=masked.get(person.pk, 0)))
    return rows
