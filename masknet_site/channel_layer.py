"""The site's Redis channel layer (``CHANNEL_LAYERS`` when ``REDIS_URL`` is set).

channels_redis's :meth:`receive` raises when Redis cannot be reached, and Channels' consumers
receive from the layer in the same task that dispatches their socket's messages: the exception
ended the consumer, and Daphne closed the socket with 1011. Measured with a private Redis
stopped under three open kiosk sockets of one Daphne: one socket closed a second, all three
within 4.3 s, although a kiosk's frames and check-ins need only the database. Here a receive
waits the outage out instead (backing off, ``RECEIVE_RETRY_MIN_S`` doubling to
``RECEIVE_RETRY_MAX_S``) and goes on once Redis answers again; messages published meanwhile
never reached Redis and are lost either way (the kiosks' periodic recheck covers them).
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RECEIVE_RETRY_MIN_S = 0.5
RECEIVE_RETRY_MAX_S = 5.0
OUTAGE_LOG_EVERY_S = 60.0
# Redis refused, dropped or stopped answering the connection (redis-py's errors, and a raw socket
# error should one slip through); anything else is a real error and still ends the consumer
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels_redis's layer whose :meth:`receive` outlasts a Redis outage (module docstring)."""

    _outage_logged_at = float("-inf")   # per process: one warning a minute, not one per socket

    async def receive(self, channel: str) -> dict:
        """The next message on ``channel``; while Redis cannot be reached, wait for it to come back."""
        delay = RECEIVE_RETRY_MIN_S
        while True:
            try:
                return await super().receive(channel)
            except OUTAGE_ERRORS as exc:
                self._log_outage(exc, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECEIVE_RETRY_MAX_S)

    @staticmethod
    def _log_outage(exc: BaseException, delay: float) -> None:
        now = time.monotonic()
        if now - RedisChannelLayer._outage_logged_at >= OUTAGE_LOG_EVERY_S:
            RedisChannelLayer._outage_logged_at = now
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            log.warning("channel layer: Redis cannot be reached (%s: %s); sockets stay open and wait for it "
                        "(retrying every %.1f-%.0f s)", type(exc).__name__, reason, delay, RECEIVE_RETRY_MAX_S)
