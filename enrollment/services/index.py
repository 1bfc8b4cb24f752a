"""Index rebuilds: requests debounced into queued training runs, the runs' claims, heartbeats
and takeovers, embedding photos into their cached templates, assembling every active person's
templates, fitting the site's thresholds, writing a new immutable index version and switching to
it atomically, pruning old versions and files, and scrubbing an erased person from every
stored version.

Module state: ``_resume_checked``, when this process last looked for runs whose message was lost
(:func:`index_rebuild_resume`); read and written here alone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from masknet_site.command_line import stopped_by
from recognition.engine import Engine, EngineError
from recognition.engine.gallery import Templates, fit_thresholds, person_templates
from recognition.engine.index import Index

from .. import dispatch, events, recognizer
from ..models import FacePhoto, IndexVersion, Person, PhotoTemplates, TrainingRun, TrainingRunQuerySet
from .common import Action, EnrollmentError, StorageFull, counted, error_shown, storage_full

log = logging.getLogger(__name__)

BUSY_RETRY_S = 10


class RunTakenOver(EnrollmentError):
    """This worker's run was taken over by another (its heartbeat went stale): stop, write nothing."""


class RebuildBusy(EnrollmentError):
    """Another rebuild is running; try again in ``retry_after`` seconds."""

    def __init__(self, run_id: int, retry_after: float = BUSY_RETRY_S, locked: bool = False) -> None:
        # locked: no rebuild runs, a run's row was only held for a moment (a change joining a queued run)
        self.run_id, self.retry_after, self.locked = run_id, retry_after, locked
        super().__init__(f"another index rebuild is running; retry in {retry_after:.0f} s" if not locked
                         else "the training runs are being updated; retry in a moment")


def index_rebuild_request(*, actor: object | None, reason: str, force: bool = False,
                          photo_removed: bool = False) -> TrainingRun:
    """Ask for a rebuild once the current transaction commits.

    Debounced: requests join the newest queued run and push its start back by
    ``MASKNET_REBUILD_DEBOUNCE_S``, so a burst of changes leads to one rebuild; a new queued run is
    published to the admin pages (``training.progress``) after commit. ``force``
    (the admin action, the command) starts it without waiting. ``photo_removed``: the run is
    marked ``drops_older`` (:func:`_index_prune`).
    """
    now = timezone.now()
    flag = {"drops_older": True} if photo_removed else {}
    with transaction.atomic():
        run = TrainingRun.objects.queued().order_by("-id").first()
        joined = run is not None and TrainingRun.objects.filter(pk=run.pk, state=TrainingRun.State.QUEUED).update(
            requested_at=now, requests=F("requests") + 1, **flag) == 1
        if joined:   # as stored: the API answers it (it answered the run as read, one request fewer)
            run.refresh_from_db()
        else:
            run = TrainingRun.objects.create(
                reason=reason[:200], requested_at=now,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None, **flag)
            # open admin pages say "queued" at once: they said nothing until the debounce had
            # passed and a worker published "running" (a request joining the run changes nothing shown)
            transaction.on_commit(partial(events.training_progress, run))
        if force:
            # asked for by hand (admin, API, command): who asked is kept even when the request
            # joins a queued run (the run keeps only its first requester); changes that queue a
            # rebuild are audited themselves
            audit_record(actor=actor, action=Action.REBUILD, obj=run,
                         summary=f"rebuild requested ({reason[:120]}): run #{run.pk}{', joined' if joined else ''}")
        dispatch.enqueue_rebuild(run.pk, countdown=0.0 if force else settings.MASKNET_REBUILD_DEBOUNCE_S,
                                 force=force)
    return run


OUTDATED_REASON = "the active index was made by an earlier recognizer version"
OUTDATED_ASK_AGAIN_S = 60   # after a run that a worker of another version found "nothing to do"
OUTDATED_ASKS = 3           # ... and at most this many such runs for one index version


def index_refresh_if_outdated() -> TrainingRun | None:
    """Ask for a rebuild when the active index was made by other models or another template scheme
    (an upgrade): the kiosks would otherwise match new embeddings against old templates. Asks once
    per version: nothing when any rebuild was requested since that version was made (one that
    failed is left to the administrator, whom the admin's status bar tells), except one that a
    worker of another version found "nothing to do" (a worker not yet restarted in an upgrade took
    the request: the kiosks then said "updating" for good); asked again a minute after such a run.
    Returns the run asked for, or ``None``."""
    current = IndexVersion.objects.current()
    if current is None or not current.outdated:
        return None
    since = TrainingRun.objects.filter(created_at__gte=current.created_at)
    nothing_done = Q(state=TrainingRun.State.SUCCEEDED, index_version__isnull=True)
    # a few times only: a node still on the earlier release sees the new index as outdated too, and
    # the new workers' "nothing to do" would otherwise make it ask every minute while it runs
    if since.exclude(nothing_done).exists() or since.filter(nothing_done).count() >= OUTDATED_ASKS or since.filter(
            nothing_done, finished_at__gte=timezone.now() - timedelta(seconds=OUTDATED_ASK_AGAIN_S)).exists():
        return None
    log.warning("index v%s was made by recognizer version %s, this one is %s: rebuilding", current.pk,
                current.model_version, recognizer.template_version())
    return index_rebuild_request(actor=None, reason=OUTDATED_REASON)


RESUME_AFTER_S = 60   # a queued run this much past its debounce has lost its message
_resume_checked = 0.0


def index_rebuild_resume_due() -> bool:
    """Whether :func:`index_rebuild_resume` would look now (no database access: callers on an event
    loop skip the thread hop when it would not)."""
    return time.monotonic() - _resume_checked >= RESUME_AFTER_S


def index_rebuild_resume(*, now: bool = False) -> int:
    """Hand the queued runs whose start is overdue, and the running runs whose worker stopped
    beating (below MAX_ATTEMPTS), to the runner again; returns how many. Their message was lost:
    the embedded runner's queue and thread die with its process (a restart), a broker can lose
    one. A deactivation waiting in such a run would otherwise keep the person recognisable until
    the next change. Nothing while a rebuild is alive (queued runs wait for it on their own);
    checked at most once a minute per process (kiosks loading the index, admin pages call it),
    unless ``now`` (Celery beat's task, whose schedule is the rhythm)."""
    global _resume_checked
    if not now and not index_rebuild_resume_due():
        return 0
    _resume_checked = time.monotonic()
    if TrainingRun.objects.alive().exists():
        return 0
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.MASKNET_REBUILD_DEBOUNCE_S + RESUME_AFTER_S)
    overdue = list(TrainingRun.objects.queued().filter(requested_at__lt=cutoff).values_list("pk", flat=True))
    # a run whose worker died with it (the embedded runner's process restarted; nothing delivers its
    # message again, as a broker does): taken over by its claim, at most MAX_ATTEMPTS times
    overdue += list(TrainingRun.objects.running().filter(heartbeat_at__lt=now - stale_after(),
                                                         attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True))
    for pk in overdue:
        log.warning("training run #%s was left queued or running by a lost message or worker: starting it", pk)
        dispatch.enqueue_rebuild(pk, countdown=0.0, force=True)   # best effort with a broker away (dispatch)
    # one whose worker died MAX_ATTEMPTS times is not started again, but must not stay "running"
    # (in embedded mode nothing else would end it until the next rebuild's claim)
    exhausted = TrainingRun.objects.running().filter(heartbeat_at__lt=now - stale_after(), attempts__gte=MAX_ATTEMPTS)
    for pk in exhausted.values_list("pk", flat=True):
        with transaction.atomic():
            run = exhausted.select_for_update().filter(pk=pk).first()
            if run is not None:
                log.warning("training run #%s: its worker stopped %s times; recorded failed", pk, run.attempts)
                _run_give_up(run, now)
    return len(overdue)


def index_rebuild(*, run_id: int | None = None, actor: object | None = None, force: bool = False,
                  on_progress: Callable[[int, str], None] | None = None,
                  new_if_finished: bool = False, mine: bool = False) -> TrainingRun | None:
    """Run one rebuild: embed photos without cached templates (but those this recognizer version
    failed to embed for a cause of their own: :func:`_photo_embed`), assemble every active person's
    templates, fit the site thresholds, write a new immutable index file and switch the active
    version atomically.

    ``run_id``: the queued run to claim (``None``: a new run, started now, e.g. by a command).
    Returns the finished run, or ``None`` when there is nothing to do for this message (already
    done, running elsewhere, or debounced: a later message will start it). Raises
    :class:`RebuildBusy` while another rebuild runs. A failure marks the run failed, leaves the
    previous version active and re-raises. ``new_if_finished``: a ``run_id`` already recorded
    failed (on a lost database connection) is replaced by a new run; one still queued or running is
    claimed (a retry after the database came back, which must not leave it queued); one that
    succeeded meanwhile is done. ``mine``: ``run_id`` was made for the caller (a new run is too),
    who waits for its outcome: one that succeeded meanwhile (a worker ran it, a change having
    joined it) is returned, and one recorded done by another run (:func:`_runs_done_by`) returns
    that run, whose index and figures are its outcome.
    """
    mine = mine or run_id is None
    if run_id is not None and new_if_finished and TrainingRun.objects.filter(
            pk=run_id, state=TrainingRun.State.FAILED).exists():
        run = TrainingRun.objects.create(reason=f"run #{run_id} again after a lost database connection")
        audit_record(actor=None, action=Action.REBUILD, obj=run,
                     summary=f"rebuild run #{run.pk}: run #{run_id} again after a lost database connection")
        run_id, force = run.pk, True
    if run_id is None:
        run = TrainingRun.objects.create(
            reason="started by hand", requested_by=actor if getattr(actor, "is_authenticated", False) else None)
        audit_record(actor=actor, action=Action.REBUILD, obj=run, summary=f"rebuild started by hand: run #{run.pk}")
        run_id, force = run.pk, True
        try:
            _engine_warm()
        except BaseException as exc:
            # Ctrl-C while the models load (or the database gone): the run made here is recorded
            # "not started", not left queued for the next resume to start after the command stopped
            reason = (f"{stopped_by(exc)} before it started" if isinstance(exc, KeyboardInterrupt)
                      else f"failed before it started ({type(exc).__name__})")
            with contextlib.suppress(Exception):   # the database may be what failed
                index_rebuild_abandon(run_id=run_id, reason=reason)
            raise
    else:
        _engine_warm()
    run = _run_claim(run_id=run_id, force=force)
    if run is None:
        # rebuild_index --wait's run, queued while its models loaded, done by a worker's run that
        # claimed meanwhile: that one did the command's work (it exited 1, "taken over": a review)
        done = TrainingRun.objects.filter(pk=run_id, state=TrainingRun.State.SUCCEEDED).values_list(
            "stats", flat=True).first() if mine else None
        # done by a worker itself (a change joined it while the models loaded, and sent it there)
        by = None if done is None else done.get("done_by", run_id)
        return TrainingRun.objects.filter(pk=by).first() if by else None
    progress = _Progress(run, on_progress)
    try:
        _rebuild(run, progress)
    except RunTakenOver as exc:  # the run is another worker's now: it records the outcome
        log.warning("%s; this copy stops", exc)
        return None
    except KeyboardInterrupt as exc:
        # Ctrl-C on `rebuild_index --wait`: recorded at once; left running, the run blocked every
        # rebuild until its heartbeat went stale (MASKNET_REBUILD_STALE_S, 2 minutes)
        _run_fail(run, exc)
        raise
    except Exception as exc:
        log.exception("index rebuild (run #%s) failed", run.pk)
        _run_fail(run, exc)
        raise
    return run


def _engine_warm() -> None:
    """Load this process's recognizer before a rebuild that will embed photos claims its run.

    Loading the models can outlast ``MASKNET_REBUILD_STALE_S`` on a busy machine, and a run whose
    heartbeat is silent that long is taken over by another worker: both would then build it. A
    failure is left to the rebuild, which meets it again inside the run and records it there."""
    if not FacePhoto.objects.for_index().to_embed(recognizer.template_version()).exists():
        return
    try:
        recognizer.get_engine()
    except Exception:  # noqa: BLE001 - recorded by the run that needs the engine
        log.warning("could not load the recognizer before the rebuild", exc_info=True)


def stale_after() -> timedelta:
    """A running rebuild whose heartbeat is older than this was killed (``MASKNET_REBUILD_STALE_S``)."""
    return timedelta(seconds=settings.MASKNET_REBUILD_STALE_S)


MAX_ATTEMPTS = 3  # a run whose worker stopped this many times is not taken over again


def _still_ours(run: TrainingRun) -> TrainingRunQuerySet:
    """The run's row while it is still this worker's claim (no other worker took it over since)."""
    return TrainingRun.objects.filter(pk=run.pk, attempts=run.attempts, state=TrainingRun.State.RUNNING)


def _lock_not_available(exc: DatabaseError) -> bool:
    """Whether ``exc`` is PostgreSQL's "could not obtain lock" (SQLSTATE 55P03) of a NOWAIT."""
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "55P03"


def _run_claim(*, run_id: int, force: bool) -> TrainingRun | None:
    now = timezone.now()
    stale = stale_after()
    with transaction.atomic():
        # claims take turns: every queued and running run is locked, so two claims of different runs
        # cannot both find nobody running and both start (PostgreSQL). NOWAIT: a claim that waited
        # here (on a queued run a long admin save holds) would hold up the running run's heartbeat
        # and then find it stale; a row held elsewhere means "busy, try again" instead
        pending = (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING)
        try:
            held = list(TrainingRun.objects.select_for_update(nowait=True).filter(state__in=pending)
                        .order_by("pk").values_list("pk", "state", "requests", "drops_older"))
            run = TrainingRun.objects.select_for_update(nowait=True).filter(pk=run_id).first()
        except DatabaseError as exc:
            if not _lock_not_available(exc):
                raise
            raise RebuildBusy(run_id, retry_after=1.0, locked=True) from exc
        if run is None or run.state in (TrainingRun.State.SUCCEEDED, TrainingRun.State.FAILED):
            return None
        if run.state == TrainingRun.State.RUNNING and run.heartbeat_at and now - run.heartbeat_at < stale:
            # Another copy of this run's message: a duplicate while it runs, or the message of a
            # worker that died moments ago, delivered again (acks_late, reject_on_worker_lost,
            # the broker's visibility timeout). Wait: when the run has finished this copy does
            # nothing; when its heartbeat has gone stale, this copy takes the run over.
            wait = (run.heartbeat_at + stale - now).total_seconds() + 1.0
            raise RebuildBusy(run.pk, retry_after=max(1.0, min(wait, stale.total_seconds())))
        debounce = timedelta(seconds=settings.MASKNET_REBUILD_DEBOUNCE_S)
        if (run.state == TrainingRun.State.QUEUED and not force
                and run.requested_at + debounce - timedelta(seconds=0.5) > now):
            return None  # more changes came in: the message queued with the last one starts it
        if TrainingRun.objects.alive(stale).exclude(pk=run.pk).exists():
            raise RebuildBusy(run.pk)
        if run.state == TrainingRun.State.RUNNING and run.attempts >= MAX_ATTEMPTS:
            # its worker stopped that many times (killed while embedding, out of memory...): taking
            # it over again would only stop the next worker too; a new request starts a new run
            _run_give_up(run, now)
            return None
        interrupted = list(TrainingRun.objects.running().exclude(pk=run.pk).values_list("pk", flat=True))
        # their work is this run's (a rebuild takes every change so far): said, or an admin's rebuild
        # read as failed where a later run did it (docs/deployment.md)
        TrainingRun.objects.filter(pk__in=interrupted).update(
            state=TrainingRun.State.FAILED, finished_at=now, message=f"interrupted: taken over by run #{run.pk}",
            error=f"the worker stopped during the rebuild (killed or restarted); the previous index stayed active "
                  f"until run #{run.pk}, which does this run's work too")
        for pk in interrupted:
            audit_record(actor=None, action=Action.REBUILD, object_type="enrollment.trainingrun", object_id=pk,
                         summary=f"run #{pk} failed (interrupted: its worker stopped); taken over by run #{run.pk}")
        # the admin pages showing them "running" hear that they ended
        for stopped in TrainingRun.objects.filter(pk__in=interrupted):
            transaction.on_commit(partial(events.training_progress, stopped))
        # the other queued runs (locked above, so committed with their changes): this run reads
        # after them, and does their work. Two changes at one moment each found no queued run and
        # queued one, and a run started by hand left the queued one for later: two whole rebuilds,
        # every kiosk's votes reset twice (a review). Done with this run if it succeeds, unless a
        # change joins one meanwhile (its requests then differ: that change may come after the read)
        covered = {pk: requests for pk, state, requests, _ in held
                   if state == TrainingRun.State.QUEUED and pk != run.pk}
        removal = any(drops for pk, _, _, drops in held if pk in covered)
        run.state, run.started_at, run.heartbeat_at = TrainingRun.State.RUNNING, now, now
        run.attempts += 1
        run.progress, run.message, run.error = 0, "starting", ""
        run.stats = {**(run.stats or {}), COVERED: {str(pk): n for pk, n in covered.items()}}
        run.drops_older = run.drops_older or removal   # it reads after their photo removals too
        run.save(update_fields=["state", "started_at", "heartbeat_at", "attempts", "progress", "message", "error",
                                "stats", "drops_older"])
    events.training_progress(run)
    return run


def _run_give_up(run: TrainingRun, now: datetime) -> None:
    """Record ``run`` (locked, running) failed for good: its worker stopped ``MAX_ATTEMPTS`` times.
    Audited, and told to the admin pages once the caller's transaction commits."""
    run.state, run.finished_at, run.message = TrainingRun.State.FAILED, now, "interrupted"
    run.error = (f"its worker stopped {run.attempts} times during the rebuild; the previous index "
                 "stayed active (see the workers' logs)")
    run.save(update_fields=["state", "finished_at", "message", "error"])
    audit_record(actor=None, action=Action.REBUILD, obj=run,
                 summary=f"run #{run.pk} failed: its worker stopped {run.attempts} times")
    transaction.on_commit(partial(events.training_progress, run))


def index_rebuild_now(*, on_progress: Callable[[int, str], None] | None = None,
                      patience_s: float = 30.0, actor: object | None = None) -> TrainingRun | None:
    """A rebuild started here and now (the commands; ``actor``, whom the audit log names for
    starting it, ``None`` for the system): like :func:`index_rebuild` with a new run,
    waiting up to ``patience_s`` while the runs' rows are only held for a moment (a change joining
    a queued run); raises :class:`RebuildBusy` when another rebuild runs, its own run recorded as
    not started."""
    deadline, run_id = time.monotonic() + patience_s, None
    while True:
        try:
            return index_rebuild(run_id=run_id, actor=actor, force=True, on_progress=on_progress, mine=True)
        except RebuildBusy as exc:
            run_id = exc.run_id
            if not exc.locked or time.monotonic() + exc.retry_after > deadline:
                index_rebuild_abandon(run_id=exc.run_id, reason=str(exc))
                raise
            time.sleep(exc.retry_after)


def index_rebuild_abandon(*, run_id: int, reason: str) -> None:
    """Record a run that was created to start now but never started (another rebuild held the
    slot): failed, with ``reason``, instead of queued for good. A run that a change joined meanwhile
    (``requests`` > 1) stays queued: that change's own message starts it (failed, the change would
    wait for the next one)."""
    with transaction.atomic():
        if TrainingRun.objects.filter(pk=run_id, state=TrainingRun.State.QUEUED, requests=1).update(
                state=TrainingRun.State.FAILED, finished_at=timezone.now(), message="not started",
                error=reason[:2000]):
            run = TrainingRun.objects.get(pk=run_id)
            audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                         summary=f"run #{run_id} not started: {reason}"[:300])
            # the admin's pages showing it "queued" hear it (they do not poll)
            transaction.on_commit(partial(events.training_progress, run))


def _run_fail(run: TrainingRun, exc: BaseException) -> None:
    try:
        run.state, run.finished_at = TrainingRun.State.FAILED, timezone.now()
        run.message = ("failed: the index storage is full; the previous index stays active" if storage_full(exc)
                       else "failed: the previous index stays active")
        # as Enrollers and read-scope tokens may read it: no server paths (the models' or index
        # folder's) nor a database's text; the caller logged the whole error with its traceback
        run.error = error_shown(exc)[:2000]
        # only while the run is still this worker's: a stalled copy must not fail the new owner's run
        if not _still_ours(run).update(
                state=run.state, finished_at=run.finished_at, message=run.message, error=run.error):
            log.warning("run #%s: not recorded failed (%s: %s): it is no longer this worker's running claim", run.pk,
                        type(exc).__name__, exc)
            return
        # as stored: a success record that failed in the switch's transaction (rolled back with it)
        # had filled these in, and the pages would hear of a failed run naming an index at 100 %
        run.refresh_from_db(fields=["progress", "stats", "index_version"])
        events.training_progress(run)
        audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                     summary=f"run #{run.pk} failed ({type(exc).__name__}): the previous index stays active")
    except Exception:  # noqa: BLE001 - the database may be what failed
        log.exception("could not mark run #%s failed", run.pk)


COVERED = "covers"   # the run's stats while it runs: {queued run id: its requests} it does the work of
EMBEDDED_SO_FAR = "embedded_so_far"   # the run's stats while it embeds: photos embedded by all its attempts


class _Progress:
    """Writes progress (and the heartbeat) to the run at most twice a second and publishes it; with
    ``embedded`` set, also the photos the run has embedded so far (its stats' EMBEDDED_SO_FAR), which
    an attempt taking the run over from a stopped worker adds to its own."""

    def __init__(self, run: TrainingRun, callback: Callable[[int, str], None] | None) -> None:
        self.run, self.callback, self.last = run, callback, 0.0
        self.embedded: int | None = None

    def __call__(self, percent: int, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback:
            self.callback(percent, message)
        if not force and now - self.last < 0.5:
            return
        self.last = now
        run = self.run
        run.progress, run.message, run.heartbeat_at = max(0, min(100, percent)), message[:300], timezone.now()
        # only while the run is still this worker's: one that stalled past MASKNET_REBUILD_STALE_S
        # (and was taken over: attempts moved on) must stop before it switches an index
        extra = {}
        if self.embedded is not None:
            run.stats = {**(run.stats or {}), EMBEDDED_SO_FAR: self.embedded}
            extra["stats"] = run.stats
        if not _still_ours(run).update(
                progress=run.progress, message=run.message, heartbeat_at=run.heartbeat_at, **extra):
            raise RunTakenOver(f"run #{run.pk} was taken over by another worker (attempt {run.attempts} stalled)")
        events.training_progress(run)


def _rebuild(run: TrainingRun, progress: _Progress) -> None:
    started = time.monotonic()
    version_key = recognizer.template_version()
    current = IndexVersion.objects.current()
    if run.reason == OUTDATED_REASON and run.requests == 1 and current and current.model_version == version_key:
        # asked by a node still running the earlier version (a rolling upgrade): the index is
        # current for this worker, and another version would only make that node ask again
        run.state, run.finished_at, run.progress = TrainingRun.State.SUCCEEDED, timezone.now(), 100
        run.message = f"nothing to do: index v{current.pk} is already of this recognizer version"
        with transaction.atomic():
            run.save(update_fields=["state", "finished_at", "progress", "message"])
            audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                         summary=f"run #{run.pk}: {run.message}")
        events.training_progress(run)
        return
    pending = list(FacePhoto.objects.for_index().to_embed(version_key).order_by("id"))
    again = sum(photo.embedding_state == FacePhoto.Embedding.FAILED for photo in pending)
    left_out = FacePhoto.objects.for_index().failed_for(version_key).count()
    missing_before = sum(photo.file_missing for photo in pending)
    again_present = sum(photo.embedding_state == FacePhoto.Embedding.FAILED and not photo.file_missing
                        for photo in pending)
    progress(2, _to_embed_line(new=len(pending) - again_present - missing_before, again=again_present,
                               missing=missing_before, left_out=left_out), force=True)
    engine = recognizer.get_engine() if pending else None
    embedded, failed, removed, failed_ids = 0, 0, 0, []
    # photos embedded by this run's earlier attempts, whose worker stopped (as last written with the
    # progress: at most a photo behind); they are no longer pending for this one
    earlier = int((run.stats or {}).get(EMBEDDED_SO_FAR, 0)) if run.attempts > 1 else 0
    t0 = time.monotonic()
    for i, photo in enumerate(pending):
        outcome = _photo_embed(photo=photo, engine=engine, version=version_key)
        if outcome:
            embedded += 1
        elif outcome is None:
            removed += 1
        else:
            failed += 1
            failed_ids.append(photo.pk)
        progress.embedded = earlier + embedded
        progress(5 + int(80 * (i + 1) / len(pending)), f"embedded {i + 1}/{len(pending)} photos")
    embed_s = time.monotonic() - t0
    # left out of this version's index: marked failed for it, before this run or by it (a file storage
    # could not give is not: the next rebuild tries it again)
    not_embeddable = FacePhoto.objects.for_index().failed_for(version_key).count() if failed else left_out
    # of this run's failures, those not marked failed for this version (their file missing, or
    # unreadable), read by their ids: a difference of counts also moved with the photos removed, or
    # people deactivated or reactivated, while the run embedded
    retried = FacePhoto.objects.filter(pk__in=failed_ids).exclude(embed_failed_version=version_key)
    missing = retried.filter(file_missing=True).count() if failed else 0
    to_retry = retried.filter(file_missing=False).count() if failed else 0
    progress(86, "assembling the index", force=True)
    index, photo_count, photo_templates = _index_assemble(version_key=version_key, engine=engine)
    progress(90, "fitting thresholds", force=True)
    thresholds = _thresholds_fit(index, photo_templates)
    progress(95, "writing and switching the index", force=True)
    # embedded_new: embedded by this run, its earlier attempts' included (a worker killed mid-run);
    # embed_retried: of those it tried, the photos an earlier run failed to embed (their file
    # unreadable then); embed_left_out: not tried, failed for this version; embed_file_missing: of its
    # failures, the photos whose file is gone from storage (tried again); embed_removed: removed while
    # it ran (an erasure), neither embedded nor failed; photos_per_second: this attempt's
    embedded_total = earlier + embedded
    metrics = {"thresholds": thresholds, "embedded_new": embedded_total, "embed_failed": failed,
               "embed_removed": removed,
               "embed_retried": again, "embed_left_out": left_out, "embed_file_missing": missing,
               "embed_seconds": round(embed_s, 2),
               "photos_per_second": round(embedded / embed_s, 2) if embedded else None,
               "synthetic_masks": recognizer.synthetic_masks_available()}

    covered = {int(pk): n for pk, n in ((run.stats or {}).get(COVERED) or {}).items()}

    def succeeded(version: IndexVersion) -> None:   # in the switch's transaction
        seconds = round(time.monotonic() - started, 2)
        run.state, run.finished_at, run.progress = TrainingRun.State.SUCCEEDED, timezone.now(), 100
        run.stats = {**metrics, "seconds": seconds, "people": len(index.identities), "templates": len(index),
                     "photos": photo_count}
        run.index_version = version
        run.message = (f"index v{version.pk} active: {counted(version.people_count, 'person', 'people')}, "
                       f"{counted(version.template_count, 'template')}, {counted(embedded_total, 'photo')} embedded, "
                       + (f"{counted(not_embeddable, 'photo')} left out (not embeddable), " if not_embeddable else "")
                       + (f"{counted(missing, 'photo file')} missing from storage (restore or remove), "
                          if missing else "")
                       + (f"{counted(to_retry, 'photo')} to try again (unreadable), " if to_retry else "")
                       + (f"{counted(removed, 'photo')} removed while it ran, " if removed else "")
                       + f"{seconds:.1f} s")
        run.save(update_fields=["state", "finished_at", "progress", "message", "stats", "index_version"])
        audit_record(actor=run.requested_by, action=Action.REBUILD, obj=run,
                     summary=f"run #{run.pk}: {run.message}")
        _runs_done_by(run, covered)

    version = _index_switch(run=run, index=index, version_key=version_key, photo_count=photo_count,
                            metrics=metrics, record=succeeded)
    events.training_progress(run)
    events.index_updated(version)


def _runs_done_by(run: TrainingRun, covered: dict[int, int]) -> None:
    """Record the queued runs ``run`` did the work of (``covered``: their requests when it was
    claimed) succeeded with its index version, in its switch's transaction: those no change joined
    since (one that did runs itself, its message starting it). Audited, and told to the admin pages
    after commit; their own messages then find them done."""
    for pk, requests in covered.items():
        if TrainingRun.objects.filter(pk=pk, state=TrainingRun.State.QUEUED, requests=requests).update(
                state=TrainingRun.State.SUCCEEDED, finished_at=run.finished_at, progress=100,
                index_version=run.index_version, stats={"done_by": run.pk},
                # its photo removal's mark went to ``run`` at the claim: left here, it would make the
                # prune drop ``run``'s own version, read after that removal, as read before it
                drops_older=False,
                message=f"done by run #{run.pk}, which started after this run's changes: "
                        f"index v{run.index_version_id} active"):
            done = TrainingRun.objects.get(pk=pk)
            audit_record(actor=done.requested_by, action=Action.REBUILD, obj=done,
                         summary=f"run #{pk}: {done.message}")
            transaction.on_commit(partial(events.training_progress, done))


def _to_embed_line(*, new: int, again: int, missing: int, left_out: int) -> str:
    """The progress line of a rebuild's start: ``2 new photos to embed``, ``1 new photo and 1 that
    failed before to embed; 2 photos whose file was missing from storage (tried again); 3 left out
    (failed for this recognizer)``. ``again``: photos that failed before for another cause than
    their file missing (``missing``: marked ``file_missing`` by an earlier rebuild or the photo
    sweep), which were counted among them: a rebuild after files went missing announced them as
    photos to embed, as if it would analyse them, and said nothing of the files."""
    parts = [counted(new, "new photo")] if new or not again else []
    if again:
        parts.append(f"{again if parts else counted(again, 'photo')} that failed before")
    line = " and ".join(parts) + " to embed"
    if missing:
        line += f"; {counted(missing, 'photo')} whose file was missing from storage (tried again)"
    return line + (f"; {left_out} left out (failed for this recognizer)" if left_out else "")


# what one photo's embedding may raise without stopping a rebuild: the engine's errors, an unreadable
# file, and a computation that fails on this photo alone (OpenCV or numpy in the mask renderer);
# a database error is not one of them (the run fails and is retried)
EMBED_ERRORS = (EngineError, OSError, ValueError, ArithmeticError, cv2.error)
# a photo whose embedding the worker never finished this many times (killed by the kernel for its
# memory, a crash in native code) is left out, or every later rebuild would stop on it as well
PHOTO_MAX_ATTEMPTS = 2
# photos whose attempt this process counted and has not settled yet (see _attempts_uncount_at_exit)
_EMBEDDING: set[int] = set()
_EMBEDDING_LOCK = threading.Lock()


def _attempts_uncount_at_exit() -> None:
    """At a normal exit of the process (Ctrl-C on ``make run``, the autoreloader's restart), the
    attempts of photos a daemon thread is still embedding do not count: the embedded runner's thread
    dies with the process without passing through ``_photo_embed``'s handler, so two such stops on
    the same photo left a good photo out for good. A process killed outright (the
    kernel for its memory, a crash in native code) never gets here and the attempt counts."""
    with _EMBEDDING_LOCK:
        ids = sorted(_EMBEDDING)
        _EMBEDDING.clear()
    if not ids:
        return
    try:
        FacePhoto.objects.filter(pk__in=ids, embed_attempts__gt=0).update(embed_attempts=F("embed_attempts") - 1)
    except Exception as exc:  # noqa: BLE001 - at exit, the database may be away: counted, as if killed
        log.warning("photos %s: their embedding was cut off by the exit and still counts as an attempt (%s: %s)",
                    ids, type(exc).__name__, exc)


atexit.register(_attempts_uncount_at_exit)


def _embed_failure_passes(exc: BaseException) -> bool:
    """Whether a photo's failed embedding may well succeed at the next rebuild: a file storage could
    not give (``OSError``), or OpenCV out of memory (the machine's state, not the photo's). Any
    other failure is the photo's own and recurs at every rebuild of the recognizer version."""
    return isinstance(exc, OSError) or (isinstance(exc, cv2.error) and getattr(exc, "code", None) == cv2.Error.StsNoMem)


class _FileMissing(OSError):
    """Storage has no file of that name (a ``FileNotFoundError`` on opening it: not one raised later,
    by a model or mask file the engine loads)."""


def _photo_read(photo: FacePhoto) -> bytes:
    """A photo's file; :class:`_FileMissing` when storage has none."""
    try:
        with photo.image.open("rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise _FileMissing(str(exc)) from exc


def _templates_store(*, photo: FacePhoto, templates: Templates, version: str) -> bool | None:
    """Cache a photo's templates, computed beforehand: no transaction is held open while a face is
    embedded (on SQLite a write after a second-long read transaction fails with "database is
    locked" when anyone else wrote meanwhile). ``True`` when stored, ``None`` when the photo was
    removed meanwhile (an erasure, a removal)."""
    vectors = np.ascontiguousarray(templates.vectors, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        usable = vectors.ndim == 2 and len(vectors) and np.isfinite(vectors).all() \
            and (np.linalg.norm(vectors, axis=1) > 1e-6).all()
    if not usable:
        # never cached: an index holding such a row is refused when written, so every later rebuild
        # would fail on it (the engine makes none; a failed computation could)
        raise EngineError("the face's templates are not finite, non-zero vectors")
    try:
        with transaction.atomic():
            # the photo row locked: an erasure or removal now waits, then takes the templates too
            if not FacePhoto.objects.select_for_update().filter(pk=photo.pk).exists():
                return None
            PhotoTemplates.objects.update_or_create(
                photo=photo, template_version=version,
                defaults={"dim": vectors.shape[1], "count": len(vectors), "vectors": vectors.tobytes(),
                          "kinds": np.ascontiguousarray(templates.kinds, np.int8).tobytes()})
            FacePhoto.objects.filter(pk=photo.pk).update(embedding_state=FacePhoto.Embedding.EMBEDDED,
                                                         embedding_error="", embed_attempts=0,
                                                         embed_failed_version="", file_missing=False)
    except IntegrityError:  # removed between the check and the insert (a database without row locks)
        return None
    return True


def _photo_embed(*, photo: FacePhoto, engine: Engine, version: str) -> bool | None:
    """Compute and cache one photo's templates: ``True``; a bad photo is marked failed, never fatal:
    ``False``; ``None`` for a photo removed meanwhile (an erasure takes its file and row while the run
    embeds: neither embedded nor failed). The
    attempt is counted before it begins and cleared when it ends either way, so a photo that takes
    its worker down is marked failed instead of being tried again by every run.

    A failure of the photo's own (no face found, an unreadable image, a computation that fails on
    it, the worker taken down twice) is the same at every rebuild of this recognizer ``version``:
    the photo is marked failed for it (``embed_failed_version``), and those rebuilds leave it out
    (:meth:`~enrollment.models.FacePhotoQuerySet.to_embed`) rather than analyse it again and
    count it to embed; another version (other models, another template scheme) tries it again. A
    file that cannot be read from storage (``OSError``: a share that hiccupped) is marked failed
    alone, and the next rebuild tries it again.

    So is a file missing from storage (``FileNotFoundError``), marked ``file_missing`` so that the
    admin and the run's message tell it apart from a file that could not be read this time (it
    says "restore or remove", not "to try again"). Every rebuild still tries it, on purpose: a try
    costs one failed open (the photo is never analysed), and from here a file deleted for good
    looks the same as a volume not mounted on this worker or a restore under way, after which the
    photos would come back by themselves; left out instead, every photo added meanwhile would stay
    out of the index until an administrator asked for each again. It leaves that state when a
    rebuild embeds it (the file restored) or fails on it for another cause, or when it is removed."""
    if photo.embed_attempts >= PHOTO_MAX_ATTEMPTS:
        # attempts cleared: another version may try it (and count its own)
        FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embed_failed_version=version, embed_attempts=0,
            file_missing=False,
            embedding_error=f"the worker stopped {photo.embed_attempts} times while embedding this photo; "
                            "left out (remove it, or add another photo)")
        return False
    with _EMBEDDING_LOCK:   # counted and known to the exit handler together
        FacePhoto.objects.filter(pk=photo.pk).update(embed_attempts=F("embed_attempts") + 1)
        _EMBEDDING.add(photo.pk)
    try:
        data = _photo_read(photo)
        faces = engine.analyze(engine.decode(data))
        face = recognizer.face_near(faces, photo.box)
        return _templates_store(photo=photo, templates=recognizer.face_templates(engine, face, seed=photo.pk),
                                version=version)
    except _FileMissing:
        marked = FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embed_attempts=0, embed_failed_version="", file_missing=True,
            embedding_error=f"file missing from storage: {photo.image.name}"[:200])
        return False if marked else None   # no row: removed with its file (an erasure), not missing
    except EMBED_ERRORS as exc:
        shown = error_shown(exc)
        if shown != f"{type(exc).__name__}: {exc}":
            # what the photo's page and the person's export leave out (a server path) goes to the log
            log.warning("photo #%s of person #%s not embedded: %s: %s", photo.pk, photo.person_id,
                        type(exc).__name__, exc)
        marked = FacePhoto.objects.filter(pk=photo.pk).update(
            embedding_state=FacePhoto.Embedding.FAILED, embedding_error=shown[:200],
            embed_attempts=0, embed_failed_version="" if _embed_failure_passes(exc) else version, file_missing=False)
        return False if marked else None
    except (DatabaseError, KeyboardInterrupt, SystemExit):
        # not the photo's doing (the database away, a stop asked for: Ctrl-C, a shutdown): the
        # attempt does not count (two such stops left the photo out for good). Anything else the
        # photo raises every time (a time limit on it, an error in native code) counts, as does a
        # worker killed outright, which never gets here: else every later rebuild stopped on it
        try:
            FacePhoto.objects.filter(pk=photo.pk, embed_attempts__gt=0).update(embed_attempts=F("embed_attempts") - 1)
        except DatabaseError:
            pass   # the database is away: counted, as if the worker had died
        raise
    finally:
        with _EMBEDDING_LOCK:
            _EMBEDDING.discard(photo.pk)


def _index_assemble(*, version_key: str, engine: Engine | None) -> tuple[Index, int, Index]:
    """The index of every active person's cached templates (labels: person ids as strings), the
    number of photos, and every photo's own templates (what probes look like, for the threshold
    fit). A person with several photos is represented in the index by their quality-weighted mean
    templates (``gallery.person_templates``)."""
    rows = (PhotoTemplates.objects.filter(template_version=version_key, photo__person__active=True)
            .order_by("photo__person_id", "photo_id")
            .values_list("photo__person_id", "dim", "count", "vectors", "kinds", "photo__quality_score"))
    people: dict[int, tuple[list[Templates], list[float | None]]] = {}
    dim, photos = None, 0
    for person_id, d, count, blob, kind_blob, quality in rows.iterator(chunk_size=500):
        dim = dim or d
        t = Templates(*PhotoTemplates.unpack(d, count, blob, kind_blob))
        entry = people.setdefault(person_id, ([], []))
        entry[0].append(t)
        entry[1].append(quality)
        photos += 1
    if dim is None:
        current = IndexVersion.objects.current()
        dim = current.dim if current and current.dim else (engine or recognizer.get_engine()).dim
    index, photo_templates = Index(dim), Index(dim)
    if people:
        pv = np.concatenate([t.vectors for ts, _ in people.values() for t in ts])
        photo_templates.vectors = pv / np.maximum(np.linalg.norm(pv, axis=1, keepdims=True), 1e-12)
        photo_templates.labels = np.array([str(pid) for pid, (ts, _) in people.items() for t in ts
                                           for _ in range(len(t.vectors))], dtype=object)
        photo_templates.kinds = np.concatenate([t.kinds for ts, _ in people.values() for t in ts]).astype(np.int8)
        vectors, labels, kinds, margins = [], [], [], []
        for person_id, (templates, qualities) in people.items():
            p = person_templates(templates, qualities)
            vectors.append(p.vectors)
            kinds.append(p.kinds)
            margins.append(p.margins)
            labels.extend([str(person_id)] * len(p.vectors))
        # one concatenation (Index.add per person would copy the matrix once per person)
        v = np.concatenate(vectors)
        index.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        index.labels = np.array(labels, dtype=object)
        index.kinds = np.concatenate(kinds).astype(np.int8)
        m = np.concatenate(margins).astype(np.float32)
        index.margins = m if m.any() else None
        # a template that is not a finite unit vector (a degenerate embedding) would make every
        # kiosk refuse the whole index: it is left out, and said
        for ix, what in ((index, "index"), (photo_templates, "photo")):
            dropped = ix.keep(ix.unit_rows())
            if dropped:
                log.warning("left %d %s templates out of the index: not finite unit vectors", dropped, what)
    return index, photos, photo_templates


def _thresholds_fit(index: Index, probes: Index | None = None, max_templates: int = 2000) -> dict:
    """Site thresholds (:func:`gallery.fit_thresholds`) over the engine's, ``MASKNET_THRESHOLD_OFFSET``
    included and recorded; ``probes`` default to the index itself. Kept in the version's metrics."""
    cfg = recognizer.engine_config()
    fitted = fit_thresholds(index, index if probes is None else probes,
                                    {"unmasked": cfg.threshold_unmasked, "masked": cfg.threshold_masked},
                                    max_templates)
    return {**fitted, "offset": settings.MASKNET_THRESHOLD_OFFSET}


def _index_name(run_id: int | None) -> str:
    """A new index file's name (in ``MASKNET_INDEX_DIR``)."""
    return f"index-{run_id or 0:06d}-{uuid.uuid4().hex[:10]}.npz"


def _index_save(index: Index, name: str) -> str:
    """Write ``index`` as ``name``; returns its SHA-256. :class:`StorageFull` when the index folder
    has no room for it (nothing of it is left: :func:`recognition.engine.files.write_atomic`)."""
    try:
        return index.save(Path(settings.MASKNET_INDEX_DIR) / name)
    except OSError as exc:
        if storage_full(exc):
            log.error("could not write index file %s: the index storage is full (%s)", name, exc)
            raise StorageFull("index") from exc
        raise


def _index_switch(*, run: TrainingRun, index: Index, version_key: str, photo_count: int,
                  metrics: dict, record: Callable[[IndexVersion], None]) -> IndexVersion:
    """Write the file and make it the active version in one transaction, with ``record(version)``:
    the run's success and its audit record (a switch committed alone, by a worker that then died
    or lost the database, was an active index whose run said it failed or was still running).

    Always this run's: runs take turns (a claim refuses while another run is alive and records an
    older running one failed, whose switch then finds the run no longer its own), so the active
    version was read before this run was. (Dropping a result whose run had a lower id than the
    active version's lost the changes that joined a queued run while a ``rebuild_index`` ran.)"""
    name, committed = None, []
    try:
        with transaction.atomic():
            # first of the after-commit callbacks: one of them failing later does not mean the
            # switch failed (the clean-up below would delete the new active version's file)
            transaction.on_commit(lambda: committed.append(True))
            _index_writers_take_turns()
            if not _still_ours(run).select_for_update().exists():   # locked: no takeover until it commits
                raise RunTakenOver(f"run #{run.pk} was taken over by another worker before its switch")
            # people erased or deactivated while this run was embedding must not come back
            live = {str(pk) for pk in Person.objects.active().values_list("pk", flat=True)}
            index.keep_labels(live)
            # named first: a save that fails after writing (reading it back for its digest) leaves
            # no file holding everyone behind
            name = _index_name(run.pk)
            sha = _index_save(index, name)
            version = IndexVersion.objects.create(
                path=name, sha256=sha, people_count=len(index.identities), photo_count=photo_count,
                template_count=len(index), dim=index.dim, model_version=version_key, metrics=metrics,
                built_by=run)
            _activate(version)
            _index_prune(run)
            record(version)
        return version
    except BaseException:
        if name and not committed:
            (Path(settings.MASKNET_INDEX_DIR) / name).unlink(missing_ok=True)
        raise


# PostgreSQL advisory lock key of the index writers (below): "mask" in ASCII
INDEX_WRITERS_LOCK = 0x6D61736B


def _index_writers_take_turns() -> None:
    """Make this transaction's index writes (a rebuild's switch, an erasure's scrub) wait for any
    other's to commit, on one lock that does not move with the active version: a row lock on the
    active version alone let a second erasure wait on a version the first one deleted, lock
    nothing, and miss the version a third writer made meanwhile, which kept its person. PostgreSQL
    only; SQLite runs one writer at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INDEX_WRITERS_LOCK])


def _activate(version: IndexVersion) -> None:
    IndexVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    IndexVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def _index_prune(run: TrainingRun | None = None) -> None:
    """Keep the active version and ``MASKNET_INDEX_KEEP`` older ones; delete the rest (files after
    commit), and index files no row refers to (left by killed runs) once they are an hour old,
    temporary files of :meth:`Index.save` included (a process killed while writing one).

    Not kept either: older versions read before a photo was removed. They hold its templates (in
    its person's mean), which removing a photo promises to delete; the version this switch made
    was read after the removal that queued it, or a later switch deletes it in turn. Told without
    clocks by the runs a removal marked (``drops_older``: claimed only after the removal committed,
    as its request joined or made them): every version built by an earlier run goes; and at the
    switch of ``run`` itself, if so marked, every other version (a forced run made while the
    removal was not yet committed, so that it did not join it, read the photo and can have
    switched before). The time rule beside it compared a worker's clock with a web node's, which a
    skew of seconds defeated."""
    removal = "read before a photo was removed (it holds the photo's templates)"
    if run is not None and TrainingRun.objects.filter(pk=run.pk, drops_older=True).exists():   # as it is now
        old, why = list(IndexVersion.objects.filter(is_active=False)), removal
    else:
        old = list(IndexVersion.objects.filter(is_active=False).order_by("-id")[settings.MASKNET_INDEX_KEEP:])
        why = f"older than the {counted(settings.MASKNET_INDEX_KEEP, 'inactive version')} kept (MASKNET_INDEX_KEEP)"
    reasons = {v.pk: why for v in old}
    marked = TrainingRun.objects.filter(drops_older=True).aggregate(last=models.Max("pk"))["last"]
    if marked is not None:
        read_before_marked = Q(built_by_id__lt=marked) | Q(built_by__isnull=True)
        old += list(IndexVersion.objects.filter(read_before_marked, is_active=False)
                    .exclude(pk__in=[v.pk for v in old]))
    removed_at = (AuditEvent.objects.filter(action=Action.PHOTO_REMOVE).order_by("-at")
                  .values_list("at", flat=True).first())
    if removed_at is not None:
        read_before = (Q(built_by__started_at__lte=removed_at)
                       | Q(built_by__started_at__isnull=True, created_at__lte=removed_at))
        old += list(IndexVersion.objects.filter(read_before, is_active=False).exclude(pk__in=[v.pk for v in old]))
    names = [v.path for v in old]
    IndexVersion.objects.filter(pk__in=[v.pk for v in old]).delete()
    # each deletion on record, by the system: a version (templates of everyone enrolled then, a
    # fallback an operator may have counted on) went without a trace while the audit log promises
    # every change; the run's own record names only the version it made
    for version in old:
        audit_record(actor=None, action=Action.DELETE, object_type="enrollment.indexversion", object_id=version.pk,
                     summary=f"deleted index version #{version.pk}"
                             + (f" at the switch of run #{run.pk}" if run is not None else "")
                             + f": {reasons.get(version.pk, removal)}")
    names += _unreferenced_index_files(time.time())
    transaction.on_commit(lambda: _delete_index_files(names))


def _unreferenced_index_files(now: float) -> list[str]:
    """Index files no version names (left by killed runs: they may hold an erased person's
    templates), temporary files of :meth:`Index.save` included, once an hour old (younger ones may
    be a rebuild's, still being written or committed)."""
    known = set(IndexVersion.objects.values_list("path", flat=True))
    folder = Path(settings.MASKNET_INDEX_DIR)
    if not folder.is_dir():
        return []
    return [p.name for pattern in ("index-*.npz", "*.tmp") for p in folder.glob(pattern)
            if p.name not in known and _mtime(p) < now - 3600]


def index_files_sweep(*, now: float | None = None, dry_run: bool = False, failed: list[str] | None = None) -> int:
    """Delete the index files no version names, once an hour old (:func:`_unreferenced_index_files`);
    returns how many (would be) deleted; ``failed`` gets the names of those that could not be (face
    templates kept against an erasure: the purge then fails, as for photo files). Run by the daily
    retention purge, so that such a file outlives an erasure by a day at most even when no rebuild
    runs."""
    names = _unreferenced_index_files(time.time() if now is None else now)
    if not dry_run:
        _delete_index_files(names, failed)
    return len(names)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone meanwhile (another node's prune): nothing to delete
        return float("inf")


def _delete_index_files(names: list[str], failed: list[str] | None = None) -> None:
    """Best effort, never raising: this runs when a switch commits, and an error escaping it would
    be taken for the switch's own failure (whose clean-up deletes the new active version's file).
    ``failed`` gets the names that could not be deleted."""
    for name in names:
        try:
            (Path(settings.MASKNET_INDEX_DIR) / name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete old index file %s: %s", name, exc)
            if failed is not None:
                failed.append(name)


def _index_scrub(*, labels: set[str], photos: int) -> dict[str, int]:
    """Remove ``labels`` from every stored index version, each version rewritten once for them all
    (see :func:`.people.people_erase`); returns how many versions were rewritten or deleted for each
    label."""
    touched, doomed = dict.fromkeys(labels, 0), []
    for version in IndexVersion.objects.select_for_update().order_by("id"):
        try:
            index = Index.load(version.file)
        except EngineError:
            index = None
        held = labels if index is None else labels & index.identities
        if not held:
            continue
        # an unreadable file (the active one too) is deleted, not skipped: read again later (a share
        # that hiccupped) it would still hold the person. Until the rebuild the erasure queues is
        # active, kiosks have no index ("temporarily unavailable")
        for label in held:
            touched[label] += 1
        if version.is_active and index is not None:
            index.keep_labels(index.identities - held)
            # a rolled-back erasure leaves this file unreferenced; _index_prune deletes it later
            name = _index_name(version.built_by_id)
            sha = _index_save(index, name)
            replacement = IndexVersion.objects.create(
                path=name, sha256=sha, people_count=len(index.identities),
                photo_count=max(0, version.photo_count - photos), template_count=len(index), dim=version.dim,
                model_version=version.model_version, adapter_version=version.adapter_version,
                metrics={**version.metrics, "rewritten_from": version.pk}, built_by_id=version.built_by_id)
            IndexVersion.objects.filter(pk=version.pk).update(is_active=False)
            _activate(replacement)
            transaction.on_commit(lambda v=replacement: events.index_updated(v))
        elif version.is_active:
            # other processes may still hold a copy they read before: they drop it on hearing this
            transaction.on_commit(events.index_withdrawn)
        doomed.append(version)
    IndexVersion.objects.filter(pk__in=[v.pk for v in doomed]).delete()
    # and every file no version names, whatever its age (the prune waits an hour: it may be a
    # rebuild's, not yet committed): a switch killed before its commit left one holding everyone,
    # the person too, for up to a day; none can be a writer's in flight, as the writers' turn is ours
    names = sorted({v.path for v in doomed} | set(_unreferenced_index_files(float("inf"))))
    transaction.on_commit(lambda: _delete_index_files(names))
    return touched
