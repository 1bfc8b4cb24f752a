"""Where background work runs: Celery workers when ``MASKNET_TASK_RUNNER`` is ``"celery"``
(``REDIS_URL`` set), else one background thread of this process (the embedded default).
Either way the work is handed over only after the current transaction commits."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections, transaction

log = logging.getLogger(__name__)


def enqueue_rebuild(run_id: int, *, countdown: float, force: bool = False) -> None:
    """Run the rebuild of ``run_id`` ``countdown`` seconds after the current transaction commits."""
    if settings.MASKNET_TASK_RUNNER == "celery":
        transaction.on_commit(lambda: _publish(run_id, countdown=countdown, force=force))
    else:
        transaction.on_commit(lambda: background_runner().submit(run_id, countdown=countdown, force=force))


def _publish(run_id: int, *, countdown: float, force: bool) -> None:
    """Hand the run to the Celery workers, best effort: the change that asked for it is committed
    whatever the broker says (a Redis restart must not turn a saved photo or an erasure into an
    error, nor make the caller clean up what it saved). A run whose message was lost stays queued
    and is started again once overdue (``services.index_rebuild_resume``)."""
    from .tasks import rebuild_index_task

    try:
        rebuild_index_task.apply_async(args=(run_id,), kwargs={"force": force}, countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - kombu's and redis' errors alike
        log.warning("run #%s: could not hand it to the workers (%s: %s); it stays queued and is started again "
                    "when overdue", run_id, type(exc).__name__, exc)


class BackgroundRunner:
    """One daemon thread that runs due rebuilds in order (the embedded stand-in for a worker).

    A rebuild killed with the process is noticed by the next one (its heartbeat goes stale)
    and the previous index version stays active meanwhile.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, int, bool]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.busy = False

    def submit(self, run_id: int, *, countdown: float, force: bool) -> None:
        """Schedule a run (due after ``countdown`` seconds)."""
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + countdown, next(self._counter), run_id, force))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="masknet-rebuild", daemon=True)
                self._thread.start()
            self._cond.notify()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is queued or running (for tests); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if not self._queue and not self.busy:
                    return True
            time.sleep(0.05)
        return False

    def run_queued_here(self, *, patience_s: float) -> list[int]:
        """Run every rebuild queued for this runner now, in the calling thread, their debounce aside,
        after the one its thread may be running; returns the ids of those it ran. Another process's rebuild is
        waited for, up to ``patience_s`` (then :class:`~enrollment.services.RebuildBusy`); a failed
        rebuild raises (recorded in its run, the previous index active)."""
        from .services import RebuildBusy, index_rebuild

        deadline, done = time.monotonic() + patience_s, []
        while True:
            with self._cond:
                item = heapq.heappop(self._queue) if self._queue else None
                if item is None and not self.busy:
                    return done
            if item is None:   # the thread is running one of them: it ends first
                time.sleep(0.05)
                continue
            run_id = item[2]
            while True:
                try:
                    run = index_rebuild(run_id=run_id, force=True)
                    break
                except RebuildBusy as exc:
                    if time.monotonic() + exc.retry_after > deadline:
                        raise
                    time.sleep(exc.retry_after)
            if run is not None:   # None: done, or being done, elsewhere (not this one's to report)
                done.append(run_id)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    delay = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout=delay)
                _, _, run_id, force = heapq.heappop(self._queue)
                self.busy = True
            try:
                self._run(run_id, force)
            finally:
                with self._cond:
                    self.busy = False
                connections.close_all()

    def _run(self, run_id: int, force: bool) -> None:
        from .services import RebuildBusy, index_rebuild

        close_old_connections()
        try:
            index_rebuild(run_id=run_id, force=force)
        except RebuildBusy as exc:  # another process (e.g. a command) is rebuilding
            self.submit(run_id, countdown=exc.retry_after, force=force)
        except Exception:  # noqa: BLE001 - already recorded in the run; the thread must survive
            log.warning("background rebuild of run #%s failed (see the training run)", run_id)


_RUNNER: BackgroundRunner | None = None
_RUNNER_LOCK = threading.Lock()


def background_runner() -> BackgroundRunner:
    """The process's background runner (created on first use)."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = BackgroundRunner()
        return _RUNNER


def run_queued_here(*, patience_s: float = 4 * 60 * 60) -> list[int]:
    """For a management command about to exit, in the embedded mode: run now, here, the rebuilds its
    changes queued (:meth:`BackgroundRunner.run_queued_here`), whose daemon thread dies with the
    command. Left queued, nothing started them until a kiosk loaded the index or an admin page
    looked (``index_rebuild_resume``), so that an expired photo's face, or a deactivated person,
    stayed in every kiosk's index meanwhile. Nothing with Celery workers, which run them."""
    if settings.MASKNET_TASK_RUNNER == "celery" or _RUNNER is None:
        return []
    return _RUNNER.run_queued_here(patience_s=patience_s)
