"""Login throttling for the staff (admin) login form, and for the admin's own password change page,
whose "current password" field checks a password as the login form does.

Login attempts are counted per username and client address in the cache; after
``MASKNET_LOGIN_MAX_FAILURES`` failures within ``MASKNET_LOGIN_LOCKOUT_S`` seconds that pair is
locked out for ``MASKNET_LOGIN_LOCKOUT_S`` seconds: every login POST for it, even with the right
password, is answered 429 without reaching the authentication backend. A successful login clears
the count. Counting per pair (not per username alone) keeps a stranger from locking a real user
out from elsewhere.

Usernames are keyed the way the login form reads them (stripped, NFKC-normalised, as
``UsernameField`` does) and case-folded, so a compatibility or case variant of a username counts
against the same lock. Each attempt is reserved (``cache.add``, then ``cache.incr``, whose result
is each request's own) before the request reaches authentication, and refused when the
reserved count is over the limit: parallel POSTs cannot all pass the check before the first
failure is recorded. An attempt the form never judged (a CSRF rejection, 403) gives its
reservation back.

A second, higher cap counts per username across all addresses
(``MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME``, default 10 x ``MASKNET_LOGIN_MAX_FAILURES``, same
window and lockout), so an attacker who varies the address (a botnet, a forged
``X-Forwarded-For``) still gets a bounded number of guesses. It locks the username for everyone
for a while, except from an address that logged in as that user within the last 30 days (the
user's own desk keeps working); the cap is high enough to stop only brute force. A success gives
back only its own reservation on this count, so the real user logging in does not reset an
attacker's tally.

A third cap counts per address across all usernames (``MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS``,
default 10 x ``MASKNET_LOGIN_MAX_FAILURES``): a new username each time started fresh counts on
the other two, so one client could spray a password over every username, or make the server hash
a password (about a second of a core: unknown usernames are hashed too, to hide which exist) with
every request. It does not apply to an address anyone logged in from within the last 30 days (an
office behind one NAT keeps working); a success there gives back its own reservation only.

An IPv6 client is counted by its /64 network, not its address: a host is usually given a whole
/64 and can pick any address in it, so a count per address let one client make a fresh start with
each attempt on the per-pair and per-address caps (:func:`client_key`). The audit log and the
lockout's log line keep the address itself.

The cache is Django's default cache: Redis when ``REDIS_URL`` is set (the production layout), so
the counts and locks are shared by every web node; without it (one embedded process) they live in
that process's memory (see docs/deployment.md). Behind a reverse proxy, start Daphne with
``--proxy-headers`` so the client address is the real one.

The password change page (``admin:password_change``) is counted on the same keys, as its logged-in
user's login from that address: a wrong current password is a failed login. Without it a stolen or
borrowed session (an unlocked workstation) could guess its user's password there, unthrottled and
unrecorded, and keep it after the session ends. A change refused for another reason (the new
passwords differ, or one the validators refuse) checked the current password and found it right:
not a failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import reverse

log = logging.getLogger(__name__)

PREFIX = "masknet:login"
KNOWN_S = 30 * 24 * 3600  # an address a user logged in from is exempt from the per-username cap this long


def normalize_username(raw: str) -> str:
    """The username as the login form authenticates it (strip, NFKC), case-folded."""
    return unicodedata.normalize("NFKC", raw.strip()).strip().casefold()


def client_key(request) -> str:
    """The client as the caps count it: its IPv4 address (an IPv4-mapped IPv6 one as IPv4), or the
    /64 network of its IPv6 address, which one host usually holds whole; ``REMOTE_ADDR`` as it is
    when it is no address (a Unix socket), ``"?"`` without one."""
    raw = request.META.get("REMOTE_ADDR") or "?"
    try:
        address = ipaddress.ip_address(raw.split("%")[0])   # "%": an IPv6 zone index
    except ValueError:
        return raw
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _counters(request, username: str) -> list[tuple[str, str, int]]:
    """(attempts key, lock key, limit) for the username+address pair, then, unless this address
    logged in as this username before (:data:`KNOWN_S`), the username alone, then, unless anyone
    logged in from this address before, the address alone. ``username``: as :func:`normalize_username`
    gives it."""
    ip = client_key(request)
    per_pair = int(settings.MASKNET_LOGIN_MAX_FAILURES)
    per_username = int(settings.MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME)
    per_address = int(settings.MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS)
    pair, user, address = _digest(username, ip), _digest(username), _digest("address", ip)
    counters = [(f"{PREFIX}-attempts:{pair}", f"{PREFIX}-locked:{pair}", per_pair)]
    if not cache.get(_known_key(request, username)):
        counters.append((f"{PREFIX}-user-attempts:{user}", f"{PREFIX}-user-locked:{user}", per_username))
    if not cache.get(_known_address_key(request)):
        counters.append((f"{PREFIX}-address-attempts:{address}", f"{PREFIX}-address-locked:{address}", per_address))
    return counters


def _known_address_key(request) -> str:
    return f"{PREFIX}-known-address:{_digest('address', client_key(request))}"


def _known_key(request, username: str) -> str:
    return f"{PREFIX}-known:{_digest(username, client_key(request))}"


def _reserve(key: str, window_s: int) -> int:
    """Counts one more attempt in ``key`` (created with a ``window_s`` timeout); the count is
    returned by one ``incr``, so parallel requests each see their own."""
    while True:
        if cache.add(key, 1, window_s):
            return 1
        try:
            count = cache.incr(key)
        except ValueError:                     # expired between add and incr: start again
            continue
        if count <= 1:  # expired between Redis' exists check and its INCR: re-created without a timeout
            cache.touch(key, window_s)
        return count


def _release(key: str) -> None:
    """Gives back one reservation; a count that would reach 0 or less (its window ended and a new
    one began meanwhile) is deleted, never left negative (extra guesses) or without a timeout."""
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:                         # expired, or cleared by a lock meanwhile
        pass


def _password_change_form(response):
    """The form the password change page answered with (``None``: no form, an error page)."""
    return (getattr(response, "context_data", None) or {}).get("form")


def _current_password_refused(response) -> bool:
    """Whether the password change page answered that the current password typed is wrong (or
    missing): its form's ``old_password`` field has an error. An answer without the form (an
    error page) counts as such, as a login's does."""
    form = _password_change_form(response)
    return form is None or "old_password" in form.errors


class LoginThrottleMiddleware:
    """Counts POSTs to the admin login view, and to the password change view as its user's logins,
    and locks out after too many failures."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST":
            return self.get_response(request)
        if request.path == reverse("admin:login"):
            account, username = None, normalize_username(request.POST.get("username") or "")
        elif request.path == reverse("admin:password_change") and request.user.is_authenticated:
            account = request.user
            username = normalize_username(account.get_username())
        else:
            return self.get_response(request)
        lockout_s = int(settings.MASKNET_LOGIN_LOCKOUT_S)
        counters = _counters(request, username)
        locks = [cache.get(locked_key) for _, locked_key, _ in counters]
        if any(locks):
            return self._locked(_left(locks, lockout_s))
        reserved: list[tuple[str, str, int, int]] = []
        for attempts_key, locked_key, limit in counters:
            count = _reserve(attempts_key, lockout_s)
            if count > limit:                  # others got there first (parallel POSTs)
                for key, *_ in reserved:       # the earlier counters: this attempt never ran
                    _release(key)
                return self._locked(lockout_s)
            reserved.append((attempts_key, locked_key, limit, count))
        response = self.get_response(request)
        pair_key, user_keys = reserved[0][0], [key for key, *_ in reserved[1:]]
        if response.status_code == 302:        # logged in, or password changed (the form redirects on success)
            cache.delete(pair_key)
            for key in user_keys:
                _release(key)
            if account is None:
                # this address is the user's own: the per-username cap no longer applies to it, so
                # an attacker elsewhere cannot lock the user out of their usual place; nor does the
                # per-address cap (an office's NAT)
                cache.set(_known_key(request, username), 1, KNOWN_S)
                cache.set(_known_address_key(request), 1, KNOWN_S)
        elif response.status_code == 403 or (account is not None and not _current_password_refused(response)):
            # refused before the form ran (CSRF), or a password change whose current password was
            # right (refused for its new one): no password was guessed wrong
            for key, *_ in reserved:
                _release(key)
        else:                                  # the form again (wrong credentials), or an error
            if account is not None and _password_change_form(response) is not None:
                # a wrong current password: in the audit log as the login form's failures are
                # (Django's user_login_failed, which its check does not send), before any lock it sets
                from audit.logins import record_wrong_current_password

                record_wrong_current_password(request, account)
            for attempts_key, locked_key, limit, count in reserved:
                if count >= limit:
                    cache.set(locked_key, time.time() + lockout_s, lockout_s)   # until when: the 429 says what is left
                    cache.delete(attempts_key)
                    kind = ("username and address" if attempts_key == pair_key
                            else "address" if "-address-" in attempts_key else "username")
                    log.warning("login locked out for %ss after %s failures (%s) from %s", lockout_s,
                                count, kind, request.META.get("REMOTE_ADDR"))
                    from audit.logins import record_lockout  # the audit app, once apps are loaded

                    record_lockout(request, kind=kind, failures=count, lockout_s=lockout_s, account=account)
        return response

    @staticmethod
    def _locked(seconds: int) -> HttpResponse:
        """The 429 of a locked login, saying how long is left (it said the whole lockout's minutes,
        and its Retry-After, at every attempt until the lock ended)."""
        minutes = max(1, math.ceil(seconds / 60))
        response = HttpResponse(f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                                status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(seconds)
        return response


def _left(locks: list, lockout_s: int) -> int:
    """Seconds until the latest of ``locks`` (their values: when each ends) ends, at least 1; a lock
    set by the release before holds 1, not a time: the whole lockout."""
    ends = [value for value in locks if isinstance(value, (int, float)) and value > 1_000_000_000]
    if len(ends) < len([value for value in locks if value]):
        return lockout_s
    return max(1, min(lockout_s, math.ceil(max(ends) - time.time())))
