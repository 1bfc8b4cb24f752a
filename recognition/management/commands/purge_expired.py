"""``manage.py purge_expired [--dry-run]``: apply the retention settings now (for cron, or the
embedded mode without Celery beat)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from enrollment import dispatch
from enrollment.services import RebuildBusy
from recognition import services


class Command(BaseCommand):
    help = ("Delete check-in snapshot images older than MASKNET_RETENTION_SNAPSHOT_DAYS, recognition decision "
            "records older than MASKNET_RETENTION_DECISION_DAYS and photos kept by gallery adaptation older than "
            "MASKNET_RETENTION_ADAPTED_DAYS (0 = keep forever). The check-ins stay.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")

    def handle(self, *args, **opts) -> None:
        try:
            outcome = services.retention_purge(dry_run=opts["dry_run"])
        except DatabaseError as exc:   # not migrated, or away: said in a line (cron mails it), not a traceback
            raise CommandError(f"the purge stopped: {exc} (is the database reachable and migrated? "
                               "`manage.py migrate`); run it again") from exc
        verb = "would delete" if outcome.dry_run else "deleted"

        def period(days: int) -> str:
            return f"older than {days} days" if days else "kept forever (0)"

        self.stdout.write(f"snapshots ({period(outcome.snapshot_days)}): {verb} the images of "
                          f"{outcome.snapshots} check-ins")
        detail = ", ".join(f"{action} {n}" for action, n in sorted(outcome.decisions.items()))
        self.stdout.write(f"decision and login records ({period(outcome.decision_days)}): {verb} "
                          f"{outcome.decisions_total}" + (f" ({detail})" if detail else ""))
        self.stdout.write(f"photos kept from check-ins by gallery adaptation ({period(outcome.adapted_days)}): "
                          f"{verb} {outcome.adapted_photos}")
        self.stdout.write("photo files that no photo names (uploads rolled back, failed deletes): " + (
            f"none deleted, {outcome.refused_files} refused (below)" if outcome.refused_files
            else f"{verb} {outcome.orphan_files}"))
        self.stdout.write(f"index files that no index version names (killed rebuilds): {verb} {outcome.index_files}")
        problems = []
        if not outcome.dry_run:
            try:
                self._rebuild_queued()
            except CommandError as exc:   # said with the files below, which cron must see too
                problems.append(str(exc))
        problems += outcome.problems()   # biometric data kept against the retention: cron must see it
        if problems:
            raise CommandError("; ".join(problems))

    def _rebuild_queued(self) -> None:
        """Without Celery workers, run here the rebuild that expired photos queued (it would die with
        this command: their faces stayed in the index until a kiosk or an admin page started it)."""
        try:
            runs = dispatch.run_queued_here()
        except RebuildBusy as exc:
            raise CommandError(f"the expired photos' faces are still in the index: {exc}; run it again") from exc
        except Exception as exc:
            raise CommandError(f"the rebuild without the expired photos failed, the previous index stays active: "
                               f"{exc}; run it again") from exc
        if runs:
            self.stdout.write(f"index rebuilt without the expired photos (training run #{runs[-1]})")

