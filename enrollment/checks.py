"""System checks of the background tasks' settings (``manage.py check``, and every start)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


def task_countdowns() -> dict[str, float]:
    """The longest waits a task is scheduled with, by what schedules them (seconds)."""
    from recognition.tasks import PURGE_RETRY_S

    from .services import BUSY_RETRY_S
    from .tasks import DB_RETRY_S

    return {"MASKNET_REBUILD_DEBOUNCE_S": float(settings.MASKNET_REBUILD_DEBOUNCE_S),
            "a rebuild's retry while another runs": float(BUSY_RETRY_S),
            "a rebuild's retry after losing the database": float(DB_RETRY_S),
            # a copy of a running rebuild's message waits for its heartbeat to go stale
            "MASKNET_REBUILD_STALE_S": float(settings.MASKNET_REBUILD_STALE_S),
            "the retention purge's retry after losing the database": float(PURGE_RETRY_S)}


@checks.register("masknet")
def task_redelivery(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W001`` when a task waits longer than ``MASKNET_TASK_REDELIVERY_S``: Redis takes a
    task not acknowledged within it for a lost one and delivers it again, so a waiting retry would
    be delivered twice (the copies are harmless, the doubled work and logs are not). A task is
    acknowledged once it has finished, so its run time counts too: keep a margin. Only with the
    Redis broker (``REDIS_URL``): the embedded runner has no redelivery."""
    if not getattr(settings, "REDIS_URL", None):
        return []
    limit = float(settings.MASKNET_TASK_REDELIVERY_S)
    longest, wait = max(task_countdowns().items(), key=lambda item: item[1])
    if wait < limit:
        return []
    return [checks.Warning(
        f"MASKNET_TASK_REDELIVERY_S is {limit:g} s, but {longest} waits {wait:g} s: Redis would deliver "
        "the waiting task a second time",
        hint=f"set MASKNET_TASK_REDELIVERY_S above {wait:g} (the default is 600)", id="masknet.W001")]
