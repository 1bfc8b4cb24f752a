"""The admin pages' live progress socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from enrollment import events
from enrollment.models import TrainingRun
from enrollment.routing import websocket_urlpatterns

# how long a handshake or an expected message may take: it bounds a hang only (each comes in a few ms
# idle), where Channels' default (1 s for connect) left little for a loaded machine's database
# round trips; the quiet checks (receive_nothing) keep their short windows
WAIT_S = 10.0


def communicator_for(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/admin/training/")
    communicator.scope["user"] = user
    return communicator


def site_communicator(cookie: bytes, origin: bytes = b"http://testserver") -> WebsocketCommunicator:
    """A client of the whole site's ASGI application (session and origin middleware included), on
    a plain ``ws`` socket."""
    from masknet_site.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/admin/training/",
                                         headers=[(b"cookie", cookie), (b"origin", origin), (b"host", b"testserver")])
    communicator.scope["scheme"] = "ws"   # a server that says so (Daphne says nothing: either is taken)
    return communicator


@pytest.mark.django_db(transaction=True)
def test_staff_receive_progress_until_they_lose_the_right(enroller, monkeypatch):
    """Permission is not only checked at connect: once the user may no longer view runs (groups
    removed here; deactivated or logged out alike), the next message closes the socket (4403)."""
    from enrollment import consumers

    monkeypatch.setattr(consumers, "RECHECK_S", 0.0)
    run = TrainingRun.objects.create(state="running", progress=40, message="embedding")

    async def scenario():
        communicator = communicator_for(enroller)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected
        # published from synchronous code (a task or the background runner), as in production
        await sync_to_async(events.training_progress)(run)
        progress = await communicator.receive_json_from(timeout=WAIT_S)
        await sync_to_async(enroller.groups.clear)()
        await sync_to_async(events.training_progress)(run)
        closed = await communicator.receive_output(timeout=WAIT_S)
        await communicator.disconnect()
        return progress, closed

    progress, closed = async_to_sync(scenario)()
    assert progress["type"] == "progress"
    assert {k: progress["run"][k] for k in ("id", "state", "progress")} == {"id": run.pk, "state": "running",
                                                                           "progress": 40}
    assert closed == {"type": "websocket.close", "code": 4403}


@pytest.mark.django_db(transaction=True)
def test_a_page_left_open_past_the_layers_group_expiry_still_hears_progress(enroller, monkeypatch, settings):
    """Channel layers drop group members after ``group_expiry`` (a day by default): the socket joins
    its group again now and then, or an admin page left open for a day heard nothing more."""
    from enrollment import consumers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                           "CONFIG": {"group_expiry": 1}}}
    monkeypatch.setattr(consumers, "REJOIN_S", 0.3)
    run = TrainingRun.objects.create(state="running", progress=40, message="embedding")

    async def scenario():
        import asyncio

        communicator = communicator_for(enroller)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected
        await asyncio.sleep(1.6)          # past the expiry of the first join
        await sync_to_async(events.training_progress)(run)
        progress = await communicator.receive_json_from(timeout=WAIT_S)
        await communicator.disconnect()
        return progress

    assert async_to_sync(scenario)()["run"]["id"] == run.pk


@pytest.mark.parametrize("who", ["anonymous", "plain_staff"])
def test_others_are_refused(request, db, who):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)

    async def scenario():
        return await communicator_for(user).connect(timeout=WAIT_S)

    connected, code = async_to_sync(scenario)()
    assert not connected and code == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/admin/training/", "/ws/kiosk/"])
def test_a_cookie_with_a_nul_character_is_refused_like_none(path, monkeypatch):
    """The session key went to PostgreSQL, which refuses NUL in text: the handshake failed with a
    traceback instead of being refused as without a login (or a kiosk's cookie). (SQLite takes it:
    the keys the session store is asked for are checked here.)"""
    from django.contrib.sessions.backends.db import SessionStore

    from masknet_site.asgi import application

    asked, real_load = [], SessionStore.load
    monkeypatch.setattr(SessionStore, "load", lambda self: asked.append(self.session_key) or real_load(self))

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=[
            (b"cookie", b'sessionid="abcdefgh\\000ijklmnop"; masknet_kiosk="x\\000y"'),
            (b"origin", b"http://testserver"), (b"host", b"testserver")])
        connected, _ = await communicator.connect(timeout=WAIT_S)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
    assert not any("\x00" in (key or "") for key in asked), asked


@pytest.mark.django_db(transaction=True)
def test_the_site_routes_the_socket_with_the_session_user(client, enroller):
    client.force_login(enroller)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        communicator = site_communicator(cookie)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)()
    # a login saved without its time (an earlier release's session) is refused, as on every page
    from django.contrib.sessions.backends.db import SessionStore

    from masknet_site.session_lifetime import LOGIN_AT

    store = SessionStore(client.cookies["sessionid"].value)
    del store[LOGIN_AT]
    store.save()
    assert not async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", [b"http://testserver:8080", b"https://testserver", b"http://evil.example"])
def test_a_staff_login_opens_the_socket_from_the_sites_own_origin_only(client, enroller, origin):
    """The progress socket is behind the same origin check as the kiosk's: a page from another port
    or scheme of the site's host name is refused (Channels' validator compared the host name only)."""
    client.force_login(enroller)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        communicator = site_communicator(cookie, origin)
        connected, code = await communicator.connect(timeout=WAIT_S)
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 1000)   # the origin check's close, not the consumer's 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["logout", "password_change", "login_too_old"])
def test_a_session_that_ends_closes_the_socket(client, enroller, monkeypatch, how):
    """The socket's user is read from the session store again: logging out (elsewhere, say), a
    password change (which ends every other session) or the login's lifetime running out
    (MASKNET_SESSION_HOURS, masknet_site.session_lifetime) closes it at its next message."""
    from enrollment import consumers
    monkeypatch.setattr(consumers, "RECHECK_S", 0.0)
    run = TrainingRun.objects.create(state="running", progress=10, message="embedding")
    client.force_login(enroller)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    def end_session():
        if how == "logout":
            client.logout()
        elif how == "login_too_old":
            import time

            from django.conf import settings
            from django.contrib.sessions.backends.db import SessionStore

            from masknet_site.session_lifetime import LOGIN_AT

            store = SessionStore(client.cookies["sessionid"].value)
            store[LOGIN_AT] = int(time.time()) - settings.SESSION_COOKIE_AGE - 1
            store.save()
        else:
            enroller.set_password("a new one")
            enroller.save()

    async def scenario():
        communicator = site_communicator(cookie)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected
        await sync_to_async(events.training_progress)(run)
        first = await communicator.receive_json_from(timeout=WAIT_S)
        await sync_to_async(end_session)()
        await sync_to_async(events.training_progress)(run)
        closed = await communicator.receive_output(timeout=WAIT_S)
        await communicator.disconnect()
        return first, closed

    first, closed = async_to_sync(scenario)()
    assert first["type"] == "progress" and closed == {"type": "websocket.close", "code": 4403}



@pytest.mark.django_db(transaction=True)
def test_a_socket_sent_garbage_ignores_it_and_leaves_the_group_when_it_ends(enroller):
    """Text that is not JSON, or a binary frame, crashed the socket; Channels then never called
    disconnect, so the dead channel stayed in the group (re-added every hour, sent every progress
    message) with its keeper task running, for good."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def scenario():
        communicator = communicator_for(enroller)
        assert (await communicator.connect(timeout=WAIT_S))[0]
        await communicator.send_to(text_data="{")
        await communicator.send_to(bytes_data=b"\x00\x01")
        alive = await communicator.receive_nothing(timeout=0.3)    # not closed by it
        member = any(layer.groups.get(events.TRAINING_GROUP, {}))
        await communicator.disconnect()
        return alive, member, dict(layer.groups.get(events.TRAINING_GROUP, {}))

    alive, member, after = async_to_sync(scenario)()
    assert alive and member and after == {}

    async def crash():
        import asyncio

        from enrollment import consumers

        communicator = communicator_for(enroller)
        assert (await communicator.connect(timeout=WAIT_S))[0]
        consumer_tasks = [t for t in asyncio.all_tasks() if "_stay_in_group" in repr(t)]
        real = consumers.TrainingProgressConsumer.training_progress

        async def boom(self, event):
            raise RuntimeError("the database went away")

        consumers.TrainingProgressConsumer.training_progress = boom
        try:
            await layer.group_send(events.TRAINING_GROUP, {"type": "training.progress", "run": {}})
            try:
                await communicator.wait(timeout=WAIT_S)
            except RuntimeError:
                pass
        finally:
            consumers.TrainingProgressConsumer.training_progress = real
        return consumer_tasks, dict(layer.groups.get(events.TRAINING_GROUP, {}))

    keepers, left = async_to_sync(crash)()
    assert keepers and all(k.done() for k in keepers) and left == {}


@pytest.mark.parametrize("path", ["/ws/kiosk", "/ws/", "/admin/", "/ws/admin/training/x"])
def test_a_socket_at_no_such_path_is_refused_quietly(path, caplog):
    """Channels' router raised "No route found for path" on any other path: a 500 and a traceback in
    the log for each handshake, from anyone, without logging in."""
    from masknet_site.asgi import application

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://testserver"),
                                                                          (b"host", b"testserver")])
        connected, code = await communicator.connect(timeout=WAIT_S)
        await communicator.wait()   # returns when the refusal has ended the application, or after 1 s
        return connected, code

    with caplog.at_level("DEBUG"):
        connected, _ = async_to_sync(scenario)()
    assert not connected
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info], caplog.text


@pytest.mark.django_db(transaction=True)
async def _progress_once_joined(layer, communicator: WebsocketCommunicator, run: TrainingRun) -> list[dict]:
    """Wait (``WAIT_S`` at most) for a socket to be in the progress group, publish ``run``'s progress
    and return what the socket got up to that progress (whatever came first, then the progress);
    then close it."""
    deadline = time.monotonic() + WAIT_S
    while not layer.groups.get(events.TRAINING_GROUP) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sync_to_async(events.training_progress)(run)
    got = [await communicator.receive_json_from(timeout=WAIT_S)]
    while got[-1]["type"] != "progress" and len(got) < 5:
        got.append(await communicator.receive_json_from(timeout=WAIT_S))
    await communicator.disconnect()
    return got


def test_a_socket_opened_while_the_channel_layer_is_away_opens_and_joins_later(enroller, monkeypatch, caplog):
    """Redis down at the handshake (joining the group raises): the socket opens all the same, and
    once the layer answers its keeper joins it, so the page hears the next run's progress. The
    handshake failed before (a 500, and the page fell back to polling for as long as it was open)."""
    from channels.layers import get_channel_layer

    from enrollment import consumers

    layer = get_channel_layer()
    real_add = layer.group_add
    down = [True]

    async def group_add(group, channel):
        if down[0]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        await real_add(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    monkeypatch.setattr(consumers, "JOIN_RETRY_S", 0.05)
    run = TrainingRun.objects.create(state="running", progress=40, message="embedding")

    async def scenario():
        communicator = communicator_for(enroller)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected
        assert len(layer.groups.get(events.TRAINING_GROUP, {})) == 0
        down[0] = False
        return await _progress_once_joined(layer, communicator, run)   # the keeper's next try joins it

    with caplog.at_level("INFO", logger="enrollment.consumers"):
        *before, progress = async_to_sync(scenario)()
    assert progress["type"] == "progress" and progress["run"]["id"] == run.pk
    # what was published before it joined never reached it: the page is told to read the state again
    assert before == [{"type": "resync"}]
    said = [r.getMessage() for r in caplog.records if r.name == "enrollment.consumers"]
    assert [m.split(": ", 1)[1][:30] for m in said] == ["cannot join its channel group ",
                                                        "joined its channel group again"]


def test_a_socket_open_through_a_redis_outage_rejoins_as_soon_as_redis_is_back(enroller, monkeypatch):
    """A socket in its group before Redis restarted empty (it forgot the group's members): once the
    channel layer has seen Redis answer again (its ``outage_epoch``), the keeper joins the group
    again within ``KEEPER_TICK_S``, so the next run's progress reaches the page. Before, it joined
    again only after ``REJOIN_S`` (an hour), and the page, which does not poll while its socket is
    open, showed nothing meanwhile."""
    from channels.layers import get_channel_layer

    from enrollment import consumers

    layer = get_channel_layer()
    monkeypatch.setattr(consumers, "KEEPER_TICK_S", 0.02)
    run = TrainingRun.objects.create(state="running", progress=40, message="embedding")

    async def scenario():
        communicator = communicator_for(enroller)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected and layer.groups.get(events.TRAINING_GROUP)
        layer.groups.clear()                                   # Redis restarted empty
        await asyncio.sleep(0.1)
        assert not layer.groups.get(events.TRAINING_GROUP)     # no outage seen: nothing to do yet
        monkeypatch.setattr(layer, "outage_epoch", 1, raising=False)   # the layer saw Redis come back
        return await _progress_once_joined(layer, communicator, run)

    *before, progress = async_to_sync(scenario)()
    assert progress["type"] == "progress" and progress["run"]["id"] == run.pk
    assert before == [{"type": "resync"}]   # the catch-up (next test)


def test_a_page_open_through_a_redis_outage_is_told_to_read_the_state_again(enroller, monkeypatch):
    """Messages published while Redis was away are lost: a page whose socket stayed open through
    the outage showed a run that ended meanwhile as still running (it asks ``status.json`` only when
    its socket opens or fails). Once the socket has joined its group again it sends the page
    ``{"type": "resync"}`` (tests/js/training_status.js: the page reads the state again); the hourly
    re-join of a socket that saw no outage sends nothing."""
    from channels.layers import get_channel_layer

    from enrollment import consumers

    layer = get_channel_layer()
    monkeypatch.setattr(consumers, "KEEPER_TICK_S", 0.02)
    monkeypatch.setattr(consumers, "REJOIN_S", 0.05)
    joins = []
    real_add = layer.group_add

    async def group_add(group, channel):
        joins.append(group)
        await real_add(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)

    async def scenario():
        communicator = communicator_for(enroller)
        connected, _ = await communicator.connect(timeout=WAIT_S)
        assert connected
        # re-joined every 0.05 s meanwhile, the page told nothing: counted by the joins, not by a
        # 0.3 s window, which a loaded machine's stall of the event loop could fill with one join
        # (a message ends the wait: once quiet was False the loop no longer awaited, and spun the
        # event loop, which then ran no re-join, for the whole WAIT_S)
        quiet, deadline = True, time.monotonic() + WAIT_S
        while quiet and len(joins) < 4 and time.monotonic() < deadline:
            quiet = await communicator.receive_nothing(timeout=0.05)
        quiet = quiet and await communicator.receive_nothing(timeout=0.1)
        rejoined = len(joins)
        monkeypatch.setattr(layer, "outage_epoch", 1, raising=False)   # the layer saw Redis come back
        told = await communicator.receive_json_from(timeout=WAIT_S)
        once = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return quiet, rejoined, told, once

    quiet, rejoined, told, once = async_to_sync(scenario)()
    assert quiet and rejoined > 2
    assert told == {"type": "resync"} and once


@pytest.mark.django_db(transaction=True)
def test_a_user_who_lost_the_right_during_an_outage_is_closed_not_told(enroller, monkeypatch):
    """The catch-up goes only to those who may still watch runs, as progress does: a user whose
    right went while Redis was away gets the close (4403), not ``resync``."""
    from channels.layers import get_channel_layer

    from enrollment import consumers

    layer = get_channel_layer()
    monkeypatch.setattr(consumers, "KEEPER_TICK_S", 0.02)
    monkeypatch.setattr(consumers, "RECHECK_S", 0.0)

    async def scenario():
        communicator = communicator_for(enroller)
        assert (await communicator.connect(timeout=WAIT_S))[0]
        await sync_to_async(enroller.groups.clear)()
        monkeypatch.setattr(layer, "outage_epoch", 1, raising=False)
        closed = await communicator.receive_output(timeout=WAIT_S)
        await communicator.disconnect()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}


def test_a_notice_the_channel_layer_cannot_take_is_one_warning_line(monkeypatch, caplog):
    """Progress and index notices are best effort: with Redis away, rebuild_index said what it did,
    then printed the driver's whole traceback (68 lines) for the progress notice. One warning line
    now, the traceback at debug level. Found by a helper's review."""
    from enrollment import events

    class Away:
        async def group_send(self, group, message):
            raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 1)\nsecond line")

    monkeypatch.setattr(events, "get_channel_layer", lambda: Away())
    with caplog.at_level("DEBUG", logger="enrollment.events"):
        events.publish(events.TRAINING_GROUP, {"type": "training.progress"})
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert warnings[0].getMessage() == ("could not publish training.progress to training "
                                        "(ConnectionRefusedError: Connect call failed ('127.0.0.1', 1))")
    assert any(r.levelname == "DEBUG" and r.exc_info for r in caplog.records)
