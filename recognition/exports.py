"""The attendance CSV's columns and rows: one writer for the attendance pages, the check-in
admin, the API's CSV and the subject-access archive (``enrollment.services.person_export``).

Neutral ground: it imports no views or services (nor, when the code runs, the models), so a
service may import it at module level without an import cycle (``recognition.services``
imports ``enrollment.services``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import CheckIn

CHECKIN_CSV_HEADER = ["time", "date", "staff_id", "name", "department", "site", "kiosk", "masked", "score",
                      "frames", "index_version", "checkin_id"]


def checkin_csv_rows(queryset: QuerySet[CheckIn]) -> Iterator[list[object]]:
    """CSV rows (see :data:`CHECKIN_CSV_HEADER`) of check-ins, oldest first."""
    for c in queryset.listed().select_related("person", "kiosk").order_by("at", "id").iterator(chunk_size=500):
        yield [timezone.localtime(c.at).isoformat(timespec="seconds"), c.local_date.isoformat(), c.person.staff_id,
               c.person.full_name, c.person.department, c.site, c.kiosk.name if c.kiosk else "",
               "yes" if c.masked else "no", f"{c.score:.3f}", c.frames, c.index_version or "", c.pk]
