"""Celery tasks of the recognition app: take ids (or nothing), call one service, own their retries."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

PURGE_RETRY_S = 300  # a purge that found the database away tries again this much later


@shared_task(bind=True, max_retries=6, name="recognition.purge_expired")
def purge_expired_task(self) -> dict:
    """Apply the retention settings (``services.retention_purge``); scheduled daily by Celery beat
    (``CELERY_BEAT_SCHEDULE``). Returns the counts. Retries every 5 minutes while the database is
    unreachable (below ``MASKNET_TASK_REDELIVERY_S``, so that the broker does not deliver a waiting
    retry a second time); a missed day is caught up by the next run (the cut-off is relative to now)."""
    try:
        outcome = services.retention_purge()
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(countdown=PURGE_RETRY_S, exc=exc) from exc
    if problems := outcome.problems():
        # biometric data kept against the retention: as the command exits non-zero for cron, the
        # task fails (its result is kept nowhere, so a return value alone would go unseen)
        raise PurgeIncomplete("; ".join(problems))
    return outcome.as_dict()


class PurgeIncomplete(RuntimeError):
    """The retention purge ran but could not delete some photo files, or refused to (a media folder
    that is not this database's): ``RetentionOutcome.problems``."""
