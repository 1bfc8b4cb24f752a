"""The site's Redis channel layer (``CHANNEL_LAYERS`` when ``REDIS_URL`` is set).

channels_redis's :meth:`receive` raises when Redis cannot be reached, and Channels' consumers
receive from the layer in the same task that dispatches their socket's messages: the exception
ended the consumer, and Daphne closed the socket with 1011. Measured with a private Redis
stopped under three open kiosk sockets of one Daphne: one socket closed a second, all three
within 4.3 s, although a kiosk's frames and check-ins need only the database. Here a receive
waits the outage out instead (backing off, ``RECEIVE_RETRY_MIN_S`` doubling to
``RECEIVE_RETRY_MAX_S``) and goes on once Redis answers again; messages published meanwhile
never reached Redis and are lost either way (the kiosks' periodic recheck covers them).

A Redis restarted without persistence has also forgotten every group membership, so a socket that
was open and in its groups before the outage hears nothing until it joins them again. The layer
counts the outages it has seen end (:attr:`RedisChannelLayer.outage_epoch`, read through
:func:`outage_epoch`), and consumers that see the count change re-join their groups (and re-read
what the lost messages would have told them) at once. Counted:

* any Redis error seen by a receive, send or group call, followed by a command that succeeds. A
  waiting receive pings Redis between its tries, so the end is seen within ``RECEIVE_RETRY_MAX_S``
  of Redis answering, not at the next message;
* a Redis that is another server process than before (its ``run_id``), looked at in the background
  at most every ``SERVER_CHECK_S`` while consumers read the count: a restart quicker than redis-py's
  own retries (``redis_channel_hosts`` in the settings: 0.12 s for ``redis-server`` here) raises no
  error at all, and its forgotten groups were noticed only at the sockets' periodic recheck.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from masknet_site.logfilters import error_first_line

log = logging.getLogger(__name__)
T = TypeVar("T")

RECEIVE_RETRY_MIN_S = 0.5
RECEIVE_RETRY_MAX_S = 5.0
OUTAGE_LOG_EVERY_S = 60.0
SERVER_CHECK_S = 5.0   # how often, at most, the layer asks each Redis host which server process it is
# Redis refused, dropped or stopped answering the connection (redis-py's errors, and a raw socket
# error should one slip through); anything else is a real error and still ends the consumer
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels_redis's layer whose :meth:`receive` outlasts a Redis outage (module docstring)."""

    _outage_logged_at = float("-inf")   # per process: one warning a minute, not one per socket

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage_epoch = 0      # outages (and restarts) of Redis this layer has seen end (module docstring)
        self._in_outage = False    # a Redis error was seen, and no command has succeeded since
        self._run_ids: dict[int, str] = {}   # host index -> the Redis server process last seen there
        self._server_checked_at = float("-inf")
        self._server_check: asyncio.Task | None = None

    async def receive(self, channel: str) -> dict:
        """The next message on ``channel``; while Redis cannot be reached, wait for it to come back."""
        delay = RECEIVE_RETRY_MIN_S
        while True:
            try:
                if self._in_outage:
                    # the receive below blocks until a message comes: Redis answering is seen here
                    await self._watched(self._ping())
                return await self._watched(super().receive(channel))
            except OUTAGE_ERRORS as exc:
                self._log_outage(exc, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECEIVE_RETRY_MAX_S)

    async def send(self, channel: str, message: dict) -> None:
        """channels_redis's send, noting a Redis outage's start or end (:attr:`outage_epoch`)."""
        await self._watched(super().send(channel, message))

    async def group_add(self, group: str, channel: str) -> None:
        """channels_redis's group_add, noting a Redis outage's start or end (:attr:`outage_epoch`)."""
        await self._watched(super().group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        """channels_redis's group_discard, noting a Redis outage's start or end (:attr:`outage_epoch`)."""
        await self._watched(super().group_discard(group, channel))

    async def group_send(self, group: str, message: dict) -> None:
        """channels_redis's group_send, noting a Redis outage's start or end (:attr:`outage_epoch`)."""
        await self._watched(super().group_send(group, message))

    def check_server_soon(self) -> None:
        """Start :meth:`_check_server` in the background unless one ran in the last
        ``SERVER_CHECK_S`` (called whenever a consumer reads :func:`outage_epoch`; never waits on
        Redis, which may be away)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return   # not on an event loop: nothing to check from
        now, pending = time.monotonic(), self._server_check
        if now - self._server_checked_at < SERVER_CHECK_S or (
                pending is not None and not pending.done() and pending.get_loop() is loop):
            return
        self._server_checked_at = now
        self._server_check = loop.create_task(self._check_server())

    async def _check_server(self) -> None:
        """Count a Redis host that is another server process than when last asked (restarted):
        it forgot the groups, though no command may have failed (module docstring)."""
        try:
            for index in range(self.ring_size):
                info = await self._watched(self.connection(index).info("server"))
                run_id = str(info.get("run_id", ""))
                if self._run_ids.setdefault(index, run_id) != run_id:
                    self._run_ids[index] = run_id
                    self._count_outage_end()
        except OUTAGE_ERRORS:
            pass   # away: counted when a command succeeds again (_watched)
        except Exception:  # noqa: BLE001 - a check in the background must never fail a socket
            log.warning("channel layer: could not ask Redis which server it is", exc_info=True)

    async def _ping(self) -> None:
        """Ping every Redis host of the layer (a restarted shard forgot its groups)."""
        for index in range(self.ring_size):
            await self.connection(index).ping()

    async def _watched(self, call: Awaitable[T]) -> T:
        """Await a Redis command: an outage error marks an outage, a success after one ends it."""
        try:
            result = await call
        except OUTAGE_ERRORS:
            self._in_outage = True
            raise
        if self._in_outage:
            self._in_outage = False
            self._run_ids.clear()   # the server now answering is the baseline: not counted twice
            self._count_outage_end()
        return result

    def _count_outage_end(self) -> None:
        self.outage_epoch += 1
        log.info("channel layer: Redis answers again or was restarted; open sockets re-join their channel groups")

    @staticmethod
    def _log_outage(exc: BaseException, delay: float) -> None:
        now = time.monotonic()
        if now - RedisChannelLayer._outage_logged_at >= OUTAGE_LOG_EVERY_S:
            RedisChannelLayer._outage_logged_at = now
            reason = error_first_line(exc)
            log.warning("channel layer: Redis cannot be reached (%s: %s); sockets stay open and wait for it "
                        "(retrying every %.1f-%.0f s)", type(exc).__name__, reason, delay, RECEIVE_RETRY_MAX_S)


def outage_epoch(layer: object) -> int:
    """How many Redis outages or restarts ``layer`` has seen end; 0 for a layer without Redis (the
    in-memory one). A consumer that sees it change re-joins its channel groups: Redis may have
    forgotten them. Reading it also has the layer check, in the background and at most every
    ``SERVER_CHECK_S``, that Redis was not restarted meanwhile."""
    check = getattr(layer, "check_server_soon", None)
    if check is not None:
        check()
    return getattr(layer, "outage_epoch", 0)
