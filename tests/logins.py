"""The admin login as the login throttle's and the login audit's tests use it."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.cache import cache

LOGIN = "/admin/login/"


def make_staff() -> User:
    """A superuser "alice" whose password is "right-password-123", with no login counts in the cache."""
    cache.clear()
    return User.objects.create_superuser("alice", "alice@example.com", "right-password-123")


def login(client, username: str, password: str, ip: str = "10.0.0.1"):
    """POST the admin login form from ``ip``."""
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)
