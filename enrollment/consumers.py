"""Live training progress for the admin pages (group ``training``)."""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from masknet_site.channel_layer import outage_epoch
from masknet_site.session_lifetime import login_current

from . import events

RECHECK_S = 30.0   # an open socket re-reads its user (and session) at most this often, when it has news
REJOIN_S = 3600.0  # ... and joins its group again this often: channel layers forget members after a day
JOIN_RETRY_S = 5.0  # ... or this soon while the layer (Redis) could not be reached when it last tried
KEEPER_TICK_S = 1.0  # ... or at once (within this) when the layer saw Redis come back or restart

log = logging.getLogger(__name__)


def _may_watch(user) -> bool:
    """Staff who may view training runs."""
    return bool(user and user.is_authenticated and user.is_active and user.is_staff
                and user.has_perm("enrollment.view_trainingrun"))


class TrainingProgressConsumer(AsyncJsonWebsocketConsumer):
    """Sends ``{"type": "progress", "run": {...}}`` and ``{"type": "index", ...}`` to staff who may
    view training runs; anyone else is refused (close code 4403). A socket whose user loses that
    right, is deactivated, logs out, changes password or whose session or login expires is closed (4403) at
    its next message after ``RECHECK_S``. ``{"type": "resync"}`` tells the page that messages may
    have been lost (the socket joined its group again after a Redis outage, or after failing to
    join): it reads the state again (``status.json``)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await self._allowed(user):
            await self.close(code=4403)
            return
        events.register_loop(asyncio.get_running_loop())
        self._checked_at, self._refused = time.monotonic(), False
        epoch = outage_epoch(self.channel_layer)   # before the join: an outage ending meanwhile counts
        # Redis away: the socket opens all the same (a 500 before) and its keeper joins it later
        joined = await self._join()
        if not joined:
            log.warning("training progress socket: cannot join its channel group (the channel layer cannot be "
                        "reached); opened all the same, joining again every %.0f s", JOIN_RETRY_S)
        await self.accept()
        self._keeper = asyncio.create_task(self._stay_in_group(joined, epoch))

    async def _join(self) -> bool:
        """Join the progress group; False when the channel layer could not be reached."""
        try:
            await self.channel_layer.group_add(events.TRAINING_GROUP, self.channel_name)
        except Exception:  # noqa: BLE001 - Redis away for a moment: the keeper tries again
            return False
        return True

    async def _stay_in_group(self, joined: bool, epoch: int) -> None:
        """Join the group again now and then: a channel layer drops members after its
        ``group_expiry`` (a day by default), and a page left open longer would hear nothing (it does
        not poll while its socket is open); every ``JOIN_RETRY_S`` while the last try failed; and
        within ``KEEPER_TICK_S`` of the channel layer seeing a Redis outage end or a restart
        (``epoch``: its count of those when the socket last joined): Redis restarted without
        persistence forgot the group's members, and a socket open through it heard nothing for up to
        ``REJOIN_S`` (an hour). A join after either (an outage, or a failed join) is followed by
        :meth:`_resync`: what was published meanwhile never reached the socket."""
        tried_at = time.monotonic()
        while True:
            wait = REJOIN_S if joined else JOIN_RETRY_S
            await asyncio.sleep(min(KEEPER_TICK_S, wait))
            now_epoch = outage_epoch(self.channel_layer)
            if now_epoch == epoch and time.monotonic() - tried_at < wait:
                continue
            outage_ended, epoch, tried_at = now_epoch != epoch, now_epoch, time.monotonic()
            was_joined, joined = joined, await self._join()
            if joined and not was_joined:
                log.info("training progress socket: joined its channel group again")
            if joined and (outage_ended or not was_joined) and not await self._resync():
                return

    async def _resync(self) -> bool:
        """Have the page read the state again (``{"type": "resync"}``): progress and index messages
        published while Redis was away, or before the socket could join its group, were lost, and a
        page open through an outage showed a run that ended meanwhile as still running until the
        next message or a reload. False once the socket is closed (its user may no longer watch)."""
        try:
            if not await self._still_allowed():
                await self.close(code=4403)
                return False
            await self.send_json({"type": "resync"})
        except Exception:  # noqa: BLE001 - the database away a moment: the keeper must go on joining
            log.warning("training progress socket: could not ask the page to read the state again", exc_info=True)
        return True

    @database_sync_to_async
    def _allowed(self, user) -> bool:
        session = self.scope.get("session")
        # a login older than MASKNET_SESSION_HOURS (masknet_site.session_lifetime), as on every page
        return _may_watch(user) and (session is None or not session.session_key or login_current(session))

    async def _still_allowed(self) -> bool:
        if self._refused:
            return False
        if time.monotonic() - self._checked_at < RECHECK_S:
            return True
        self._checked_at = time.monotonic()
        self._refused = not await self._reload_allowed()   # for good: events until the close are dropped
        return not self._refused

    @database_sync_to_async
    def _reload_allowed(self) -> bool:
        """The user as the database has them now (permissions, active), and their session as the
        session store has it now: still there, not expired, same user, same password."""
        user = self.scope.get("user")
        fresh = get_user_model().objects.filter(pk=getattr(user, "pk", None)).first()
        if fresh is None or not _may_watch(fresh):
            return False
        session = self.scope.get("session")
        if session is None or not session.session_key:
            return True            # no session in this scope (a test's): the user alone decides
        store = import_module(settings.SESSION_ENGINE).SessionStore   # (the scope's session is a lazy wrapper)
        data = store(session.session_key).load()   # {} once logged out, flushed or expired
        return (str(data.get(SESSION_KEY)) == str(fresh.pk) and login_current(data)
                and constant_time_compare(data.get(HASH_SESSION_KEY, ""), fresh.get_session_auth_hash()))

    async def __call__(self, scope, receive, send) -> None:
        """The socket's life; whatever ends it (a close, or an error in a handler: Channels then
        never calls ``disconnect``), it leaves the group and stops its keeper. A crashed socket
        stayed a member, was re-added every hour and sent every progress message, for good."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._leave()

    async def _leave(self) -> None:
        keeper = getattr(self, "_keeper", None)
        if keeper is not None:
            keeper.cancel()
            self._keeper = None
        name, layer = getattr(self, "channel_name", None), getattr(self, "channel_layer", None)
        if name and layer is not None:
            try:
                await layer.group_discard(events.TRAINING_GROUP, name)
            except Exception:  # noqa: BLE001 - Redis away: the layer's group expiry drops it
                pass

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Clients only listen: whatever they send (not JSON, binary) is ignored, not a crash."""

    async def training_progress(self, event: dict) -> None:
        """A run's state changed."""
        if not await self._still_allowed():
            await self.close(code=4403)
            return
        await self.send_json({"type": "progress", "run": event["run"]})

    async def index_updated(self, event: dict) -> None:
        """A new index version is active."""
        if not await self._still_allowed():
            await self.close(code=4403)
            return
        await self.send_json({"type": "index", "version": event["version"], "people": event.get("people"),
                              "templates": event.get("templates"), "outdated": event.get("outdated")})
