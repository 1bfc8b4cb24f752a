"""``manage.py rebuild_index [--wait]``: rebuild the gallery index."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import transaction

from audit.management.actor import add_actor_argument, command_actor
from enrollment import services
from recognition.management.commands._common import ProgressBar


def rebuild_foreground(stdout: OutputWrapper, actor: object | None = None) -> None:
    """Run a rebuild here and now, with a progress bar, and print its summary; ``actor``: whom the
    audit log names for starting it (``None``: the system)."""
    bar = ProgressBar("rebuild")
    try:
        # a run made for this command that never starts is recorded so, not left queued for good
        run = services.index_rebuild_now(on_progress=lambda pct, _msg: bar(pct, 100), actor=actor)
    except services.RebuildBusy as exc:
        raise CommandError(str(exc)) from exc
    except KeyboardInterrupt:
        stdout.write("")   # off the progress bar's line
        raise CommandError("rebuild interrupted: the previous index stays active; run it again to rebuild") from None
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
            if not opts["wait"]:
                self.stdout.write("no Celery workers configured (REDIS_URL unset): rebuilding in the foreground")
            rebuild_foreground(self.stdout, actor=actor)
            return
        with transaction.atomic():
            run = services.index_rebuild_request(actor=actor, reason="rebuild_index command", force=True)
        self.stdout.write(f"index rebuild queued (training run #{run.pk}); --wait runs it here instead")
