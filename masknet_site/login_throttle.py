"""Login throttling for the staff (admin) login form.

Login attempts are counted per username and client address in the cache; after
``MASKNET_LOGIN_MAX_FAILURES`` failures within ``MASKNET_LOGIN_LOCKOUT_S`` seconds that pair is
locked out for ``MASKNET_LOGIN_LOCKOUT_S`` seconds: every login POST for it, even with the right
password, is answered 429 without reaching the authentication backend. A successful login clears
the count. Counting per pair (not per username alone) keeps a stranger from locking a real user
out from elsewhere.

Usernames are keyed the way the login form reads them (stripped, NFKC-normalised, as
``UsernameField`` does) and case-folded, so a compatibility or case variant of a username counts
against the same lock. Each attempt is reserved (``cache.add`` + ``cache.incr``, atomic in Redis
and in the local-memory cache) before the request reaches authentication, and refused when the
reserved count is over the limit: parallel POSTs cannot all pass the check before the first
failure is recorded. An attempt the form never judged (a CSRF rejection, 403) gives its
reservation back.

A second, higher cap counts per username across all addresses
(``MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME``, default 10 x ``MASKNET_LOGIN_MAX_FAILURES``, same
window and lockout), so an attacker who varies the address (a botnet, a forged
``X-Forwarded-For``) still gets a bounded number of guesses. It locks the username for everyone
for a while; that is the trade-off, and the cap is high enough to stop only brute force. A
success gives back only its own reservation on this count, so the real user logging in does not
reset an attacker's tally.

The cache is Django's default cache: Redis when ``REDIS_URL`` is set (the production layout), so
the counts and locks are shared by every web node; without it (one embedded process) they live in
that process's memory (see docs/deployment.md). Behind a reverse proxy, start Daphne with
``--proxy-headers`` so the client address is the real one.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import reverse

log = logging.getLogger(__name__)

PREFIX = "masknet:login"


def normalize_username(raw: str) -> str:
    """The username as the login form authenticates it (strip, NFKC), case-folded."""
    return unicodedata.normalize("NFKC", raw.strip()).strip().casefold()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _counters(request) -> list[tuple[str, str, int]]:
    """(attempts key, lock key, limit) for the username+address pair, then the username alone."""
    username = normalize_username(request.POST.get("username") or "")
    ip = request.META.get("REMOTE_ADDR") or "?"
    per_pair = int(settings.MASKNET_LOGIN_MAX_FAILURES)
    per_username = int(settings.MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME)
    pair, user = _digest(username, ip), _digest(username)
    return [(f"{PREFIX}-attempts:{pair}", f"{PREFIX}-locked:{pair}", per_pair),
            (f"{PREFIX}-user-attempts:{user}", f"{PREFIX}-user-locked:{user}", per_username)]


def _reserve(key: str, window_s: int) -> int:
    """Atomically counts one more attempt in ``key`` (created with a ``window_s`` timeout)."""
    while True:
        if cache.add(key, 1, window_s):
            return 1
        try:
            return cache.incr(key)
        except ValueError:                     # expired between add and incr: start again
            continue


def _release(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:                         # expired, or cleared by a lock meanwhile
        pass


class LoginThrottleMiddleware:
    """Counts POSTs to the admin login view and locks out after too many failures."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        lockout_s = int(settings.MASKNET_LOGIN_LOCKOUT_S)
        counters = _counters(request)
        if any(cache.get(locked_key) for _, locked_key, _ in counters):
            return self._locked(lockout_s)
        reserved: list[tuple[str, str, int, int]] = []
        for attempts_key, locked_key, limit in counters:
            count = _reserve(attempts_key, lockout_s)
            if count > limit:                  # others got there first (parallel POSTs)
                for key, *_ in reserved:       # the earlier counters: this attempt never ran
                    _release(key)
                return self._locked(lockout_s)
            reserved.append((attempts_key, locked_key, limit, count))
        response = self.get_response(request)
        pair_key, user_key = reserved[0][0], reserved[1][0]
        if response.status_code == 302:        # logged in (the form redirects on success)
            cache.delete(pair_key)
            _release(user_key)
        elif response.status_code == 403:      # refused before the form ran (CSRF)
            _release(pair_key)
            _release(user_key)
        else:                                  # the form again (wrong credentials), or an error
            for attempts_key, locked_key, limit, count in reserved:
                if count >= limit:
                    cache.set(locked_key, 1, lockout_s)
                    cache.delete(attempts_key)
                    log.warning("login locked out for %ss after %s failures (%s) from %s", lockout_s,
                                count, "username" if attempts_key == user_key else "username and address",
                                request.META.get("REMOTE_ADDR"))
        return response

    @staticmethod
    def _locked(lockout_s: int) -> HttpResponse:
        minutes = max(1, round(lockout_s / 60))
        response = HttpResponse(f"Too many failed logins. Try again in {minutes} minute(s).",
                                status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(lockout_s)
        return response
