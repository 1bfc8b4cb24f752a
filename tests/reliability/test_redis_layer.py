"""The site's Redis channel layer across a Redis restart, without the rest of the cluster: a
connection the restarted server closed is retried on a fresh one (settings ``CHANNEL_LAYERS``),
and a receive waiting while Redis is down waits for it to come back rather than raising
(``masknet_site.channel_layer``), so kiosk sockets are not failed by either; and it counts the
outage's end as soon as Redis answers, and a restart too quick to raise any error at its next look at
the server (``outage_epoch``): the sockets' cue to re-join the groups Redis forgot."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from asgiref.sync import async_to_sync

from bench.live import free_port
from masknet_site import channel_layer
from masknet_site.channel_layer import RedisChannelLayer, outage_epoch

from .harness import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.reliability


def test_the_channel_layer_survives_a_redis_restart(tmp_path, settings, monkeypatch):
    if not shutil.which(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed (Debian package redis-server)")
    server = RedisServer(free_port(), tmp_path).start()
    try:
        from masknet_site.settings.base import redis_channel_hosts

        # the site's layout for this URL (base.py uses it when REDIS_URL is set)
        layer = RedisChannelLayer(hosts=redis_channel_hosts(server.url))

        async def round_trip(text: str) -> dict:
            channel = await layer.new_channel()
            await layer.group_add("kiosks", channel)
            await layer.group_send("kiosks", {"type": "index.updated", "text": text})
            return await asyncio.wait_for(layer.receive(channel), 10)   # a lost message fails, not hangs

        async def across_an_outage() -> dict:
            """A receive that began before Redis went away gets what is sent after it came back."""
            channel = await layer.new_channel()
            waiting = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(3.0)         # channels_redis's own receive raised within a second
            assert not waiting.done(), waiting
            epoch = layer.outage_epoch
            await asyncio.to_thread(server.start)
            # the layer sees Redis answer again while the receive still waits (no message yet): the
            # consumers' cue to re-join the groups the restarted Redis forgot
            for _ in range(100):
                if layer.outage_epoch > epoch:
                    break
                await asyncio.sleep(0.1)
            assert layer.outage_epoch == epoch + 1 and not waiting.done(), (layer.outage_epoch, epoch)
            await layer.send(channel, {"type": "index.updated", "text": "back"})
            return await asyncio.wait_for(waiting, 15)

        async def scenario() -> list[dict]:
            first = await round_trip("before")
            monkeypatch.setattr(channel_layer, "SERVER_CHECK_S", 0.0)
            outage_epoch(layer)
            await layer._server_check        # the layer knows which server process it talks to
            server.restart()                 # every pooled connection is now closed by the server
            second = await round_trip("after")
            # so quick a restart raised no error (redis-py's retries), yet Redis forgot every group:
            # the layer's next look at the server counts it, the sockets' cue to re-join them
            assert layer.outage_epoch == 0
            outage_epoch(layer)
            await layer._server_check
            assert layer.outage_epoch == 1
            monkeypatch.setattr(channel_layer, "SERVER_CHECK_S", 3600.0)
            third = await across_an_outage()
            await layer.close_pools()
            return [first, second, third]

        first, second, third = async_to_sync(scenario)()
        assert first["text"] == "before" and second["text"] == "after" and third["text"] == "back"
    finally:
        server.stop()
