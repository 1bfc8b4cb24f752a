"""The site's Redis channel layer (masknet_site/channel_layer.py) without a Redis: a receive waits
out an outage instead of raising, which ended every kiosk socket's consumer (Daphne closed it with
1011) while Redis was down. The real layer across a real outage: tests/reliability/test_redis_layer.py."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from masknet_site import channel_layer


@pytest.fixture
def scripted_receive(monkeypatch):
    """channels_redis's own receive answers from a list: an exception is raised, anything else returned."""
    script: list = []
    calls: list[float] = []

    async def receive(self, channel):
        calls.append(asyncio.get_running_loop().time())
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    monkeypatch.setattr(BaseRedisChannelLayer, "receive", receive)
    monkeypatch.setattr(channel_layer, "RECEIVE_RETRY_MIN_S", 0.01)
    monkeypatch.setattr(channel_layer.RedisChannelLayer, "_outage_logged_at", float("-inf"))
    return script, calls


def test_a_receive_waits_out_redis_being_away(scripted_receive, caplog):
    script, calls = scripted_receive
    refused = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connect call failed.")
    script += [refused, refused, RedisTimeoutError("Timeout reading from socket"), ConnectionResetError(),
               {"type": "index.updated", "version": 7}]
    layer = channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])   # connects on first use only
    with caplog.at_level(logging.WARNING, logger="masknet_site.channel_layer"):
        message = async_to_sync(layer.receive)("specific.abc!def")
    assert message == {"type": "index.updated", "version": 7} and not script
    waits = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert waits[1] > waits[0] * 1.5   # backing off, not a tight loop
    # one warning for the outage (a minute's worth), naming the cause, not one per attempt
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith(
        "channel layer: Redis cannot be reached (ConnectionError: Error 111"), warnings


def test_other_errors_still_end_the_receive(scripted_receive):
    script, _ = scripted_receive
    script.append(ValueError("a message that does not unpack"))
    layer = channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
    with pytest.raises(ValueError):
        async_to_sync(layer.receive)("specific.abc!def")


def test_a_waiting_receive_can_be_cancelled(scripted_receive):
    """A socket that closes while Redis is away: its consumer cancels the receive, which must end."""
    script, calls = scripted_receive
    script += [RedisConnectionError("refused")] * 1000

    async def scenario():
        task = asyncio.ensure_future(channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
                                     .receive("specific.abc!def"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()
    assert 1 <= len(calls) < 20
