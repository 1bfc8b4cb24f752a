"""``manage.py rebuild_index [--wait]``: rebuild the gallery index."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import transaction

from audit.management.actor import add_actor_argument, command_actor
from enrollment import services
from enrollment.models import TrainingRun
from masknet_site.command_line import ProgressBar
from recognition.engine.install import models_ready

# how long --wait waits for another rebuild that does not move on (its progress and message the same)
# before it gives up: a release that embeds every photo again takes about 0.45 s a photo on 2 cores
# (docs/performance.md), over an hour at 10,000 photos, and moves on at each photo, which restarts
# the wait: at 20,000 people it took 6 h, and a fixed 4 h failed the upgrade script (a scale review).
# The run it waits for beats its heartbeat meanwhile (a stalled one is taken over, not waited for)
BUSY_WAIT_S = 4 * 60 * 60
BUSY_POLL_S = 2.0       # how often it looks whether that rebuild has ended


def _wait_for_other_rebuilds(stdout: OutputWrapper, deadline: float) -> float:
    """Return once no other rebuild is running (a run whose heartbeat is fresh: a stalled one is
    taken over by the next rebuild, as a worker would), saying once which one it waits for;
    :class:`CommandError` at ``deadline``, or :data:`BUSY_WAIT_S` after the run last moved on if
    later, or on Ctrl-C (that run goes on). Returns the deadline, so extended: a claim refused right
    after a long wait (a worker's retry claiming first) gave up on the first one's."""
    said, seen = None, None
    try:   # the whole loop: Ctrl-C (or SIGTERM) may come between two sleeps
        while running := TrainingRun.objects.alive().order_by("pk").first():
            if said != running.pk:
                said = running.pk
                stdout.write(f"another index rebuild (training run #{running.pk}) is running: waiting for it to "
                             "end, then rebuilding here")
            if (moved := (running.pk, running.progress, running.message)) != seen:
                seen, deadline = moved, max(deadline, time.monotonic() + BUSY_WAIT_S)
            if time.monotonic() >= deadline:
                raise CommandError(f"training run #{running.pk} is still running after {BUSY_WAIT_S // 60} min "
                                   "without moving on; follow it in the admin's training runs")
            time.sleep(BUSY_POLL_S)
        return deadline
    except KeyboardInterrupt:
        raise CommandError(f"stopped waiting: training run #{said} goes on; follow it in the admin's "
                           "training runs" if said else "stopped before the rebuild began") from None


def rebuild_foreground(stdout: OutputWrapper, actor: object | None = None) -> None:
    """Run a rebuild here and now, with a progress bar, and print its summary; ``actor``: whom the
    audit log names for starting it (``None``: the system).

    Another rebuild running (a worker's, asked for by a kiosk or an admin page the moment a release
    was restarted) is waited for first, saying so, and this one runs after it (seconds: it reuses the
    templates that run made), so that an upgrade script's ``rebuild_index --wait`` ends with the
    index current instead of exiting 1 on "another index rebuild is running", where nothing failed;
    after :data:`BUSY_WAIT_S` it gives up with an error."""
    bar = ProgressBar("rebuild")
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        deadline = _wait_for_other_rebuilds(stdout, deadline)
        try:
            # a run made for this command that never starts is recorded so, not left queued for good
            run = services.index_rebuild_now(on_progress=lambda pct, _msg: bar(pct, 100), actor=actor)
            break
        except services.RebuildBusy as exc:   # one started between the look and this run's claim
            if time.monotonic() >= deadline:
                raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            stdout.write("")   # off the progress bar's line
            raise CommandError("rebuild interrupted: the previous index stays active; run it again to "
                               "rebuild") from None
        except services.StorageFull as exc:   # its sentence says the previous index stays active
            raise CommandError(f"rebuild failed: {exc}") from exc
        except Exception as exc:
            raise CommandError(f"rebuild failed, the previous index stays active: {exc}") from exc
    if run is None:  # taken over by a worker while this one stalled: that one finishes it
        raise CommandError("the rebuild was taken over by another worker; follow it in the admin's training runs")
    bar(100, 100)
    s = run.stats
    stdout.write(f"people: {s['people']}, templates: {s['templates']}, photos: {s['photos']} "
                 f"({s['embedded_new']} embedded now, {s['embed_failed']} failed"
                 + (f"; {s['embed_left_out']} left out, failed before for this recognizer" if s["embed_left_out"]
                    else "")
                 + f"), seconds: {s['seconds']:.1f}")
    stdout.write(run.message)


class Command(BaseCommand):
    help = "Rebuild the recognition index (queued for the workers, or in the foreground with --wait)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", action="store_true", help="run in the foreground and print the summary")
        add_actor_argument(parser, "the rebuild")

    def handle(self, *args, **opts) -> None:
        actor = command_actor(opts["actor"], ["enrollment.rebuild_index"], changes="the rebuild",
                              holders="the Enrollers group has it")
        if opts["wait"] or settings.MASKNET_TASK_RUNNER != "celery":
            # a rebuild here loads the models first: without them it printed two tracebacks before its
            # one line, and the failed run did not say why (an operator-commands review)
            if not models_ready(Path(settings.MASKNET_MODELS_DIR), settings.MASKNET_DESCRIPTOR):
                raise CommandError(f"the face models are not installed in {settings.MASKNET_MODELS_DIR}: "
                                   "run `python manage.py install_models` first")
            if not opts["wait"]:
                self.stdout.write("no Celery workers configured (REDIS_URL unset): rebuilding in the foreground")
            rebuild_foreground(self.stdout, actor=actor)
            return
        with transaction.atomic():
            run = services.index_rebuild_request(actor=actor, reason="rebuild_index command", force=True)
        self.stdout.write(f"index rebuild queued (training run #{run.pk}); --wait runs it here instead")
