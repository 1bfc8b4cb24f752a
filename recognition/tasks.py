"""Celery tasks of the recognition app: take ids (or nothing), call one service, own their retries."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(bind=True, max_retries=6, name="recognition.purge_expired")
def purge_expired_task(self) -> dict:
    """Apply the retention settings (``services.retention_purge``); scheduled daily by Celery beat
    (``CELERY_BEAT_SCHEDULE``). Returns the counts. Retries every 10 minutes while the database is
    unreachable; a missed day is caught up by the next run (the cut-off is relative to now)."""
    try:
        return services.retention_purge().as_dict()
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(countdown=600, exc=exc) from exc
