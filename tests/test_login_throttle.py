"""Staff login throttling (masknet_site/login_throttle.py): failures per username and client
address lock that pair out for a while; a success clears the count. Username variants the form
treats alike share the count, parallel POSTs cannot exceed it, and a higher per-username cap
holds across addresses."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from tests.logins import LOGIN, login, make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]


@pytest.fixture(autouse=True)
def throttle(settings):
    settings.MASKNET_LOGIN_MAX_FAILURES = 3
    settings.MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME = 30
    settings.MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS = 40
    settings.MASKNET_LOGIN_LOCKOUT_S = 120
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(db) -> User:
    return make_staff()


def test_lockout_after_repeated_failures_even_with_the_right_password(client, staff):
    assert [login(client, "alice", "wrong").status_code for _ in range(3)] == [200, 200, 200]
    locked = login(client, "alice", "right-password-123")
    assert locked.status_code == 429 and locked["Retry-After"] == "120"
    assert b"Too many failed logins" in locked.content and b"alice" not in locked.content
    assert "_auth_user_id" not in client.session
    # another address, or another username from the same address, is not locked
    assert login(client, "alice", "right-password-123", ip="10.0.0.2").status_code == 302
    assert login(client, "bob", "wrong").status_code == 200


def test_the_lock_expires(client, staff):
    for _ in range(3):
        login(client, "alice", "wrong")
    assert login(client, "alice", "right-password-123").status_code == 429
    cache.clear()   # the lockout key's timeout (MASKNET_LOGIN_LOCKOUT_S) has passed
    assert login(client, "alice", "right-password-123").status_code == 302


def test_a_success_clears_the_failure_count(client, staff):
    for _ in range(2):
        login(client, "alice", "wrong")
    assert login(client, "alice", "right-password-123").status_code == 302
    client.logout()
    assert [login(client, "alice", "wrong").status_code for _ in range(2)] == [200, 200]
    assert login(client, "alice", "right-password-123").status_code == 302


def test_other_requests_are_not_throttled(client, staff):
    for _ in range(3):
        login(client, "alice", "wrong")
    assert client.get(LOGIN, REMOTE_ADDR="10.0.0.1").status_code == 200


def test_a_unicode_variant_of_a_locked_username_is_locked_too(client, staff):
    # the form normalises usernames with NFKC: fullwidth "\uff41lice" is alice
    assert login(client, "\uff41lice", "right-password-123").status_code == 302
    client.logout()
    for _ in range(3):
        login(client, "alice", "wrong")
    for variant in ("\uff41lice", " ALICE ", "\uff21lice"):
        assert login(client, variant, "right-password-123").status_code == 429, variant
    assert "_auth_user_id" not in client.session


class ParallelLogins:
    """An authentication backend that, while one login is being checked, sends the next one (a
    wrong password, same username and address): every POST passes the throttle before any has
    failed, as parallel POSTs do. Records the passwords that reached authentication."""

    pending = 0
    guesses: list[str] = []
    statuses: list[int] = []

    def authenticate(self, request, username=None, password=None, **kwargs):
        ParallelLogins.guesses.append(password)
        if ParallelLogins.pending:
            ParallelLogins.pending -= 1
            ParallelLogins.statuses.append(login(Client(), username, "wrong").status_code)
        return None   # the model backend judges the password

    def get_user(self, user_id):
        return None


def test_parallel_posts_get_no_more_guesses_than_the_limit(client, staff, settings):
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.ParallelLogins",
                                        "django.contrib.auth.backends.ModelBackend"]
    ParallelLogins.pending, ParallelLogins.guesses, ParallelLogins.statuses = 5, [], []
    first = login(client, "alice", "wrong")
    assert first.status_code == 200
    assert len(ParallelLogins.guesses) == 3            # MASKNET_LOGIN_MAX_FAILURES, not 6
    assert sorted(ParallelLogins.statuses) == [200, 200, 429]
    assert login(client, "alice", "right-password-123").status_code == 429


def test_varying_the_address_hits_the_per_username_cap(client, staff):
    # MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME: 30 failures per username, any addresses
    statuses = [login(client, "alice", "wrong", ip=f"10.1.{n}.{k}").status_code
                for n in range(15) for k in range(2)]
    assert statuses == [200] * 30
    assert login(client, "alice", "right-password-123", ip="10.2.0.1").status_code == 429
    assert login(client, "bob", "wrong", ip="10.2.0.1").status_code == 200


def test_one_address_trying_a_new_username_each_time_hits_the_per_address_cap(client, staff, settings,
                                                                              monkeypatch):
    """Each new username started fresh counts per pair and per username: one client could spray
    a password over every username, and make the server hash a password with each request."""
    from django.contrib.auth import forms

    settings.MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS = 8
    calls = []
    real = forms.authenticate
    monkeypatch.setattr(forms, "authenticate", lambda *a, **k: calls.append(k.get("username")) or real(*a, **k))
    statuses = [login(client, f"user{n}", "Spring2026!", ip="10.9.0.1").status_code for n in range(12)]
    assert statuses == [200] * 8 + [429] * 4 and len(calls) == 8
    assert login(client, "alice", "right-password-123", ip="10.9.0.1").status_code == 429
    assert login(client, "nobody", "x", ip="10.9.0.2").status_code == 200      # other addresses are not
    # an address someone logged in from (an office's NAT) is not held to it
    assert login(client, "alice", "right-password-123", ip="10.9.0.3").status_code == 302
    client.logout()
    assert [login(client, f"other{n}", "x", ip="10.9.0.3").status_code for n in range(10)] == [200] * 10


def test_an_ipv6_client_is_counted_by_its_64_network_not_by_each_address(client, staff, settings):
    """A host holds a whole /64 and may use any address in it: counted per address, each attempt
    from a new one started fresh on the per-pair and per-address caps."""
    settings.MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS = 8
    net = "2001:db8:1:2"
    statuses = [login(client, f"user{n}", "Spring2026!", ip=f"{net}::{n + 1:x}").status_code for n in range(10)]
    assert statuses == [200] * 8 + [429] * 2
    cache.clear()
    statuses = [login(client, "alice", "wrong", ip=f"{net}:{n:x}::1").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]   # MASKNET_LOGIN_MAX_FAILURES for the pair
    # another /64 is another client; an IPv4 client written as IPv6 is the same client as written as IPv4
    assert login(client, "alice", "right-password-123", ip="2001:db8:1:3::1").status_code == 302
    client.logout()
    for _ in range(3):
        login(client, "bob", "wrong", ip="::ffff:10.0.0.7")
    assert login(client, "bob", "wrong", ip="10.0.0.7").status_code == 429


def test_the_real_users_success_does_not_reset_the_per_username_count(client, staff, settings):
    settings.MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME = 6
    assert [login(client, "alice", "wrong", ip=f"10.1.0.{n}").status_code for n in range(5)] == [200] * 5
    assert login(client, "alice", "right-password-123", ip="10.0.0.1").status_code == 302
    client.logout()
    assert login(client, "alice", "wrong", ip="10.1.1.1").status_code == 200    # the 6th failure
    assert login(client, "alice", "right-password-123", ip="10.0.0.2").status_code == 429
    # ... but not from the address she logged in from: strangers cannot lock her out of her desk
    assert login(client, "alice", "right-password-123", ip="10.0.0.1").status_code == 302


def test_a_reservation_given_back_after_its_window_never_leaves_a_negative_count():
    from masknet_site import login_throttle

    assert login_throttle._reserve("k", 60) == 1 and login_throttle._reserve("k", 60) == 2
    cache.delete("k")                                 # the window ended while both were in flight
    assert login_throttle._reserve("k", 60) == 1      # the next window's first attempt
    login_throttle._release("k")
    login_throttle._release("k")
    assert cache.get("k") is None                     # not -1: no extra guesses in that window


PASSWORD_CHANGE = "/admin/password_change/"


def change_password(client, old: str, new1: str = "A-new-pass-4821!", new2: str | None = None, ip: str = "10.0.0.9"):
    """POST the admin's own password change form from ``ip``."""
    return client.post(PASSWORD_CHANGE, {"old_password": old, "new_password1": new1,
                                         "new_password2": new1 if new2 is None else new2}, REMOTE_ADDR=ip)


def test_a_session_cannot_guess_its_users_password_on_the_password_change_page(client, staff):
    # a stolen or borrowed session (an unlocked desk): the "current password" field checked any
    # number of guesses, unthrottled and unrecorded
    client.force_login(staff)
    assert [change_password(client, f"guess-{n}").status_code for n in range(3)] == [200, 200, 200]
    locked = change_password(client, "right-password-123")
    assert locked.status_code == 429 and locked["Retry-After"] == "120"
    staff.refresh_from_db()
    assert staff.check_password("right-password-123")            # not changed: the right guess was refused
    # the same lock as the login form's for that user and address: no more guesses there either
    assert login(Client(), "alice", "right-password-123", ip="10.0.0.9").status_code == 429
    assert login(Client(), "alice", "right-password-123", ip="10.0.0.10").status_code == 302
    from audit.models import AuditEvent

    [lock] = AuditEvent.objects.filter(action="login_failed", summary__contains="locked")
    assert lock.object_id == str(staff.pk) and "password change page" in lock.summary


def test_a_password_change_refused_for_its_new_password_is_no_failure(client, staff):
    client.force_login(staff)
    for _ in range(4):   # the current password is right; the new ones differ
        assert change_password(client, "right-password-123", new2="something-else-99").status_code == 200
    assert change_password(client, "wrong").status_code == 200
    assert change_password(client, "right-password-123").status_code == 302
    staff.refresh_from_db()
    assert staff.check_password("A-new-pass-4821!")


def test_each_wrong_current_password_is_audited_as_a_failed_login_of_the_sessions_user(client, staff):
    # a failed login of its user (README, docs/security.md), yet only the lock reached the audit log:
    # the guesses of a stolen session below the lock left no trace, where each login form failure does
    from audit.models import AuditEvent

    client.force_login(staff)
    assert change_password(client, "right-password-123", new2="something-else-99").status_code == 200
    assert not AuditEvent.objects.filter(action="login_failed").exists()     # the current one was right
    assert [change_password(client, f"guess-{n}").status_code for n in range(2)] == [200, 200]
    failed = list(AuditEvent.objects.filter(action="login_failed").order_by("id"))
    assert len(failed) == 2
    assert all(e.actor_id == staff.pk and e.object_id == str(staff.pk) for e in failed)
    assert failed[0].summary == "wrong current password on the password change page from 10.0.0.9"


def test_an_administrator_setting_someone_elses_password_is_not_counted(client, staff):
    # the user admin's password form (/admin/auth/user/<id>/password/) asks for no current
    # password: a refused one (the two differ) is no guess at anyone's password, and locks no one
    bob = User.objects.create_user("bob", password="bobs-password-123", is_staff=True)
    client.force_login(staff)
    url = f"/admin/auth/user/{bob.pk}/password/"
    for _ in range(4):
        refused = client.post(url, {"password1": "A-new-pass-4821!", "password2": "differs-99!"},
                              REMOTE_ADDR="10.0.0.9")
        assert refused.status_code == 200
    done = client.post(url, {"password1": "A-new-pass-4821!", "password2": "A-new-pass-4821!"}, REMOTE_ADDR="10.0.0.9")
    assert done.status_code == 302
    assert login(Client(), "alice", "right-password-123", ip="10.0.0.9").status_code == 302
    assert login(Client(), "bob", "A-new-pass-4821!", ip="10.0.0.9").status_code == 302


def test_a_flood_of_other_entries_does_not_cull_a_lockout(client, staff):
    """Django's memory cache held 300 entries and culled a third when full: a flood of logins under
    made-up names (cheap: an empty password is refused before any hashing) wiped a victim's lockout,
    and then five more guesses, every few seconds. Found by a helper's review."""
    for _ in range(3):
        login(client, "alice", "wrong")
    for i in range(2000):   # what some 700 flooding logins write
        cache.set(f"flood-{i}", 1)
    assert login(client, "alice", "right-password-123").status_code == 429


def test_the_lock_says_how_long_is_left(client, staff, monkeypatch):
    """The 429 said the whole lockout ("5 minute(s)", Retry-After 300) at every attempt until the lock
    ended. Found by a helper's review."""
    import time

    from masknet_site import login_throttle

    for _ in range(3):
        login(client, "alice", "wrong")
    first = login(client, "alice", "right-password-123")
    assert first["Retry-After"] == "120" and b"Try again in 2 minutes." in first.content
    later = time.time() + 90
    monkeypatch.setattr(login_throttle.time, "time", lambda: later)
    left = login(client, "alice", "right-password-123")
    assert left.status_code == 429 and int(left["Retry-After"]) in (29, 30, 31)
    assert b"Try again in 1 minute." in left.content
