"""Login throttling for the staff (admin) login form.

Failed logins are counted per username and client address in the cache; after
``MASKNET_LOGIN_MAX_FAILURES`` failures within ``MASKNET_LOGIN_LOCKOUT_S`` seconds that pair is
locked out for ``MASKNET_LOGIN_LOCKOUT_S`` seconds: every login POST for it, even with the right
password, is answered 429 without reaching the authentication backend. A successful login clears
the count. Counting per pair (not per username alone) keeps a stranger from locking a real user
out from elsewhere.

The cache is Django's default cache: per process unless a shared cache (Redis) is configured, so
with several web nodes each node counts on its own (see docs/deployment.md). Behind a reverse
proxy, start Daphne with ``--proxy-headers`` so the client address is the real one.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import reverse

log = logging.getLogger(__name__)


def _keys(request) -> tuple[str, str]:
    username = (request.POST.get("username") or "").strip().lower()
    ip = request.META.get("REMOTE_ADDR") or "?"
    digest = hashlib.sha256(f"{username}\0{ip}".encode()).hexdigest()[:32]
    return f"masknet:login-failures:{digest}", f"masknet:login-locked:{digest}"


class LoginThrottleMiddleware:
    """Counts failed POSTs to the admin login view and locks out after too many."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        failures_key, locked_key = _keys(request)
        lockout_s = int(settings.MASKNET_LOGIN_LOCKOUT_S)
        if cache.get(locked_key):
            return self._locked(lockout_s)
        response = self.get_response(request)
        if response.status_code == 302:        # logged in (the form redirects on success)
            cache.delete(failures_key)
        elif response.status_code == 200:      # the form again: wrong credentials
            cache.add(failures_key, 0, lockout_s)
            try:
                failures = cache.incr(failures_key)
            except ValueError:                 # expired between add and incr
                cache.set(failures_key, failures := 1, lockout_s)
            if failures >= int(settings.MASKNET_LOGIN_MAX_FAILURES):
                cache.set(locked_key, 1, lockout_s)
                cache.delete(failures_key)
                log.warning("login locked out for %ss after %s failures from %s", lockout_s, failures,
                            request.META.get("REMOTE_ADDR"))
        return response

    @staticmethod
    def _locked(lockout_s: int) -> HttpResponse:
        minutes = max(1, round(lockout_s / 60))
        response = HttpResponse(f"Too many failed logins. Try again in {minutes} minute(s).",
                                status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(lockout_s)
        return response
