"""``POST /api/v1/checkins``: a check-in recorded by hand through the API (a badge reader at another
door, an HR tool), through the admin's service: the answer as the list gives it, the service's
refusals in the API's error shape, who may record one, CSRF, and the cooldown window it shares
with the kiosks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from api import services as api_services
from audit.models import AuditEvent
from enrollment import services as enrollment
from recognition import services as recognition
from recognition.models import CheckIn

from .helpers import make_world

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkins"


def yesterday_at(hour: int, minute: int = 0) -> datetime:
    """Yesterday at ``hour:minute``, the site's local time (always in the past, within reach)."""
    return timezone.make_aware(datetime.combine(timezone.localdate() - timedelta(days=1), time(hour, minute)))


@pytest.fixture
def world():
    return make_world()


@pytest.fixture
def newcomer(db):
    """An active person with no check-in yet."""
    return enrollment.person_create(actor=None, full_name="Mei Lin", staff_id="ML-1")


@pytest.fixture
def admin_api(make_token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['admin'], name='badge-reader')}")
    return client


def test_a_check_in_by_hand_is_recorded_audited_and_answered_as_the_list_gives_it(world, newcomer, admin_api):
    at = yesterday_at(9, 15)
    body = {"person": newcomer.pk, "at": at.isoformat(), "reason": "  badge at the side door  "}
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    row = CheckIn.objects.get(pk=body["id"])
    assert row.manual and row.kiosk is None and row.at == at and row.reason == "badge at the side door"
    assert row.site == "main"   # left out: the site's default, as the admin's form offers it
    assert row.recorded_by.username == api_services.api_token_username("badge-reader")
    listed = admin_api.get(URL, {"person": newcomer.pk}).json()["results"]
    assert listed == [body]
    assert body["source"] == "manual" and body["kiosk"] is None and body["frames"] == 0
    event = AuditEvent.objects.get(action="checkin_manual")
    assert (event.actor, event.object_id) == (api_services.api_token_username("badge-reader"), str(row.pk))
    assert "badge" not in event.summary   # the reason's length only (the service's record)


def test_a_time_without_an_offset_is_the_sites_local_time(world, newcomer, admin_api, settings):
    settings.TIME_ZONE = "America/New_York"
    day = timezone.localdate() - timedelta(days=1)
    response = admin_api.post(URL, {"person": newcomer.pk, "at": f"{day.isoformat()}T08:30:00", "reason": "reader"},
                              format="json")
    assert response.status_code == 201, response.content
    local = timezone.localtime(CheckIn.objects.get(pk=response.json()["id"]).at)
    assert (local.date(), local.time()) == (day, time(8, 30))
    assert response.json()["at"].startswith(f"{day.isoformat()}T08:30:00-0")   # answered with its offset
    # with an offset, that instant, whatever the site's zone
    response = admin_api.post(URL, {"person": world.person.pk, "at": f"{day.isoformat()}T12:00:00Z",
                                    "reason": "reader"}, format="json")
    assert response.status_code == 201, response.content
    assert CheckIn.objects.get(pk=response.json()["id"]).at == datetime.combine(day, time(12), tzinfo=UTC)


def test_a_site_is_taken_as_sent_and_form_encoded_bodies_work_too(world, newcomer, admin_api):
    recognition.kiosk_create(actor=None, name="Annex door", site="annex")
    response = admin_api.post(URL, {"person": newcomer.pk, "at": yesterday_at(8).isoformat(), "site": "annex",
                                    "reason": "reader"})
    assert response.status_code == 201, response.content
    assert response.json()["site"] == "annex"


def _refusals(world, newcomer) -> list[tuple[str, dict, str, str | None]]:
    """(what, body, field at fault, the refusal's code: None for the serializer's own)"""
    good = {"person": newcomer.pk, "at": yesterday_at(9).isoformat(), "reason": "reader"}
    enrollment.person_deactivate(person=world.person, actor=None)
    return [
        ("unknown person", {**good, "person": newcomer.pk + 1000}, "person", None),
        ("person id too large", {**good, "person": 2**70}, "person", None),
        # the model's field read these as int(): 1.9 was person #1, true was #1 too
        ("a person id with a fraction", {**good, "person": newcomer.pk + 0.9}, "person", None),
        ("a person id written with a fraction", {**good, "person": f"{newcomer.pk}.9"}, "person", None),
        ("a person id that is a boolean", {**good, "person": True}, "person", None),
        ("no person", {k: v for k, v in good.items() if k != "person"}, "person", None),
        ("inactive person", {**good, "person": world.person.pk}, "person", "person_inactive"),
        ("in the future", {**good, "at": (timezone.now() + timedelta(minutes=5)).isoformat()}, "at", "time_refused"),
        ("too far back", {**good, "at": (timezone.now() - timedelta(days=recognition.MANUAL_CHECKIN_MAX_DAYS + 1))
                          .isoformat()}, "at", "time_refused"),
        # not that day's midnight, as Python's fromisoformat reads it
        ("a date alone", {**good, "at": timezone.localdate().isoformat()}, "at", None),
        ("a week's day alone", {**good, "at": f"{timezone.localdate():%G-W%V-%u}"}, "at", None),
        ("not a time", {**good, "at": "yesterday"}, "at", None),
        ("no time", {k: v for k, v in good.items() if k != "at"}, "at", None),
        ("empty reason", {**good, "reason": ""}, "reason", "refused"),
        ("blank reason", {**good, "reason": "   "}, "reason", "refused"),
        ("long reason", {**good, "reason": "x" * (recognition.MANUAL_REASON_MAX + 1)}, "reason", "refused"),
        ("no reason", {k: v for k, v in good.items() if k != "reason"}, "reason", None),
        ("unknown site", {**good, "site": "moon base"}, "site", "refused"),
    ]


def test_each_refusal_is_a_validation_error_on_its_field_and_records_nothing(world, newcomer, admin_api):
    before = CheckIn.objects.count()
    for what, body, field, code in _refusals(world, newcomer):
        response = admin_api.post(URL, body, format="json")
        assert response.status_code == 400, (what, response.content)
        answer = response.json()
        assert answer["error"] == "validation_error" and list(answer["fields"]) == [field], (what, answer)
        assert answer["fields"][field][0][:1].isupper(), (what, answer)   # a sentence
        assert answer.get("reason") == code, (what, answer)
    assert CheckIn.objects.count() == before
    assert not AuditEvent.objects.filter(action="checkin_manual").exists()


def test_a_local_time_the_clocks_skip_is_refused_not_moved_an_hour(newcomer, admin_api, settings):
    """2026-03-29T01:30 without an offset never happened in London: it was stored as 02:30 BST without a
    word, where the admin's form refuses it."""
    settings.TIME_ZONE = "Europe/London"
    response = admin_api.post(URL, {"person": newcomer.pk, "at": "2026-03-29T01:30:00", "reason": "reader"},
                              format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == ["at"], response.content
    assert "did not happen in the site's time zone (Europe/London)" in response.json()["fields"]["at"][0]
    assert not CheckIn.objects.filter(person=newcomer).exists()


@pytest.mark.parametrize(("zone", "at"), [("Europe/Berlin", "0001-01-01T00:30:00"),
                                         ("America/New_York", "9999-12-31T23:59:00")])
def test_a_local_time_at_the_calendars_edge_is_a_400_not_a_500(newcomer, admin_api, settings, zone, at):
    """It has no UTC time in a zone off UTC: asking whether the clocks changed then raised OverflowError.
    Found by a helper's review."""
    settings.TIME_ZONE = zone
    response = admin_api.post(URL, {"person": newcomer.pk, "at": at, "reason": "reader"}, format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == ["at"], response.content
    assert not CheckIn.objects.filter(person=newcomer).exists()


def test_one_in_that_window_already_is_a_409_naming_it_and_a_kiosk_later_says_already(world, newcomer, admin_api):
    # the kiosk's check-in of the world's person, today
    response = admin_api.post(URL, {"person": world.person.pk, "at": world.checkin.at.isoformat(),
                                    "reason": "reader"}, format="json")
    assert response.status_code == 409, response.content
    answer = response.json()
    assert answer["error"] == "already_checked_in" and answer["checkin"] == world.checkin.pk
    assert f"check-in #{world.checkin.pk}" in answer["detail"]
    # one by hand first: the kiosk that sees them later in that window does not check them in again
    at = timezone.now() - timedelta(seconds=1)
    first = admin_api.post(URL, {"person": newcomer.pk, "at": at.isoformat(), "reason": "reader"}, format="json")
    assert first.status_code == 201, first.content
    outcome = recognition.checkin_record(person_id=newcomer.pk, kiosk=world.kiosk, score=0.8, threshold=0.5,
                                         masked=False, frames=4, index_version=None, at=at)
    assert not outcome.created and outcome.checkin.pk == first.json()["id"]
    again = admin_api.post(URL, {"person": newcomer.pk, "at": at.isoformat(), "reason": "reader"}, format="json")
    assert (again.status_code, again.json()["checkin"]) == (409, first.json()["id"])


@pytest.mark.parametrize("scope", ["read", "enrol", "recognise"])
def test_tokens_without_the_admin_scope_are_refused(world, newcomer, make_token, scope):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token([scope])}")
    response = client.post(URL, {"person": newcomer.pk, "at": yesterday_at(9).isoformat(), "reason": "reader"},
                           format="json")
    assert response.status_code == 403 and "'admin' scope" in response.json()["detail"]
    assert not CheckIn.objects.filter(person=newcomer).exists()


def test_staff_sessions_need_add_checkin_and_a_csrf_token(world, newcomer):
    desk = User.objects.create_user("desk", password="pw", is_staff=True)
    desk.user_permissions.add(Permission.objects.get(codename="view_checkin"))
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(desk)
    client.get("/admin/")  # its logout form sets the csrftoken cookie
    csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}
    body = {"person": newcomer.pk, "at": yesterday_at(9).isoformat(), "reason": "came in by the loading bay"}
    response = client.post(URL, body, format="json", **csrf)
    assert response.status_code == 403
    assert response.json()["detail"] == "Your account lacks the permission 'recognition.add_checkin'."
    desk.user_permissions.set(Permission.objects.filter(codename="add_checkin"))   # without view_checkin too
    client.force_login(User.objects.get(pk=desk.pk))   # permissions are cached per user object
    csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}
    response = client.post(URL, body, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not CheckIn.objects.filter(person=newcomer).exists()
    response = client.post(URL, body, format="json", **csrf)
    assert response.status_code == 201, response.content
    assert CheckIn.objects.get(pk=response.json()["id"]).recorded_by == desk


def test_a_session_that_may_record_but_not_read_check_ins_learns_no_check_in_or_inactive_person(world, newcomer):
    """``recognition.add_checkin`` without ``view_checkin`` (a desk), as the admin's form tells it:
    a 409 does not say when the check-in already there was, and an inactive person's id is refused
    as one that is nobody's (a token with the ``admin`` scope reads check-ins anyway)."""
    desk = User.objects.create_user("desk", password="pw", is_staff=True)
    desk.user_permissions.set(Permission.objects.filter(codename="add_checkin"))
    client = APIClient()
    client.force_login(desk)
    taken = client.post(URL, {"person": world.person.pk, "at": world.checkin.at.isoformat(), "reason": "reader"},
                        format="json")
    assert taken.status_code == 409 and taken.json()["error"] == "already_checked_in"
    assert f"{timezone.localtime(world.checkin.at):%H:%M}" not in taken.json()["detail"]
    assert "already" in taken.json()["detail"]
    enrollment.person_deactivate(person=newcomer, actor=None)
    body = {"at": yesterday_at(9).isoformat(), "reason": "reader"}
    inactive = client.post(URL, {**body, "person": newcomer.pk}, format="json")
    nobody = client.post(URL, {**body, "person": newcomer.pk + 1000}, format="json")
    assert inactive.status_code == nobody.status_code == 400
    assert inactive.json()["fields"].keys() == {"person"} and "reason" not in inactive.json()
    assert inactive.json()["fields"]["person"] == [m.replace(str(newcomer.pk + 1000), str(newcomer.pk))
                                                   for m in nobody.json()["fields"]["person"]]
    assert CheckIn.objects.count() == 1
