"""Staff logins, logouts and failed logins are audited (audit/logins.py), with the client's
address; failures at usernames that do not exist are not; the records expire with the decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from audit.models import ACCESS_ACTIONS, AuditEvent
from audit.services import audit_decisions_purge
from tests.logins import login, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_lockouts():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(db) -> User:
    return make_staff()


def records(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_login_and_a_logout_are_recorded_with_the_address(client, staff):
    assert login(client, "alice", "right-password-123", ip="192.0.2.7").status_code == 302
    [event] = records("login")
    assert (event.actor, event.actor_id, event.object_type, event.object_id) == (
        "alice", staff.pk, "auth.user", str(staff.pk))
    assert event.summary == "login from 192.0.2.7"
    assert client.post("/admin/logout/", REMOTE_ADDR="192.0.2.7").status_code == 200
    [out] = records("logout")
    assert (out.actor, out.object_id, out.summary) == ("alice", str(staff.pk), "logout from 192.0.2.7")


def test_a_wrong_password_is_recorded_against_the_account_not_as_its_owner(client, staff):
    assert login(client, "alice", "guess", ip="198.51.100.3").status_code == 200
    [event] = records("login_failed")
    assert (event.actor, event.actor_id, event.object_id) == ("anonymous", None, str(staff.pk))
    assert event.summary == "failed login from 198.51.100.3"
    assert "guess" not in event.summary and not records("login")


def test_a_deactivated_account_says_so(client, staff):
    staff.is_active = False
    staff.save()
    login(client, "alice", "right-password-123")
    [event] = records("login_failed")
    assert "deactivated" in event.summary


def test_an_unknown_username_leaves_no_record(client, staff):
    # it could be a password typed into the wrong field, and anyone could fill the log with them
    login(client, "correct horse battery staple", "x")
    assert not AuditEvent.objects.filter(action__in=ACCESS_ACTIONS).exists()


def test_login_records_expire_with_the_decisions(client, staff):
    login(client, "alice", "right-password-123")
    login(client, "alice", "wrong")
    later = timezone.now() + timedelta(days=400)
    counts = audit_decisions_purge(older_than_days=365, now=later)
    assert counts == {"login": 1, "login_failed": 1}
    assert not AuditEvent.objects.filter(action__in=ACCESS_ACTIONS).exists()
    assert "decision and login records" in AuditEvent.objects.get(action="purge").summary


def test_a_lockout_is_recorded_once(client, staff, settings):
    settings.MASKNET_LOGIN_MAX_FAILURES = 3
    settings.MASKNET_LOGIN_LOCKOUT_S = 300
    for _ in range(5):
        login(client, "alice", "wrong", ip="203.0.113.9")      # 3 failures, then 2 refused (429)
    locks = [e for e in records("login_failed") if "locked" in e.summary]
    assert len(locks) == 1 and locks[0].object_id == str(staff.pk)
    assert locks[0].summary == "logins locked for 300 s after 3 failures per username and address from 203.0.113.9"
    assert len(records("login_failed")) == 4                  # the three failures and the lock


def test_a_lockout_of_an_unknown_username_names_no_one(client, staff, settings):
    settings.MASKNET_LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        login(client, "hunter2-typed-here", "x")
    [lock] = records("login_failed")
    assert lock.object_id == "" and "hunter2" not in lock.summary and "no such username" in lock.summary


@pytest.mark.parametrize("typed", [" alice", "ALICE", "ａｌｉｃｅ"])
def test_a_lockout_by_a_variant_of_a_username_is_recorded_against_that_account(client, staff, settings, typed):
    """The lock's key ignores spaces, letter case and Unicode width ("ALICE" locks alice out); its
    record said "no such username", beside alice's own failed logins."""
    settings.MASKNET_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        login(client, typed, "guess", ip="198.51.100.9")
    locks = [e for e in records("login_failed") if "locked" in e.summary]
    assert len(locks) == 1 and locks[0].object_id == str(staff.pk), [(e.object_id, e.summary) for e in locks]
    assert "no such username" not in locks[0].summary
