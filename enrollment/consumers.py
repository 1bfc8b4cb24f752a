"""Live training progress for the admin pages (group ``training``)."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import events


class TrainingProgressConsumer(AsyncJsonWebsocketConsumer):
    """Sends ``{"type": "progress", "run": {...}}`` and ``{"type": "index", ...}`` to staff who may
    view training runs; anyone else is refused (close code 4403)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await self._allowed(user):
            await self.close(code=4403)
            return
        events.register_loop(asyncio.get_running_loop())
        await self.channel_layer.group_add(events.TRAINING_GROUP, self.channel_name)
        await self.accept()

    @database_sync_to_async
    def _allowed(self, user) -> bool:
        return bool(user and user.is_authenticated and user.is_active and user.is_staff
                    and user.has_perm("enrollment.view_trainingrun"))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(events.TRAINING_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Clients only listen."""

    async def training_progress(self, event: dict) -> None:
        """A run's state changed."""
        await self.send_json({"type": "progress", "run": event["run"]})

    async def index_updated(self, event: dict) -> None:
        """A new index version is active."""
        await self.send_json({"type": "index", "version": event["version"], "people": event.get("people"),
                              "templates": event.get("templates")})
