"""KioskConsumer through the real ASGI stack (origin check, cookies, router) with
``WebsocketCommunicator``: authentication, bounds, newest-frame-wins, voting, cooldown, audit,
revocation and index reloads. The engine is scripted here; test_consumer_engine.py uses the real one."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion
from recognition import consumers, services
from recognition.engine.gallery import MIN_FIT_PEOPLE
from recognition.engine.index import Index
from recognition.kiosk_page import page_build
from recognition.models import CheckIn

from .conftest import JPEG_MAGIC, ask, communicator, frame, make_paired_kiosk, open_kiosk

pytestmark = pytest.mark.django_db(transaction=True)


def run(coro_fn, *args):
    """Run an async scenario from a sync test (the DB work runs on this thread)."""
    return async_to_sync(coro_fn)(*args)


@pytest.fixture(autouse=True)
def empty_layer():
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield
    async_to_sync(layer.flush)()


# ------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token", [None, "not-a-token", "x" * 500])
def test_refused_without_a_valid_kiosk_session(engine_script, paired, token):
    async def scenario():
        comm = communicator(token)
        connected, code = await comm.connect(timeout=5)
        assert not connected and code == 4401
        await comm.disconnect()

    run(scenario)
    assert engine_script.seen == []


def test_refused_for_an_inactive_or_revoked_kiosk(engine_script, paired):
    kiosk, token = paired

    async def refused():
        comm = communicator(token)
        connected, code = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected, code

    services.kiosk_update(kiosk=kiosk, actor=None, active=False)
    assert run(refused) == (False, 4401)
    services.kiosk_update(kiosk=kiosk, actor=None, active=True)
    services.kiosk_revoke(kiosk=kiosk, actor=None)
    assert run(refused) == (False, 4401)


def test_refused_from_a_foreign_origin(engine_script, paired, caplog, monkeypatch):
    from masknet_site import socket_origin

    monkeypatch.setattr(socket_origin, "refusal_log", socket_origin.RefusalLog())   # no earlier test's window

    async def scenario():
        comm = communicator(paired[1], origin=b"http://evil.example")
        connected, _ = await comm.connect(timeout=5)
        assert not connected
        await comm.disconnect()

    with caplog.at_level("WARNING", logger="masknet_site.socket_origin"):
        run(scenario)
    # the log says what was refused and what was expected (a proxy that drops the port or the scheme)
    assert "'http://evil.example'" in caplog.text and "'http://testserver'" in caplog.text, caplog.text


def test_a_flood_of_refused_handshakes_is_logged_in_a_few_lines(caplog):
    """Every refused handshake was a warning of its own: a page of another origin reconnecting in a
    loop, or a proxy writing a fixed Host, filled the log a line a try. Five a minute are logged,
    and the rest counted in one line when the next minute's first refusal comes."""
    from masknet_site.socket_origin import REFUSAL_LOG_WINDOW_S, REFUSALS_LOGGED, RefusalLog

    said = RefusalLog()
    with caplog.at_level("WARNING", logger="masknet_site.socket_origin"):
        for i in range(200):
            said("/ws/kiosk/", f"Origin 'http://evil{i}.example' is not this site's", now=100.0 + i * 0.1)
        assert len(caplog.records) == REFUSALS_LOGGED
        said("/ws/kiosk/", "no Origin header", now=100.0 + REFUSAL_LOG_WINDOW_S)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == REFUSALS_LOGGED + 2, lines
    assert lines[REFUSALS_LOGGED].startswith(f"{200 - REFUSALS_LOGGED} more WebSocket handshakes refused in the 60 s "
                                             "from "), lines
    assert "evil199.example" in lines[REFUSALS_LOGGED]
    # the window's start with its date: the summary may come days later, at the next refusal
    assert re.search(r" from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", lines[REFUSALS_LOGGED]), lines
    assert lines[-1] == "WebSocket handshake refused at /ws/kiosk/: no Origin header"


def handshake(token: str, **how) -> tuple[bool, int | None]:
    """``(connected, close code)`` of one kiosk handshake (:func:`communicator`'s arguments)."""
    async def scenario():
        comm = communicator(token, **how)
        connected, code = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected, None if connected else code

    return run(scenario)


ORIGIN_REFUSED = (False, 1000)   # closed before the handshake by the origin check (a 403 to a browser)
ACCEPTED = (True, None)
TLS_PROXY = ("HTTP_X_FORWARDED_PROTO", "https")   # the production settings' SECURE_PROXY_SSL_HEADER


def origin_case(value) -> str | None:
    """A readable test id for a handshake's ``how``: ``scheme host <- origin``."""
    if not isinstance(value, dict):
        return None
    origin = value.get("origin")
    return (f"{value.get('scheme', 'ws')} {value.get('host', b'testserver').decode()} <- "
            f"{origin.decode() if origin is not None else 'no origin'}{' +origin' if 'more_headers' in value else ''}")


@pytest.mark.parametrize("how, expected", ids=origin_case, argvalues=[
    # the page's own origin: scheme, host and port as the browser sees them
    ({"origin": b"http://testserver"}, ACCEPTED),
    ({"origin": b"http://testserver:8000", "host": b"testserver:8000"}, ACCEPTED),
    ({"origin": b"http://127.0.0.1:8000", "host": b"127.0.0.1:8000"}, ACCEPTED),   # make run, the e2e server
    ({"origin": b"https://testserver", "scheme": "wss"}, ACCEPTED),
    # another port or scheme of the same host name (Channels' validator compared the host name only)
    ({"origin": b"http://testserver:8080"}, ORIGIN_REFUSED),
    ({"origin": b"http://testserver", "host": b"testserver:8000"}, ORIGIN_REFUSED),
    ({"origin": b"https://testserver:8443", "scheme": "wss"}, ORIGIN_REFUSED),
    ({"origin": b"http://testserver", "scheme": "wss"}, ORIGIN_REFUSED),    # an HTTP page, a TLS socket
    ({"origin": b"https://testserver"}, ORIGIN_REFUSED),                    # no TLS, no proxy saying so
    ({"origin": b"ws://testserver"}, ORIGIN_REFUSED),
    # a host that is not the site's: in the Origin, the Host header or both
    ({"origin": b"http://evil.example"}, ORIGIN_REFUSED),
    ({"origin": b"http://testserver", "host": b"evil.example"}, ORIGIN_REFUSED),
    ({"origin": b"http://evil.example", "host": b"evil.example"}, ORIGIN_REFUSED),   # DNS rebinding
    # none, or an opaque one (a sandboxed frame, a file: page)
    ({"origin": None}, ORIGIN_REFUSED),
    ({"origin": b"null"}, ORIGIN_REFUSED),
    ({"origin": b"http://testserver", "more_headers": ((b"origin", b"http://evil.example"),)}, ORIGIN_REFUSED),
])
def test_only_the_sites_own_origin_opens_the_socket(engine_script, paired, how, expected):
    """The handshake's Origin must be the page's own: ``scheme://Host`` (https for a TLS socket), the
    Host allowed. Channels' AllowedHostsOriginValidator compared only the origin's host name with
    ALLOWED_HOSTS, so a page from another port or scheme of the site's host name opened the socket
    with a paired device's cookie (``SameSite=Strict`` does not tell ports apart)."""
    assert handshake(paired[1], **how) == expected


@pytest.mark.parametrize("forwarded, origin, expected", [
    (b"https", b"https://testserver", ACCEPTED),
    (b"https", b"http://testserver", ORIGIN_REFUSED),   # the page was served over HTTPS by the proxy
    (b"http", b"https://testserver", ORIGIN_REFUSED),
    (None, b"https://testserver", ORIGIN_REFUSED),     # a proxy that does not say so: a plain socket
])
def test_behind_a_tls_proxy_its_header_gives_the_scheme(engine_script, paired, settings, forwarded, origin,
                                                       expected):
    """With SECURE_PROXY_SSL_HEADER (production), the proxy's X-Forwarded-Proto says whether the page
    was HTTPS, as for Django's ``request.is_secure()``; a header spelled with ``_`` is not it."""
    settings.SECURE_PROXY_SSL_HEADER = TLS_PROXY
    more = ((b"x-forwarded-proto", forwarded),) if forwarded else ((b"x_forwarded_proto", b"https"),)
    assert handshake(paired[1], origin=origin, more_headers=more) == expected


@pytest.mark.parametrize("origin, forwarded, expected", [
    (b"https://testserver", None, ACCEPTED),     # Daphne's own TLS endpoint: its scope does not say
    (b"http://testserver", None, ACCEPTED),      # ... nor on a plain one
    (b"https://testserver:8443", None, ORIGIN_REFUSED),
    (b"wss://testserver", None, ORIGIN_REFUSED),
    (b"https://evil.example", None, ORIGIN_REFUSED),
    (b"https://testserver", b"https", ACCEPTED),
    (b"https://testserver", b"http", ORIGIN_REFUSED),   # the proxy's header decides, as for is_secure()
    (b"http://testserver", b"https", ORIGIN_REFUSED),
])
def test_a_scope_without_a_scheme_takes_either_of_the_hosts_origins(engine_script, paired, settings, origin,
                                                                      forwarded, expected):
    """Daphne (4.2) puts no ``scheme`` in a WebSocket scope, even on its TLS endpoint, whose HTTP
    scopes say ``https``: the site's ``https`` pages' sockets were refused there, as ``http`` was
    assumed. Without a scheme, the origin may be either scheme of the Host (same port), unless
    SECURE_PROXY_SSL_HEADER's header is there and decides."""
    settings.SECURE_PROXY_SSL_HEADER = TLS_PROXY
    more = ((b"x-forwarded-proto", forwarded),) if forwarded else ()
    assert handshake(paired[1], origin=origin, scheme=None, more_headers=more) == expected


@pytest.mark.parametrize("origin, expected", [
    (b"https://checkin.example.org", ACCEPTED),
    (b"https://kiosk.branch.example.org", ACCEPTED),
    (b"https://branch.example.org", ACCEPTED),
    (b"http://checkin.example.org", ORIGIN_REFUSED),
    (b"https://checkin.example.org:8443", ORIGIN_REFUSED),
    (b"https://example.org", ORIGIN_REFUSED),
    (b"https://evilexample.org", ORIGIN_REFUSED),
])
def test_csrf_trusted_origins_open_the_socket_as_they_send_forms(engine_script, paired, settings, origin,
                                                                 expected):
    """``CSRF_TRUSTED_ORIGINS`` with Django's semantics: an exact entry, or a ``*.`` entry's subdomains
    (same scheme and port). Their host names need not be in ALLOWED_HOSTS (Channels' validator
    refused them), the Host header still must."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://checkin.example.org", "https://*.branch.example.org"]
    assert handshake(paired[1], origin=origin) == expected
    assert handshake(paired[1], origin=origin, host=b"checkin.example.org") == ORIGIN_REFUSED


def test_every_host_allowed_still_wants_the_sites_own_origin(engine_script, paired, settings):
    """``ALLOWED_HOSTS = ["*"]`` let Channels' validator accept any origin (and none); the origin
    must still be the page's own."""
    settings.ALLOWED_HOSTS = ["*"]
    assert handshake(paired[1], origin=b"http://anything.example", host=b"anything.example") == ACCEPTED
    assert handshake(paired[1], origin=b"http://evil.example") == ORIGIN_REFUSED
    assert handshake(paired[1], origin=None) == ORIGIN_REFUSED


def test_a_paired_kiosk_connects_and_is_seen(engine_script, paired):
    kiosk, token = paired

    async def scenario():
        comm = communicator(token)
        connected, _ = await comm.connect(timeout=5)
        assert connected
        hello = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return hello

    hello = run(scenario)
    assert isinstance(hello.pop("ready"), bool)   # the engine may or may not be loaded yet (next test)
    assert hello == {"type": "hello", "kiosk": "Front door", "location": "Main entrance", "site": "main",
                     "language": "en", "build": page_build()}
    kiosk.refresh_from_db()
    assert kiosk.last_seen_at is not None


def test_revoking_closes_the_open_socket_at_once(engine_script, paired):
    kiosk, token = paired

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        await database_sync_to_async(services.kiosk_revoke)(kiosk=kiosk, actor=None)
        assert await comm.receive_json_from(timeout=5) == {"type": "revoked"}
        closed = await comm.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4403}

    run(scenario)


def test_a_kiosk_changed_and_deactivated_through_the_api_tells_and_closes_its_open_socket(engine_script, paired):
    """``PATCH /api/v1/kiosks/<id>`` goes through the admin's ``kiosk_update``: a new language reaches
    the open page at once (which reloads in it), and ``active: false`` closes the socket as revoked,
    as unticking *active* in the admin does; the device's token then opens no socket."""
    from rest_framework.test import APIClient

    from api import services as api_services

    kiosk, token = paired
    _token, secret = api_services.api_token_create(actor=None, name="fleet", scopes=["admin"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    patch = database_sync_to_async(lambda data: api.patch(f"/api/v1/kiosks/{kiosk.pk}", data, format="json"))

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        assert (await patch({"language": "pt"})).status_code == 200
        assert await comm.receive_json_from(timeout=5) == {"type": "kiosk", "kiosk": kiosk.name,
                                                            "location": kiosk.location, "site": kiosk.site,
                                                            "language": "pt"}
        assert (await patch({"active": False})).status_code == 200
        assert await comm.receive_json_from(timeout=5) == {"type": "revoked"}
        assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        again = communicator(token)
        refused = await again.connect(timeout=5)
        await again.disconnect()
        return refused

    assert run(scenario) == (False, 4401)


def test_a_kiosk_revoked_whose_message_was_lost_closes_at_its_next_check_in(engine_script, paired, person,
                                                                             monkeypatch):
    """The revocation's ``kiosk.revoked`` never arrives (Redis restarted) and the periodic recheck
    is not due: the vote's check-in finds the kiosk revoked, records nothing and closes the socket."""
    kiosk, token = paired

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        with monkeypatch.context() as patch:
            patch.setattr(services.events, "publish", lambda group, message: None)
            await database_sync_to_async(services.kiosk_unpair)(kiosk=kiosk, actor=None)
        answers = [await ask(comm, f"face:{person.pk}:0.8:u") for _ in range(2)]
        await comm.send_to(bytes_data=frame(f"face:{person.pk}:0.8:u"))
        answers.append(await comm.receive_json_from(timeout=5))
        closed = await comm.receive_output(timeout=5)
        return answers, closed

    answers, closed = run(scenario)
    assert [a["state"] for a in answers[:2]] == ["recognising", "recognising"]
    assert answers[2] == {"type": "revoked"} and closed == {"type": "websocket.close", "code": 4403}
    assert not CheckIn.objects.exists()


def test_a_newer_socket_whose_announcement_was_lost_replaces_this_one_at_its_recheck(engine_script, paired,
                                                                                      settings):
    """A handshake of this kiosk counted on another web node while Redis was away: its
    ``kiosk.connected`` never arrived, and both sockets stayed open (one per kiosk is the rule).
    The periodic recheck, which reads the kiosk row anyway, now sees the higher number and closes
    this socket as replaced, without analysing the frame."""
    from django.db.models import F

    kiosk, token = paired
    settings.MASKNET_KIOSK_RECHECK_S = 0

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        seen = len(engine_script.seen)
        await database_sync_to_async(
            lambda: type(kiosk).objects.filter(pk=kiosk.pk).update(connection_seq=F("connection_seq") + 1))()
        await comm.send_to(bytes_data=frame("none"))
        answer = await comm.receive_json_from(timeout=5)
        closed = await comm.receive_output(timeout=5)
        return answer, closed, len(engine_script.seen) - seen

    answer, closed, analysed = run(scenario)
    assert answer == {"type": "replaced"} and closed == {"type": "websocket.close", "code": 4409}
    assert analysed == 0


def test_the_periodic_recheck_starts_a_rebuild_a_restart_cut_off(engine_script, paired, settings, monkeypatch):
    """make run stopped mid-rebuild and started again: the kiosks reconnected while the run still
    looked alive, and nothing looked at it again while only kiosks were connected (the person
    enrolled just before stayed "not recognised" until an admin page opened). The recheck hands
    such a run over again too. Found by a helper's review of the embedded mode."""
    from recognition import consumers

    kiosk, token = paired
    resumed = []
    monkeypatch.setattr(consumers, "index_rebuild_resume", lambda: resumed.append("resume") or 0)
    due = {"now": False}
    monkeypatch.setattr(consumers, "index_rebuild_resume_due", lambda: due["now"])

    settings.MASKNET_KIOSK_RECHECK_S = 0   # every frame rechecks

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"   # loaded while nothing was due
        assert not resumed
        due["now"] = True
        await ask(comm, "none")                                     # its recheck looks
        await comm.disconnect()

    run(scenario)
    assert resumed, "the recheck did not look for a rebuild left by a restart"


def test_a_kiosk_moved_to_another_site_checks_in_there_at_once(engine_script, paired, person):
    kiosk, token = paired

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        await database_sync_to_async(services.kiosk_update)(kiosk=kiosk, actor=None, site="warehouse")
        moved = await comm.receive_json_from(timeout=5)
        assert moved == {"type": "kiosk", "kiosk": kiosk.name, "location": kiosk.location, "site": "warehouse",
                         "language": "en"}
        states = [(await ask(comm, f"face:{person.pk}:0.8:u"))["state"] for _ in range(3)]
        await comm.disconnect()
        return states

    assert run(scenario)[-1] == "checked_in"
    assert CheckIn.objects.get().site == "warehouse"


def test_a_renamed_kiosk_shows_its_new_name_without_a_reload(engine_script, paired):
    """The page learns a new name or location at once (a ``kiosk`` message), and every ``hello``
    says them too; an unrelated change (the last-seen time) says nothing."""
    kiosk, token = paired

    async def scenario():
        comm = await open_kiosk(token)
        assert (await ask(comm, "none"))["state"] == "searching"
        await database_sync_to_async(services.kiosk_update)(kiosk=kiosk, actor=None, name="Back door",
                                                            location="Loading bay")
        renamed = await comm.receive_json_from(timeout=5)
        assert renamed == {"type": "kiosk", "kiosk": "Back door", "location": "Loading bay", "site": kiosk.site,
                           "language": "en"}
        await database_sync_to_async(services.kiosk_seen)(kiosk_id=kiosk.pk)
        assert (await ask(comm, "none"))["state"] == "searching"     # nothing else in between
        await comm.disconnect()
        again = communicator(token)
        assert (await again.connect(timeout=5))[0]
        hello = await again.receive_json_from(timeout=5)
        assert (hello["type"], hello["kiosk"], hello["location"]) == ("hello", "Back door", "Loading bay")
        await again.disconnect()

    run(scenario)


def test_a_kiosk_given_another_language_tells_its_open_page_at_once(engine_script, paired, settings):
    """A language chosen in the admin reaches the open page in a ``kiosk`` message (which reloads it in
    that language, tests/js/kiosk_page.js); ``hello`` names the kiosk's own language over the site's."""
    kiosk, token = paired
    settings.MASKNET_KIOSK_LANGUAGE = "es"

    async def scenario():
        comm = communicator(token)
        assert (await comm.connect(timeout=5))[0]
        hello = await comm.receive_json_from(timeout=5)
        assert hello["language"] == "es"                       # blank: the site's
        assert (await ask(comm, "none"))["state"] == "searching"
        await database_sync_to_async(services.kiosk_update)(kiosk=kiosk, actor=None, language="pt")
        changed = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return changed

    changed = run(scenario)
    assert changed == {"type": "kiosk", "kiosk": kiosk.name, "location": kiosk.location, "site": kiosk.site,
                       "language": "pt"}


def test_a_revocation_during_the_handshake_is_not_missed(engine_script, paired, monkeypatch):
    """Revoked after the socket's token was read but before it joined its groups (the broadcast
    reached nobody): the handshake reads the row again once in the groups and refuses."""
    from recognition.models import Kiosk

    kiosk, token = paired
    real = Kiosk.objects.for_device_token
    calls = []

    def read_then_revoke(value):
        found = real(value)
        calls.append(found)
        if len(calls) == 1:
            services.kiosk_revoke(kiosk=kiosk, actor=None)
        return found

    monkeypatch.setattr(Kiosk.objects, "for_device_token", read_then_revoke)

    async def scenario():
        comm = communicator(token)
        connected, code = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected, code

    assert run(scenario) == (False, 4401)
    assert calls[0] is not None and calls[1] is None


def test_a_kiosk_socket_starts_loading_the_models_at_its_handshake(engine_script, paired, no_engine_warm_up):
    """The first frame after a server start should not wait out the models' load: the socket asks
    for it as it opens, through the one warm-up the admin's pages use (``recognizer.warm_soon``:
    one load per process, in a thread of its own)."""
    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.disconnect()

    run(scenario)
    assert no_engine_warm_up == [True]


@pytest.mark.parametrize("loaded", [False, True])
def test_hello_says_whether_the_models_are_still_loading(engine_script, paired, monkeypatch, loaded):
    """After a server start the first frame waits a few seconds for the models: the page was told
    nothing and said "Looking for a face" to the person standing in front of it."""
    from enrollment import recognizer

    monkeypatch.setattr(recognizer, "_loaded", loaded)

    async def scenario():
        comm = communicator(paired[1])
        assert (await comm.connect(timeout=5))[0]
        hello = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return hello

    assert run(scenario)["ready"] is loaded


def test_pairing_another_device_disconnects_the_old_one(engine_script, paired):
    kiosk, token = paired

    async def scenario():
        comm = await open_kiosk(token)
        code = await database_sync_to_async(services.kiosk_pairing_issue)(kiosk=kiosk, actor=None)
        # issuing a link alone changes nothing for the paired device
        assert (await ask(comm, "none"))["type"] == "result"
        _, new_token = await database_sync_to_async(services.kiosk_pair)(code=code)
        assert await comm.receive_json_from(timeout=5) == {"type": "revoked"}
        await comm.receive_output(timeout=5)
        fresh = await open_kiosk(new_token)
        assert (await ask(fresh, "none"))["state"] == "searching"
        await fresh.disconnect()

    run(scenario)


def test_one_socket_per_kiosk_a_newer_one_closes_the_older(engine_script, paired):
    """A copy of the device cookie cannot open many sockets' worth of work: each new socket of a
    kiosk closes its older one (``replaced``, 4409); other kiosks are untouched."""
    kiosk, token = paired
    _, other_token = make_paired_kiosk("Side door")

    async def scenario():
        first = await open_kiosk(token)
        bystander = await open_kiosk(other_token)
        second = await open_kiosk(token)
        assert await first.receive_json_from(timeout=5) == {"type": "replaced"}
        closed = await first.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_REPLACED}
        assert (await ask(second, "none"))["state"] == "searching"
        # the late announcement of a socket whose handshake counted earlier (a slow handshake the page
        # gave up) does not close the page's newer socket: by the database's count, not by who
        # announced last; nor does one of a node of the release before (its clock's time, far ahead)
        await database_sync_to_async(kiosk.refresh_from_db)()
        for late in ({"seq": kiosk.connection_seq - 1}, {"opened": [time.time() + 3600, "old-node"]}):
            await get_channel_layer().group_send(kiosk.group_name, {"type": "kiosk.connected", **late})
        assert await second.receive_nothing(timeout=0.5)
        assert (await ask(second, "none"))["state"] == "searching"
        assert (await ask(bystander, "none"))["state"] == "searching"
        await second.disconnect()
        await bystander.disconnect()

    run(scenario)


@pytest.mark.parametrize("skew_s", [-60.0, 60.0])
def test_the_later_handshake_stays_whatever_the_web_nodes_clocks_say(engine_script, paired, monkeypatch, skew_s):
    """Two web nodes whose clocks disagree by a minute: the socket opened later closes the older one
    either way. Each socket was stamped with its node's clock, so with the second node's clock behind
    both sockets stayed open (the new one's announcement looked older), and a page's reconnect could
    have been closed in favour of its stale socket. The database's count of handshakes decides now."""
    clock = {"now": 1_800_000_000.0}
    # the clock the consumer stamped its sockets with (nothing reads it any more), and time.time
    monkeypatch.setattr(consumers, "wall_clock", lambda: clock["now"], raising=False)
    monkeypatch.setattr(time, "time", lambda: clock["now"])

    async def scenario():
        first = await open_kiosk(paired[1])          # on a node whose clock is right
        clock["now"] += skew_s                        # the page reconnects through the other node
        second = await open_kiosk(paired[1])
        replaced = await first.receive_json_from(timeout=5)
        closed = await first.receive_output(timeout=5)
        answer = await ask(second, "none")
        await second.disconnect()
        return replaced, closed, answer

    replaced, closed, answer = run(scenario)
    assert replaced == {"type": "replaced"}
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_REPLACED}
    assert answer["state"] == "searching"


def test_a_handshake_counted_before_a_newer_one_that_it_did_not_hear_closes_itself(engine_script, paired,
                                                                                    monkeypatch):
    """Two overlapping handshakes of one kiosk: the newer one announced itself before the older one had
    joined its groups, so the older never heard it (and the newer ignores the older's announcement):
    both stayed open. The older one's second read of its kiosk row, made once in its groups, sees the
    higher number and closes as replaced."""
    from recognition.models import Kiosk

    kiosk, token = paired
    real = Kiosk.objects.for_device_token
    reads = []

    def overtaken(value):
        reads.append(value)
        if len(reads) == 2:   # the older socket's second read: a newer handshake counted meanwhile
            services.kiosk_connect(token=value)
        return real(value)

    monkeypatch.setattr(Kiosk.objects, "for_device_token", overtaken)

    async def scenario():
        comm = communicator(token)
        connected, _ = await comm.connect(timeout=5)
        replaced = await comm.receive_json_from(timeout=5)
        closed = await comm.receive_output(timeout=5)
        monkeypatch.setattr(Kiosk.objects, "for_device_token", real)
        newest = await open_kiosk(token)              # a third socket, counted after both, stays
        answer = await ask(newest, "none")
        await newest.disconnect()
        return connected, replaced, closed, answer

    connected, replaced, closed, answer = run(scenario)
    assert connected and replaced == {"type": "replaced"}
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_REPLACED}
    assert answer["state"] == "searching"
    kiosk.refresh_from_db()
    assert kiosk.connection_seq == 3


# ----------------------------------------------------------------------------- bounded, typed input


def test_oversized_and_non_image_frames_get_errors_and_the_socket_stays_usable(engine_script, paired, settings):
    settings.MASKNET_MAX_FRAME_BYTES = 1000

    async def scenario():
        comm = await open_kiosk(paired[1])
        big = await ask(comm, "x" * 2000)
        await comm.send_to(bytes_data=b"GIF89a not a jpeg")
        not_image = await comm.receive_json_from(timeout=5)
        await comm.send_to(text_data='{"hello": 1}')
        text = await comm.receive_json_from(timeout=5)
        corrupt = await ask(comm, "corrupt")
        ok = await ask(comm, "none")
        await comm.disconnect()
        return big, not_image, text, corrupt, ok

    big, not_image, text, corrupt, ok = run(scenario)
    assert big["type"] == "error" and big["code"] == "frame_too_large" and big["frame"] == 1
    assert not_image["code"] == "not_an_image" and not_image["frame"] == 2
    assert text["code"] == "binary_expected"
    assert corrupt["code"] == "unreadable_image"
    assert ok["type"] == "result" and ok["state"] == "searching" and ok["frame"] == 5
    # refused frames never reach the engine; the corrupt one is refused by its decoder
    assert engine_script.seen == ["corrupt", "none"]


def test_the_real_decoder_refuses_a_truncated_jpeg_without_loading_models(paired, monkeypatch):
    import cv2

    from recognition import consumers

    monkeypatch.setattr(consumers, "get_engine", lambda: pytest.fail("the engine must not be needed"))
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    truncated = buf.tobytes()[:40]

    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=truncated)
        answer = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
        return answer

    answer = run(scenario)
    assert answer["type"] == "error" and answer["code"] == "unreadable_image"


@pytest.mark.reliability
def test_frames_beyond_the_rate_limit_are_answered_rate_limited(engine_script, paired, settings, monkeypatch):
    settings.MASKNET_KIOSK_MAX_FPS = 5     # a bucket of 10, refilled at 5 a second
    # the consumer's clock stands still during the burst and then moves on by hand: on a loaded
    # machine a burst that took over 0.2 s of real time would earn a token back and let frame 11 in
    clock = _real_presence_rules(monkeypatch)

    async def scenario():
        comm = await open_kiosk(paired[1])
        for _ in range(12):                 # a burst far faster than 5/s
            await comm.send_to(bytes_data=frame("none"))
        answers = [await comm.receive_json_from(timeout=5) for _ in range(12)]
        clock["t"] += 0.5                   # 2.5 tokens back
        later = await ask(comm, "none")
        await comm.disconnect()
        return answers, later

    answers, later = run(scenario)
    limited = sorted(a["frame"] for a in answers if a.get("code") == "rate_limited")
    assert limited == [11, 12]
    assert all(a["type"] in ("result", "dropped") for a in answers if a["frame"] <= 10)
    assert later["type"] == "result" and later["frame"] == 13
    assert len(engine_script.seen) <= 11      # frames 11 and 12 never reached the engine



def test_a_socket_that_goes_on_sending_past_its_rate_limit_is_closed(engine_script, paired, settings, monkeypatch,
                                                                      caplog):
    """A client sending as fast as it can queued messages faster than even a refusal is answered: the
    server's memory grew without bound and the socket's disconnect waited behind the queue until
    Daphne killed the consumer. Twice a burst's worth refused in a row closes it (4429); frames
    come to the handler without Channels' trip to the database thread. Found by a helper's review."""
    from channels.consumer import AsyncConsumer

    from recognition import consumers

    settings.MASKNET_KIOSK_MAX_FPS = 5      # a bucket of 10: twice that, but at least 30, refused in a row close it
    clock = _real_presence_rules(monkeypatch)   # the consumer's clock stands still during the flood
    hops = []
    real_dispatch = AsyncConsumer.dispatch

    async def counting(self, message):
        hops.append(message["type"])
        await real_dispatch(self, message)

    monkeypatch.setattr(AsyncConsumer, "dispatch", counting)

    async def scenario():
        comm = await open_kiosk(paired[1])
        for _ in range(10 + 30):             # the burst, then thirty refusals: still open
            await comm.send_to(bytes_data=b"x")
        answers = [await comm.receive_json_from(timeout=5) for _ in range(40)]
        clock["t"] += 0.5                    # tokens back: an accepted frame starts the count again
        await comm.send_to(bytes_data=b"x")
        after_pause = await comm.receive_json_from(timeout=5)
        for _ in range(32):                  # the one token left, then 31 refused in a row
            await comm.send_to(bytes_data=b"x")
        tail = []
        while True:
            out = await comm.receive_output(timeout=5)
            if out["type"] == "websocket.close":
                return answers, after_pause, tail, out
            tail.append(json.loads(out["text"]))

    with caplog.at_level("WARNING", logger="recognition.consumers"):
        answers, after_pause, tail, closed = run(scenario)
    codes = [a.get("code") for a in answers]
    assert codes == ["not_an_image"] * 10 + ["rate_limited"] * 30, codes
    assert after_pause.get("code") == "not_an_image"
    assert [a.get("code") for a in tail] == ["not_an_image"] + ["rate_limited"] * 30
    assert closed["code"] == consumers.CLOSE_FLOODED == 4429
    assert "31 messages in a row past its rate limit" in caplog.text
    assert "websocket.receive" not in hops   # frames skip Channels' per-message database hop


def test_a_rate_below_one_frame_in_two_seconds_still_lets_frames_through(engine_script, paired, settings):
    """The bucket holds two seconds' worth of frames but never less than two: at 0.25 a second the
    first two frames are answered (a little jitter at the page's pace is absorbed), the next ones
    refused until a token is back."""
    settings.MASKNET_KIOSK_MAX_FPS = 0.25

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, "none") for _ in range(3)]
        await comm.disconnect()
        return answers

    first, second, third = run(scenario)
    assert first["type"] == second["type"] == "result" and third.get("code") == "rate_limited"


# ---------------------------------------------------------------------------------- newest frame wins


def test_newest_frame_wins_under_a_burst(engine_script, paired):
    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=frame("hold|none"))
        assert await asyncio.get_running_loop().run_in_executor(None, engine_script.started.wait, 5)
        for i in range(2, 11):   # nine more while the first is being analysed
            await comm.send_to(bytes_data=frame(f"quality:burst{i}"))
        await asyncio.sleep(0.2)
        engine_script.release()
        answers = [await comm.receive_json_from(timeout=5) for _ in range(10)]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return answers

    answers = run(scenario)
    dropped = sorted(a["frame"] for a in answers if a["type"] == "dropped")
    results = [a for a in answers if a["type"] == "result"]
    assert dropped == list(range(2, 10))          # every stale frame answered, never analysed
    assert [r["frame"] for r in results] == [1, 10]
    assert engine_script.seen == ["none", "quality:burst10"]
    assert results[1]["state"] == "adjust" and results[1]["reason"] == "burst10"


def test_a_result_says_how_long_its_frame_was_at_the_server_waiting_included(engine_script, paired):
    """``server_ms``: from the frame's arrival to its answer, so that the page can tell the network's
    part of an answer's latency (kiosk.js sends frames ahead on a slow network by it): a frame that
    waited behind the one being analysed counts its wait, which the engine's ``ms`` does not."""
    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=frame("hold|none"))
        assert await asyncio.get_running_loop().run_in_executor(None, engine_script.started.wait, 5)
        await comm.send_to(bytes_data=frame("none"))   # waits behind the first
        await asyncio.sleep(0.8)
        engine_script.release()
        answers = [await comm.receive_json_from(timeout=5) for _ in range(2)]
        await comm.disconnect()
        return answers

    first, second = run(scenario)
    assert [first["frame"], second["frame"]] == [1, 2]
    # both came before the 0.8 s hold; the margin is for a loaded machine, where the consumer may
    # take the second frame in (and stamp its arrival) a few hundred ms after it was sent
    assert first["server_ms"] >= 400 and second["server_ms"] >= 400
    assert second["server_ms"] >= second["ms"] + 350                    # its wait is not engine time


def test_a_closed_socket_takes_its_waiting_frame_out_of_the_engine_queue(engine_script, paired, monkeypatch):
    """Sockets opened, sent a frame and closed while the engine is busy: their frames must not
    stay queued for the pool (a copied cookie could otherwise queue analyses without end)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(consumers, "engine_pool", lambda: pool)

    async def scenario():
        first = await open_kiosk(paired[1])
        await first.send_to(bytes_data=frame("hold|none"))
        assert await asyncio.get_running_loop().run_in_executor(None, engine_script.started.wait, 5)
        for i in range(5):
            comm = await open_kiosk(paired[1])
            await comm.send_to(bytes_data=frame(f"quality:gone{i}"))
            await asyncio.sleep(0.05)
            await comm.disconnect()
        engine_script.release()
        await asyncio.sleep(0.5)
        await first.disconnect()

    run(scenario)
    pool.shutdown(wait=True)   # what was still queued has run (or was cancelled) by now
    assert engine_script.seen == ["none"]   # only the frame that was already being analysed


def test_a_frame_arriving_while_the_server_stops_is_not_an_error(engine_script, paired, monkeypatch):
    """Ctrl-C or a deploy closes the engine pool before the sockets: a frame then is not analysed,
    logged without a traceback, and the socket is not told "internal"."""
    import logging
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    monkeypatch.setattr(consumers, "engine_pool", lambda: pool)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    monkeypatch.setattr(consumers.log, "level", logging.INFO)
    consumers.log.addHandler(handler)

    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=frame("none"))
        quiet = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return quiet

    try:
        assert run(scenario), "no 'internal' error sent to the page"
    finally:
        consumers.log.removeHandler(handler)
    assert any("the server is stopping" in r.getMessage() for r in records)
    assert not [r for r in records if r.levelno >= logging.WARNING or r.exc_info]


def test_an_engine_error_that_mentions_a_shutdown_is_still_answered(engine_script, paired, monkeypatch):
    """Only the closed pool's own refusal means the server is stopping: any other RuntimeError whose
    words hold "shutdown" (a library's message) is this frame's error, answered "internal" at once,
    not left for the page to give up on after seconds."""
    def failing(*args, **kwargs):
        raise RuntimeError("camera backend reported shutdown of stream")

    monkeypatch.setattr(consumers, "analyze_frame", failing)

    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=frame("none"))
        reply = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return reply

    reply = run(scenario)
    assert reply["type"] == "error" and reply["code"] == "internal", reply


# ------------------------------------------------------------------------------------------- voting


def test_a_masked_face_needs_several_consistent_frames(engine_script, paired, person):
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        states = [(await ask(comm, f"face:{p}:0.97:m"))["state"] for _ in range(3)]
        rows_before = await database_sync_to_async(CheckIn.objects.count)()
        fourth = await ask(comm, f"face:{p}:0.91:m")
        await comm.disconnect()
        return states, rows_before, fourth

    states, rows_before, fourth = run(scenario)
    assert states == ["recognising"] * 3 and rows_before == 0    # even at 0.97, one frame is not enough
    assert fourth["state"] == "checked_in" and fourth["name"] == "Eileen Collins" and fourth["masked"] is True
    assert fourth["box"] == [0.4, 0.3, 0.6, 0.625] and fourth["progress"] == 1.0
    checkin = CheckIn.objects.get()
    assert checkin.person_id == p and checkin.masked and checkin.frames == 4
    assert checkin.score == pytest.approx((0.97 * 3 + 0.91) / 4)
    assert fourth["time"] == f"{timezone.localtime(checkin.at):%H:%M}"


def test_result_messages_keep_their_keys_in_order(engine_script, paired, person):
    """The page and other clients read ``result`` messages as sent: the same keys in the same order
    while searching, recognising and once checked in (recognition.presence builds them, the consumer
    adds its own at the end)."""
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        texts = []
        for script in ["none", "quality:blurry"] + [f"face:{p}:0.9:u"] * 3:
            await comm.send_to(bytes_data=frame(script))
            texts.append(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return texts

    keys = ["state", "reason", "box", "masked", "name", "time", "progress", "type", "frame", "ms", "server_ms"]
    answers = [json.loads(t) for t in run(scenario)]
    assert [list(a) for a in answers] == [keys] * 5
    assert [a["state"] for a in answers] == ["searching", "adjust", "recognising", "recognising", "checked_in"]


def test_the_smallest_face_is_the_setting_at_each_frame_as_the_engine_reads_it(engine_script, paired, person,
                                                                               settings):
    """``MASKNET_KIOSK_MIN_FACE_PX`` is read at each frame, where ``analyze_frame`` reads it to decide
    which faces it embeds: a face it leaves unembedded as too small is asked to come closer, never
    voted on (as nobody: "not recognised")."""
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        before = await ask(comm, f"face:{p}:0.9:u")
        settings.MASKNET_KIOSK_MIN_FACE_PX = 200   # wider than the scripted face (128 px)
        after = [await ask(comm, f"face:{p}:0.9:u") for _ in range(3)]
        await comm.disconnect()
        return before, after

    before, after = run(scenario)
    assert before["state"] == "recognising"
    assert [(a["state"], a["reason"]) for a in after] == [("adjust", "too_small")] * 3
    assert not CheckIn.objects.exists()


def test_an_open_face_needs_three_frames_and_disagreement_blocks(engine_script, paired, person, other_person):
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        mixed = [(await ask(comm, s))["state"] for s in
                 (f"face:{p}:0.8:u", f"face:{o}:0.8:u", f"face:{p}:0.8:u", f"face:{p}:0.8:u")]
        await ask(comm, "none")   # they leave; a new presence starts
        clean = [(await ask(comm, f"face:{p}:0.8:u"))["state"] for _ in range(3)]
        await comm.disconnect()
        return mixed, clean

    mixed, clean = run(scenario)
    assert mixed == ["recognising"] * 4
    assert clean == ["recognising", "recognising", "checked_in"]
    assert CheckIn.objects.get().person_id == p


def test_two_people_side_by_side_are_asked_to_come_one_at_a_time(engine_script, paired, person, other_person):
    """While two comparable faces are in view nobody is decided on (the largest flipped between
    them: a welcome, "not recognised", "already"), nor in the frames where one of them is blurred
    for a moment and the other decided alone; once one stands alone for two frames the vote starts
    afresh. No quality audit for it: standing together is not a bad picture."""
    from audit.models import AuditEvent

    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        first = await ask(comm, f"face:{p}:0.8:u")
        pair = [await ask(comm, "several") for _ in range(consumers.QUALITY_AUDIT_FRAMES + 1)]
        # each moves in turn: the other's face fails the gate every other frame
        turns = [(await ask(comm, s))["state"] for s in ("several", f"face:{p}:0.8:u", "several", f"face:{o}:0.8:u",
                                                         "several", f"face:{p}:0.8:u")]
        alone = [(await ask(comm, f"face:{p}:0.8:u"))["state"] for _ in range(5)]
        await comm.disconnect()
        return first, pair, turns, alone

    first, pair, turns, alone = run(scenario)
    assert first["state"] == "recognising"
    assert [(a["state"], a["reason"], a["box"]) for a in pair] == [("adjust", "several", None)] * len(pair)
    assert turns == ["adjust"] * 6
    assert alone == ["adjust", "recognising", "recognising", "checked_in", "checked_in"]
    assert CheckIn.objects.get().person_id == p
    assert not AuditEvent.objects.filter(action="checkin_quality").exists()


def test_a_stranger_is_not_recognised_once_and_nothing_is_recorded(engine_script, paired, person):
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        states = [(await ask(comm, f"face:{p}:0.2{i}:m"))["state"] for i in range(9)]
        await comm.disconnect()
        return states

    states = run(scenario)
    assert states[:5] == ["recognising"] * 5 and states[5:] == ["unknown"] * 4   # stays while they stand there
    assert not CheckIn.objects.exists()
    unknown = AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN)
    assert unknown.count() == 1
    assert "best score 0.2" in unknown.get().summary and "masked" in unknown.get().summary


async def welcomed(comm, person_id: int) -> None:
    """Three clear frames of the person: checked in (the outcome that then stands)."""
    for _ in range(3):
        last = await ask(comm, f"face:{person_id}:0.8:u")
    assert last["state"] == "checked_in"


def test_outcome_stays_while_the_face_stays_and_clears_when_it_goes(engine_script, paired, person):
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        blurry = await ask(comm, "quality:blurry")          # still them, moving
        again = [await ask(comm, f"face:{p}:0.8:u") for _ in range(3)]
        gone = await ask(comm, "none")
        await comm.disconnect()
        return blurry, again, gone

    blurry, again, gone = run(scenario)
    assert blurry["state"] == "checked_in" and blurry["name"] == "Eileen Collins"
    assert [a["state"] for a in again] == ["checked_in"] * 3
    assert gone["state"] == "searching" and gone["box"] is None
    assert AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).count() == 1   # not re-decided


def test_borderline_frames_after_a_welcome_do_not_turn_it_into_not_recognised(engine_script, paired, person):
    """The welcome stays on screen; the "unknown" decisions behind it are audited, once a welcome
    (they might be someone else's, whose nearest match is the person greeted)."""
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        borderline = [await ask(comm, f"face:{p}:0.3{i % 10}:m") for i in range(20)]   # the mask goes on
        await comm.disconnect()
        return borderline

    borderline = run(scenario)
    assert {a["state"] for a in borderline} == {"checked_in"} and borderline[-1]["name"] == "Eileen Collins"
    (kept,) = AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN)
    assert f"not shown: the welcome of person #{p}, their nearest match, stayed" in kept.summary


def test_a_stranger_stepping_in_after_a_welcome_is_told_not_recognised(engine_script, paired, person,
                                                                       other_person):
    """No second without a face between them (a queue): the welcome must not stand for the next face."""
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        stranger = [(await ask(comm, f"face:{o}:0.3{i}:u"))["state"] for i in range(8)]
        await comm.disconnect()
        return stranger

    stranger = run(scenario)
    assert stranger[-1] == "unknown"
    assert AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN).count() == 1


@pytest.mark.parametrize("script", ["face:{o}:0.3{i}:u:0.1{i}", "face:{p}:0.2{i}:m"],
                         ids=["nearest-someone-else", "nearest-the-person-greeted"])
def test_a_stranger_stepping_in_after_a_welcome_ends_it_at_their_second_frame(engine_script, paired, person,
                                                                               other_person, script):
    """A stranger matches nobody, so no frame of theirs is accepted as someone else: they read "Welcome,
    Eileen Collins" until their own vote said "not recognised" (5 frames). Two frames in a row scoring
    more than WELCOME_FAR_MARGIN below the threshold against her end it, whoever their best match
    (another person, or she herself far below); the vote and its audit record are as before."""
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        stranger = [await ask(comm, script.format(o=o, p=p, i=i)) for i in range(8)]
        await comm.disconnect()
        return stranger

    seen = [(a["state"], a["name"]) for a in run(scenario)]
    assert seen[0] == ("checked_in", "Eileen Collins"), seen   # one such frame is not enough
    assert seen[1:5] == [("recognising", None)] * 4, seen
    assert seen[5:] == [("unknown", None)] * 3, seen
    (decided,) = AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN)
    assert "not shown" not in decided.summary, decided.summary
    assert AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).count() == 1


def test_the_persons_own_frames_below_their_threshold_end_their_welcome_only_far_below_and_in_a_row(
        engine_script, paired, person, other_person):
    """Eileen's own frames turning borderline (a mask, a turned head: within WELCOME_FAR_MARGIN of
    the threshold), one frame far below now and then, or frames of someone else with no score against
    her keep her welcome. Two far below in a row end it; her next vote then finds her check-in:
    "Hello again, Eileen Collins — already checked in", nothing recorded twice."""
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        kept = [await ask(comm, f"face:{p}:{s}:u") for s in ("0.38", "0.31", "0.39", "0.30")]
        kept.append(await ask(comm, f"face:{o}:0.30:u"))   # no score against her: no evidence either way
        # the first of these fills the vote's window: "unknown", nearest her within WELCOME_DOUBT_MARGIN
        ended = [await ask(comm, f"face:{p}:{s}:u") for s in ("0.30", "0.25")]
        again = [await ask(comm, f"face:{p}:0.8:u") for _ in range(5)]   # 5 of 6 after an "unknown"
        await comm.disconnect()
        return kept, ended, again

    kept, ended, again = run(scenario)
    assert {(a["state"], a["name"]) for a in kept} == {("checked_in", "Eileen Collins")}, kept
    assert [(a["state"], a["name"]) for a in ended] == [("checked_in", "Eileen Collins"), ("recognising", None)]
    assert [(a["state"], a["name"]) for a in again][-1] == ("already", "Eileen Collins"), again
    assert CheckIn.objects.count() == 1


def test_the_next_person_stepping_in_ends_the_welcome_at_their_second_frame(engine_script, paired, person,
                                                                            other_person):
    """No second without a face between them: the next person (enrolled) read the last one's welcome
    until their own vote decided. Two frames in a row accepted as them end it; their vote is as before
    (the welcomed person's last frames in the window hold it back: checked in at their 6th frame)."""
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        stayed = [await ask(comm, f"face:{p}:0.8:u") for _ in range(2)]   # two of hers left in the window
        tom = [await ask(comm, f"face:{o}:0.8:u") for _ in range(6)]
        await comm.disconnect()
        return stayed, tom

    stayed, tom = run(scenario)
    assert [a["name"] for a in stayed] == ["Eileen Collins"] * 2
    seen = [(a["state"], a["name"]) for a in tom]
    assert seen[0] == ("checked_in", "Eileen Collins"), seen    # one frame of someone else is not enough
    assert seen[1:5] == [("recognising", None)] * 4, seen
    assert seen[5] == ("checked_in", "Tom Hanks"), seen
    assert tom[1]["box"] is not None and tom[1]["masked"] is False
    assert AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).count() == 2


def test_single_frames_matched_to_someone_else_do_not_end_a_welcome(engine_script, paired, person, other_person):
    """A look-alike's match now and then among the welcomed person's own frames (one frame at a time,
    or two apart) leaves the welcome standing, and nothing is recorded again; an "already checked in"
    is ended as a welcome is, and blurred frames between two of the other person's count as no
    evidence either way."""
    p, o = person.pk, other_person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        mixed = [await ask(comm, f"face:{s}:0.8:u") for s in (o, p, p, o, p, o, p, p)]
        mixed += [await ask(comm, s) for s in (f"face:{o}:0.8:u", f"face:{p}:0.3:u", f"face:{o}:0.8:u")]
        await comm.disconnect()
        return mixed

    mixed = run(scenario)
    assert {(a["state"], a["name"]) for a in mixed} == {("checked_in", "Eileen Collins")}, mixed
    assert AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).count() == 1

    async def again():
        comm = await open_kiosk(paired[1])
        await ask(comm, "none")
        greeted = [await ask(comm, f"face:{p}:0.8:u") for _ in range(3)]
        other = [await ask(comm, s) for s in (f"face:{o}:0.8:u", "quality:blurry", f"face:{o}:0.8:u")]
        await comm.disconnect()
        return greeted, other

    greeted, other = run(again)
    assert (greeted[-1]["state"], greeted[-1]["name"]) == ("already", "Eileen Collins")
    assert [(a["state"], a["name"]) for a in other] == [("already", "Eileen Collins")] * 2 + [("recognising", None)]


def test_a_stranger_whose_nearest_match_is_the_person_greeted_is_not_shown_their_welcome(engine_script, paired,
                                                                                         person):
    """In a small gallery a stranger's nearest match is often the person just welcomed: their
    welcome stayed on screen for the stranger (masked, best score 0.22 where 0.38 is needed), who
    could believe they were checked in. Only frames close to the threshold keep it."""
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        stranger = [await ask(comm, f"face:{p}:0.2{i}:m") for i in range(8)]
        await comm.disconnect()
        return stranger

    stranger = run(scenario)
    assert stranger[-1]["state"] == "unknown" and stranger[-1].get("name") is None, stranger[-1]
    (decided,) = AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN)
    # the stranger's own best score, not the welcomed face's frames before them
    assert "best score 0.2" in decided.summary and "not shown" not in decided.summary, decided.summary


def test_a_deactivated_person_still_in_the_index_is_not_checked_in(engine_script, paired, person):
    enrollment.person_deactivate(person=person, actor=None)

    async def scenario():
        comm = await open_kiosk(paired[1])
        states = [(await ask(comm, f"face:{person.pk}:0.8:u"))["state"] for _ in range(9)]
        await comm.disconnect()
        return states

    assert run(scenario)[2:] == ["unknown"] * 7
    assert not CheckIn.objects.exists()
    # decided once in this presence: not looked up and recorded again every three frames
    assert "no longer active" in AuditEvent.objects.get(action=services.CHECKIN_UNKNOWN).summary


# ----------------------------------------------------------------------------------------- cooldown


def test_cooldown_one_check_in_per_day_per_site_across_kiosks(engine_script, paired, person):
    p = person.pk
    side_door = make_paired_kiosk("Side door")
    other_site = make_paired_kiosk("Warehouse", site="warehouse")

    async def visit(token):
        comm = await open_kiosk(token)
        for _ in range(3):
            last = await ask(comm, f"face:{p}:0.8:u")
        await comm.disconnect()
        return last

    first = run(visit, paired[1])
    again = run(visit, paired[1])
    side = run(visit, side_door[1])
    warehouse = run(visit, other_site[1])
    assert first["state"] == "checked_in"
    assert again["state"] == "already" and again["time"] == first["time"] and again["name"] == "Eileen Collins"
    assert side["state"] == "already"
    assert warehouse["state"] == "checked_in"
    assert sorted(CheckIn.objects.values_list("site", flat=True)) == ["main", "warehouse"]


def test_a_face_still_in_front_at_midnight_is_checked_in_for_the_new_day(engine_script, paired, person, settings,
                                                                          monkeypatch):
    """The welcome stands while the face stays, but not past its day: someone recognised at 23:59:58
    who is still there at 00:00:01 (a night shift's arrival) is checked in for the new day, not told
    "already checked in today" of yesterday's check-in, and the new day is not left without one."""
    settings.TIME_ZONE = "Europe/Berlin"
    p = person.pk
    tz = timezone.get_default_timezone()
    clock = {"now": timezone.make_aware(timezone.datetime(2026, 12, 3, 23, 59, 58), tz)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])

    async def scenario():
        comm = await open_kiosk(paired[1])
        await welcomed(comm, p)
        clock["now"] += timezone.timedelta(seconds=3)           # 00:00:01, the same face in front
        after = [await ask(comm, f"face:{p}:0.8:u") for _ in range(3)]
        clock["now"] += timezone.timedelta(seconds=5)           # and a few seconds more
        later = [await ask(comm, f"face:{p}:0.8:u") for _ in range(3)]
        await comm.disconnect()
        return after, later

    after, later = run(scenario)
    assert after[-1]["state"] == "checked_in" and after[-1]["time"] == "00:00", after[-1]
    assert {a["state"] for a in later} == {"checked_in"} and later[-1]["time"] == "00:00"
    days = sorted(str(d) for d in CheckIn.objects.values_list("local_date", flat=True))
    assert days == ["2026-12-03", "2026-12-04"]   # one each: the new day's is not recorded again
    assert AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).count() == 2


# -------------------------------------------------------------------------------------------- audit


def test_every_decision_is_audited_with_scores_and_no_names(engine_script, paired, person, settings):
    p = person.pk
    settings.MASKNET_CHECKIN_SNAPSHOTS = False

    async def scenario():
        comm = await open_kiosk(paired[1])
        for _ in range(8):
            dark = await ask(comm, "quality:too_dark")
            assert dark["masked"] is None   # a refused face is not embedded: masked or not, unknown
        await ask(comm, "quality:too_dark")     # one audit row per presence, however long
        await ask(comm, "none")
        for _ in range(4):
            await ask(comm, f"face:{p}:0.75:m")
        await comm.disconnect()

    run(scenario)
    rows = AuditEvent.objects.filter(object_type="recognition.kiosk", object_id=str(paired[0].pk))
    quality = rows.get(action=services.CHECKIN_QUALITY)
    accepted = rows.get(action=services.CHECKIN_ACCEPTED)
    assert "too_dark x8" in quality.summary and "unmasked" not in quality.summary
    assert f"person #{p}" in accepted.summary and "score 0.750" in accepted.summary
    assert "masked" in accepted.summary and "4 frames" in accepted.summary
    for row in rows:
        assert "Eileen" not in row.summary and "Collins" not in row.summary
    assert CheckIn.objects.get().snapshot is None


def test_snapshots_are_kept_only_when_the_setting_is_on(engine_script, paired, person, settings):
    settings.MASKNET_CHECKIN_SNAPSHOTS = True

    async def scenario():
        comm = await open_kiosk(paired[1])
        for _ in range(3):
            await ask(comm, f"face:{person.pk}:0.8:u")
        await comm.disconnect()

    run(scenario)
    assert bytes(CheckIn.objects.get().snapshot).startswith(b"\xff\xd8\xff")
    assert "snapshot kept" in AuditEvent.objects.get(action=services.CHECKIN_ACCEPTED).summary


# ------------------------------------------------------------------------------------- index reloads


def _index_version(settings, labels: list[str], thresholds: dict, active: bool = True) -> IndexVersion:
    index = Index(4)
    for i, label in enumerate(labels):
        index.add(label, np.eye(4, dtype=np.float32)[i:i + 1])
    name = f"index-test-{'-'.join(labels) or 'empty'}.npz"
    sha = index.save(settings.MASKNET_INDEX_DIR / name)
    IndexVersion.objects.filter(is_active=True).update(is_active=False)
    # people_count: a gallery large enough for its recorded thresholds to apply (gallery.site_thresholds)
    return IndexVersion.objects.create(path=name, sha256=sha, dim=4, people_count=max(len(labels), MIN_FIT_PEOPLE),
                                       template_count=len(labels), model_version="t", is_active=active,
                                       metrics={"thresholds": thresholds})


@pytest.mark.parametrize("how", ["index_updated", pytest.param("recheck", marks=pytest.mark.reliability)])
def test_the_index_is_reloaded_when_a_new_version_is_active(engine_script, paired, settings, tmp_path, how):
    """``index_updated``: the group message. ``recheck``: no message at all (it can be lost, say
    Redis restarted between the rebuild and the broadcast); the socket's periodic recheck notices
    the new active version by itself."""
    settings.MASKNET_INDEX_DIR = tmp_path
    if how == "recheck":
        settings.MASKNET_KIOSK_RECHECK_S = 0.0
    _index_version(settings, ["1"], {"masked": 0.5, "unmasked": 0.6})

    async def scenario():
        comm = await open_kiosk(paired[1])
        await ask(comm, "none")
        await ask(comm, "none")
        newer = await database_sync_to_async(_index_version)(settings, ["1", "2"], {"masked": 0.4, "unmasked": 0.45})
        if how == "index_updated":
            await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": newer.pk})
            await asyncio.sleep(0.1)
        await ask(comm, "none")
        await comm.disconnect()

    run(scenario)
    (first, t1), (second, t2), (third, t3) = engine_script.indexes
    assert first is second and len(first) == 1 and t1 == {"masked": 0.5, "unmasked": 0.6}   # loaded once
    assert len(third) == 2 and t3 == {"masked": 0.4, "unmasked": 0.45}



def test_the_kiosk_applies_the_fitted_percentile_not_the_thresholds_as_built(engine_script, paired, settings,
                                                                            tmp_path):
    """A version's ``fitted`` percentile reaches the engine with the thresholds as built, so that a
    lowered MASKNET_THRESHOLD_OFFSET acts without a rebuild (gallery.site_threshold)."""
    from recognition.engine.gallery import site_threshold

    settings.MASKNET_INDEX_DIR = tmp_path
    _index_version(settings, ["1"], {"masked": 0.95, "unmasked": 0.9, "source": "site", "impostor_pairs": 500,
                                     "fitted": {"unmasked": 0.7, "masked": None}})

    async def scenario():
        comm = await open_kiosk(paired[1])
        await ask(comm, "none")
        await comm.disconnect()

    run(scenario)
    ((_, passed),) = engine_script.indexes
    assert passed == {"masked": 0.95, "unmasked": 0.9, "fitted": {"unmasked": 0.7, "masked": None}}
    assert site_threshold(0.8, passed, "unmasked") == 0.8 and site_threshold(0.8, passed, "masked") == 0.8

def test_an_unreadable_index_is_answered_unavailable_and_tried_again(engine_script, paired, settings, tmp_path,
                                                                       monkeypatch):
    """An index file that cannot be read (a shared volume lagging the broadcast) must not make the
    kiosk vote everybody "unknown": its frames are answered ``unavailable`` without analysis, and
    the load is tried again (after ``INDEX_RETRY_S``) until the file is there."""
    from enrollment.models import index_cache_clear

    index_cache_clear()
    settings.MASKNET_INDEX_DIR = tmp_path
    version = _index_version(settings, ["1"], {"masked": 0.5, "unmasked": 0.6})
    hidden = version.file.with_suffix(".hidden")
    version.file.rename(hidden)
    monkeypatch.setattr(consumers, "INDEX_RETRY_S", 0.5)
    reads = []
    real_load = IndexVersion.load

    def counted_load(self):
        reads.append(self.pk)
        return real_load(self)

    monkeypatch.setattr(IndexVersion, "load", counted_load)

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, "face:1:0.9:u") for _ in range(2)]   # the second within the retry delay
        hidden.rename(version.file)
        await asyncio.sleep(0.6)
        answers.append(await ask(comm, "face:1:0.9:u"))
        await comm.disconnect()
        return answers

    answers = run(scenario)
    assert [a.get("code") for a in answers[:2]] == ["unavailable"] * 2
    assert "cannot be read" in answers[0]["message"]
    assert len(reads) == 2        # the second frame came within the retry delay: not read again
    assert answers[2]["type"] == "result"
    ((index, thresholds),) = engine_script.indexes     # only the frame after the file came back
    assert len(index) == 1 and thresholds == {"masked": 0.5, "unmasked": 0.6}
    assert not AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN).exists()


def test_a_version_announced_while_the_index_loads_wins(engine_script, paired, settings, tmp_path, monkeypatch):
    """``index.updated`` arriving while the kiosk reads the previous version's file: the frame is
    matched against the new version, never against the one that was being read."""
    import threading

    from enrollment.models import index_cache_clear

    index_cache_clear()
    settings.MASKNET_INDEX_DIR = tmp_path
    first = _index_version(settings, ["1"], {"masked": 0.5, "unmasked": 0.6})
    reading, gate = threading.Event(), threading.Event()
    real_load = IndexVersion.load

    def slow_load(self):
        if self.pk == first.pk:
            reading.set()
            assert gate.wait(5)
        return real_load(self)

    monkeypatch.setattr(IndexVersion, "load", slow_load)

    async def scenario():
        comm = await open_kiosk(paired[1])
        await comm.send_to(bytes_data=frame("none"))
        assert await asyncio.get_running_loop().run_in_executor(None, reading.wait, 5)
        newer = await database_sync_to_async(_index_version)(settings, ["1", "2"], {"masked": 0.4, "unmasked": 0.45})
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": newer.pk})
        await asyncio.sleep(0.1)
        gate.set()
        answer = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return answer

    assert run(scenario)["type"] == "result"
    ((index, thresholds),) = engine_script.indexes
    assert len(index) == 2 and thresholds == {"masked": 0.4, "unmasked": 0.45}


def test_enrolled_people_are_not_voted_unknown_while_no_index_is_active(engine_script, paired, person, settings,
                                                                       tmp_path):
    """An erasure that found the active index unreadable withdraws it (``index_withdrawn``) until
    the rebuild: with people enrolled, the kiosk answers "unavailable" meanwhile instead of voting
    them "Not recognised" (audited as unknown) against a gallery it does not have."""
    settings.MASKNET_INDEX_DIR = tmp_path
    FacePhoto.objects.create(person=person, image="faces/x.jpg", sha256="0" * 64, width=64, height=64)
    _index_version(settings, [str(person.pk)], {})

    async def scenario():
        comm = await open_kiosk(paired[1])
        assert (await ask(comm, f"face:{person.pk}:0.8:u"))["state"] == "recognising"
        await database_sync_to_async(lambda: IndexVersion.objects.update(is_active=False))()
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": None})
        withdrawn = [await ask(comm, f"face:{person.pk}:0.2:u") for _ in range(7)]
        back = await database_sync_to_async(_index_version)(settings, [str(person.pk), "998"], {})
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": back.pk})
        after = [await ask(comm, f"face:{person.pk}:0.8:u") for _ in range(3)]
        await comm.disconnect()
        return withdrawn, after

    withdrawn, after = run(scenario)
    assert {(a["type"], a["code"], a["message"]) for a in withdrawn} == {
        ("error", "unavailable", consumers.INDEX_MISSING)}
    assert after[-1]["state"] == "checked_in", after   # counted afresh on the new version
    assert not AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN).exists()


def test_the_first_people_enrolled_are_not_voted_unknown_before_the_first_index(engine_script, paired, person,
                                                                                monkeypatch):
    """A kiosk opened on a site nobody is enrolled at yet: the first photo added sends no
    ``index.updated``, and the first rebuild takes seconds; meanwhile the enrolled person was voted
    "Not recognised" (audited unknown). Without an index the kiosk looks again every second."""
    monkeypatch.setattr(consumers, "NO_INDEX_RECHECK_S", 0.0)

    async def scenario():
        comm = await open_kiosk(paired[1])
        assert (await ask(comm, "none"))["state"] == "searching"   # nobody enrolled: nothing to wait for
        await database_sync_to_async(FacePhoto.objects.create)(person=person, image="faces/x.jpg", sha256="0" * 64,
                                                               width=64, height=64)
        answers = [await ask(comm, f"face:{person.pk}:0.2:u") for _ in range(7)]
        await comm.disconnect()
        return answers

    answers = run(scenario)
    assert {(a["type"], a.get("code")) for a in answers} == {("error", "unavailable")}, answers
    assert not AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN).exists()


def test_a_frame_matched_against_a_replaced_index_is_not_counted(engine_script, paired, person, settings, tmp_path):
    """A frame in the engine when ``index.updated`` arrives was matched against the old gallery (a
    wrong photo since removed): it does not complete the vote begun on that gallery."""
    settings.MASKNET_INDEX_DIR = tmp_path
    _index_version(settings, [str(person.pk)], {})

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, f"face:{person.pk}:0.8:u") for _ in range(2)]
        await comm.send_to(bytes_data=frame(f"hold|face:{person.pk}:0.8:u"))
        assert await asyncio.to_thread(engine_script.started.wait, 5)
        newer = await database_sync_to_async(_index_version)(settings, [str(person.pk), "999"], {})
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": newer.pk})
        await asyncio.sleep(0.1)   # heard before the frame's answer
        engine_script.release()
        answers.append(await comm.receive_json_from(timeout=5))
        answers += [await ask(comm, f"face:{person.pk}:0.8:u") for _ in range(3)]
        await comm.disconnect()
        return answers

    states = [a["state"] for a in run(scenario)]
    assert states == ["recognising"] * 5 + ["checked_in"], states   # three frames on the new gallery


def test_a_replaced_index_leaves_the_processes_memory(engine_script, paired, settings, tmp_path):
    """After an erasure the replaced version (with the person's templates) must not stay cached in
    any process: loading another version evicts it, and ``index.updated`` clears the cache even in
    a process that loads nothing afterwards."""
    import gc
    import weakref

    from enrollment.models import index_cache_clear

    index_cache_clear()
    settings.MASKNET_INDEX_DIR = tmp_path
    old = _index_version(settings, ["1", "2"], {})
    ref = weakref.ref(old.load())
    active = _index_version(settings, ["1"], {})
    active.load()
    gc.collect()
    assert ref() is None, "the replaced version is still held by the cache"

    async def scenario():
        comm = await open_kiosk(paired[1])
        await ask(comm, "none")                       # this process now holds the active version
        assert engine_script.indexes[-1][0] is not None
        ref = weakref.ref(engine_script.indexes[-1][0])
        engine_script.indexes.clear()
        # a newer version (a fixed 99 was at times the active one's own id on PostgreSQL, whose ids
        # go on from earlier tests: the cache then rightly kept it)
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": active.pk + 1})
        # until the socket has handled the message
        deadline = time.monotonic() + 10
        while ref() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            gc.collect()
        await comm.disconnect()
        return ref

    ref = run(scenario)
    gc.collect()
    assert ref() is None, "index.updated left the version in memory"


def test_an_index_made_by_an_earlier_recognizer_version_is_rebuilt_once(engine_script, paired, settings, tmp_path,
                                                                        no_background_rebuilds):
    """After an upgrade the active index holds templates of the old pipeline: the first kiosk that
    loads it asks for a rebuild; later kiosks (and a failed rebuild) do not ask again. An index of
    the current version asks for nothing."""
    from enrollment.models import TrainingRun
    from enrollment.recognizer import template_version
    from enrollment.services import OUTDATED_REASON

    settings.MASKNET_INDEX_DIR = tmp_path
    current = _index_version(settings, ["1"], {"masked": 0.5, "unmasked": 0.6})
    current.model_version = template_version()
    current.save()

    async def visit():
        comm = await open_kiosk(paired[1])
        await ask(comm, "none")
        await comm.disconnect()

    run(visit)
    assert not TrainingRun.objects.exists() and no_background_rebuilds == []
    _index_version(settings, ["1", "2"], {"masked": 0.5, "unmasked": 0.6})     # model_version "t"
    run(visit)
    (asked,) = TrainingRun.objects.all()
    assert asked.reason == OUTDATED_REASON and no_background_rebuilds == [asked.pk]
    TrainingRun.objects.filter(pk=asked.pk).update(state=TrainingRun.State.FAILED)
    run(visit)
    assert TrainingRun.objects.count() == 1 and no_background_rebuilds == [asked.pk]


def unavailable_logged(monkeypatch) -> list[logging.LogRecord]:
    """The consumer's log records from now on, its once-a-minute database warning due at once."""
    monkeypatch.setattr(consumers, "_unavailable_logged_at", -1e9)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    monkeypatch.setattr(consumers.log, "handlers", [*consumers.log.handlers, handler])
    return records


@pytest.mark.reliability
def test_an_unreachable_database_is_answered_unavailable_and_service_resumes(engine_script, paired, person,
                                                                             monkeypatch):
    """A check-in that cannot be written is answered ``unavailable`` (not ``internal``), nothing is
    half-recorded, and the next frames check the person in once the database answers again."""
    from django.db import OperationalError

    real = services.checkin_record
    down = {"on": True}

    def flaky(**kwargs):
        if down["on"]:
            raise OperationalError("connection refused\nDETAIL: the statement, never logged")
        return real(**kwargs)

    monkeypatch.setattr(services, "checkin_record", flaky)
    records = unavailable_logged(monkeypatch)
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, f"face:{p}:0.9:u") for _ in range(3)]
        rows_while_down = await database_sync_to_async(CheckIn.objects.count)()
        down["on"] = False
        after = [await ask(comm, f"face:{p}:0.9:u") for _ in range(3)]
        await comm.disconnect()
        return answers, rows_while_down, after

    answers, rows_while_down, after = run(scenario)
    assert [a.get("state") for a in answers[:2]] == ["recognising"] * 2
    assert answers[2]["type"] == "error" and answers[2]["code"] == "unavailable"
    assert "temporarily unavailable" in answers[2]["message"].lower()
    assert rows_while_down == 0
    assert after[-1]["state"] == "checked_in" and CheckIn.objects.count() == 1
    # the log says which database error it was (its first line only)
    said = [r.getMessage() for r in records if "unreachable" in r.getMessage()]
    assert said == ["kiosk socket: the database is unreachable (OperationalError: connection refused); "
                    "answering 'unavailable'"], said


def test_a_check_in_into_a_full_database_is_answered_unavailable_and_logged_as_a_full_disk(
        engine_script, paired, person, monkeypatch, tmp_path):
    """A full disk under the database was logged as "the database is unreachable", which sends an
    operator to the network; it is said as a full disk (SQLite's real ``SQLITE_FULL`` here)."""
    from django.db import OperationalError

    from tests.conftest import sqlite_full_error

    full = sqlite_full_error(tmp_path)

    def refused(**kwargs):
        raise OperationalError(*full.args) from full

    monkeypatch.setattr(services, "checkin_record", refused)
    records = unavailable_logged(monkeypatch)

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, f"face:{person.pk}:0.9:u") for _ in range(3)]
        await comm.disconnect()
        return answers

    answers = run(scenario)
    assert answers[2]["type"] == "error" and answers[2]["code"] == "unavailable"
    assert not CheckIn.objects.exists()
    assert [r.getMessage() for r in records if "database" in r.getMessage()] == [
        "kiosk socket: the database's disk is full (OperationalError: database or disk is full); "
        "answering 'unavailable'"]


def test_a_quality_audit_the_database_could_not_take_is_written_later(engine_script, paired, monkeypatch):
    """A presence refused for quality is audited once; when that write fails (database away), the
    next refused frame writes it (it was marked written before the write, and never was)."""
    from django.db import OperationalError

    real = services.checkin_reject_record
    down = {"on": True}

    def flaky(**kwargs):
        if down["on"]:
            down["on"] = False
            raise OperationalError("connection refused")
        return real(**kwargs)

    monkeypatch.setattr(services, "checkin_reject_record", flaky)

    async def scenario():
        comm = await open_kiosk(paired[1])
        answers = [await ask(comm, "quality:too_dark") for _ in range(consumers.QUALITY_AUDIT_FRAMES + 2)]
        await comm.disconnect()
        return answers

    answers = run(scenario)
    assert answers[consumers.QUALITY_AUDIT_FRAMES - 1]["code"] == "unavailable"
    assert answers[-1]["reason"] == "too_dark"
    assert AuditEvent.objects.filter(action=services.CHECKIN_QUALITY).count() == 1


@pytest.mark.reliability
@pytest.mark.parametrize("admin_session", [False, True])
def test_a_socket_opened_while_the_database_is_down_is_told_and_closed(engine_script, paired, monkeypatch,
                                                                      admin_session):
    """Also from a browser that holds an admin's session besides the kiosk's cookie (an administrator
    paired the kiosk on it): the kiosk's socket never reads the session, which would fail first."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    from recognition.models import Kiosk

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server")

    session = ""
    if admin_session:
        store = SessionStore()
        store.create()
        session = f"sessionid={store.session_key}"
        monkeypatch.setattr(SessionStore, "load", down)
    monkeypatch.setattr(Kiosk.objects, "for_device_token", down)

    async def scenario():
        comm = communicator(paired[1], more_cookies=session)
        connected, _ = await comm.connect(timeout=5)
        message = await comm.receive_json_from(timeout=5)
        closed = await comm.receive_output(timeout=5)
        return connected, message, closed

    connected, message, closed = run(scenario)
    assert connected and message["type"] == "error" and message["code"] == "unavailable"
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_TRY_AGAIN}
    assert 3000 <= closed["code"] <= 4999     # Daphne refuses other codes than 1000 and 3000-4999


@pytest.mark.reliability
def test_a_socket_opened_while_the_channel_layer_is_away_works_and_joins_its_groups_later(
        engine_script, paired, monkeypatch, caplog):
    """Redis down at the handshake (joining the groups raises): the socket opens all the same, frames
    are answered (they need only the database), and the log says so; once the layer answers again the
    socket's next recheck joins its groups: the older socket of its kiosk is told it was replaced
    (the announcement waited for the join), and a revocation reaches it at once. Leaving the groups
    while the layer is away is no error either. Failed the handshake before (the socket never opened)."""
    from enrollment import events

    kiosk, token = paired
    layer = get_channel_layer()
    real_add, real_discard = layer.group_add, layer.group_discard
    down = [False]

    async def group_add(group, channel):
        if down[0]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        await real_add(group, channel)

    async def group_discard(group, channel):
        if down[0]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        await real_discard(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    monkeypatch.setattr(layer, "group_discard", group_discard)
    monkeypatch.setattr(consumers, "GROUP_RETRY_S", 0.0, raising=False)   # the join is tried again at the next frame

    def members(group: str) -> int:
        return len(layer.groups.get(group, {}))

    async def scenario():
        older = await open_kiosk(token)                 # opened before the outage, in its groups
        down[0] = True
        closing = await open_kiosk(token)               # opened and closed during the outage
        await closing.disconnect()
        comm = await open_kiosk(token)
        answers = [(await ask(comm, "none"))["state"] for _ in range(2)]
        assert members(kiosk.group_name) == 1 and members(events.KIOSKS_GROUP) == 1   # only the older one
        down[0] = False
        answers.append((await ask(comm, "none"))["state"])   # its recheck joins the groups
        replaced = await older.receive_json_from(timeout=5)
        older_closed = await older.receive_output(timeout=5)
        await older.disconnect()
        assert members(kiosk.group_name) == 1 and members(events.KIOSKS_GROUP) == 1   # now this one
        await database_sync_to_async(services.kiosk_revoke)(kiosk=kiosk, actor=None)
        revoked = await comm.receive_json_from(timeout=5)
        closed = await comm.receive_output(timeout=5)
        return answers, replaced, older_closed, revoked, closed

    with caplog.at_level("INFO", logger="recognition.consumers"):
        answers, replaced, older_closed, revoked, closed = run(scenario)
    assert answers == ["searching"] * 3
    assert replaced == {"type": "replaced"} and older_closed == {"type": "websocket.close", "code": 4409}
    assert revoked == {"type": "revoked"} and closed == {"type": "websocket.close", "code": 4403}
    joins = [r.getMessage() for r in caplog.records if "channel groups" in r.getMessage()]
    # said once per socket (the two opened during the outage), not at every try; then the rejoin
    assert [m.split(": ", 1)[1][:31] for m in joins] == ["cannot join its channel groups "] * 2 + [
        "joined its channel groups again"], joins


@pytest.mark.reliability
def test_a_socket_open_through_a_redis_outage_rejoins_its_groups_as_soon_as_redis_is_back(
        engine_script, paired, monkeypatch):
    """A socket in its groups before Redis restarted empty (no persistence: it forgot every group
    member): once the channel layer has seen Redis answer again (its ``outage_epoch``), the socket's
    next frame re-joins the groups and re-reads its kiosk row, so a revocation published after Redis
    came back reaches it at once, and one published while it was away (lost) closes it at that
    frame. Both waited for the next ``MASKNET_KIOSK_RECHECK_S`` recheck (30 s) before: meanwhile a
    revoked kiosk went on checking people in and a new index was not loaded."""
    from enrollment import events

    kiosk, token = paired
    other_kiosk, other_token = make_paired_kiosk("Back door")
    layer = get_channel_layer()

    def members(group: str) -> int:
        return len(layer.groups.get(group, {}))

    async def scenario():
        comm, other = await open_kiosk(token), await open_kiosk(other_token)
        answers = [(await ask(c, "none"))["state"] for c in (comm, other)]
        layer.groups.clear()                                   # Redis restarted empty...
        await database_sync_to_async(services.kiosk_revoke)(kiosk=other_kiosk, actor=None)   # (lost)
        answers.append((await ask(other, "none"))["state"])    # ...and the layer has not seen it back yet
        monkeypatch.setattr(layer, "outage_epoch", 1, raising=False)   # now it has
        answers.append((await ask(comm, "none"))["state"])     # this frame's recheck re-joins the groups
        joined = members(kiosk.group_name), members(events.KIOSKS_GROUP)
        await other.send_to(bytes_data=frame("none"))          # the other's first frame since: closed
        other_closed = [await other.receive_json_from(timeout=5), await other.receive_output(timeout=5)]
        await database_sync_to_async(services.kiosk_revoke)(kiosk=kiosk, actor=None)
        revoked = [await comm.receive_json_from(timeout=5), await comm.receive_output(timeout=5)]
        return answers, joined, other_closed, revoked

    answers, joined, other_closed, revoked = run(scenario)
    assert answers == ["searching"] * 4
    assert joined == (1, 1)
    assert other_closed == [{"type": "revoked"}, {"type": "websocket.close", "code": 4403}]
    assert revoked == [{"type": "revoked"}, {"type": "websocket.close", "code": 4403}]


@pytest.mark.reliability
@pytest.mark.parametrize("gaps, checked_in", [
    ([2.0] * 6, True),                      # a slow server (many kiosks): every answer 2 s apart
    ([0.15, 2.0, 0.15], False),             # a fast stream with one 2 s pause: the vote restarts
])
def test_the_vote_tolerates_a_slow_server_but_not_a_pause(engine_script, paired, person, monkeypatch, gaps,
                                                          checked_in):
    """The vote's gap rule (1.5 s between usable frames) stretches to three recent analysis
    intervals, so kiosks still check people in when the server answers slowly under load."""
    from types import SimpleNamespace

    clock = {"t": 1000.0}
    monkeypatch.setattr(consumers, "time", SimpleNamespace(monotonic=lambda: clock["t"],
                                                           perf_counter=__import__("time").perf_counter))
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        states = [(await ask(comm, f"face:{p}:0.9:u"))["state"]]
        for gap in gaps:
            clock["t"] += gap
            states.append((await ask(comm, f"face:{p}:0.9:u"))["state"])
        await comm.disconnect()
        return states

    states = run(scenario)
    assert ("checked_in" in states) is checked_in, states
    assert CheckIn.objects.count() == int(checked_in)


def _real_presence_rules(monkeypatch) -> dict:
    """The presence rules as shipped (the fixture ends presences at once) and a clock the test moves."""
    from types import SimpleNamespace

    monkeypatch.setattr(consumers, "LOST_AFTER_S", 1.0)
    monkeypatch.setattr(consumers, "LOST_AFTER_INTERVALS", 3.0)
    clock = {"t": 1000.0}
    monkeypatch.setattr(consumers, "time", SimpleNamespace(monotonic=lambda: clock["t"],
                                                           perf_counter=__import__("time").perf_counter))
    return clock


def test_on_a_slow_server_one_missed_face_does_not_forget_an_unknown_verdict(engine_script, paired, person,
                                                                            monkeypatch):
    """At one answer every 2 s (many kiosks), a frame where the detector missed the face is not the
    end of the presence: a stranger voted "unknown" still needs the stricter count afterwards,
    not the plain one again (three or four lucky frames)."""
    clock = _real_presence_rules(monkeypatch)
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        states = []
        for script in [f"face:{p}:0.2:m"] * 8 + ["none"] + [f"face:{p}:0.5:m"] * 4:
            clock["t"] += 2.0
            states.append((await ask(comm, script))["state"])
        await comm.disconnect()
        return states

    states = run(scenario)
    assert states[7] == "unknown" and states[8:] == ["unknown"] * 5, states
    assert CheckIn.objects.count() == 0


def test_after_a_long_pause_the_next_face_is_not_given_the_last_outcome(engine_script, paired, person,
                                                                        monkeypatch):
    """Frames that stop and start again (camera replugged, page stalled) end the presence: the
    face seen after the pause is not greeted with the previous person's welcome."""
    clock = _real_presence_rules(monkeypatch)
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        welcome = []
        for _ in range(3):
            clock["t"] += 0.15
            welcome.append((await ask(comm, f"face:{p}:0.9:u"))["state"])
        clock["t"] += 600.0
        after = await ask(comm, f"face:{p}:0.1:u")
        await comm.disconnect()
        return welcome, after

    welcome, after = run(scenario)
    assert welcome[-1] == "checked_in"
    assert after["state"] == "recognising" and after["name"] is None, after


@pytest.mark.reliability
def test_an_answer_to_a_page_that_went_away_is_dropped_quietly(caplog):
    """Daphne raises when a frame's answer is sent after the page closed but before the consumer
    heard of it: the consumer stops answering that socket, with no error or traceback logged."""
    consumer = consumers.KioskConsumer()
    consumer._closed, consumer._pending = False, (7, b"\xff\xd8\xff", 0.0)

    async def closed_protocol(**kwargs):
        raise RuntimeError("Attempt to send on a closed protocol")

    consumer.send = closed_protocol
    with caplog.at_level("INFO"):
        run(consumer._send, {"type": "result", "frame": 6})
    assert consumer._closed and consumer._pending is None
    assert not [r for r in caplog.records if r.levelno >= 30]


@pytest.mark.reliability
def test_a_revocation_notice_while_the_database_is_away_waits_for_the_recheck(engine_script, paired, monkeypatch):
    """``kiosk.revoked`` makes the socket re-read its kiosk row; with the database away that read
    fails: the socket stays up (no crash, no traceback) and answers frames."""
    from django.db import OperationalError

    from recognition.models import Kiosk

    kiosk, token = paired
    reads = []

    async def scenario():
        comm = await open_kiosk(token)

        def down(token):
            reads.append(token)
            raise OperationalError("could not connect to server")

        monkeypatch.setattr(Kiosk.objects, "for_device_token", down)
        await get_channel_layer().group_send(kiosk.group_name, {"type": "kiosk.revoked"})
        await asyncio.sleep(0.1)
        answer = await ask(comm, "none")
        await comm.disconnect()
        return answer

    assert run(scenario)["state"] == "searching"
    assert reads and set(reads) == {token}   # the notice was handled: the kiosk row was read again (and failed)


def test_after_unknown_more_agreement_is_needed_even_after_the_gallery_changes(engine_script, paired, person,
                                                                          settings, tmp_path):
    """An "unknown" presence needs MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN agreeing frames; a new
    index version (someone enrolled on the spot, or any change elsewhere: another site's enrolment,
    gallery adaptation after someone else's check-in) starts the count afresh on that stricter
    count: a stranger called unknown does not get the easier one back with a rebuild."""
    settings.MASKNET_INDEX_DIR = tmp_path
    _index_version(settings, ["1"], {"masked": 0.38, "unmasked": 0.42})
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        first = [(await ask(comm, f"face:{p}:0.2:m"))["state"] for _ in range(6)]
        doubted = [(await ask(comm, f"face:{p}:0.8:m"))["state"] for _ in range(4)]
        await database_sync_to_async(_index_version)(settings, ["1", "2"], {"masked": 0.38, "unmasked": 0.42})
        await get_channel_layer().group_send("kiosks", {"type": "index.updated", "version": 2})
        await asyncio.sleep(0.1)
        fresh = [(await ask(comm, f"face:{p}:0.8:m"))["state"] for _ in range(5)]
        await comm.disconnect()
        return first, doubted, fresh

    first, doubted, fresh = run(scenario)
    assert first[-1] == "unknown" and doubted == ["unknown"] * 4   # 4 masked frames would do otherwise
    # the frames counted before the new version are dropped (a fifth agreeing one would have done),
    # and the new count still needs 5
    assert fresh == ["unknown"] * 4 + ["checked_in"]
    assert CheckIn.objects.get().person_id == p


def test_an_unknown_face_that_lowers_its_mask_is_answered_bare(engine_script, paired, person, settings, tmp_path):
    """A masked "not recognised" tells staff to lower the mask for a moment (the page's advice follows
    the answer's ``masked``); when the bare face is still not recognised, the answer says bare, so the
    page turns to the reception text instead of repeating "lower your mask". Recorded once."""
    settings.MASKNET_INDEX_DIR = tmp_path
    _index_version(settings, ["1"], {"masked": 0.38, "unmasked": 0.42})
    p = person.pk

    async def scenario():
        comm = await open_kiosk(paired[1])
        masked = [await ask(comm, f"face:{p}:0.2:m") for _ in range(6)]
        bare = [await ask(comm, f"face:{p}:0.2:u") for _ in range(16)]
        await comm.disconnect()
        return masked, bare

    masked, bare = run(scenario)
    assert (masked[-1]["state"], masked[-1]["masked"]) == ("unknown", True)
    assert {r["state"] for r in bare} == {"unknown"} and bare[-1]["masked"] is False
    assert AuditEvent.objects.filter(action=services.CHECKIN_UNKNOWN).count() == 1


# --------------------------------------------------------------- faces across the frame's edge


@pytest.fixture
def edge_engine(engine_script, monkeypatch):
    """The scripted engine, and EDGE_STILL_S of 0.6 s, every frame searched across the edge."""
    from types import SimpleNamespace

    scripted = consumers.analyze_frame

    def analyze(data, index, thresholds, snapshot=False, adapt_margin=None, search_edges=True, welcome=None,
                background=()):
        """``edge:<x1>``: a face found across the right edge (when searched there); ``blur``: a blurred face,
        left out where the presence has let its place go (``background``), as analyze_frame leaves it out."""
        script = data[len(JPEG_MAGIC):].decode()
        if script == "blur":   # someone turned away in front (refused: pose), a larger blurred "face" behind
            place, front = (0.6, 0.3, 0.85, 0.6), (0.1, 0.3, 0.32, 0.58)

            def refused(box: tuple[float, ...], reason: str) -> SimpleNamespace:
                return SimpleNamespace(box=tuple(v * s for v, s in zip(box, (640, 480, 640, 480), strict=True)),
                                       masked=False, across_edge=False, embedding=None,
                                       aligned=np.zeros((8, 8, 3), np.uint8),
                                       quality=SimpleNamespace(ok=False, reason=reason))

            face = refused(front, "pose") if place in background else refused(place, "blurry")
            return consumers.FrameAnalysis(size=(640, 480), face=face, blurred=(place,), in_focus=(front,), ms=5)
        if script.startswith("edge:"):
            if not search_edges:
                return consumers.FrameAnalysis(size=(640, 480), ms=5)
            x1 = float(script.split(":")[1])
            face = SimpleNamespace(box=(x1, 100.0, 640.0, 260.0), masked=False, aligned=np.zeros((8, 8, 3), np.uint8),
                                   embedding=None, across_edge=True,
                                   quality=SimpleNamespace(ok=False, reason="partial"))
            return consumers.FrameAnalysis(size=(640, 480), face=face, ms=5)
        return scripted(data, index, thresholds, snapshot, adapt_margin, search_edges, welcome)

    monkeypatch.setattr(consumers, "analyze_frame", analyze)
    monkeypatch.setattr(consumers, "EDGE_STILL_S", 0.6)
    monkeypatch.setattr(consumers, "EDGE_SEARCH_EVERY_S", 0.0)
    return engine_script


def _reasons_over_time(token: str, script: str, n: int, *, every: float) -> list[str | None]:
    """The reasons the kiosk answers ``n`` frames of ``script``, sent ``every`` seconds apart."""
    async def scenario():
        comm = await open_kiosk(token)
        out = []
        for _ in range(n):
            out.append((await ask(comm, script))["reason"])
            await asyncio.sleep(every)
        await comm.disconnect()
        return out

    return async_to_sync(scenario)()


def test_a_blurred_face_that_stays_in_one_place_is_let_go_by_the_socket(edge_engine, paired, monkeypatch):
    """The socket hands the presence's let-go places to the engine with each frame: a window out of
    focus behind someone, found as a blurred face larger than theirs in one place, is the frame's face
    ("hold still") for EDGE_STILL_S, then left out: the face in front is answered."""
    monkeypatch.setattr(consumers, "LOST_AFTER_S", 1.0)   # a place missed for longer is forgotten
    out = _reasons_over_time(paired[1], "blur", 8, every=0.15)
    assert out[0] == "blurry" and out[-1] == "pose" and out.index("pose") >= 2, out


def test_someone_half_out_at_the_spot_of_a_face_let_go_long_ago_is_asked_to_move(edge_engine, paired):
    """The edge face's place was kept until a face was found elsewhere: someone else half out at
    the same spot, any time later, was let go at once (never asked to move to the middle)."""
    async def scenario():
        comm = await open_kiosk(paired[1])
        out = [(await ask(comm, "edge:500"))["reason"]]     # someone half out, once; they leave
        for _ in range(4):
            await asyncio.sleep(0.25)
            out.append((await ask(comm, "none"))["reason"])  # nobody for a second
        out.append((await ask(comm, "edge:500"))["reason"])  # someone else, half out at that spot
        await comm.disconnect()
        return out

    out = async_to_sync(scenario)()
    assert out[-1] == "partial", out


def test_a_face_across_the_edge_that_stays_is_let_go_for_good(edge_engine, paired, monkeypatch):
    """Once let go, it stays so while the empty scene is searched now and then (EDGE_SEARCH_EVERY_S)."""
    monkeypatch.setattr(consumers, "EDGE_SEARCH_EVERY_S", 0.5)
    out = _reasons_over_time(paired[1], "edge:500", 20, every=0.125)
    first_none = out.index(None)
    assert first_none >= 1 and all(r is None for r in out[first_none:]), out


def test_someone_half_out_after_the_kiosk_sent_no_frames_for_a_while_is_asked_to_move(edge_engine, paired,
                                                                                       monkeypatch):
    """No frame for VOTE_MAX_GAP_CAP_S (a camera replugged, the page stalled) ends a presence; the
    place of a face across the edge seen before it was kept, and whoever stood there next let go."""
    monkeypatch.setattr(consumers, "VOTE_MAX_GAP_CAP_S", 1.0)

    async def scenario():
        comm = await open_kiosk(paired[1])
        first = (await ask(comm, "edge:500"))["reason"]
        await asyncio.sleep(1.2)
        later = (await ask(comm, "edge:500"))["reason"]
        await comm.disconnect()
        return first, later

    assert async_to_sync(scenario)() == ("partial", "partial")


def test_a_face_across_the_edge_let_go_stays_let_go_after_a_visitor(edge_engine, paired):
    """A visitor's face (found away from the edge) timed the background's edge "face" afresh: the
    empty kiosk said "move to the middle" for EDGE_STILL_S after every visitor. Only one not let go
    yet is forgotten so."""
    async def scenario():
        comm = await open_kiosk(paired[1])
        out = []
        for _ in range(5):                                      # the background's, still: let go
            out.append((await ask(comm, "edge:500"))["reason"])
            await asyncio.sleep(0.2)
        out.append((await ask(comm, "quality:blurry"))["reason"])   # a visitor
        out.append((await ask(comm, "edge:500"))["reason"])          # gone: the background's again
        await comm.disconnect()
        return out

    out = async_to_sync(scenario)()
    assert out[0] == "partial" and out[4] is None and out[5] == "blurry", out
    assert out[6] is None, out
