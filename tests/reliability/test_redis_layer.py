"""The site's Redis channel layer across a Redis restart, without the rest of the cluster: a
connection the restarted server closed is retried on a fresh one (settings ``CHANNEL_LAYERS``),
and a receive waiting while Redis is down waits for it to come back rather than raising
(``masknet_site.channel_layer``), so kiosk sockets are not failed by either; and it counts the
outage's end as soon as Redis answers, and a restart too quick to raise any error at its next look at
the server (``outage_epoch``): the sockets' cue to re-join the groups Redis forgot (and the admin's
progress socket's to have its page read the state again)."""

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


@pytest.mark.django_db(transaction=True)
def test_an_admin_page_open_through_a_redis_outage_is_told_to_read_the_state_again(tmp_path, settings):
    """The admin's progress socket on the real layer: Redis stopped and started again empty under
    it. What was published meanwhile is lost (a run that ended then stayed "running" on the page), so
    once the layer sees Redis answer again the socket re-joins its group and sends the page
    ``{"type": "resync"}`` (the page then reads ``status.json``), and the next progress reaches it."""
    if not shutil.which(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed (Debian package redis-server)")
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model

    from enrollment import events
    from enrollment.models import TrainingRun
    from enrollment.routing import websocket_urlpatterns
    from masknet_site.settings.base import redis_channel_hosts

    server = RedisServer(free_port(), tmp_path).start()
    try:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "masknet_site.channel_layer.RedisChannelLayer",
                                               "CONFIG": {"hosts": redis_channel_hosts(server.url)}}}
        admin = get_user_model().objects.create_superuser("root", password="pw")
        run = TrainingRun.objects.create(state="running", progress=40, message="embedding")

        async def scenario() -> tuple[dict, dict]:
            layer = get_channel_layer()
            communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/admin/training/")
            communicator.scope["user"] = admin
            assert (await communicator.connect())[0]
            await asyncio.to_thread(server.restart, 2.0)     # down 2 s, back empty: the group forgotten
            told = await communicator.receive_json_from(timeout=15)   # the receive's retries: 0.5 s to 5 s
            await sync_to_async(events.training_progress)(run)
            progress = await communicator.receive_json_from(timeout=5)
            await communicator.disconnect()
            await layer.close_pools()
            return told, progress

        told, progress = async_to_sync(scenario)()
        assert told == {"type": "resync"}
        assert progress["type"] == "progress" and progress["run"]["id"] == run.pk
    finally:
        server.stop()
