"""Past attendance and deactivations (recognition/attendance.py ``expected_during``): who counts as
missing on a past day follows when a person was deactivated (``Person.deactivated_at``), not whether
they are active now, on the day page, its 30-day chart and the summary alike."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from enrollment import services as enrollment
from enrollment.models import Person, PersonInactivePeriod
from recognition import services, views
from recognition.attendance import attendance_summary, expected_during, working_days

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(person, other_person, paired, every_day_working):
    """Eileen (E-1) active, in at a kiosk every day of the last 70; Tom (T-1) active, never in; Dan
    (D-1) deactivated today; Wes (W-1) deactivated 7 days ago; Ray (R-1) deactivated 20 days ago and
    reactivated 5 days ago; Una (U-1) inactive since before dates were recorded (NULL). All enrolled
    90 days ago; nobody but Eileen ever in. Every day a working day, whatever day it is today."""
    dan = enrollment.person_create(actor=None, full_name="Dan Today", staff_id="D-1")
    wes = enrollment.person_create(actor=None, full_name="Wes Week", staff_id="W-1")
    ray = enrollment.person_create(actor=None, full_name="Ray Back", staff_id="R-1")
    una = enrollment.person_create(actor=None, full_name="Una Known", staff_id="U-1")
    now = timezone.now()
    Person.objects.update(created_at=now - timedelta(days=90))
    for who in (dan, wes, ray):
        enrollment.person_deactivate(person=who, actor=None)
    Person.objects.filter(pk=wes.pk).update(deactivated_at=now - timedelta(days=7))
    Person.objects.filter(pk=ray.pk).update(deactivated_at=now - timedelta(days=20))
    enrollment.person_update(person=ray, actor=None, active=True)   # keeps the period it ends
    assert PersonInactivePeriod.objects.filter(person=ray).update(reactivated_at=now - timedelta(days=5)) == 1
    Person.objects.filter(pk=una.pk).update(active=False)   # as a row from before deactivated_at
    for back in range(70):
        assert services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=False,
                                       frames=4, index_version=1, at=now - timedelta(days=back)) is not None
    return {p.staff_id: p.pk for p in Person.objects.all()}


def missing_on(back: int) -> set[str]:
    return {p.staff_id for p in views.daily_attendance(timezone.localdate() - timedelta(days=back))["missing"]}


def test_someone_deactivated_today_is_still_missing_on_the_days_before(people):
    """Dan left today: last week's page still calls him missing (HR's export of it does not change),
    today's does not; Wes, deactivated a week ago, is missing before that and not after; Ray, away
    and inactive for two weeks, then reactivated, is missing before and since, not in between; Una
    (no date) never."""
    assert missing_on(0) == {"T-1", "R-1"}
    assert missing_on(3) == {"T-1", "R-1", "D-1"}
    assert missing_on(10) == {"T-1", "D-1", "W-1"}
    assert missing_on(30) == {"T-1", "R-1", "D-1", "W-1"}


def test_the_chart_counts_each_day_as_its_page_does(people, client, superuser, django_assert_num_queries):
    today = timezone.localdate()
    first = today - timedelta(days=views.CHART_DAYS - 1)
    with django_assert_num_queries(2):
        counts = views._missing_per_day(first, today)
    assert counts == {day: len(views.daily_attendance(day)["missing"]) for day in counts}
    assert counts[today - timedelta(days=3)] == 3 and counts[today - timedelta(days=10)] == 3
    assert counts[today - timedelta(days=25)] == 4
    client.force_login(superuser)
    page = client.get(reverse("attendance-day"), {"date": (today - timedelta(days=3)).isoformat()})
    html = page.content.decode()
    assert page.context["chart"]["bars"][-1]["missing"] == 3 and "Dan Today" in html
    # inactive now: said so, and no button to record a check-in by hand (which refuses them)
    assert "(inactive now)" in html and f"?person={people['D-1']}&amp;" not in html
    assert f"?person={people['T-1']}&amp;" in html


def test_last_months_summary_keeps_the_people_deactivated_since(people, client, superuser):
    today = timezone.localdate()
    last = today.replace(day=1) - timedelta(days=1)
    first = last.replace(day=1)
    rows = {r.person.staff_id: r for r in attendance_summary(first, last)}
    workdays = tuple(working_days(first, last))
    assert rows["D-1"].missing == workdays and rows["D-1"].expected   # left today: missing all of last month
    assert rows["T-1"].missing == workdays and rows["E-1"].missing == ()
    assert "U-1" not in rows   # unknown: as before, never expected
    # this past fortnight: Wes missing up to the day he left, not after
    rows = {r.person.staff_id: r for r in attendance_summary(today - timedelta(days=14), today)}
    left = today - timedelta(days=7)
    assert rows["W-1"].missing == tuple(d for d in working_days(today - timedelta(days=14), left - timedelta(days=1)))
    assert rows["R-1"].missing == tuple(working_days(today - timedelta(days=5), today))   # back 5 days ago
    client.force_login(superuser)
    response = client.get(reverse("attendance-summary"), {"date_from": first.isoformat(),
                                                          "date_to": last.isoformat(), "format": "csv"})
    lines = {r[0]: r for r in csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert lines["D-1"][3:6] == ["no", "0", str(len(workdays))]


def test_a_summary_after_someone_left_lists_them_only_for_their_days_in(people, superuser):
    """Wes, gone a week, is not listed in a period after he left; checked in during it, he is, never missing."""
    today = timezone.localdate()
    first = today - timedelta(days=3)
    assert "W-1" not in {r.person.staff_id for r in attendance_summary(first, today)}
    Person.objects.filter(pk=people["W-1"]).update(active=True)
    services.checkin_record_manual(person=Person.objects.get(pk=people["W-1"]), at=timezone.now(), site="main",
                                   reason="badge", actor=superuser)
    Person.objects.filter(pk=people["W-1"]).update(active=False)
    (wes,) = [r for r in attendance_summary(first, today) if r.person.staff_id == "W-1"]
    assert wes.days_in == 1 and wes.missing == () and not wes.expected


def test_the_summary_and_the_days_pages_agree_on_who_was_missing(people):
    """The summary applies the rule in Python (``is_expected``), the pages in SQL (``expected_during``)."""
    today = timezone.localdate()
    first = today - timedelta(days=20)
    rows = attendance_summary(first, today)
    for day in working_days(first, today):
        assert ({r.person.staff_id for r in rows if day in r.missing}
                == {p.staff_id for p in views.daily_attendance(day)["missing"]}), day


def test_someone_created_and_deactivated_the_same_day_is_expected_on_no_day_of_a_period(people):
    """Expected on no day (created on it, gone by its end), so neither listed in a summary nor
    counted as expected in it ("0" missing, where "—" says they never were); the same for a person
    created inactive (an import's ``active`` no), whose date is a moment before their creation's."""
    today = timezone.localdate()
    noon = timezone.make_aware(datetime.combine(today - timedelta(days=5), time(12)))
    brief = enrollment.person_create(actor=None, full_name="Bo Brief", staff_id="B-1")
    enrollment.person_deactivate(person=brief, actor=None)
    Person.objects.filter(pk=brief.pk).update(created_at=noon, deactivated_at=noon + timedelta(hours=3))
    enrollment.person_create(actor=None, full_name="Ivy Inactive", staff_id="I-1", active=False)
    for first in (today - timedelta(days=10), today - timedelta(days=5)):
        listed = {r.person.staff_id for r in attendance_summary(first, today)}
        assert {"B-1", "I-1"}.isdisjoint(listed), first
        assert "B-1" not in {p.staff_id for p in Person.objects.filter(expected_during(first, today))}
    # one day later, the day they were created is theirs
    Person.objects.filter(pk=brief.pk).update(deactivated_at=noon + timedelta(days=1))
    (row,) = [r for r in attendance_summary(today - timedelta(days=10), today) if r.person.staff_id == "B-1"]
    assert row.expected and row.missing == tuple(d for d in working_days(today - timedelta(days=5),
                                                                         today - timedelta(days=5)))


def test_the_same_local_day_in_a_zone_away_from_utc(people, settings):
    """18:00 to 21:00 in New York is one local day, two days in UTC: expected on none."""
    settings.TIME_ZONE = "America/New_York"
    today = timezone.localdate()
    evening = timezone.make_aware(datetime.combine(today - timedelta(days=5), time(18)))
    brief = enrollment.person_create(actor=None, full_name="Bo Brief", staff_id="B-1")
    Person.objects.filter(pk=brief.pk).update(created_at=evening, active=False,
                                               deactivated_at=evening + timedelta(hours=3))
    first = today - timedelta(days=10)
    assert "B-1" not in {r.person.staff_id for r in attendance_summary(first, today)}
    assert "B-1" not in {p.staff_id for p in Person.objects.filter(expected_during(first, today))}


def day_csv_missing(client, day) -> set[str]:
    response = client.get(reverse("attendance-day"), {"date": day.isoformat(), "format": "csv"})
    rows = csv.DictReader(io.StringIO(response.content.decode()))
    return {r["staff_id"] for r in rows if r["status"] == "missing"}


def test_someone_away_for_a_past_fortnight_is_missing_on_none_of_its_days(people, client, superuser):
    """Ray was inactive from 20 days ago to 5 days ago (deactivated, then reactivated: the period his
    reactivation kept). A reactivation cleared the date, so he counted missing on every day away; now
    on none of them (the day he left neither), on the day page, its CSV, the summary and its CSV, and
    on every day before and since (the day he came back too)."""
    client.force_login(superuser)
    today = timezone.localdate()
    for back, missing in ((21, True), (20, False), (12, False), (6, False), (5, True), (1, True)):
        day = today - timedelta(days=back)
        page = client.get(reverse("attendance-day"), {"date": day.isoformat()})
        assert ("Ray Back" in page.content.decode()) is missing, back
        assert ("R-1" in {p.staff_id for p in page.context["missing"]}) is missing, back
        assert ("R-1" in day_csv_missing(client, day)) is missing, back
    first = today - timedelta(days=30)
    (ray,) = [r for r in attendance_summary(first, today) if r.person.staff_id == "R-1"]
    assert ray.missing == (*working_days(first, today - timedelta(days=21)), *working_days(today - timedelta(days=5),
                                                                                          today))
    response = client.get(reverse("attendance-summary"), {"date_from": first.isoformat(), "date_to": today.isoformat(),
                                                          "format": "csv"})
    lines = {r[0]: r for r in csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert lines["R-1"][5] == str(len(ray.missing)) == str(31 - 15)
    assert lines["R-1"][6] == " ".join(d.isoformat() for d in ray.missing)


def test_a_period_within_which_someone_was_away_throughout_does_not_list_them(people):
    """Over days all inside his time away, Ray was expected on none: not listed (as someone deactivated
    before a period is not), not counted by ``expected_during``; over days that reach past it, he is."""
    today = timezone.localdate()
    first, last = today - timedelta(days=15), today - timedelta(days=8)
    assert "R-1" not in {r.person.staff_id for r in attendance_summary(first, last)}
    assert "R-1" not in {p.staff_id for p in Person.objects.filter(expected_during(first, last))}
    assert "R-1" in {p.staff_id for p in Person.objects.filter(expected_during(first, today - timedelta(days=5)))}


def test_periods_that_cover_the_days_together_list_nobody(people):
    """Away twice, back for an hour between (covering no day's end): expected on no day of a span that
    the two periods cover together, though neither does alone, so not in the summary; the chart's
    and the pages' one-day counts agree."""
    ray = Person.objects.get(staff_id="R-1")
    today = timezone.localdate()

    def noon(back: int) -> datetime:
        return timezone.make_aware(datetime.combine(today - timedelta(days=back), time(12)))

    PersonInactivePeriod.objects.filter(person=ray).update(deactivated_at=noon(20), reactivated_at=noon(12))
    PersonInactivePeriod.objects.create(person=ray, deactivated_at=noon(12) + timedelta(hours=1),
                                        reactivated_at=noon(5))
    first, last = today - timedelta(days=18), today - timedelta(days=7)
    assert "R-1" not in {r.person.staff_id for r in attendance_summary(first, last)}
    assert all("R-1" not in missing_on(b) for b in range(7, 19))
    assert views._missing_per_day(first, last) == {day: len(views.daily_attendance(day)["missing"])
                                                  for day in working_days(first, last)}


def test_someone_reactivated_from_an_unknown_date_is_missing_only_since(people):
    """Una, inactive since before dates were recorded, is expected on no day; reactivated, on the days
    since (the period her reactivation keeps has no start), on none before, in the summary as on the pages."""
    una = Person.objects.get(staff_id="U-1")
    enrollment.person_update(person=una, actor=None, active=True)
    PersonInactivePeriod.objects.filter(person=una).update(reactivated_at=timezone.now() - timedelta(days=3))
    today = timezone.localdate()
    assert ["U-1" in missing_on(back) for back in (30, 4, 3, 0)] == [False, False, True, True]
    (row,) = [r for r in attendance_summary(today - timedelta(days=30), today) if r.person.staff_id == "U-1"]
    assert row.missing == tuple(working_days(today - timedelta(days=3), today))
