"""The site's Redis channel layer (masknet_site/channel_layer.py) without a Redis: a receive waits
out an outage instead of raising, which ended every kiosk socket's consumer (Daphne closed it with
1011) while Redis was down. The real layer across a real outage: tests/reliability/test_redis_layer.py."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from masknet_site import channel_layer


@pytest.fixture
def scripted_receive(monkeypatch):
    """channels_redis's own receive answers from a list: an exception is raised, anything else returned.
    The layer's ping between tries (Redis away) raises the list's next exception, else answers."""
    script: list = []
    calls: list[float] = []

    async def receive(self, channel):
        calls.append(asyncio.get_running_loop().time())
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def ping(self):
        calls.append(asyncio.get_running_loop().time())
        if script and isinstance(script[0], BaseException):
            raise script.pop(0)

    monkeypatch.setattr(BaseRedisChannelLayer, "receive", receive)
    monkeypatch.setattr(channel_layer.RedisChannelLayer, "_ping", ping)
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
    # backing off, not a tight loop: each of the four failures is followed by a wait twice the one
    # before (0.01, 0.02, 0.04, 0.08 s here). Checked as lower bounds, which a loaded machine only
    # lengthens: the ratio of two waits (the second > 1.5 times the first) failed on one, 0.0201 s
    # against 0.0141 s, a few ms of scheduling making the first wait 40 % longer than asked
    assert [round(w / 0.01, 2) >= 2**i for i, w in enumerate(waits[:4])] == [True] * 4, waits
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


def test_redis_answering_again_is_counted_while_a_receive_waits(scripted_receive, monkeypatch):
    """A socket open through an outage must re-join its groups (a restarted Redis forgot them) as
    soon as Redis answers, not at the next message: a waiting receive pings between its tries, and
    the first answer counts the outage as ended (``outage_epoch``), while the receive waits on."""
    script, _ = scripted_receive
    script += [RedisConnectionError("refused"), RedisConnectionError("refused")]
    blocked = asyncio.Event()

    async def receive(self, channel):
        if script:
            raise script.pop(0)
        blocked.set()
        await asyncio.sleep(3600)   # Redis is back, and no message comes (channels_redis's BZPOPMIN)

    monkeypatch.setattr(BaseRedisChannelLayer, "receive", receive)
    layer = channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])

    async def scenario():
        task = asyncio.ensure_future(layer.receive("specific.abc!def"))
        await asyncio.wait_for(blocked.wait(), 5)
        counted = layer.outage_epoch
        task.cancel()
        return counted, task.done()

    assert layer.outage_epoch == 0
    assert async_to_sync(scenario)() == (1, False)


def test_group_calls_count_an_outage_once_it_ends(monkeypatch):
    """send and the group calls note an outage (a Redis error) and its end (the next success), once
    per outage; other errors are no outage."""
    failures: list[BaseException] = []

    async def group_add(self, group, channel):
        if failures:
            raise failures.pop(0)

    monkeypatch.setattr(BaseRedisChannelLayer, "group_add", group_add)
    layer = channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
    add = async_to_sync(layer.group_add)
    add("kiosks", "specific.abc!def")
    assert layer.outage_epoch == 0
    failures += [RedisConnectionError("refused"), RedisTimeoutError("timeout")]
    for _ in range(2):
        with pytest.raises(channel_layer.OUTAGE_ERRORS):
            add("kiosks", "specific.abc!def")
    assert layer.outage_epoch == 0              # still away
    add("kiosks", "specific.abc!def")
    add("kiosks", "specific.abc!def")
    assert layer.outage_epoch == 1              # back: counted once
    failures.append(ValueError("not an outage"))
    with pytest.raises(ValueError):
        add("kiosks", "specific.abc!def")
    add("kiosks", "specific.abc!def")
    assert layer.outage_epoch == 1
    assert channel_layer.outage_epoch(InMemoryChannelLayer()) == 0   # no Redis, no outage


@pytest.mark.parametrize("answers, epochs", [
    (["a", "a", "b", "b"], [0, 0, 1, 1]),                     # restarted between two looks, no error seen
    (["a", RedisConnectionError("refused"), "b", "b"], [0, 0, 1, 1]),   # away, then back: counted once
])
def test_a_redis_restarted_between_two_looks_is_counted(monkeypatch, answers, epochs):
    """A restart quicker than redis-py's retries raises no error (0.12 s for redis-server), and the
    groups it forgot went unnoticed: reading the count has the layer ask Redis which server process
    it is (``run_id``), in the background, at most every ``SERVER_CHECK_S``."""
    class Connection:
        async def info(self, section):
            answer = answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return {"run_id": answer, "redis_version": "7.0"}

    monkeypatch.setattr(channel_layer.RedisChannelLayer, "connection", lambda self, index: Connection())
    layer = channel_layer.RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])

    async def looks() -> list[int]:
        seen = []
        for _ in range(4):
            monkeypatch.setattr(channel_layer, "SERVER_CHECK_S", 0.0)
            channel_layer.outage_epoch(layer)
            check = layer._server_check
            await check
            monkeypatch.setattr(channel_layer, "SERVER_CHECK_S", 60.0)
            channel_layer.outage_epoch(layer)          # looked a moment ago: not again
            assert layer._server_check is check
            seen.append(layer.outage_epoch)
        return seen

    assert async_to_sync(looks)() == epochs and not answers
