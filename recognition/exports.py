"""The attendance CSV's columns and rows: one writer for the attendance pages, the check-in
admin, the API's CSV and the subject-access archive (``enrollment.services.person_export``); and
the words an export's audit record gives its filters.

Neutral ground: it imports no views or services (nor, when the code runs, the models), so a
service may import it at module level without an import cycle (``recognition.services``
imports ``enrollment.services``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import CheckIn

# new columns go at the end: scripts read these by position
CHECKIN_CSV_HEADER = ["time", "date", "staff_id", "name", "department", "site", "kiosk", "masked", "score",
                      "frames", "index_version", "checkin_id", "source", "reason"]


def checkin_csv_rows(queryset: QuerySet[CheckIn]) -> Iterator[list[object]]:
    """CSV rows (see :data:`CHECKIN_CSV_HEADER`) of check-ins, oldest first. A check-in by hand
    (``source`` ``manual``) has no kiosk, score or index version, 0 frames, and its ``reason``."""
    # the columns alone, and the zone read once: a model instance and timezone.localtime() a row were
    # most of a 500,000-row export's 46 s (a scale review)
    zone = timezone.get_current_timezone()
    columns = ("at", "local_date", "person__staff_id", "person__full_name", "person__department", "site",
               "kiosk__name", "masked", "score", "frames", "index_version", "pk", "source", "reason")
    for (at, day, staff_id, name, department, site, kiosk, masked, score, frames, version, pk, source,
         reason) in queryset.order_by("at", "id").values_list(*columns).iterator(chunk_size=2000):
        yield [at.astimezone(zone).isoformat(timespec="seconds"), day.isoformat(), staff_id, name, department, site,
               kiosk or "", "yes" if masked else "no", "" if score is None else f"{score:.3f}", frames,
               version or "", pk, source, reason]


def checkin_filters_described(filters: Mapping[str, object]) -> list[str]:
    """The attendance export's and the API's check-in filters (``CheckInQuerySet.filtered``'s
    arguments) as an audit record words them: ``date_from=2026-03-01``, ``person #12`` (by id, as
    a subject-access export finds it), ``kiosk #3``, ``site=main``, ``masked=yes``, ``after check-in #40``
    (the API's cursor); unset ones left out."""
    words = []
    for name in ("date_from", "date_to", "person", "kiosk", "site", "masked"):
        value = filters.get(name)
        if value is None or value == "":
            continue
        if name in ("person", "kiosk"):
            words.append(f"{name} #{value}")
        elif name == "masked":
            words.append(f"masked={'yes' if value else 'no'}")
        else:
            words.append(f"{name}={str(value)[:60]}")
    if filters.get("after_id") is not None:
        words.append(f"after check-in #{filters['after_id']}")
    return words
