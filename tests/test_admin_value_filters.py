"""The admin's filters of a column's values (audit/admin_filters.py): the audit log's actors and
object types and the check-ins' sites are Django's ``AllValuesFieldListFilter`` for the user (same
choices, URL parameters and selection), found by index probes, never a DISTINCT over every row, and
at most ``max_choices`` of them."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.admin_filters import IndexedValuesFieldListFilter, distinct_values
from audit.models import AuditEvent
from enrollment.models import Person
from recognition.models import CheckIn

pytestmark = pytest.mark.django_db

AUDIT = reverse("admin:audit_auditevent_changelist")
CHECKINS = reverse("admin:recognition_checkin_changelist")
ACTORS = ["system", "boss", "", "alice", "Zoe", "bob"]      # "" (a blank actor): a choice of its own, as Django's
SITES = ["main", "annex", "Depot", "annex"]


def event(actor: str, object_type: str = "enrollment.person", **fields) -> AuditEvent:
    return AuditEvent.objects.create(actor=actor, action="create", object_type=object_type, object_id="1",
                                     summary="x", **fields)


@pytest.fixture
def boss(client) -> User:
    user = User.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def events(boss) -> None:
    for i, actor in enumerate(ACTORS):
        event(actor, object_type=["enrollment.person", "auth.user", "recognition.kiosk"][i % 3],
              actor_id=None if i % 2 else i)


@pytest.fixture
def checkins(db) -> None:
    person = Person.objects.create(full_name="Eileen Collins", staff_id="E-1")
    for i, site in enumerate(SITES):
        CheckIn.objects.create(person=person, site=site, local_date=date(2026, 3, 2), window=f"{site}|{i}", score=0.8)


def spec(page, field_path: str) -> IndexedValuesFieldListFilter:
    """The change list's filter of ``field_path``: the probing one."""
    found = [f for f in page.context["cl"].filter_specs if getattr(f, "field_path", None) == field_path]
    assert len(found) == 1, field_path
    assert isinstance(found[0], IndexedValuesFieldListFilter), type(found[0])
    return found[0]


def listed(page, field_path: str) -> list[tuple[str, bool]]:
    """The filter's choices after "All": (shown, selected)."""
    choices = list(spec(page, field_path).choices(page.context["cl"]))
    assert str(choices[0]["display"]) == "All"
    return [(str(c["display"]), c["selected"]) for c in choices[1:]]


def djangos(model, column: str) -> list[str]:
    """What Django's own filter lists: the column's distinct values, in the database's order."""
    return [str(v) for v in model.objects.order_by(column).values_list(column, flat=True).distinct()
            if v is not None]


def distinct_sql(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_the_choices_are_the_columns_distinct_values(client, events, checkins):
    with CaptureQueriesContext(connection) as queries:
        page = client.get(AUDIT)
    assert page.status_code == 200 and not distinct_sql(queries)
    assert [shown for shown, _ in listed(page, "actor")] == djangos(AuditEvent, "actor")
    assert "" in djangos(AuditEvent, "actor") and len(djangos(AuditEvent, "actor")) == len(set(ACTORS))
    assert [shown for shown, _ in listed(page, "object_type")] == djangos(AuditEvent, "object_type")
    page = client.get(CHECKINS)
    assert [shown for shown, _ in listed(page, "site")] == djangos(CheckIn, "site") and len(listed(page, "site")) == 3
    # with counts (?_facets), as Django's
    faceted = client.get(CHECKINS, {"_facets": "1"})
    assert ("annex (2)", False) in listed(faceted, "site")


@pytest.mark.parametrize("field_path, params", [
    ("actor", {}), ("actor", {"actor": ["alice"]}), ("actor", {"actor": [""]}), ("object_type", {}),
    ("actor_id", {}), ("actor_id", {"actor_id__isnull": ["True"]}), ("actor_id", {"actor_id": ["2"]}),
])
def test_the_choices_are_djangos(rf, boss, events, field_path, params):
    """The audit list's filters of actors and object types give the same choices as Django's
    ``AllValuesFieldListFilter``, link for link, for a blank value too; so does the filter of a
    nullable column (its NULLs: the empty-value choice, ``?actor_id__isnull=True``)."""
    model_admin = admin.site._registry[AuditEvent]
    assert {f for f in model_admin.list_filter if isinstance(f, tuple) and f[1] is IndexedValuesFieldListFilter} == {
        ("actor", IndexedValuesFieldListFilter), ("object_type", IndexedValuesFieldListFilter)}
    request = rf.get(AUDIT, {k: v[0] for k, v in params.items()})
    request.user = boss
    changelist = model_admin.get_changelist_instance(request)
    field = AuditEvent._meta.get_field(field_path)
    theirs, ours = (cls(field, request, {k: list(v) for k, v in params.items()}, AuditEvent, model_admin, field_path)
                    for cls in (admin.AllValuesFieldListFilter, IndexedValuesFieldListFilter))
    assert isinstance(ours, IndexedValuesFieldListFilter) and not isinstance(theirs, IndexedValuesFieldListFilter)
    assert list(ours.choices(changelist)) == list(theirs.choices(changelist))
    assert ours.expected_parameters() == theirs.expected_parameters() and ours.used_parameters == theirs.used_parameters
    values = [v for v in ours.lookup_choices if v is not None]
    assert values == distinct_values(AuditEvent.objects.all(), field_path, 100)


def test_a_choice_filters_the_list(client, events, checkins):
    for url, field_path, value, column in ((AUDIT, "actor", "alice", "actor"), (AUDIT, "actor", "", "actor"),
                                           (AUDIT, "object_type", "auth.user", "object_type"),
                                           (CHECKINS, "site", "annex", "site")):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url, {field_path: value})
        assert page.status_code == 200
        rows = page.context["cl"].result_list
        assert rows and {getattr(row, column) for row in rows} == {value}, (field_path, value)
        model = rows[0].__class__
        assert len(rows) == model.objects.filter(**{column: value}).count()
        assert [shown for shown, selected in listed(page, field_path) if selected] == [value]
        assert not distinct_sql(queries), (field_path, value)
    # the filter's link: what the list's sidebar links to
    page = client.get(AUDIT)
    link = next(c["query_string"] for c in spec(page, "actor").choices(page.context["cl"]) if c["display"] == "bob")
    assert link == "?actor=bob" and [e.actor for e in client.get(AUDIT + link).context["cl"].result_list] == ["bob"]


def test_the_lists_run_no_distinct(client, events, checkins):
    """Rendering either list (its filters, its date drill-down) reads no DISTINCT of any column;
    each value is one probe of the column's index."""
    for url, field_paths in ((AUDIT, ("actor", "object_type")), (CHECKINS, ("site",))):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        assert page.status_code == 200
        for field_path in field_paths:
            spec(page, field_path)
            probes = [q["sql"] for q in queries.captured_queries
                      if q["sql"].startswith(f'SELECT "{page.context["cl"].model._meta.db_table}"."{field_path}"')]
            assert len(probes) == len(listed(page, field_path)) + 1, field_path   # one each, and one finding no more
            assert all("LIMIT 1" in sql and "ORDER BY" in sql for sql in probes)
        assert not distinct_sql(queries), url


def test_the_csv_export_probes_nothing(client, events):
    """The export builds the change list (its filters) but never shows the choices: no probes."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:audit_auditevent_export"), {"actor": "alice"})
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries
                if q["sql"].startswith(tuple(f'SELECT "audit_auditevent"."{c}" AS' for c in ("actor", "object_type")))]
    assert spec(client.get(AUDIT), "object_type")


def test_the_cap_holds(client, boss, monkeypatch):
    """At most ``max_choices`` values (the smallest), in at most ``max_choices + 1`` probes; the
    list says so, and a value past the cap still filters and is shown chosen."""
    AuditEvent.objects.bulk_create([AuditEvent(actor=f"user{i:03d}", action="create", object_type="x", object_id="1",
                                               summary="x") for i in range(105)])
    names = djangos(AuditEvent, "actor")
    assert len(names) > 100
    with CaptureQueriesContext(connection) as queries:
        page = client.get(AUDIT)
    assert [shown for shown, _ in listed(page, "actor")] == names[:100]
    assert spec(page, "actor").truncated and "The first 100 values only" in page.content.decode()
    probes = [q for q in queries.captured_queries if q["sql"].startswith('SELECT "audit_auditevent"."actor"')]
    assert len(probes) == 101 and not distinct_sql(queries)
    assert not spec(page, "object_type").truncated
    assert [shown for shown, _ in listed(page, "object_type")] == djangos(AuditEvent, "object_type")
    # past the cap: still a filter, and shown as the one chosen (after the others)
    last = names[-1]
    page = client.get(AUDIT, {"actor": last})
    assert [e.actor for e in page.context["cl"].result_list] == [last]
    assert listed(page, "actor")[-1] == (last, True) and len(listed(page, "actor")) == 101
    assert listed(client.get(AUDIT, {"actor": "nobody"}), "actor") == [(n, False) for n in names[:100]]
    # a smaller cap, for one list
    monkeypatch.setattr(IndexedValuesFieldListFilter, "max_choices", 3)
    page = client.get(AUDIT)
    assert [shown for shown, _ in listed(page, "actor")] == names[:3]
    assert "The first 3 values only" in page.content.decode()
