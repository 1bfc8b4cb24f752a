"""A day that is not a working day (``MASKNET_WORKING_DAYS``) on the day page (``/attendance/``): nobody
missing, as the summary counts it. The page said the whole staff missing on a Saturday ("Missing (40)", a
rate of 3%), its chart and table counted them, while the summary of the same days counted none. The
people expected who did not check in are still listed (some work weekends), as "not checked in"; the
day's CSV keeps its ``status`` values (docs/kiosk.md, Attendance)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from enrollment import services as enrollment
from enrollment.models import Person
from recognition import services, views
from recognition.attendance import attendance_summary

pytestmark = pytest.mark.django_db(transaction=True)

SAT, SUN, MON, FRI = date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 13)


def at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()).replace(hour=hour))


@pytest.fixture
def week(paired, person, other_person):
    """Eileen (E-1) in on Saturday 7 and Monday 9 March 2026, and every day of the week after; Tom (T-1)
    never; Ray (R-1) never. All enrolled long before."""
    enrollment.person_create(actor=None, full_name="Ray Never", staff_id="R-1")
    Person.objects.update(created_at=at(SAT, 0) - timedelta(days=60))
    for day in (SAT, MON, *(MON + timedelta(days=i) for i in range(1, 7))):
        assert services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=False,
                                       frames=4, index_version=1, at=at(day, 9)) is not None
    return paired[0]


def day_page(client, day: date, **params):
    return client.get(reverse("attendance-day"), {"date": day.isoformat(), **params})


def chart_table(html: str) -> dict[str, tuple[str, str]]:
    """The 30 days' table: ISO day -> (checked in, missing) as shown."""
    table = html[html.index('<table id="chart-days">'):html.index("</table>", html.index('<table id="chart-days">'))]
    return {day: (n, missing) for day, n, missing in re.findall(
        r'<tr><th scope="row"><a href="\?date=([0-9-]+)"[^>]*>[^<]*</a></th>\s*<td>(\d+)</td><td>([^<]*)</td></tr>',
        table)}


def chart_titles(html: str) -> dict[str, str]:
    chart = html[html.index('<div class="att-chart">'):]
    svg = chart[chart.index("<svg"):chart.index("</svg>")]
    return dict(re.findall(r'<a href="\?date=([0-9-]+)"[^>]*>\s*<title>([^<]*)</title>', svg))


def test_a_saturday_counts_nobody_missing_and_lists_them_as_not_checked_in(client, superuser, week, other_person):
    client.force_login(superuser)
    page = day_page(client, SAT)
    html = page.content.decode()
    assert page.status_code == 200 and page.context["working_day"] is False
    assert page.context["missing"] == [] and page.context["rate"] is None
    assert sorted(p.staff_id for p in page.context["not_in"]) == ["R-1", "T-1"]
    note = re.search(r'<p class="att-day-off" id="day-off">(.*?)</p>', html, re.S).group(1)
    assert note.startswith("Saturday is not a working day (working days: Mon, Tue, Wed, Thu, Fri;")
    assert "MASKNET_WORKING_DAYS" in note and "nobody is counted missing" in note
    # the list under a neutral heading, with the people still there (and a way to each)
    assert "<h2>Not checked in (2)</h2>" in html and "<h2>Missing" not in html
    assert f'href="{reverse("attendance-person", args=[other_person.pk])}"' in html
    # the cards: no rate, no red "missing" count; those not in counted neutrally
    cards = html[html.index('<div class="att-cards">'):html.index('<div class="att-chart">')]
    assert "%" not in cards and "att-card bad" not in cards and ">missing<" not in cards
    assert re.search(r'<div class="att-card"><div class="n">2</div><div class="label">not checked in</div>', cards)
    assert re.search(r'id="present-count">1 <small>of 3</small></div><div class="label">checked in</div>', cards)
    # its own bar and row: no figure of missing, as in the summary, which counts none that day
    assert chart_titles(html)[SAT.isoformat()] == "Saturday 7 March: 1 checked in, not a working day"
    assert chart_table(html)[SAT.isoformat()] == ("1", "day off")
    assert page.context["chart"]["bars"][-1]["missing"] == 0
    assert not any(SAT in r.missing for r in attendance_summary(SAT - timedelta(days=5), SAT))


def test_a_weekdays_page_is_as_before(client, superuser, week):
    client.force_login(superuser)
    page = day_page(client, MON)
    html = page.content.decode()
    assert page.context["working_day"] is True and 'id="day-off"' not in html
    assert sorted(p.staff_id for p in page.context["missing"]) == ["R-1", "T-1"] == sorted(
        p.staff_id for p in page.context["not_in"])
    assert page.context["rate"] == 33 and "<h2>Missing (2)</h2>" in html and "Not checked in" not in html
    assert re.search(r'<div class="att-card bad"><div class="n">2</div><div class="label">missing</div>', html)
    assert "checked in (33%)" in html
    assert chart_titles(html)[MON.isoformat()] == "Monday 9 March: 1 checked in, 2 missing"
    assert chart_table(html)[MON.isoformat()] == ("1", "2")


def test_the_chart_and_its_table_count_days_off_as_the_summary_does(client, superuser, week):
    """Over the 30 days up to Friday 13: each weekday's missing figure is the summary's for that day,
    each weekend day's 0 (the bar) and "day off" (the table); they were the day's people not in."""
    client.force_login(superuser)
    page = day_page(client, FRI)
    html = page.content.decode()
    rows = attendance_summary(FRI - timedelta(days=views.CHART_DAYS - 1), FRI)
    table, titles = chart_table(html), chart_titles(html)
    assert len(table) == len(titles) == views.CHART_DAYS
    for bar in page.context["chart"]["bars"]:
        day = bar["day"]
        in_summary = sum(day in r.missing for r in rows)
        assert bar["missing"] == in_summary, day
        assert bar["missing"] == len(views.daily_attendance(day)["missing"]), day
        if day.weekday() >= 5:
            assert bar["weekend"] and table[day.isoformat()][1] == "day off", day
            assert titles[day.isoformat()].endswith("checked in, not a working day"), day
        else:
            assert table[day.isoformat()][1] == str(in_summary) and titles[day.isoformat()].endswith(
                f"{in_summary} missing"), day
    assert sum(b["missing"] for b in page.context["chart"]["bars"] if b["day"] in (SAT, SUN)) == 0
    assert table[SUN.isoformat()] == ("0", "day off") and table[SAT.isoformat()] == ("1", "day off")
    assert "nobody is counted missing on them" in html


def test_the_setting_names_the_days_off(client, superuser, week, settings):
    """``sun-thu``: Friday and Saturday are days off, Sunday a working day."""
    settings.MASKNET_WORKING_DAYS = "sun-thu"
    client.force_login(superuser)
    friday = day_page(client, FRI - timedelta(days=7))   # Friday 6, nobody in
    html = friday.content.decode()
    assert friday.context["missing"] == [] and "<h2>Not checked in (3)</h2>" in html
    assert "Friday is not a working day (working days: Mon, Tue, Wed, Thu, Sun;" in html
    sunday = day_page(client, SUN)
    html = sunday.content.decode()
    assert len(sunday.context["missing"]) == 3 and "<h2>Missing (3)</h2>" in html and 'id="day-off"' not in html
    table = chart_table(html)
    assert table[SUN.isoformat()] == ("0", "3") and table[SAT.isoformat()] == ("1", "day off")
    assert table["2026-03-06"] == ("0", "day off") and table["2026-03-05"] == ("0", "3")


def test_the_days_csv_keeps_its_status_values_on_a_day_off(client, superuser, week):
    """The CSV's ``status`` values are a contract (present, elsewhere, missing): a day off's rows are
    the same as a weekday's, ``missing`` for those expected and not in (docs/kiosk.md)."""
    client.force_login(superuser)
    for day in (SAT, MON):
        response = day_page(client, day, format="csv")
        data = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert sorted((r[0], r[2]) for r in data[1:]) == [("missing", "R-1"), ("missing", "T-1"), ("present", "E-1")]


def test_a_day_off_costs_no_query_more(client, superuser, week):
    """The page of a day off makes the queries a working day's makes (tests assert their number)."""
    client.force_login(superuser)

    def queries(day: date) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert day_page(client, day).status_code == 200
        return len(captured)

    assert queries(SAT) == queries(MON)


def test_a_day_after_today_counts_nobody_missing_and_says_it_has_not_come(client, superuser, paired, person,
                                                                          other_person, every_day_working):
    """A day after today (``TIME_ZONE``) listed everyone expected as missing, and the chart of a later
    day counted them on each day to come. Such a day is a day off's case: nobody missing, the people
    under "Not checked in", no rate; and no button to record a check-in (the future is refused)."""
    today = timezone.localdate()
    Person.objects.update(created_at=timezone.now() - timedelta(days=60))
    assert services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=False,
                                   frames=4, index_version=1) is not None
    client.force_login(superuser)   # who may record check-ins by hand
    tomorrow = today + timedelta(days=1)
    page = day_page(client, tomorrow)
    html = page.content.decode()
    assert page.status_code == 200 and page.context["missing"] == [] and page.context["rate"] is None
    assert sorted(p.staff_id for p in page.context["not_in"]) == ["E-1", "T-1"]
    note = re.search(r'<p class="att-day-off" id="day-future">(.*?)</p>', html, re.S).group(1)
    assert note.startswith(f"{tomorrow:%A} {tomorrow.day} {tomorrow:%B %Y} has not come yet")
    assert "nobody is counted missing" in note and 'id="day-off"' not in html
    assert "<h2>Not checked in (2)</h2>" in html and "<h2>Missing" not in html
    assert "Record check-in" not in html
    cards = html[html.index('<div class="att-cards">'):html.index('<div class="att-chart">')]
    assert "%" not in cards and "att-card bad" not in cards and ">missing<" not in cards
    assert chart_table(html)[tomorrow.isoformat()] == ("0", "to come")
    assert chart_titles(html)[tomorrow.isoformat()].endswith(": 0 checked in, still to come")
    # a week ahead: the days to come count nobody, today and the days before as their pages do
    page = day_page(client, today + timedelta(days=7))
    table = chart_table(page.content.decode())
    for bar in page.context["chart"]["bars"]:
        day = bar["day"]
        if day > today:
            assert bar["missing"] == 0 and table[day.isoformat()][1] == "to come", day
        else:
            assert table[day.isoformat()][1] == str(len(views.daily_attendance(day)["missing"])), day
    assert table[today.isoformat()] == ("1", "1")
    # the CSV keeps its status values: those expected are "missing" rows, as on a day off (docs/kiosk.md)
    response = day_page(client, tomorrow, format="csv")
    data = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted((r[0], r[2]) for r in data[1:]) == [("missing", "E-1"), ("missing", "T-1")]


def test_the_weekdays_named_follow_the_page_s_language_not_the_server_s_locale(client, superuser, week):
    """The working days and days off were named by ``calendar.day_abbr``, the server process's C locale, while
    the ``date`` filter beside them speaks Django's active language: a German page said "Samstag is not a working
    day (working days: Mon, Tue…)" and "Sa 7" in its links. Now both come from Django's translations, on the day
    page's note, its chart's note and the summary's; the CSVs, which hold no day names, stay as they are."""
    client.force_login(superuser)
    with translation.override("de"):
        html = day_page(client, SAT).content.decode()
        summary = client.get(reverse("attendance-summary"), {"date_from": SAT.isoformat(),
                                                             "date_to": FRI.isoformat()}).content.decode()
        csv_text = client.get(reverse("attendance-summary"), {"date_from": SAT.isoformat(), "date_to": FRI.isoformat(),
                                                              "format": "csv"}).content.decode()
    note = re.search(r'<p class="att-day-off" id="day-off">(.*?)</p>', html, re.S).group(1)
    assert note.startswith("Samstag is not a working day (working days: Mo, Di, Mi, Do, Fr;"), note
    assert "Days off (Sa, So) are striped" in html and "Sat" not in html
    assert "Working days: Mo, Di, Mi, Do, Fr." in summary
    # the summary's missing days, in the same words (the date filter's), and its CSV in ISO days as before
    assert "Mo 9 Mär" in summary or "Mo 9 Mrz" in summary, re.findall(r"Mo 9 \w+", summary)
    missing = [row["missing_days"] for row in csv.DictReader(io.StringIO(csv_text))]
    assert "2026-03-09" in " ".join(missing) and all(re.fullmatch(r"([0-9-]{10}( |$))*", m) for m in missing), missing
    # the breadcrumbs' first step is the admin's own, in its language, as on the admin's pages ("Home" was English)
    assert '">Start</a>' in html and '">Start</a>' in summary and ">Home</a>" not in html + summary
    # English where English is active, as before
    assert "(working days: Mon, Tue, Wed, Thu, Fri;" in day_page(client, SAT).content.decode()
