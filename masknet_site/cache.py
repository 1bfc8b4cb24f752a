"""The site's cache with Redis (``REDIS_URL``): Django's Redis cache, which this process's own memory
stands in for while Redis is away.

The cache holds the login lockout counters (:mod:`masknet_site.login_throttle`) and the API's rate
windows (:mod:`api.throttling`), shared by every web node. With Django's cache alone, a Redis outage
made every sign-in and every API call a 500 (``redis.exceptions.ConnectionError``), while the kiosks,
which need only the database, went on checking people in. Now each process counts on its own
meanwhile (limits per process, not per cluster, for the minutes of the outage), logs the outage once
a minute, and tries Redis again every :data:`RETRY_S` seconds; ``/healthz`` reports it
(:meth:`SharedCache.ping`, ``cache``) without leaving the node's readiness to it.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

LOCAL_NAME = "masknet-shared-cache"   # the local store's name: one store for the process
AWAY = (RedisConnectionError, RedisTimeoutError)   # BusyLoadingError is a ConnectionError too
RETRY_S = 5.0    # while Redis is away, how long the local cache answers before Redis is tried again
WARN_S = 60.0    # at most one warning this often


class SharedCache(RedisCache):
    """:class:`~django.core.cache.backends.redis.RedisCache` whose every call, while Redis is away,
    goes to a local-memory cache of this process instead (see the module)."""

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        # one store for the process: Django makes a cache object per thread and, under ASGI, per
        # request, and a LocMemCache shares its entries by name (a name per object counted each
        # request from zero, and lockouts never held)
        self._local = LocMemCache(LOCAL_NAME, {
            "TIMEOUT": params.get("TIMEOUT", 300), "OPTIONS": {"MAX_ENTRIES": settings.LOCAL_CACHE_ENTRIES}})

    def ping(self) -> None:
        """Reach Redis itself (the readiness probe's ``cache``); raises while it is away."""
        self._cache.get_client(write=True).ping()

    def _either(self, name: str, *args, **kwargs):
        if time.monotonic() >= _outage.away_until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except AWAY as exc:
                _outage.seen(exc)
        return getattr(self._local, name)(*args, **kwargs)


class _Outage:
    """The process's view of a Redis outage, shared by every cache object (see :class:`SharedCache`)."""

    def __init__(self) -> None:
        self.away_until = 0.0
        self.warned_at = -WARN_S
        self.lock = threading.Lock()

    def seen(self, exc: Exception) -> None:
        """Redis failed a call: the local store answers for :data:`RETRY_S`; warned once a minute."""
        now = time.monotonic()
        with self.lock:
            self.away_until = now + RETRY_S
            if now - self.warned_at < WARN_S:
                return
            self.warned_at = now
        log.warning("the shared cache (Redis) is away (%s: %s): login lockouts and API rate limits are counted by "
                    "each process alone until it answers", type(exc).__name__, exc)


_outage = _Outage()


def _failing_over(name: str):
    def method(self: SharedCache, *args, **kwargs):
        return self._either(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{name}``: Redis's, or this process's memory while Redis is away."
    return method


# every call of Django's cache API that reaches Redis (the others, get_or_set, decr..., go through these)
for _name in ("add", "get", "set", "touch", "delete", "get_many", "has_key", "incr", "set_many", "delete_many",
              "clear"):
    setattr(SharedCache, _name, _failing_over(_name))
