"""Per-token rate limits (DRF throttling): each token has its own bucket and its own rate
(``ApiToken.rate`` or ``MASKNET_API_TOKEN_RATE``); staff sessions share ``MASKNET_API_USER_RATE``.
Identify and verify also count in a second, smaller bucket (``MASKNET_API_RECOGNISE_RATE``): each
runs the networks, and a stream of scores is what an attacker tuning a forged face would need."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from .models import ApiToken


class ApiRateThrottle(SimpleRateThrottle):
    """One bucket per token (or per staff user), in the default cache.

    Counted in fixed windows of the rate's period by the cache's atomic ``incr`` (DRF's own count
    reads the request history and writes it back, so requests that arrive together all saw the
    old count: 39 of 40 simultaneous calls passed a 5/min limit). A refused request counts too: a
    client that keeps knocking waits for the next window. At a window's edge a client can get the
    rate twice within one period, at most."""

    scope = "masknet-api"

    def get_rate(self) -> str:
        """The default rate; :meth:`allow_request` swaps in the token's own."""
        return getattr(settings, "MASKNET_API_USER_RATE", "1200/min")

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Apply the token's rate (if it has one) before counting."""
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is not None:
            self.rate = token.rate or getattr(settings, "MASKNET_API_TOKEN_RATE", "600/min")
        else:
            self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return self._count(request, view)

    def _count(self, request: Request, view: APIView) -> bool:
        """Count this request in its window; whether the window's count is still within the rate."""
        self.key = self.get_cache_key(request, view)
        if self.key is None or self.num_requests is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self._window_ends = (window + 1) * self.duration
        key = f"{self.key}:{self.duration}:{window}"
        self.cache.add(key, 0, timeout=self.duration + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:   # evicted between add and incr (a full local-memory cache): start it again
            self.cache.add(key, 1, timeout=self.duration + 1)
            count = 1
        return count <= self.num_requests

    def wait(self) -> float:
        """Seconds until the window ends (``Retry-After``)."""
        return max(self._window_ends - self.now, 1.0)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        """``token:<id>`` or ``user:<id>``; anonymous requests are refused before this."""
        if isinstance(request.auth, ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": f"token:{request.auth.pk}"}
        if request.user and request.user.is_authenticated:
            return self.cache_format % {"scope": self.scope, "ident": f"user:{request.user.pk}"}
        return self.cache_format % {"scope": self.scope, "ident": f"anon:{self.get_ident(request)}"}


class RecogniseRateThrottle(ApiRateThrottle):
    """The identify/verify bucket: ``MASKNET_API_RECOGNISE_RATE`` per token or staff user, whatever
    the token's own rate."""

    scope = "masknet-api-recognise"

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Count against the recognition rate."""
        self.rate = getattr(settings, "MASKNET_API_RECOGNISE_RATE", "120/min")
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return self._count(request, view)
