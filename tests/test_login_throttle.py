"""Staff login throttling (masknet_site/login_throttle.py): failures per username and client
address lock that pair out for a while; a success clears the count."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def throttle(settings):
    settings.MASKNET_LOGIN_MAX_FAILURES = 3
    settings.MASKNET_LOGIN_LOCKOUT_S = 120
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("alice", "alice@example.com", "right-password-123")


def login(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


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
