"""The WebSocket handshake's ``Origin`` check: the site's own origin (scheme, host and port), as
Django's CSRF middleware judges an unsafe request's ``Origin`` header.

Channels' ``AllowedHostsOriginValidator`` compared only the origin's host name with ALLOWED_HOSTS:
a page served from another port or scheme of the same host name (``http://site:8080``) could open
the kiosk socket with a paired device's cookie, which ``SameSite=Strict`` does not tell apart by
port. Here the handshake is read as the request Django would build from it (:func:`handshake_request`),
so the expected origin is ``request.scheme://request.get_host()`` with Django's own rules:

* the scheme is ``https`` for a socket that arrived over TLS (scope scheme ``wss``) or whose proxy
  says so in ``SECURE_PROXY_SSL_HEADER`` (which, when present, decides, as ``is_secure`` does);
  ``http`` otherwise. Daphne puts no ``scheme`` in a WebSocket scope at all (4.2, even on a TLS
  endpoint, where its HTTP scopes say ``https``): for such a scope, unless the proxy's header
  decides, the origin may be either scheme of the same host and port (an ``https`` page of the
  site's own host is the site; a browser never opens ``ws:`` from an ``https`` page);
* the host is the ``Host`` header (``X-Forwarded-Host`` with ``USE_X_FORWARDED_HOST``), which must
  be allowed (ALLOWED_HOSTS, ``validate_host``): a handshake for another host is refused whatever
  its origin, as an HTTP request for it is answered 400;
* ``CSRF_TRUSTED_ORIGINS`` are accepted too: exact entries, and ``https://*.example.org`` for
  that domain's subdomains: Django's own check of a form's ``Origin`` decides (``CsrfViewMiddleware``).

A handshake without an ``Origin`` header is refused (browsers always send one on a WebSocket
handshake); so is ``Origin: null`` (a sandboxed frame, a ``file:`` page). A refused handshake is
denied as Channels' ``OriginValidator`` denies it: closed before it is accepted, which a browser
sees as HTTP 403.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.middleware.csrf import CsrfViewMiddleware

log = logging.getLogger(__name__)

# Refused handshakes are logged one by one up to REFUSALS_LOGGED a window of REFUSAL_LOG_WINDOW_S;
# past that they are counted and said in one line when the next window opens: a client looping on
# handshakes (a page of another origin, a proxy writing a fixed Host) filled the log with a line each
REFUSALS_LOGGED = 5
REFUSAL_LOG_WINDOW_S = 60.0


def handshake_request(scope: dict) -> ASGIRequest:
    """The WebSocket handshake ``scope`` as the Django request of the page that opens it: its
    headers in ``META`` (Django's rules: ``Host`` as ``HTTP_HOST``, a header spelled with ``_``
    dropped), and the scheme ``https`` for ``wss``, ``http`` for ``ws`` (the default), so that
    ``is_secure()`` and ``get_host()`` answer as they would for that page."""
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())


def _no_response(request: object) -> None:
    """The next handler of the CSRF middleware built below, which is never called."""


def refusal(scope: dict) -> str | None:
    """Why the handshake ``scope`` is refused (for the log), or ``None`` when its ``Origin`` is
    the site's own origin or a trusted one (see the module's docstring)."""
    request = handshake_request(scope)
    origin = request.META.get("HTTP_ORIGIN")
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost as exc:
        return str(exc)
    if origin is None:
        return "no Origin header"
    # Django's own judgement of a form's Origin (the site's origin, or an exact or *.domain entry of
    # CSRF_TRUSTED_ORIGINS): a private method, but the one rule the site's forms follow; a middleware
    # made per handshake, so that the settings are read as they are now
    if CsrfViewMiddleware(_no_response)._origin_verified(request):
        return None
    if "scheme" not in scope and not _proxy_says_scheme(request) and refusal({**scope, "scheme": "wss"}) is None:
        return None   # a server that does not say (Daphne): the site's https origin as well
    return f"Origin {origin[:200]!r} is neither this site's ({own!r}) nor in CSRF_TRUSTED_ORIGINS"


def _proxy_says_scheme(request: ASGIRequest) -> bool:
    """Whether the request carries ``SECURE_PROXY_SSL_HEADER``'s header, which then decides its scheme."""
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    return bool(header) and header[0] in request.META


class RefusalLog:
    """The warnings of refused handshakes, at most :data:`REFUSALS_LOGGED` a window of
    :data:`REFUSAL_LOG_WINDOW_S`; the rest counted, and their number said in one warning at the
    first refusal of a later window, naming when their window began (with the reason of the last
    one left out). A flood that stops leaves its count unsaid until the next refusal."""

    def __init__(self) -> None:
        self._window_at = float("-inf")
        self._logged = 0
        self._left_out = 0
        self._last_left_out = ""

    def __call__(self, path: str, reason: str, now: float | None = None) -> None:
        """Log (or count) one refused handshake at ``path`` for ``reason``."""
        now = time.monotonic() if now is None else now
        if now - self._window_at >= REFUSAL_LOG_WINDOW_S:
            if self._left_out:
                # said at this refusal, maybe days after that window: its start's date and time
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - (now - self._window_at)))
                log.warning("%d more WebSocket handshakes refused in the %.0f s from %s were not logged one by one "
                            "(the last: %s)", self._left_out, REFUSAL_LOG_WINDOW_S, started, self._last_left_out)
            self._window_at, self._logged, self._left_out = now, 0, 0
        if self._logged < REFUSALS_LOGGED:
            self._logged += 1
            log.warning("WebSocket handshake refused at %s: %s", path[:200], reason)
        else:
            self._left_out += 1
            self._last_left_out = reason


refusal_log = RefusalLog()   # the process's: every socket route's refusals together


class SiteOriginValidator:
    """ASGI middleware before the WebSocket router: a handshake whose ``Origin`` is not the site's
    own origin nor a trusted one (:func:`refusal`) is denied (a browser sees 403) and logged as a
    warning (:class:`RefusalLog`: a flood of them in a few lines); any other goes to ``inner``."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "websocket":
            raise ValueError("SiteOriginValidator guards WebSocket connections only")
        reason = refusal(scope)
        if reason is None:
            return await self.inner(scope, receive, send)
        refusal_log(scope.get("path", ""), reason)
        return await WebsocketDenier()(scope, receive, send)
