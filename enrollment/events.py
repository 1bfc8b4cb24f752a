"""Channel-layer messages: training progress for the admin pages, ``index.updated`` for kiosks.

Publishing never fails the caller (a broken Redis must not fail a rebuild): errors are logged.
With the in-memory layer (embedded mode) the message is handed to the web server's event loop
when one has registered, because the layer's queues belong to that loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from masknet_site.logfilters import error_first_line

log = logging.getLogger(__name__)

TRAINING_GROUP = "training"
KIOSKS_GROUP = "kiosks"

_web_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def register_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by consumers on connect: the loop that owns the in-memory layer's queues."""
    global _web_loop
    with _lock:
        _web_loop = loop


def publish(group: str, message: dict) -> None:
    """``group_send`` from synchronous code (tasks, services, the background runner)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = _web_loop
        in_memory = type(layer).__name__ == "InMemoryChannelLayer"
        if in_memory and loop is not None and loop.is_running() and not _in_loop(loop):
            asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop).result(timeout=5)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception as exc:  # noqa: BLE001 - progress and notifications are best effort
        # a warning line, not a traceback: with Redis away, `rebuild_index` said what it did and then
        # printed 68 lines of the driver's traceback for a progress notice (--traceback's level: debug)
        log.warning("could not publish %s to %s (%s: %s)", message.get("type"), group, type(exc).__name__,
                    error_first_line(exc))
        log.debug("publishing %s failed", message.get("type"), exc_info=True)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def run_payload(run) -> dict:
    """What the admin pages show of a :class:`~enrollment.models.TrainingRun` (JSON-safe)."""
    return {"id": run.pk, "state": run.state, "progress": run.progress, "message": run.message,
            "error": run.error[:300], "index_version": run.index_version_id,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def training_progress(run) -> None:
    """Tell admin pages how a run is doing."""
    publish(TRAINING_GROUP, {"type": "training.progress", "run": run_payload(run)})


def index_updated(version) -> None:
    """Tell kiosks (and admin pages) that a new index version is active."""
    # outdated: made by another recognizer version (an erasure's scrub keeps an old index's version)
    message = {"type": "index.updated", "version": version.pk, "people": version.people_count,
               "templates": version.template_count, "outdated": version.outdated}
    publish(KIOSKS_GROUP, message)
    publish(TRAINING_GROUP, message)


def index_withdrawn() -> None:
    """Tell kiosks that no index version is active any more (an erasure deleted an active version
    it could not read, so made no replacement): processes that still hold a readable copy drop it
    now, not at their next recheck, since it may hold the erased person."""
    message = {"type": "index.updated", "version": None, "people": 0, "templates": 0, "outdated": False}
    publish(KIOSKS_GROUP, message)
    publish(TRAINING_GROUP, message)
