"""The attendance summary of a period (``/attendance/summary/``, recognition/attendance.py): the counts on
a small world over two weeks and two sites, whom it lists (enrolled mid-period, inactive), its CSV and
audit record, its permission, the periods it refuses, and its queries."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import services as enrollment
from enrollment.models import Person
from recognition import services, views
from recognition.attendance import attendance_summary, working_days

from .conftest import make_paired_kiosk

pytestmark = pytest.mark.django_db(transaction=True)

FIRST, LAST = date(2026, 3, 2), date(2026, 3, 15)     # Monday to Sunday: ten working days, two weekends
PERIOD = {"date_from": FIRST.isoformat(), "date_to": LAST.isoformat()}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime(2026, 3, day, hour, minute))


def check_in(person: Person, kiosk, when: datetime, masked: bool = False) -> None:
    assert services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=masked,
                                   frames=4, index_version=1, at=when) is not None


@pytest.fixture
def world(person, other_person):
    """Eileen (E-1): in at main on Mon 2 (masked), Tue 3, Sat 7 (a weekend day) and Mon 9, at east on Wed 4,
    and at both on Mon 9 (main first); Tom (T-1): never; New Comer (N-1): enrolled Thu 12 at 15:00, in on
    Fri 13; Sam (S-0): in on Tue 3, inactive since; Gone (G-0): inactive, never in; Late (L-1): enrolled
    after the period. All others enrolled long before."""
    main, _token = make_paired_kiosk("Front door", site="main")
    east, _token = make_paired_kiosk("East door", site="east")
    sam = enrollment.person_create(actor=None, full_name="Sam Gone", staff_id="S-0")
    gone = enrollment.person_create(actor=None, full_name="Gone Never", staff_id="G-0")
    newcomer = enrollment.person_create(actor=None, full_name="New Comer", staff_id="N-1", department="=cmd|x")
    enrollment.person_create(actor=None, full_name="Late Person", staff_id="L-1")
    Person.objects.update(created_at=at(1, 0) - timedelta(days=60))
    Person.objects.filter(pk=newcomer.pk).update(created_at=at(12, 15))
    Person.objects.filter(staff_id="L-1").update(created_at=at(16, 9))
    check_in(person, main, at(2, 8, 10), masked=True)
    check_in(person, main, at(3, 9, 30))
    check_in(person, east, at(4, 7, 55))
    check_in(person, main, at(7, 10, 0))
    check_in(person, main, at(9, 8, 0))
    check_in(person, east, at(9, 12, 0), masked=True)
    check_in(newcomer, main, at(13, 9, 0))
    check_in(sam, main, at(3, 8, 45))
    Person.objects.filter(pk__in=[sam.pk, gone.pk]).update(active=False)
    return {"main": main, "east": east, "newcomer": newcomer, "sam": sam}


def by_staff_id(rows) -> dict:
    return {r.person.staff_id: r for r in rows}


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_counts_over_two_weeks_and_two_sites(world):
    rows = by_staff_id(attendance_summary(FIRST, LAST))
    assert set(rows) == {"E-1", "T-1", "N-1", "S-0"}     # not Gone (inactive, never in), nor Late (enrolled after)
    eileen = rows["E-1"]
    assert eileen.days_in == 5 and eileen.days_masked == 2   # Saturday counts as a day in; Monday 9 is one day
    assert [d.day for d in eileen.missing] == [5, 6, 10, 11, 12, 13]   # no weekend day among them
    assert eileen.earliest.strftime("%H:%M") == "07:55" and eileen.latest.strftime("%H:%M") == "10:00"
    assert rows["T-1"].days_in == 0 and len(rows["T-1"].missing) == 10 and rows["T-1"].earliest is None
    # enrolled on Thursday 12 at 15:00: missing that day (as that day's page says) and on none before
    assert [d.day for d in rows["N-1"].missing] == [12] and rows["N-1"].days_in == 1
    # inactive now: the days in count, never missing (the day page lists no inactive person as missing)
    assert rows["S-0"].days_in == 1 and rows["S-0"].missing == ()

    # at one site: the days in and their times are that site's; missing stays "checked in nowhere"
    main = by_staff_id(attendance_summary(FIRST, LAST, "main"))
    assert set(main) == {"E-1", "T-1", "N-1", "S-0"}
    assert main["E-1"].days_in == 4 and main["E-1"].days_masked == 1 and main["E-1"].missing == eileen.missing
    assert main["E-1"].earliest.strftime("%H:%M") == "08:00" and main["E-1"].latest.strftime("%H:%M") == "10:00"
    east = by_staff_id(attendance_summary(FIRST, LAST, "east"))
    assert set(east) == {"E-1", "T-1", "N-1"}        # Sam: inactive, in at main only
    assert east["E-1"].days_in == 2 and east["E-1"].earliest.strftime("%H:%M") == "07:55"
    assert east["E-1"].latest.strftime("%H:%M") == "12:00" and east["N-1"].days_in == 0


@pytest.mark.parametrize("site", ["", "main", "east"])
def test_the_summary_adds_up_to_the_days_pages(world, site):
    """Each working day's page calls missing those the summary counts missing that day, and the days
    in add up to each day's "in" list."""
    rows = attendance_summary(FIRST, LAST, site)
    for day in (FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)):
        page = views.daily_attendance(day, site)
        in_summary = sorted(r.person.pk for r in rows if day in r.missing)
        if day in working_days(FIRST, LAST):
            assert in_summary == sorted(p.pk for p in page["missing"]), day
        else:
            assert in_summary == [], day
    assert sum(r.days_in for r in rows) == sum(len(views.daily_attendance(FIRST + timedelta(days=i), site)["present"])
                                               for i in range((LAST - FIRST).days + 1))


def test_a_check_in_recorded_by_hand_counts_as_any_other(world, other_person, superuser, client):
    """Tom, never in at a kiosk, recorded by hand on Tuesday 10 at east: a day in there, not missing that day."""
    services.checkin_record_manual(person=other_person, at=at(10, 9, 15), site="east", reason="kiosk offline",
                                   actor=superuser, now=at(10, 18))
    tom = by_staff_id(attendance_summary(FIRST, LAST))["T-1"]
    assert tom.days_in == 1 and len(tom.missing) == 9 and date(2026, 3, 10) not in tom.missing
    assert tom.earliest.strftime("%H:%M") == "09:15" and tom.days_masked == 0 and tom.days_by_hand == 1
    assert by_staff_id(attendance_summary(FIRST, LAST, "main"))["T-1"].days_in == 0
    assert by_staff_id(attendance_summary(FIRST, LAST))["E-1"].days_by_hand == 0   # a kiosk's days
    client.force_login(superuser)
    page = client.get(reverse("attendance-summary"), PERIOD).content.decode()
    assert "(1 by hand)" in page
    lines = {r[0]: r for r in csv_rows(client.get(reverse("attendance-summary"), {**PERIOD, "format": "csv"}))}
    assert lines["staff_id"][-1] == "days_by_hand" and lines["T-1"][-1] == "1" and lines["E-1"][-1] == "0"


def test_working_days_follow_the_setting(world, settings):
    settings.MASKNET_WORKING_DAYS = "sun-thu"
    eileen = by_staff_id(attendance_summary(FIRST, LAST))["E-1"]
    assert [d.day for d in eileen.missing] == [5, 8, 10, 11, 12, 15]
    assert [d.weekday() for d in working_days(FIRST, FIRST + timedelta(days=6))] == [0, 1, 2, 3, 6]


def test_the_day_pages_chart_stripes_the_days_off_the_setting_names(client, superuser, world, settings):
    client.force_login(superuser)
    settings.MASKNET_WORKING_DAYS = "sun-thu"
    page = client.get(reverse("attendance-day"), {"date": "2026-03-15"})
    bars = page.context["chart"]["bars"]
    assert {b["day"].weekday() for b in bars if b["weekend"]} == {4, 5}
    # the note under the chart names those days, not "weekend days" (it said so whatever the setting)
    note = re.search(r'<p class="att-chart-note">(.*?)</p>', page.content.decode(), re.S).group(1)
    assert "Days off (Fri, Sat) are striped: nobody is counted missing on them." in note and "Weekend" not in note
    # every day a working day: nothing striped, and no sentence about stripes
    settings.MASKNET_WORKING_DAYS = "mon-sun"
    page = client.get(reverse("attendance-day"), {"date": "2026-03-15"})
    note = re.search(r'<p class="att-chart-note">(.*?)</p>', page.content.decode(), re.S).group(1)
    assert not any(b["weekend"] for b in page.context["chart"]["bars"]) and "striped" not in note


def test_days_after_today_are_never_missing(world):
    today = timezone.localdate()
    rows = by_staff_id(attendance_summary(today - timedelta(days=3), today + timedelta(days=10)))
    assert rows["T-1"].missing and max(rows["T-1"].missing) <= today


def test_the_page_shows_the_table_and_links_each_name(client, superuser, world):
    client.force_login(superuser)
    page = client.get(reverse("attendance-summary"), PERIOD)
    html = page.content.decode()
    assert page.status_code == 200 and 'id="summary"' in html
    assert [r.person.staff_id for r in page.context["rows"]] == ["E-1", "N-1", "S-0", "T-1"]   # by name
    assert page.context["working"] == 10 and page.context["missing"] == 6 + 10 + 1
    for person in Person.objects.filter(staff_id__in=["E-1", "T-1", "N-1", "S-0"]):   # over the period shown
        history = reverse("attendance-person", args=[person.pk])
        assert f'href="{history}?date_from=2026-03-02&amp;date_to=2026-03-15"' in html
    assert "(inactive)" in html and "Sun 15" not in html and "Thu 5 Mar" in html   # a missing day, linked
    assert f'href="{reverse("attendance-day")}?date=2026-03-05"' in html
    assert "Working days: Mon, Tue, Wed, Thu, Fri." in html
    # linked from the day's page, for that day's whole month (a past one), or this month up to today
    day = client.get(reverse("attendance-day"), {"date": "2026-03-10"}).content.decode()
    assert f'href="{reverse("attendance-summary")}?date_from=2026-03-01&amp;date_to=2026-03-31"' in day
    today = timezone.localdate()
    day = client.get(reverse("attendance-day"), {"date": today.isoformat()}).content.decode()
    assert (f'href="{reverse("attendance-summary")}?date_from={today.replace(day=1).isoformat()}'
            f'&amp;date_to={today.isoformat()}"') in day
    # a later month's (a day typed in): the whole month, not up to today, before its first (refused, 400)
    later = (today.replace(day=1) + timedelta(days=62)).replace(day=1)
    day = client.get(reverse("attendance-day"), {"date": (later + timedelta(days=4)).isoformat()}).content.decode()
    end = (later + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    link = f'{reverse("attendance-summary")}?date_from={later.isoformat()}&date_to={end.isoformat()}'
    assert f'href="{link.replace("&", "&amp;")}"' in day
    assert client.get(link).status_code == 200


def test_each_missing_day_is_linked_to_its_days_page_at_the_site(client, superuser, world):
    """Eileen's missing days at main, the whole cell as the page writes it: the days' words and addresses are
    made once a page (views._summary_table), each day linked with the site, in order, comma-separated."""
    client.force_login(superuser)
    html = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main"}).content.decode()
    row = html[html.index(">Eileen"):]
    cell = row[row.index('<td role="cell" class="n missing">'):row.index("</td>", row.index('class="n missing"'))]
    day_page = reverse("attendance-day")
    links = ", ".join(f'<a href="{day_page}?date=2026-03-{d:02d}&amp;site=main">{name} {d} Mar</a>'
                      for d, name in [(5, "Thu"), (6, "Fri"), (10, "Tue"), (11, "Wed"), (12, "Thu"), (13, "Fri")])
    assert cell == ('<td role="cell" class="n missing"><details><summary>6</summary>\n'
                    f"            {links}\n          </details>")


def test_a_name_links_to_the_persons_history_over_the_summarys_period(client, superuser, world, person):
    """The summary's names linked to the whole history: the person's page reads the summary's period
    (``?date_from&date_to``, read and refused as the summary reads them), and without one is as before."""
    from recognition.models import Kiosk

    main = Kiosk.objects.get(name="Front door")
    check_in(person, main, timezone.make_aware(datetime(2026, 2, 27, 9)))   # before the period
    check_in(person, main, at(16, 9))                                         # after it
    client.force_login(superuser)
    html = client.get(reverse("attendance-summary"), PERIOD).content.decode()   # at every site
    url = reverse("attendance-person", args=[person.pk])
    assert f'href="{url}?date_from=2026-03-02&amp;date_to=2026-03-15"' in html
    page = client.get(url, PERIOD)
    shown = page.content.decode()
    days = [c.local_date for c in page.context["page"].object_list]
    assert page.status_code == 200 and len(days) == page.context["total"] == 6 and page.context["masked"] == 2
    assert min(days) == FIRST and max(days) == date(2026, 3, 9)
    assert "2 Mar 2026 to 15 Mar 2026" in shown and f'href="{url}"' in shown   # the whole history, a link away
    assert 'href="?date_from=2026-03-02&amp;date_to=2026-03-15&amp;format=csv"' in shown
    # its CSV: the same check-ins, the period in its name and in its audit record
    csv_answer = client.get(url, {**PERIOD, "format": "csv"})
    assert len(csv_rows(csv_answer)) == 1 + 6 and "attendance-E-1-2026-03-02-2026-03-15.csv" in csv_answer[
        "Content-Disposition"]
    event = AuditEvent.objects.filter(action="list_export").latest("pk")
    assert "date_from=2026-03-02" in event.summary and f"person #{person.pk}" in event.summary
    # one end alone, as the summary: from the first of date_to's month
    assert client.get(url, {"date_to": "2026-03-03"}).context["total"] == 2
    # no period: the whole history, as before
    whole = client.get(url)
    assert whole.context["total"] == 8 and 'href="?format=csv"' in whole.content.decode()
    # a period it cannot read: refused as the summary refuses it, in the page's words and the JSON's
    reversed_period = {"date_from": "2026-03-15", "date_to": "2026-03-02"}
    refused = client.get(url, reversed_period)
    assert refused.status_code == 400 and "The end date must not be before the start date." in refused.content.decode()
    answer = client.get(url, {**reversed_period, "format": "csv"})
    assert answer.status_code == 400 and answer.json() == {"errors": {"date_to": ["must not be before date_from"]}}


def test_a_summary_at_a_site_links_to_the_history_at_that_site(client, superuser, world, person):
    """A summary at a site linked to the history over its period at every site, whose totals then differed from
    its days in: the link carries the site, and the history (its CSV, its audit record and its link to the
    admin's list) shows that site's check-ins alone; a site alone is the whole history at that site."""
    main = world["main"]
    check_in(person, main, timezone.make_aware(datetime(2026, 2, 27, 9)))   # before the period
    check_in(person, world["east"], at(16, 9))                                # after it, elsewhere
    client.force_login(superuser)
    summary = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main"})
    url = reverse("attendance-person", args=[person.pk])
    assert f'href="{url}?date_from=2026-03-02&amp;date_to=2026-03-15&amp;site=main"' in summary.content.decode()
    row = next(r for r in summary.context["rows"] if r.person == person)
    page = client.get(url, {**PERIOD, "site": "main"})
    shown = page.content.decode()
    checkins = list(page.context["page"].object_list)
    assert page.status_code == 200 and {c.site for c in checkins} == {"main"}
    assert page.context["total"] == len({c.local_date for c in checkins}) == row.days_in == 4
    assert "2 Mar 2026 to 15 Mar 2026 · at main" in shown
    assert 'href="?date_from=2026-03-02&amp;date_to=2026-03-15&amp;site=main&amp;format=csv"' in shown
    # each row's date: its day's page at that site (it was every site's)
    day_links = re.findall(r'<td role="cell" class="date"><a href="([^"]*)">', shown)
    assert day_links == [f'{reverse("attendance-day")}?date={c.local_date}&amp;site=main' for c in checkins]
    csv_answer = client.get(url, {**PERIOD, "site": "main", "format": "csv"})
    data = csv_rows(csv_answer)
    assert len(data) == 1 + 4 and {r[data[0].index("site")] for r in data[1:]} == {"main"}
    assert "attendance-E-1-2026-03-02-2026-03-15-main.csv" in csv_answer["Content-Disposition"]
    event = AuditEvent.objects.filter(action="list_export").latest("pk")
    assert "site=main" in event.summary and "date_from=2026-03-02" in event.summary
    # the admin's list of the same check-ins: the period as its time filter reads one, and the site
    admin_link = re.search(r'href="([^"]*)">Check-ins in the admin', shown).group(1).replace("&amp;", "&")
    listed = client.get(admin_link)
    assert listed.status_code == 200 and "site=main" in admin_link and "at__gte=" in admin_link
    assert sorted(c.pk for c in listed.context["cl"].result_list) == sorted(c.pk for c in checkins)
    # a site alone: the whole history there (27 Feb included, east's left out)
    alone = client.get(url, {"site": "main"})
    assert alone.context["total"] == 5 and alone.context["first"] is None and "at main" in alone.content.decode()
    alone_link = re.search(r'href="([^"]*)">Check-ins in the admin', alone.content.decode()).group(1)
    assert len(client.get(alone_link.replace("&amp;", "&")).context["cl"].result_list) == 5
    # a site it cannot read is refused, as the summary refuses it
    refused = client.get(url, {"site": "x" * 101})
    assert refused.status_code == 400
    assert "Site: Ensure this value has at most 100 characters" in refused.content.decode()
    assert client.get(url, {"site": "x" * 101, "format": "csv"}).status_code == 400
    # without a site, every site's, as before (its admin link names the person and the period alone)
    every = client.get(url, PERIOD)
    assert every.context["total"] == 6 and "site=" not in re.search(
        r'href="([^"]*)">Check-ins in the admin', every.content.decode()).group(1)
    assert re.findall(r'<td role="cell" class="date"><a href="[^"]*\?date=([0-9-]+)">', every.content.decode()) == [
        str(c.local_date) for c in every.context["page"].object_list]   # every site's days, as before
    assert client.get(url).context["total"] == 8


@pytest.mark.parametrize("site", ["", "main"])
def test_the_history_counts_the_days_checked_in_as_the_summary(client, superuser, world, person, settings, site):
    """With a cooldown in minutes someone checks in several times a day: the history counted check-ins alone, the
    summary days, so that a summary's name led to another figure. The history shows the days too (the summary's
    "days in"), beside the check-ins, computed with them in one query."""
    settings.MASKNET_CHECKIN_COOLDOWN = "60"
    check_in(person, world["main"], at(2, 12, 0))    # a second and a third on Mon 2, at main
    check_in(person, world["main"], at(2, 16, 0))
    check_in(person, world["east"], at(4, 15, 0))    # a second on Wed 4, at east
    client.force_login(superuser)
    query = {**PERIOD, **({"site": site} if site else {})}
    row = next(r for r in client.get(reverse("attendance-summary"), query).context["rows"] if r.person == person)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("attendance-person", args=[person.pk]), query)
    assert row.days_in == (4 if site else 5)
    assert page.context["days"] == row.days_in and page.context["total"] == (6 if site else 9)
    assert re.search(rf'<div class="n" id="days-in">{row.days_in}</div><div class="label">days checked in</div>',
                     page.content.decode())
    figures = [q["sql"] for q in queries.captured_queries if "COUNT(DISTINCT" in q["sql"].upper()]
    assert len(figures) == 1 and "masked" in figures[0], figures   # the days with the other figures


def test_the_period_defaults_to_this_month_up_to_today(client, superuser, world):
    client.force_login(superuser)
    today = timezone.localdate()
    page = client.get(reverse("attendance-summary"))
    assert page.status_code == 200
    assert (page.context["first"], page.context["last"]) == (today.replace(day=1), today)
    only_to = client.get(reverse("attendance-summary"), {"date_to": "2026-03-10"})
    assert (only_to.context["first"], only_to.context["last"]) == (date(2026, 3, 1), date(2026, 3, 10))


def test_the_csv_is_the_same_table_neutralised_and_audited(client, superuser, world):
    client.force_login(superuser)
    response = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attendance-summary-2026-03-02-2026-03-15-main.csv" in response["Content-Disposition"]
    data = csv_rows(response)
    assert data[0] == views.SUMMARY_CSV_HEADER
    lines = {r[0]: r for r in data[1:]}
    assert lines["E-1"] == ["E-1", "Eileen Collins", "Flight", "yes", "4", "6",
                            "2026-03-05 2026-03-06 2026-03-10 2026-03-11 2026-03-12 2026-03-13", "08:00", "10:00",
                            "1", "0"]
    assert lines["N-1"][2] == "'=cmd|x"                     # a formula, neutralised
    assert lines["S-0"][3:6] == ["no", "1", ""]             # inactive: never missing
    assert lines["T-1"][4:11] == ["0", "10", lines["T-1"][6], "", "", "0", "0"]
    event = AuditEvent.objects.filter(action="list_export").latest("id")
    assert event.actor == "root" and event.object_type == "recognition.checkin"
    assert event.summary == "downloaded the attendance summary of 2026-03-02 to 2026-03-15 as CSV, 4 rows: site=main"


def test_it_needs_a_staff_login_with_permission(client, world):
    url = reverse("attendance-summary")
    assert client.get(url).status_code == 302
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    before = AuditEvent.objects.count()
    assert client.get(url).status_code == 403
    assert client.get(url, {"format": "csv"}).status_code == 403
    assert AuditEvent.objects.count() == before
    staff.user_permissions.add(Permission.objects.get(codename="view_checkin"))
    assert client.get(url, PERIOD).status_code == 200


@pytest.mark.parametrize(("query", "field", "words", "shown"), [
    ({"date_from": "2026-03-15", "date_to": "2026-03-02"}, "date_to", "must not be before date_from",
     "The end date must not be before the start date."),
    ({"date_from": "2026-13-01"}, "date_from", "Enter a valid date", "Start date: Enter a valid date."),
    ({"date_from": "yesterday"}, "date_from", "Enter a valid date", "Start date: Enter a valid date."),
    # Django's US formats: read as 4 March, where a day-first user meant 3 April
    ({"date_from": "03/04/2026"}, "date_from", "Enter a valid date", "Start date: Enter a valid date."),
    ({"date_to": "Mar 4 2026"}, "date_to", "Enter a valid date", "End date: Enter a valid date."),
    ({"date_from": "2025-03-01", "date_to": "2026-03-02"}, "date_to", "at most 366 days: 367 asked for",
     "A period covers at most 366 days: 367 asked for."),
    ({"date_from": "2099-01-01"}, "date_to", "must not be before date_from (date_to is today",
     "The end date must not be before the start date (without an end date, it is today, "),
    ({"date_to": "9999-12-31"}, "date_to", "must be from", "The end date must be from 0001-01-30 to 9999-12-30."),
    ({"site": "x" * 101}, "site", "at most 100 characters", "Site: Ensure this value has at most 100 characters"),
])
def test_a_period_it_cannot_read_is_a_400_with_the_reason(client, superuser, world, query, field, words, shown):
    """The page says the reason in the words of its form (start date, end date), not the URL's names
    (date_from, date_to); the CSV's JSON ``errors`` keep their words (scripts may read them)."""
    client.force_login(superuser)
    before = AuditEvent.objects.filter(action="list_export").count()
    page = client.get(reverse("attendance-summary"), query)
    html = page.content.decode()
    assert page.status_code == 400 and 'id="summary-errors"' in html
    errors = html[html.index('id="summary-errors"'):html.index("</ul>", html.index('id="summary-errors"'))]
    assert shown in errors and "date_" not in errors, errors
    answer = client.get(reverse("attendance-summary"), {**query, "format": "csv"})
    assert answer.status_code == 400 and words in answer.json()["errors"][field][0]
    assert AuditEvent.objects.filter(action="list_export").count() == before   # nothing downloaded


def test_the_forms_labels_are_the_words_its_errors_use(client, superuser, world):
    """The fields were labelled "From" and "to" while the refusals named a "start date" and an "end date":
    the labels are those words, on the page that shows a period and on the one that refuses it."""
    client.force_login(superuser)

    def labels(html: str) -> dict[str, str]:
        return {name: text for text, name in re.findall(r'<label[^>]*>([^<]*?)\s*<input type="date" name="(\w+)"',
                                                         html)}

    assert labels(client.get(reverse("attendance-summary"), PERIOD).content.decode()) == {
        "date_from": "Start date", "date_to": "End date"}
    page = client.get(reverse("attendance-summary"), {"date_from": "2026-03-15", "date_to": "2026-03-02"})
    html = page.content.decode()
    assert page.status_code == 400 and labels(html) == {"date_from": "Start date", "date_to": "End date"}
    assert "The end date must not be before the start date." in html


def test_the_json_errors_keep_their_words(client, superuser, world):
    """The CSV answer's ``errors``, a contract, word for word as before the page said them otherwise."""
    client.force_login(superuser)
    today = timezone.localdate().isoformat()
    for query, errors in (
            ({"date_from": "2026-03-15", "date_to": "2026-03-02"}, {"date_to": ["must not be before date_from"]}),
            ({"date_from": "2099-01-01"},
             {"date_to": [f"must not be before date_from (date_to is today, {today}, when not given)"]}),
            ({"date_from": "2025-03-01", "date_to": "2026-03-02"},
             {"date_to": ["a summary covers at most 366 days: 367 asked for"]}),
            ({"date_to": "9999-12-31"}, {"date_to": ["must be from 0001-01-30 to 9999-12-30"]}),
            ({"date_from": "yesterday"}, {"date_from": ["Enter a valid date."]})):
        answer = client.get(reverse("attendance-summary"), {**query, "format": "csv"})
        assert answer.status_code == 400 and answer.json() == {"errors": errors}, query


def test_a_year_including_a_leap_day_is_accepted(client, superuser, world):
    client.force_login(superuser)
    page = client.get(reverse("attendance-summary"), {"date_from": "2024-01-01", "date_to": "2024-12-31"})
    assert page.status_code == 200 and (page.context["last"] - page.context["first"]).days == 365


def test_two_queries_whatever_the_number_of_people(client, superuser, world, django_assert_num_queries):
    with django_assert_num_queries(2):
        attendance_summary(FIRST, LAST, "main")
    client.force_login(superuser)

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("attendance-summary"), PERIOD).status_code == 200
            assert client.get(reverse("attendance-summary"), {**PERIOD, "format": "csv"}).status_code == 200
        return len(queries)

    few = page_queries()
    for i in range(12):
        extra = enrollment.person_create(actor=None, full_name=f"Extra {i}", staff_id=f"X-{i}")
        check_in(extra, world["main"], at(2 + i % 5, 8, i))
        check_in(extra, world["east"], at(9 + i % 5, 9, i))
    Person.objects.filter(staff_id__startswith="X-").update(created_at=at(1, 0))
    assert page_queries() == few


def test_the_template_does_no_more_for_more_days_missing(client, superuser, world, monkeypatch):
    """Each row's missing days come joined from the view (views._summary_table), each day's link made once:
    the template's loop over every missing day of every person (a million links at 5,000 people over a year)
    was 11 of the page's 16 s (docs/performance.md, "Staff pages and the API at size"). The same people over a
    longer period, with more days missing, cost the template no more lookups."""
    from django.template.base import Variable

    looked_up = []
    resolve = Variable._resolve_lookup
    monkeypatch.setattr(Variable, "_resolve_lookup", lambda self, context: looked_up.append(self.var)
                        or resolve(self, context))
    client.force_login(superuser)

    def lookups(last: int, site: str = "") -> int:
        looked_up.clear()
        page = client.get(reverse("attendance-summary"), {"date_from": FIRST.isoformat(),
                                                          "date_to": f"2026-03-{last:02d}", "site": site})
        assert page.status_code == 200
        assert sorted(r.person.staff_id for r in page.context["rows"]) == ["E-1", "S-0", "T-1"]
        return len(looked_up)

    for site in ("", "main"):   # Eileen and Tom missing 2 and 1 days to Sun 8, 4 and 4 to Wed 11
        assert lookups(8, site) == lookups(11, site), site


def test_the_history_shows_the_inactive_periods_over_its_period(client, superuser, world, person, other_person):
    """Attendance counts nobody missing in a past inactive period (migration 0021), which no page showed, so that
    "why is Eileen not missing on 4 March?" had no answer on screen: the history lists them (over its period, when
    it has one), and the current deactivation, in one query whatever their number."""
    from enrollment.models import PersonInactivePeriod

    def away(start: datetime | None, end: datetime) -> None:
        PersonInactivePeriod.objects.create(person=person, deactivated_at=start, reactivated_at=end)

    url = reverse("attendance-person", args=[person.pk])
    client.force_login(superuser)
    with CaptureQueriesContext(connection) as none_yet:
        assert 'id="inactive-periods"' not in client.get(url, PERIOD).content.decode()   # never inactive: no line
    away(None, timezone.make_aware(datetime(2026, 2, 1, 10)))          # from an unknown date
    away(timezone.make_aware(datetime(2026, 2, 28, 9)), at(1, 18))     # ended the day before the period
    away(at(3, 9), at(5, 9))
    away(at(15, 18), at(20, 9))                                         # begun on its last day
    away(at(21, 8), at(23, 9))                                          # begun after it
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, PERIOD)
    assert 'Inactive: 3 Mar 2026 – 5 Mar 2026, 15 Mar 2026 – 20 Mar 2026. Not counted missing while inactive.' in (
        page.content.decode())
    # one query for them all: as many queries as without any
    assert len(queries.captured_queries) == len(none_yet.captured_queries)
    assert len([q for q in queries.captured_queries if "personinactiveperiod" in q["sql"]]) == 1
    whole = client.get(url).content.decode()
    assert ("Inactive: until 1 Feb 2026, 28 Feb 2026 – 1 Mar 2026, 3 Mar 2026 – 5 Mar 2026, 15 Mar 2026 – 20 Mar "
            "2026, 21 Mar 2026 – 23 Mar 2026.") in whole
    # inactive now: since when (unknown, for a deactivation before dates were recorded), whatever the period
    sam = world["sam"]
    sam_url = reverse("attendance-person", args=[sam.pk])
    assert "Inactive: since an unknown date." in client.get(sam_url, PERIOD).content.decode()
    Person.objects.filter(pk=sam.pk).update(deactivated_at=at(20, 12))
    assert "Inactive: since 20 Mar 2026." in client.get(sam_url, PERIOD).content.decode()
    # another's periods are not theirs
    tom = client.get(reverse("attendance-person", args=[other_person.pk]))
    assert 'id="inactive-periods"' not in tom.content.decode()


def test_the_days_expected_at_once_are_those_is_expected_names_one_by_one():
    """``days_expected`` (the summary's, for a year at 20,000 people) against ``is_expected`` asked
    of each day, on random people: enrolled, deactivated and away at days' ends exactly, within a
    day, before and after the period; active or not; with past inactive periods or none."""
    import random

    from recognition.attendance import day_end, days_expected, is_expected, working_days

    rng = random.Random(7)
    days = working_days(date(2026, 1, 1), date(2026, 3, 31))
    ends = [day_end(d) for d in days]
    base = ends[0] - timedelta(days=10)

    def moment():
        if rng.random() < 0.3:
            return rng.choice(ends)   # exactly at a day's end
        return base + timedelta(minutes=rng.randrange(0, 130 * 24 * 60))

    for _ in range(2000):
        created = moment()
        active = rng.random() < 0.5
        deactivated = None if active or rng.random() < 0.1 else max(created, moment())
        away = []
        for _ in range(rng.choice((0, 0, 1, 2))):
            a, b = sorted((moment(), moment()))
            away.append((None if rng.random() < 0.1 else a, b))
        facts = dict(created_at=created, active=active, deactivated_at=deactivated, away=away)
        one_by_one = [i for i, end in enumerate(ends) if is_expected(end, **facts)]
        assert list(days_expected(ends, **facts)) == one_by_one, facts


def test_the_summarys_table_is_paged_by_people_and_its_cards_count_everyone(client, superuser, world, monkeypatch):
    """A year at 20,000 people was one 255 MB page (4.5 million day links, 30 s, the server 800 MB
    larger for good: a scale review). The table shows a page of people, the pages keep the period
    and the site; the cards and the CSV count everyone."""
    from recognition import views

    monkeypatch.setattr(views, "SUMMARY_PAGE_SIZE", 2)
    client.force_login(superuser)
    first = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main"})
    html = first.content.decode()
    assert len(first.context["rows"]) == 4 and len(first.context["table"]) == 2
    assert '<div class="n">4</div><div class="label">people</div>' in html
    assert "people 1-2 of 4 · page 1 of 2" in html
    query = f"date_from={PERIOD['date_from']}&amp;date_to={PERIOD['date_to']}&amp;site=main"
    assert f'href="?{query}&amp;page=2"' in html
    second = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main", "page": "2"})
    shown = [r.person.staff_id for page in (first, second) for r, _ in page.context["table"]]
    assert sorted(shown) == sorted(r.person.staff_id for r in first.context["rows"])
    assert "people 3-4 of 4 · page 2 of 2" in second.content.decode()
    # each page by number too (previous/next alone: 39 loads to reach the last of 40 pages)
    assert f'<a href="?{query}&amp;page=2" aria-label="page 2">2</a>' in html
    assert '<strong aria-current="page">1</strong>' in html
    monkeypatch.setattr(views, "SUMMARY_PAGE_SIZE", 1)
    far = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main"}).content.decode()
    assert 'aria-label="page 4">4</a>' in far and "page 1 of 4" in far
    csv = client.get(reverse("attendance-summary"), {**PERIOD, "site": "main", "format": "csv"})
    assert len(b"".join(csv.streaming_content).decode().strip().splitlines()) == 5   # header and everyone
