"""The admin's date drill-down (audit/templatetags/admin_dates.py): the same periods as Django's
own, found by index probes, never a DISTINCT over every row."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from audit.templatetags.admin_dates import periods

pytestmark = pytest.mark.django_db

# around a new year, a month's end and (in Europe/Lisbon) the autumn clock change, at local midnights
MOMENTS = [(2024, 3, 5, 12), (2025, 10, 26, 0), (2025, 10, 26, 23), (2025, 12, 31, 23), (2026, 1, 1, 0),
           (2026, 1, 31, 23), (2026, 2, 1, 1)]


def truncating(queries: CaptureQueriesContext) -> list[str]:
    """The queries that truncate every row's date (Django's drill-down: DISTINCT over them)."""
    return [q["sql"] for q in queries.captured_queries
            if "DISTINCT" in q["sql"].upper() and "TRUNC" in q["sql"].upper()]


@pytest.fixture
def spread(settings, monkeypatch):
    settings.TIME_ZONE = "Europe/Lisbon"
    with timezone.override("Europe/Lisbon"):
        for y, m, d, h in MOMENTS:
            at = timezone.make_aware(datetime(y, m, d, h, 30))
            monkeypatch.setattr(timezone, "now", lambda at=at: at)
            audit_record(actor=None, action="create", object_type="enrollment.person", object_id=1, summary="x")
        monkeypatch.undo()
        yield


@pytest.mark.parametrize("kind", ["year", "month", "day"])
def test_the_periods_are_djangos(spread, kind):
    with timezone.override("Europe/Lisbon"):
        for qs in (AuditEvent.objects.all(), AuditEvent.objects.filter(at__year=2026),
                   AuditEvent.objects.filter(at__year=2025, at__month=10), AuditEvent.objects.none()):
            assert periods(qs, "at", kind) == list(qs.datetimes("at", kind)), (kind, qs.query)


def test_a_chosen_year_and_month_give_djangos_periods(spread):
    from audit.templatetags.admin_dates import _Probed

    with timezone.override("Europe/Lisbon"):
        for year in (2023, 2024, 2025, 2026):
            qs = AuditEvent.objects.filter(at__year=year)
            assert _Probed(qs, {"at__year": str(year)}).datetimes("at", "month") == list(qs.datetimes("at", "month"))
            for month in range(1, 13):
                qs = AuditEvent.objects.filter(at__year=year, at__month=month)
                params = {"at__year": str(year), "at__month": str(month)}
                assert _Probed(qs, params).datetimes("at", "day") == list(qs.datetimes("at", "day")), (year, month)


def test_the_audit_list_drills_down_without_a_scan(client, spread):
    admin = User.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    for query, links in (("", ["at__year=2024", "at__year=2025", "at__year=2026"]),
                         ("?at__year=2025", ["at__month=10", "at__month=12"]),
                         ("?at__year=2026&at__month=1", ["at__day=1", "at__day=31"])):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/admin/audit/auditevent/{query}")
        assert page.status_code == 200
        html = page.content.decode()
        for link in links:
            assert link in html, (query, link)
        assert not truncating(queries), query


def test_a_month_that_does_not_exist_lists_no_days(client, spread):
    from audit.templatetags.admin_dates import _Probed

    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    assert client.get("/admin/audit/auditevent/?at__year=2026&at__month=13").status_code == 302   # ?e=1
    probed = _Probed(AuditEvent.objects.filter(at__year=2026, at__month=13), {"at__year": "2026", "at__month": "13"})
    assert probed.datetimes("at", "day") == []


def test_the_checkin_list_uses_it_too(client, db):
    admin = User.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/recognition/checkin/").status_code == 200
    assert not truncating(queries)


def bounds_read(queries: CaptureQueriesContext) -> list[str]:
    """The queries that read the first and last row in view (MIN and MAX of the date)."""
    return [q["sql"] for q in queries.captured_queries if "MIN(" in q["sql"].upper() and "MAX(" in q["sql"].upper()]


@pytest.mark.parametrize("query", ["", "?q=x", "?action__exact=create", "?q=nothing-matches"])
def test_the_first_and_last_row_in_view_are_read_once(client, spread, query):
    """Django's drill-down reads them to choose its level, and the probes read them again: on a
    searched or filtered list (no index serves it) each read is a scan of the whole log."""
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    with timezone.override("Europe/Lisbon"), CaptureQueriesContext(connection) as queries:
        page = client.get(f"/admin/audit/auditevent/{query}")
    assert page.status_code == 200
    assert len(bounds_read(queries)) == 1, bounds_read(queries)
    html = page.content.decode()
    years = [] if "nothing" in query else ["at__year=2024", "at__year=2025", "at__year=2026"]
    for link in years:
        assert link in html, (query, link)


def test_rows_of_one_year_drill_to_its_months_with_one_read_of_the_bounds(client, spread):
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    with timezone.override("Europe/Lisbon"), CaptureQueriesContext(connection) as queries:
        # Lisbon's midnights, with their offsets (a bare day is a naive time: Django warns)
        page = client.get("/admin/audit/auditevent/", {"at__gte": "2025-06-01T00:00:00+01:00",
                                                       "at__lt": "2025-12-01T00:00:00+00:00"})
    assert page.status_code == 200
    assert len(bounds_read(queries)) == 1
    assert "at__month=10" in page.content.decode()
