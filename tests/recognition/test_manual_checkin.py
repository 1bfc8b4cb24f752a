"""Check-ins recorded by hand: the service (the cooldown window shared with the kiosks, the time's
bounds, inactive people, the audit record), the admin's "Record a check-in by hand" page
(permission, CSRF, errors in the form), and how the attendance pages, CSVs and the API show them."""

from __future__ import annotations

import csv
import io
import pickle
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db.models.signals import pre_save
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from enrollment import services as enrollment
from enrollment.models import Person
from enrollment.text import staff_id_key
from recognition import services
from recognition.admin import CHOOSER_LIST_MAX
from recognition.exports import CHECKIN_CSV_HEADER
from recognition.models import CheckIn

from .conftest import earlier_today

ADD = "admin:recognition_checkin_add"


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def staff(*codenames: str) -> User:
    user = User.objects.create_user("desk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="recognition", codename__in=codenames))
    return User.objects.get(pk=user.pk)   # permissions cached on the instance


def record(person, *, at=None, site="main", reason="face not recognised", actor=None):
    return services.checkin_record_manual(person=person, at=at or earlier_today(5), site=site,
                                          reason=reason, actor=actor)


# ------------------------------------------------------------------------------------------ service


def test_a_check_in_by_hand_is_recorded_and_audited_by_ids_and_a_kiosk_then_finds_it(paired, person, superuser):
    kiosk, _token = paired
    checkin = record(person, reason="  kiosk offline, Eileen Collins at the side door  ", actor=superuser)
    row = CheckIn.objects.get()
    assert row.pk == checkin.pk and row.manual and row.source == "manual" and row.kiosk is None
    assert row.score is None and row.threshold is None and row.frames == 0 and row.index_version is None
    assert row.recorded_by == superuser and row.reason == "kiosk offline, Eileen Collins at the side door"
    assert row.site == "main" and row.local_date == timezone.localdate(row.at)
    event = AuditEvent.objects.get(action="checkin_manual")
    assert (event.actor, event.object_type, event.object_id) == ("root", "recognition.checkin", str(checkin.pk))
    assert f"check-in #{checkin.pk} of person #{person.pk} by hand at site main" in event.summary
    # the reason's length, never the reason: it is free text, and may name someone
    assert "reason of 46 characters" in event.summary and "Eileen" not in event.summary
    # the kiosk that sees them later: already checked in, as after its own check-in
    outcome = services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=True,
                                      frames=4, index_version=1)
    assert not outcome.created and outcome.checkin.pk == checkin.pk and CheckIn.objects.count() == 1


def test_one_by_hand_in_a_window_a_kiosk_or_a_hand_already_took_is_refused(paired, person):
    kiosk, _token = paired
    first = services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=False,
                                    frames=4, index_version=1).checkin
    with pytest.raises(services.CheckInExists) as refused:
        record(person)
    assert refused.value.checkin.pk == first.pk and refused.value.field is None
    assert f"person #{person.pk} is already checked in at site main for that day" in str(refused.value)
    # another site is another window; a second hand at that one is refused too
    services.kiosk_create(actor=None, name="East door", site="east")
    record(person, site="east")
    with pytest.raises(services.CheckInExists):
        record(person, site="east", at=earlier_today(1))
    assert CheckIn.objects.count() == 2 and AuditEvent.objects.filter(action="checkin_manual").count() == 1


def test_the_time_is_neither_in_the_future_nor_more_than_31_days_back(person, superuser):
    now = timezone.now()
    with pytest.raises(services.CheckInTimeRefused, match="future") as future:
        record(person, at=now + timedelta(minutes=2))
    assert future.value.field == "at"
    # a clock a few seconds ahead of the server's sends "now" in its future: recorded as now
    ahead = record(person, at=timezone.now() + timedelta(seconds=20))
    assert ahead.at <= timezone.now()
    ahead.delete()
    with pytest.raises(services.CheckInTimeRefused, match="at most 31 days"):
        record(person, at=now - timedelta(days=32))
    assert not CheckIn.objects.exists()
    # the earliest day within reach, at its noon
    day = timezone.localdate() - timedelta(days=services.MANUAL_CHECKIN_MAX_DAYS)
    at = timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time())) + timedelta(hours=12)
    assert record(person, at=at).local_date == day


def test_inactive_people_and_missing_reasons_and_unknown_sites_are_refused(person):
    enrollment.person_deactivate(person=person, actor=None)
    with pytest.raises(services.CheckInPersonInactive) as inactive:
        record(person)
    assert inactive.value.field == "person" and "inactive" in str(inactive.value)
    enrollment.person_update(person=person, actor=None, active=True)
    for reason in ("", "   ", "x" * 201):
        with pytest.raises(services.CheckInRefused) as refused:
            record(person, reason=reason)
        assert refused.value.field == "reason"
    with pytest.raises(services.CheckInRefused) as refused:
        record(person, site="nowhere")
    assert refused.value.field == "site"
    assert not CheckIn.objects.exists() and not AuditEvent.objects.filter(action="checkin_manual").exists()


def test_the_sites_are_read_by_index_probes_not_a_distinct_over_every_check_in(paired, person, other_person):
    """:func:`known_sites` is read twice by each view and post of the record page (the form's choices,
    then the service's check) and once by each attendance page: a ``SELECT DISTINCT site`` over 2
    million check-ins took 160 ms on PostgreSQL, the index probes 3 ms."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recognition.models import known_sites

    kiosk, _token = paired
    services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=False, frames=4,
                            index_version=1)
    services.kiosk_update(kiosk=kiosk, actor=None, site="east")   # its check-ins keep "main"
    services.kiosk_create(actor=None, name="Annex door", site="annex")
    with CaptureQueriesContext(connection) as queries:
        assert known_sites() == ["annex", "east", "main"]
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


@contextmanager
def clash_at_insert(times: int):
    """The first ``times`` inserts of a check-in meet another one in the same window, gone again
    before the service looks for it: the clashing row is inserted by a ``pre_save`` hook inside the
    service's savepoint, so that the insert fails on the window's unique constraint and the
    savepoint's rollback takes the clash with it (a concurrent check-in deleted meanwhile: an
    administrator's correction, the retention purge), on the real database. Yields the inserts tried."""
    tried: list[int] = []

    def clash(sender, instance, raw=False, **kwargs):
        if instance.reason == "clash":   # the clash's own insert
            return
        tried.append(int(len(tried) < times))   # 1: this insert meets a clash
        if not tried[-1]:
            return
        CheckIn.objects.create(person=instance.person, site=instance.site, at=instance.at,
                               local_date=instance.local_date, window=instance.window,
                               source=CheckIn.Source.MANUAL, reason="clash")

    pre_save.connect(clash, sender=CheckIn)
    try:
        yield tried
    finally:
        pre_save.disconnect(clash, sender=CheckIn)


def test_a_clash_deleted_before_it_is_looked_up_is_tried_again_not_a_500(person, superuser):
    """The insert failed on the window's constraint, and the check-in it met was gone when the
    service looked for it: the IntegrityError went up, a 500 on the admin's page and the API."""
    with clash_at_insert(1) as tried:
        checkin = record(person, actor=superuser)
    assert tried == [1, 0]   # one insert met the clash, the next one took
    assert CheckIn.objects.get().pk == checkin.pk and checkin.reason == "face not recognised"
    assert AuditEvent.objects.filter(action="checkin_manual").count() == 1
    # a clash that is gone again at the second try too: refused in words (try again), nothing recorded
    checkin.delete()
    with clash_at_insert(2) as tried, pytest.raises(services.CheckInContended) as refused:
        record(person, actor=superuser)
    assert tried == [1, 1] and refused.value.code == "try_again" and refused.value.field is None
    assert "record it again" in str(refused.value)
    # it crosses a process (a worker's result, a parallel test runner) whole: built from a person,
    # it could not be unpickled; a refusal's field was lost
    again = pickle.loads(pickle.dumps(refused.value))
    assert type(again) is services.CheckInContended and str(again) == str(refused.value)
    assert again.naming(person) == refused.value.naming(person)
    field = pickle.loads(pickle.dumps(services.CheckInRefused("the reason is empty", field="reason")))
    assert (field.field, field.code, str(field)) == ("reason", "refused", "the reason is empty")
    # the API: a 409 the same request may pass, not a 400 to correct it
    api = APIClient()
    api.force_login(superuser)
    with clash_at_insert(2):
        answer = api.post("/api/v1/checkins", {"person": person.pk, "at": timezone.now().isoformat(),
                                               "reason": "badge at the side door"}, format="json")
    assert answer.status_code == 409 and answer.json()["error"] == "try_again", answer.content
    assert not CheckIn.objects.exists() and AuditEvent.objects.filter(action="checkin_manual").count() == 1


def test_a_check_in_by_hand_is_deleted_as_any_other(person, superuser):
    checkin = record(person, actor=superuser)
    pk = checkin.pk
    services.checkin_delete(checkin=checkin, actor=superuser)
    assert not CheckIn.objects.exists()
    deleted = AuditEvent.objects.get(action="delete", object_type="recognition.checkin")
    assert deleted.summary == f"deleted check-in #{pk} of person #{person.pk} (recorded by hand)"


# -------------------------------------------------------------------------------------------- admin


def test_the_record_page_needs_the_add_checkin_permission(client, person):
    user = staff("view_checkin")
    client.force_login(user)
    assert client.get(reverse(ADD)).status_code == 403
    assert client.post(reverse(ADD), {"person": person.pk}).status_code == 403
    changelist = client.get(reverse("admin:recognition_checkin_changelist")).content.decode()
    assert "Record a check-in by hand" not in changelist and reverse(ADD) not in changelist
    user.user_permissions.add(Permission.objects.get(codename="add_checkin"))
    client.force_login(User.objects.get(pk=user.pk))
    changelist = client.get(reverse("admin:recognition_checkin_changelist")).content.decode()
    assert "Record a check-in by hand" in changelist and "Add check-in" not in changelist
    page = client.get(reverse(ADD))
    assert page.status_code == 200 and "<title>Record a check-in by hand" in page.content.decode()


def _form(client: Client, url: str) -> dict:
    """The CSRF token the page's form carries (the client enforces it, as a browser's request meets it)."""
    page = client.get(url)
    assert page.status_code == 200
    return {"csrfmiddlewaretoken": page.context["csrf_token"]}


def _at(when) -> dict:
    local = timezone.localtime(when)
    return {"at_0": f"{local:%Y-%m-%d}", "at_1": f"{local:%H:%M}"}


def test_the_record_page_records_with_csrf_and_shows_refusals_in_the_form(paired, person, other_person):
    user = staff("view_checkin", "add_checkin")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = reverse(ADD)
    earlier = earlier_today(30)
    data = {"person": person.pk, **_at(earlier), "site": "main", "reason": "not recognised (scarf)"}
    assert client.post(url, data).status_code == 403   # no CSRF token: Django's refusal
    assert not CheckIn.objects.exists()
    done = client.post(url, {**data, **_form(client, url)})
    assert done.status_code == 302 and done["Location"] == reverse("admin:recognition_checkin_changelist")
    checkin = CheckIn.objects.get()
    assert checkin.manual and checkin.recorded_by == user and checkin.reason == "not recognised (scarf)"
    assert AuditEvent.objects.get(action="checkin_manual").actor == "desk"
    # a second one in that day: the form again, with the reason it was refused, not a 500
    later = earlier + min(timedelta(minutes=5), timezone.now() - earlier)
    again = client.post(url, {**data, **_at(later), **_form(client, url)})
    html = again.content.decode()
    assert again.status_code == 200 and "already has a check-in at main for that day" in html
    assert "Eileen Collins (E-1)" in html and "by hand (not recognised (scarf))" in html
    # inactive, the future: each said in the form
    enrollment.person_deactivate(person=other_person, actor=None)
    inactive = client.post(url, {**data, "person": other_person.pk, **_form(client, url)})
    assert inactive.status_code == 200 and "Tom Hanks (T-1) is inactive" in inactive.content.decode()
    future = client.post(url, {**data, "person": other_person.pk,
                               **_at(timezone.now() + timedelta(hours=2)), **_form(client, url)})
    assert future.status_code == 200 and "in the future" in future.content.decode()
    # an inactive person is not offered in the list
    offered = client.get(url).content.decode()
    assert "Eileen Collins (E-1)" in offered and "Tom Hanks (T-1)" not in offered
    assert CheckIn.objects.count() == 1


def test_a_time_the_clocks_go_back_over_is_its_first_and_a_day_written_month_first_is_refused(
        client, person, settings, monkeypatch):
    """01:30 on the night the clocks go back happens twice: Django refused it as "ambiguous", so a night
    shift's arrival could not be recorded (nor the time the form itself offered during that hour); it
    is the first 01:30 now, and the page says so. And 11/12/2026 was saved as 12 November, the wrong
    day for most of the world: the day is YYYY-MM-DD only, as the attendance pages read it."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "Europe/London"
    now = datetime(2026, 10, 26, 12, 0, tzinfo=ZoneInfo("Europe/London"))
    monkeypatch.setattr(timezone, "now", lambda: now)
    client.force_login(staff("view_checkin", "add_checkin"))
    data = {"person": person.pk, "at_0": "2026-10-25", "at_1": "01:30", "site": "main", "reason": "night shift"}
    us_day = client.post(reverse(ADD), {**data, "at_0": "10/24/2026"})
    assert us_day.status_code == 200 and "Enter a valid date" in us_day.content.decode()
    assert not CheckIn.objects.exists()
    done = client.post(reverse(ADD), data, follow=True)
    said = " ".join(str(m) for m in done.context["messages"])
    checkin = CheckIn.objects.get()
    assert checkin.at == datetime(2026, 10, 25, 0, 30, tzinfo=ZoneInfo("UTC"))   # 01:30 BST, the first
    assert "01:30 happened twice that night (the clocks went back): recorded as the first, 01:30 BST." in said
    # a time the clocks skip is still refused: 01:30 on 29 March 2026 never happened in London
    now = datetime(2026, 3, 30, 12, 0, tzinfo=ZoneInfo("Europe/London"))
    skipped = client.post(reverse(ADD), {**data, "at_0": "2026-03-29"})
    assert skipped.status_code == 200 and CheckIn.objects.count() == 1


@pytest.mark.parametrize(("zone", "day", "at", "said"), [
    ("Europe/Berlin", "0001-01-01", "00:00", "This time has no UTC time"),
    ("Europe/Berlin", "0001-01-01", "01:00", "Check-ins by hand go back at most 31 days"),
    ("America/New_York", "9999-12-31", "23:59", "This time has no UTC time"),
    ("America/New_York", "9999-12-31", "18:59", "The time is in the future")])
def test_a_time_at_the_calendars_edge_is_refused_in_the_form_not_a_500(client, person, settings, zone, day, at,
                                                                       said):
    """In a zone ahead of UTC 0001-01-01 00:00 (behind it, 9999-12-31 23:59) has no UTC time, and asking
    whether the clocks changed then raised OverflowError: a 500 for a desk user. Found by a helper's review."""
    settings.TIME_ZONE = zone
    client.force_login(staff("view_checkin", "add_checkin"))
    answer = client.post(reverse(ADD), {"person": person.pk, "at_0": day, "at_1": at, "site": "main", "reason": "x"})
    assert answer.status_code == 200 and said in answer.content.decode() and not CheckIn.objects.exists()


def test_the_admin_index_links_a_recent_action_only_where_its_user_may_open_it(client, person):
    """A desk user (add_checkin alone) found their hand-recorded check-in in "Recent actions" as a
    link that answered 403; it is named without a link, and a link again once they may view
    check-ins. Found by a helper's review."""
    desk = staff("add_checkin")
    client.force_login(desk)
    data = {"person": person.pk, **_at(earlier_today(30)), "site": "main", "reason": "scarf"}
    assert client.post(reverse(ADD), data).status_code == 302
    change = reverse("admin:recognition_checkin_change", args=[CheckIn.objects.get().pk])
    assert client.get(change).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    panel = index[index.index('id="recent-actions-module"'):]
    assert "check-in #" in panel and change not in panel and 'class="addlink"' in panel
    desk.user_permissions.add(Permission.objects.get(codename="view_checkin"))
    client.force_login(User.objects.get(pk=desk.pk))
    assert client.get(change).status_code == 200
    index = client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{change}">' in index[index.index('id="recent-actions-module"'):]


@pytest.mark.parametrize("detailed", [True, False])
def test_the_form_names_the_person_when_their_check_ins_changed_meanwhile(client, person, detailed):
    """The form named the person in its other refusals but said "person #12" in this one (the service's
    words, which the API's detail keeps): it names them now, to staff who read check-ins or not."""
    client.force_login(staff("add_checkin", *(["view_checkin"] if detailed else [])))
    data = {"person": person.pk, **_at(timezone.now() - timedelta(minutes=5)), "site": "main",
            "reason": "kiosk offline"}
    with clash_at_insert(2):
        answer = client.post(reverse(ADD), data)
    assert answer.status_code == 200 and not CheckIn.objects.exists()
    assert _errors(answer) == {"__all__": [
        "The check-ins of Eileen Collins (E-1) changed twice while this one was being recorded: record it again."]}
    assert f"person #{person.pk}" not in answer.content.decode()
    with clash_at_insert(2), pytest.raises(services.CheckInContended) as refused:   # the service's: ids
        record(person)
    assert str(refused.value).startswith(f"the check-ins of person #{person.pk} changed twice")


def test_the_form_says_every_refusal_it_can_at_once_not_one_a_submit(client, person):
    """No reason and a time in the future: the form said only that the reason was missing, and the
    time's refusal came at the next submit. Both now, each on its field; nothing recorded."""
    client.force_login(staff("view_checkin", "add_checkin"))
    data = {"person": person.pk, **_at(timezone.now() + timedelta(hours=2)), "site": "main", "reason": ""}
    errors = _errors(client.post(reverse(ADD), data))
    assert set(errors) == {"reason", "at"}, errors
    assert errors["at"] == ["The time is in the future: record a check-in once the person has arrived."]
    old = client.post(reverse(ADD), {**data, **_at(timezone.now() - timedelta(days=40)), "site": "nowhere"})
    assert set(_errors(old)) == {"reason", "at", "site"} and "at most 31 days" in _errors(old)["at"][0]
    # the service itself: the same refusals, every one, in the order it raises them
    refusals = services.checkin_manual_refusals(at=timezone.now() + timedelta(hours=2), site="nowhere", reason=" ")
    assert [(r.field, r.code) for r in refusals] == [("at", "time_refused"), ("reason", "refused"),
                                                     ("site", "refused")]
    assert not services.checkin_manual_refusals(at=timezone.now(), site="main", reason="kiosk offline")
    assert not CheckIn.objects.exists()


def test_staff_who_may_record_but_not_read_check_ins_learn_no_check_in_or_inactive_person_from_refusals(
        client, paired, person, other_person, superuser):
    """``recognition.add_checkin`` alone (a reception desk): a refusal must not tell them what the
    check-ins list would (an existing check-in's time, kiosk or reason), nor name an inactive person
    they can post the id of though the list does not offer them, nor tell that the id is one."""
    kiosk, _token = paired
    at = earlier_today(47)
    services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=False, frames=4,
                            index_version=1, at=at)
    record(other_person, reason="came with the secret visitor", actor=superuser)
    enrollment.person_deactivate(person=other_person, actor=None)
    client.force_login(staff("add_checkin"))
    data = {**_at(earlier_today(5)), "site": "main", "reason": "not recognised"}
    html = client.post(reverse(ADD), {**data, "person": person.pk}).content.decode()
    assert "already has a check-in at main for that day" in html
    # (the form's time field, holding the time sent, left out: just after midnight both are 00:00;
    # the rest of the page, other fields' values included, must not tell the check-in's time)
    told, fields = re.subn(r'<input[^>]*\bname="at_1"[^>]*>', "", html)
    assert fields == 1, html
    assert kiosk.name not in html and f"{timezone.localtime(at):%H:%M}" not in told
    enrollment.person_update(person=other_person, actor=None, active=True)
    html = client.post(reverse(ADD), {**data, "person": other_person.pk}).content.decode()
    assert "already has a check-in" in html and "secret visitor" not in html
    enrollment.person_deactivate(person=other_person, actor=None)
    inactive = client.post(reverse(ADD), {**data, "person": other_person.pk})
    html = inactive.content.decode()
    assert "Tom Hanks" not in html and "T-1" not in html
    # refused as an id that is nobody's: whether an inactive person holds it is not told either
    nobody = client.post(reverse(ADD), {**data, "person": other_person.pk + 1000})
    assert inactive.context["adminform"].form.errors == nobody.context["adminform"].form.errors
    assert set(inactive.context["adminform"].form.errors) == {"person"}
    assert CheckIn.objects.count() == 2


def test_the_attendance_page_links_a_missing_person_to_the_record_page_and_back(client, paired, person):
    user = staff("view_checkin", "add_checkin")
    client.force_login(user)
    day = client.get(reverse("attendance-day")).content.decode()
    link = f'{reverse(ADD)}?person={person.pk}&amp;date={timezone.localdate():%Y-%m-%d}&amp;return=attendance'
    assert link in day and "Record check-in<span class=\"visually-hidden\"> of Eileen Collins</span>" in day
    page = client.get(link.replace("&amp;", "&"))
    assert page.context["adminform"].form.initial["person"] == person.pk
    assert 'name="return" value="attendance"' in page.content.decode()
    # a past day's link: that day, the time left to fill in
    yesterday = timezone.localdate() - timedelta(days=1)
    past = client.get(reverse(ADD), {"person": person.pk, "date": yesterday.isoformat()}).content.decode()
    assert f'name="at_0" value="{yesterday:%Y-%m-%d}"' in past and 'name="at_1" class="vTimeField"' in past
    done = client.post(reverse(ADD), {"person": person.pk, **_at(earlier_today(1)),
                                      "site": "main", "reason": "kiosk offline", "return": "attendance"})
    assert done["Location"] == f"{reverse('attendance-day')}?date={timezone.localdate():%Y-%m-%d}"
    # from a day page showing one site, back to that site's day
    CheckIn.objects.filter(source=CheckIn.Source.MANUAL).delete()
    page = client.get(reverse(ADD), {"person": person.pk, "site": "main", "return": "attendance"}).content.decode()
    assert 'name="return_site" value="main"' in page
    done = client.post(reverse(ADD), {"person": person.pk, **_at(earlier_today(1)),
                                      "site": "main", "reason": "kiosk offline", "return": "attendance",
                                      "return_site": "main"})
    assert done["Location"] == f"{reverse('attendance-day')}?date={timezone.localdate():%Y-%m-%d}&site=main"
    # the way back without recording (they were in after all): Cancel and the breadcrumbs lead to the
    # day and site the link came from, after a refused attempt too; not from the admin's own "Add"
    day_url = f"{reverse('attendance-day')}?date={yesterday:%Y-%m-%d}&amp;site=main"
    link = {"person": person.pk, "date": yesterday.isoformat(), "site": "main", "return": "attendance"}
    page = client.get(reverse(ADD), link).content.decode()
    assert f'<a href="{day_url}" class="closelink">Cancel</a>' in page
    assert f'<a href="{day_url}">Daily attendance</a>' in page
    refused = client.post(reverse(ADD), {"person": person.pk, "at_0": f"{yesterday:%Y-%m-%d}", "at_1": "",
                                         "site": "main", "reason": "", "return": "attendance",
                                         "return_site": "main", "return_date": yesterday.isoformat()})
    cancel = f'<a href="{day_url}" class="closelink">Cancel</a>'
    assert refused.status_code == 200 and cancel in refused.content.decode()
    assert 'class="closelink"' not in client.get(reverse(ADD)).content.decode()
    # nobody missing is left to record; a day out of reach (or in the future) offers no button (the
    # admin's side bar has its own "Add" link to the page)
    button = f"{reverse(ADD)}?person="
    assert button not in client.get(reverse("attendance-day")).content.decode()
    old = (timezone.localdate() - timedelta(days=40)).isoformat()
    person.__class__.objects.update(created_at=timezone.now() - timedelta(days=60))
    assert button not in client.get(reverse("attendance-day"), {"date": old}).content.decode()
    # staff who may only read check-ins see no button
    client.force_login(staff_only_viewer())
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert button not in client.get(reverse("attendance-day"), {"date": yesterday}).content.decode()


def staff_only_viewer() -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_checkin"))
    return user


# ------------------------------------------------------------------- the person: a list, or typed in


def gallery(count: int) -> None:
    """``count`` more active people, "Member 0000" (M-0000) on (in bulk: a few hundred made one by one
    take seconds), each with the staff id's key a save gives."""
    Person.objects.bulk_create([Person(full_name=f"Member {i:04d}", staff_id=f"M-{i:04d}",
                                       staff_key=staff_id_key(f"M-{i:04d}")) for i in range(count)])


def _errors(response) -> dict:
    return response.context["adminform"].form.errors


def _radios(html: str) -> dict[str, bool]:
    """The radio buttons of ``person`` on the page: their value, and whether checked."""
    return {m.group(1): " checked" in m.group(0)
            for m in re.finditer(r'<input type="radio" name="person" value="(\d+)"[^>]*>', html)}


def test_above_300_active_people_the_record_page_asks_for_a_staff_id_or_name_instead_of_listing_everyone(
        client, person, other_person):
    """2,000 people were a 2,000-option list, 120 KiB of page that a desk could not search by staff id;
    a small gallery keeps its list (inactive people not counted)."""
    client.force_login(staff("add_checkin"))
    gallery(CHOOSER_LIST_MAX - 1)   # with Eileen: the most a list shows
    enrollment.person_deactivate(person=other_person, actor=None)
    small = client.get(reverse(ADD)).content.decode()
    assert '<select name="person"' in small and 'name="find"' not in small
    assert "Member 0298 (M-0298)" in small and "Eileen Collins (E-1)" in small
    enrollment.person_update(person=other_person, actor=None, active=True)
    large = client.get(reverse(ADD))
    html = large.content.decode()
    assert large.status_code == 200 and '<select name="person"' not in html
    assert re.search(r'<label for="id_find"[^>]*>Staff id or name:</label>', html)
    assert '<input type="text" name="find"' in html and "Member 0" not in html and "Eileen" not in html
    assert len(large.content) < 30_000


def test_a_staff_id_typed_in_another_case_or_width_is_that_person_not_one_whose_id_contains_it(client, person):
    gallery(CHOOSER_LIST_MAX)
    enrollment.person_create(actor=None, full_name="Edwin Ten", staff_id="E-10", department="Flight")
    user = staff("add_checkin")
    client.force_login(user)
    data = {**_at(timezone.now() - timedelta(minutes=5)), "site": "main", "reason": "badge at the side door"}
    done = client.post(reverse(ADD), {**data, "find": " ｅ－１ "})   # full-width, lower case, spaces around
    assert done.status_code == 302, _errors(done)
    checkin = CheckIn.objects.get()
    assert checkin.person == person and checkin.recorded_by == user


def test_a_text_that_finds_several_offers_them_to_choose_from_and_a_choice_among_them_is_taken(client, person):
    gallery(CHOOSER_LIST_MAX)
    ann = enrollment.person_create(actor=None, full_name="Ann Lee", staff_id="A-1", department="Flight")
    leeds = enrollment.person_create(actor=None, full_name="Ann Leeds", staff_id="A-2", department="Flight")
    client.force_login(staff("add_checkin"))
    data = {**_at(timezone.now() - timedelta(minutes=5)), "site": "main", "reason": "kiosk offline"}
    several = client.post(reverse(ADD), {**data, "find": "ann lee"})
    html = several.content.decode()
    assert several.status_code == 200 and not CheckIn.objects.exists()
    assert _errors(several) == {"find": ["2 active people match “ann lee”: choose one below, or type more."]}
    assert _radios(html) == {str(ann.pk): False, str(leeds.pk): False}
    assert "Ann Lee (A-1)" in html and "Ann Leeds (A-2)" in html
    # the list shows names and staff ids, not departments: a department typed finds nobody by it
    assert list(_errors(client.post(reverse(ADD), {**data, "find": "Flight"}))) == ["find"]
    # a choice left over from another text is not taken: that text's own people are offered
    stale = client.post(reverse(ADD), {**data, "find": "ann lee", "person": person.pk})
    assert list(_errors(stale)) == ["find"] and not CheckIn.objects.exists()
    done = client.post(reverse(ADD), {**data, "find": "ann lee", "person": leeds.pk})
    assert done.status_code == 302 and CheckIn.objects.get().person == leeds
    # more than 20: the first 20, by name, and "type more"
    many = client.post(reverse(ADD), {**data, "find": "member"})
    assert "More than 20 active people match" in _errors(many)["find"][0]
    assert list(_radios(many.content.decode())) == [
        str(pk) for pk in Person.objects.filter(full_name__startswith="Member").values_list("pk", flat=True)[:20]]


def test_one_person_found_by_name_is_shown_chosen_to_confirm_a_staff_id_typed_in_full_is_taken(client, person):
    """Enter pressed on a name with the reason filled in recorded the one person whose name contains
    it at once: "Ann" for Anna Berg, when Ann Lee (not enrolled) was meant. Found by name alone,
    they are shown chosen, to record again to confirm, as one found by part of a staff id is; a
    staff id typed in full names its person, and is taken at once."""
    gallery(CHOOSER_LIST_MAX)
    anna = enrollment.person_create(actor=None, full_name="Anna Berg", staff_id="AB-7")
    client.force_login(staff("add_checkin"))
    data = {**_at(timezone.now() - timedelta(minutes=5)), "site": "main", "reason": "kiosk offline"}
    first = client.post(reverse(ADD), {**data, "find": "ann"})
    assert first.status_code == 200 and not CheckIn.objects.exists()
    assert _errors(first) == {"find": ["Anna Berg (AB-7) is the one active person whose name contains “ann”: they "
                                       "are chosen below; record again to take them, or type another."]}
    assert _radios(first.content.decode()) == {str(anna.pk): True}
    done = client.post(reverse(ADD), {**data, "find": "ann", "person": anna.pk})
    assert done.status_code == 302 and CheckIn.objects.get().person == anna
    # a name typed without its accents, words in any order: said to be the name's match, not a staff
    # id's (a review of the accent-free search)
    hugo = enrollment.person_create(actor=None, full_name="Hugo Chávez", staff_id="HC-1")
    for typed in ("chavez hugo", "Chávez Hugo"):
        said = _errors(client.post(reverse(ADD), {**data, "find": typed}))["find"][0]
        assert said.startswith(f"Hugo Chávez (HC-1) is the one active person whose name contains “{typed}”"), said
    enrollment.person_deactivate(person=hugo, actor=None)
    # a staff id typed in full: one step, as the attendance page's link is
    done = client.post(reverse(ADD), {**data, "find": "e-1"})
    assert done.status_code == 302 and CheckIn.objects.filter(person=person).exists()


def test_a_text_that_finds_nobody_is_the_fields_error_and_tells_reception_no_inactive_person(
        client, person, other_person):
    gallery(CHOOSER_LIST_MAX)
    enrollment.person_create(actor=None, full_name="Tess Tenby", staff_id="T-10", department="Film")
    enrollment.person_deactivate(person=other_person, actor=None)
    client.force_login(staff("add_checkin"))
    data = {**_at(timezone.now() - timedelta(minutes=5)), "site": "main", "reason": "kiosk offline"}
    nobody = client.post(reverse(ADD), {**data, "find": "Nobody Here"})
    assert _errors(nobody) == {
        "find": ["No active person has the staff id “Nobody Here” or a name or staff id containing it."]}
    # an inactive person's name or staff id: answered as one that is nobody's
    assert _errors(client.post(reverse(ADD), {**data, "find": "Tom Hanks"})) == {
        "find": ["No active person has the staff id “Tom Hanks” or a name or staff id containing it."]}
    gone = client.post(reverse(ADD), {**data, "find": "t-1"})
    assert _errors(gone) == {"find": ["No active person has the staff id “t-1”, but the staff id of Tess Tenby "
                                      "(T-10) contains it: they are chosen below; record again to take them, or "
                                      "type another."]}
    assert "Tom Hanks" not in gone.content.decode() and not CheckIn.objects.exists()
    # an id alone (a form drawn before the gallery grew): an inactive person's is nobody's too
    assert (_errors(client.post(reverse(ADD), {**data, "find": "", "person": other_person.pk}))
            == _errors(client.post(reverse(ADD), {**data, "find": "", "person": other_person.pk + 1000})))
    # one found only because their staff id contains the text is offered, checked, not yet taken
    tess = Person.objects.get(staff_id="T-10")
    assert _radios(gone.content.decode()) == {str(tess.pk): True}
    done = client.post(reverse(ADD), {**data, "find": "t-1", "person": tess.pk})
    assert done.status_code == 302 and CheckIn.objects.get().person == tess
    # staff who read check-ins are told the staff id is an inactive person's, as the list's choice is
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    told = client.post(reverse(ADD), {**data, "find": "T-1"}).content.decode()
    assert "Tom Hanks (T-1) is inactive: reactivate them" in told


def test_the_attendance_pages_link_fills_in_the_person_with_a_typed_chooser_too(client, person, other_person):
    gallery(CHOOSER_LIST_MAX)
    client.force_login(staff("add_checkin"))
    page = client.get(reverse(ADD), {"person": person.pk, "return": "attendance"})
    html = page.content.decode()
    assert page.context["adminform"].form.initial["person"] == person.pk
    assert '<input type="text" name="find" value="E-1"' in html and _radios(html) == {str(person.pk): True}
    assert "Eileen Collins (E-1)" in html
    data = {"find": "E-1", "person": person.pk, **_at(timezone.now() - timedelta(minutes=1)), "site": "main",
            "reason": "kiosk offline", "return": "attendance"}
    assert client.post(reverse(ADD), data).status_code == 302 and CheckIn.objects.get().person == person
    # an inactive person's id fills in nothing (as a list would offer them nothing)
    enrollment.person_deactivate(person=other_person, actor=None)
    html = client.get(reverse(ADD), {"person": other_person.pk}).content.decode()
    assert "Tom" not in html and "T-1" not in html and not _radios(html)


def _warnings(html: str) -> list[str]:
    return re.findall(r'<li class="warning">(.*?)</li>', html, re.S)


@pytest.mark.parametrize("typed", [False, True], ids=["list", "typed"])
def test_a_link_naming_someone_deactivated_since_says_so_to_staff_who_may_see_them_and_tells_a_desk_no_more(
        client, person, other_person, typed):
    """The attendance page's **Record check-in** link of someone deactivated since the page was drawn opened
    the form with no person chosen and no word why. Staff who may see inactive people (the attendance pages,
    ``view_checkin``; People, ``enrollment.view_person``) are told who and that they are no longer active; a
    desk (``add_checkin`` alone, to whom an inactive person's id is nobody's) that the link names none of the
    active people, the same words as for an id that is nobody's."""
    if typed:
        gallery(CHOOSER_LIST_MAX)
    enrollment.person_deactivate(person=other_person, actor=None)
    link = {"person": other_person.pk, "date": timezone.localdate().isoformat(), "return": "attendance"}
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    html = client.get(reverse(ADD), link).content.decode()
    assert _warnings(html) == ["Tom Hanks (T-1) is no longer active: a check-in is recorded for active people "
                               "only. Reactivate them (People) to record one, or choose someone else."]
    assert not _radios(html) and 'selected>Tom Hanks' not in html
    # a link of someone active: no word (and them chosen)
    assert _warnings(client.get(reverse(ADD), {**link, "person": person.pk}).content.decode()) == []
    # staff who see People, though not check-ins: named too
    viewer = staff("add_checkin")
    viewer.user_permissions.add(Permission.objects.get(codename="view_person"))
    client.force_login(User.objects.get(pk=viewer.pk))
    assert _warnings(client.get(reverse(ADD), link).content.decode())[0].startswith("Tom Hanks (T-1) is no longer")
    # a desk: no name, no staff id, nor whether the id is an inactive person's
    viewer.user_permissions.set(Permission.objects.filter(codename="add_checkin"))
    client.force_login(User.objects.get(pk=viewer.pk))
    html = client.get(reverse(ADD), link).content.decode()
    assert "Tom" not in html and "T-1" not in html
    said = ["The person this link names is not one of the active people: choose someone else."]
    assert _warnings(html) == said
    assert _warnings(client.get(reverse(ADD), {**link, "person": other_person.pk + 1000}).content.decode()) == said
    assert not CheckIn.objects.exists()


# ----------------------------------------------------------------------------- pages, CSVs and API


def test_a_check_in_by_hand_is_marked_as_such_on_every_page_csv_and_the_api(client, superuser, paired, person,
                                                                          other_person):
    kiosk, _token = paired
    services.checkin_record(person_id=other_person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=True,
                            frames=4, index_version=1)
    manual = record(person, reason="came in by the loading bay", actor=superuser)
    client.force_login(superuser)
    day = client.get(reverse("attendance-day")).content.decode()
    assert day.count('<span class="att-manual">by hand</span>') == 1 and day.count("att-masked\">mask") == 1
    # no kiosk saw them: its kiosk column says none, where it showed the site as if a kiosk were named so
    assert '<td role="cell" class="kiosk">—</td>' in day and f'class="kiosk">{kiosk.name}</td>' in day
    assert '<td role="cell" class="kiosk">main</td>' not in day
    history = client.get(reverse("attendance-person", args=[person.pk])).content.decode()
    assert 'title="came in by the loading bay">by hand</span>' in history
    # the reason shown in the row, not only in the badge's tooltip (no hover on a phone or a keyboard)
    assert '<span class="att-reason">by hand: “came in by the loading bay”</span>' in history
    assert '<td role="cell" class="score">—' in history
    listed = client.get(reverse("admin:recognition_checkin_changelist")).content.decode()
    assert "by hand" in listed
    detail = client.get(reverse("admin:recognition_checkin_change", args=[manual.pk])).content.decode()
    assert "came in by the loading bay" in detail and "root" in detail
    # no camera saw them: its snapshot is not said to be off or expired
    assert "— (recorded by hand)" in detail and "snapshots are off" not in detail
    # the CSVs: the new columns at the end, the old ones where they were
    assert CHECKIN_CSV_HEADER[:12] == ["time", "date", "staff_id", "name", "department", "site", "kiosk", "masked",
                                       "score", "frames", "index_version", "checkin_id"]
    assert CHECKIN_CSV_HEADER[12:] == ["source", "reason"]
    for response in (client.get(reverse("attendance-export")),
                     client.get(reverse("admin:recognition_checkin_export")),
                     client.get(reverse("attendance-person", args=[person.pk]), {"format": "csv"})):
        table = rows(response)
        assert table[0] == CHECKIN_CSV_HEADER
        by_id = {r[11]: r for r in table[1:]}
        mine = by_id[str(manual.pk)]
        assert mine[6] == "" and mine[8] == "" and mine[9] == "0" and mine[12:] == ["manual",
                                                                                    "came in by the loading bay"]
        assert all(r[12] == "kiosk" and r[13] == "" for k, r in by_id.items() if k != str(manual.pk))
    daily = rows(client.get(reverse("attendance-day"), {"format": "csv"}))
    assert daily[0][-1] == "source" and {r[2]: r[-1] for r in daily[1:]} == {"E-1": "manual", "T-1": "kiosk"}
    api = APIClient()
    api.force_login(superuser)
    answer = {c["id"]: c for c in api.get("/api/v1/checkins").json()["results"]}
    assert answer[manual.pk]["source"] == "manual" and answer[manual.pk]["score"] is None
    assert answer[manual.pk]["reason"] == "came in by the loading bay"
    assert {k for k in answer[manual.pk]} >= {"id", "person", "staff_id", "person_name", "kiosk", "kiosk_name", "site",
                                               "at", "local_date", "score", "threshold", "masked", "frames",
                                               "index_version"}


@pytest.mark.parametrize("url, field", [("admin:recognition_checkin_add", "at"),
                                        ("admin:api_apitoken_add", "expires_at")])
def test_the_date_and_time_inputs_are_named_and_described_by_their_rules(client, superuser, url, field):
    """Django's date and time pair had no name a screen reader could read (its label named no input)
    and no link to the help text that holds the rules (the day as YYYY-MM-DD, the site's time zone):
    a helper's review in Chromium. Each input is named now, and described by the help text."""
    client.force_login(superuser)
    html = client.get(reverse(url)).content.decode()
    label = "Time" if field == "at" else "Expires at"
    for i, part in enumerate(("date", "time of day")):
        tag = re.search(rf'<input[^>]*id="id_{field}_{i}"[^>]*>', html).group(0)
        assert f'aria-label="{label} ({part})"' in tag, tag
        assert f'aria-describedby="id_{field}_0_helptext"' in tag, tag
    assert re.search(rf'<div class="help"[^>]*id="id_{field}_0_helptext"', html), "no help text with that id"
    assert re.search(rf'<label[^>]*for="id_{field}_0"', html), "the label names no input"


def test_deleting_a_check_in_points_to_the_face_gallery_adaptation_kept_from_it(client, superuser, person, paired):
    """A check-in deleted because someone else was recognised as the person left the face gallery
    adaptation kept from it among the person's photos, and nothing pointed to it (a helper's review):
    the admin names it now, linked, and leaves removing it to the administrator."""
    from enrollment.models import FacePhoto

    kept = services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=False,
                                   frames=3, index_version=None).checkin
    other = record(person, at=timezone.now() - timedelta(days=2), actor=superuser)
    photo = FacePhoto.objects.create(person=person, image="faces/kept.jpg", sha256="k", source="checkin",
                                     kept_from_checkin=kept.pk)
    client.force_login(superuser)

    def delete(checkin) -> list[str]:
        response = client.post(reverse("admin:recognition_checkin_delete", args=[checkin.pk]), {"post": "yes"},
                               follow=True)
        return [str(m) for m in response.context["messages"]]

    warned = [m for m in delete(kept) if "gallery adaptation" in m]
    link = reverse("admin:enrollment_facephoto_change", args=[photo.pk])
    assert warned == [f'The face of check-in #{kept.pk} was kept as <a href="{link}">photo #{photo.pk}</a> of '
                      f"{person} (gallery adaptation): if someone else was recognised as them, remove that photo "
                      "too."], warned
    assert FacePhoto.objects.filter(pk=photo.pk).exists()   # theirs to decide
    assert not [m for m in delete(other) if "gallery adaptation" in m]
