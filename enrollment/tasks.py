"""Celery tasks of the enrollment app: take ids, call one service, own their retries."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, ProgrammingError

from . import services

log = logging.getLogger(__name__)

DB_RETRIES = 30   # a database away for longer (30 x 30 s) fails the task; the run is recorded failed
DB_RETRY_S = 30   # a rebuild that lost the database tries again this much later
# Celery's default soft limit (CELERY_TASK_SOFT_TIME_LIMIT, 3 h) stopped a release's rebuild that
# embeds every photo again (about half a second a photo on 2 cores) past about 21,000 photos: the
# run recorded failed with an error logged, its embeddings kept, until someone started another. A
# rebuild's own hang is found sooner by its heartbeat (MASKNET_REBUILD_STALE_S: another worker takes
# the run over); 24 h is about 170,000 photos embedded anew
REBUILD_SOFT_TIME_LIMIT_S = 24 * 3600


@shared_task(bind=True, acks_late=True, max_retries=None, name="enrollment.rebuild_index",
             soft_time_limit=REBUILD_SOFT_TIME_LIMIT_S)
def rebuild_index_task(self, run_id: int | None, force: bool = False, db_retries: int = 0) -> dict | None:
    """Rebuild the gallery index for the queued run ``run_id`` (``None``: a new run now);
    see ``services.index_rebuild``.

    Retries while another rebuild runs, for as long as it runs (a rebuild that re-embeds every
    photo takes minutes; one whose worker died goes stale and is taken over, so this ends), and
    up to ``DB_RETRIES`` times after a lost database connection (the same run when it is still
    queued or running, else a new one: an interrupted run is recorded as failed; ``db_retries``
    counts those, apart from the waits, which Celery's own count includes). Any other failure is
    recorded in the run and the previous index stays active.
    """
    try:
        run = services.index_rebuild(run_id=run_id, force=force, new_if_finished=db_retries > 0)
    except services.RebuildBusy as exc:
        raise self.retry(kwargs={"run_id": exc.run_id, "force": force, "db_retries": db_retries},
                         countdown=exc.retry_after, exc=exc) from exc
    except (OperationalError, InterfaceError) as exc:
        if db_retries >= DB_RETRIES:
            raise
        # the same run once the database is back (a new one if it was recorded failed meanwhile)
        raise self.retry(kwargs={"run_id": run_id, "force": True, "db_retries": db_retries + 1}, countdown=DB_RETRY_S,
                         exc=exc) from exc
    if run is None:
        return None
    return {"run": run.pk, "state": run.state, "index_version": run.index_version_id, **run.stats}


@shared_task(name="enrollment.resume_rebuilds")
def resume_rebuilds_task() -> int:
    """Hand overdue queued runs, and running ones whose worker died, to the workers again
    (``services.index_rebuild_resume``); scheduled every minute by Celery beat. Returns how many.
    On a database not migrated yet (workers and beat started before ``migrate``, which the install
    order allows) a line saying so, not an ERROR with a traceback every minute."""
    try:
        return services.index_rebuild_resume(now=True)
    except (OperationalError, ProgrammingError) as exc:
        if not not_migrated(exc):
            raise
        log.warning("rebuilds not resumed: the database is not migrated yet (run `manage.py migrate`): %s",
                    str(exc).splitlines()[0])
        return 0


def not_migrated(exc: Exception) -> bool:
    """Whether a database error says a table is missing (SQLite's and PostgreSQL's words)."""
    text = str(exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)
