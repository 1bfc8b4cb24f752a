"""``manage.py export_audit FILE [--since YYYY-MM-DD] [--erased-ids FILE] [--force] [--actor USERNAME]``: the
audit log's CSV export
(the admin's *Export CSV*, the same columns), written from the command line: the file a restore's
``reapply_erasures`` reads, taken with the site already stopped (docs/deployment.md, Backup and restore)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.admin import CSV_COLUMNS, audit_csv_rows
from audit.management.actor import add_actor_argument, command_actor
from audit.models import AuditEvent
from audit.services import audit_record
from masknet_site.command_line import user_path
from masknet_site.csv_export import csv_chunks
from recognition.engine.files import write_atomic


def _day(text: str) -> date:
    """``--since``'s day. Refused as argparse refuses an option (its usage and one line, exit status 2):
    a ``CommandError`` raised while the options are read escaped Django's handling as a traceback."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a day (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = ("Write the audit log's CSV export (the admin's Audit events, Export CSV: the same columns) to FILE, "
            "readable by this user only; every record, or those from --since (a day, TIME_ZONE's) on. The export "
            "is itself recorded in the audit log (a list export), after the file is written and left out of it. "
            "Take it with the site stopped, before a restore: reapply_erasures reads it.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=user_path, help="where to write the CSV (a file there is kept: see --force)")
        parser.add_argument("--since", type=_day, help="only the records from this day on (YYYY-MM-DD, the "
                                                       "site's TIME_ZONE); by default every record")
        parser.add_argument("--erased-ids", type=user_path, metavar="FILE",
                            help="also write the erased staff ids (keyed digests, no staff id readable) to FILE, for "
                                 "reapply_erasures --erased-ids after a restore (docs/deployment.md)")
        parser.add_argument("--force", action="store_true",
                            help="replace FILE (and the --erased-ids file) if it exists; without it an existing "
                                 "file is refused: a restore's export, taken again of the emptied or restored "
                                 "database, would replace the one that holds the erasures since the backup")
        add_actor_argument(parser, "the export")

    def handle(self, *args, **opts) -> None:
        actor = command_actor(opts["actor"], ["audit.view_auditevent"], changes="the export",
                              holders="a superuser has it")
        if opts["erased_ids"] is not None and opts["file"].resolve() == opts["erased_ids"].resolve():
            # the erased ids, written second, would replace the export (with --force too)
            raise CommandError(f"FILE and --erased-ids name the same file ({opts['file']}): give two files")
        for target in (opts["file"], opts["erased_ids"]):
            if target is not None and not opts["force"] and (target.exists() or target.is_symlink()):
                # before anything is read or written: the restore runbook's block run again from the top
                # replaced the good export with one of the emptied database (docs/deployment.md)
                raise CommandError(f"{target} exists: kept (an earlier export, maybe the one a restore needs); "
                                   f"write to another file, or replace it with --force")
        queryset = AuditEvent.objects.order_by("at", "pk")
        since: date | None = opts["since"]
        if since is not None:
            start = timezone.make_aware(datetime.combine(since, time.min))
            try:
                start.astimezone(UTC)   # what the database is given (SQLite's driver raised it as a traceback)
            except OverflowError:   # the calendar's first day, in a zone ahead of UTC: every record
                start = None
            if start is not None:
                queryset = queryset.filter(at__gte=start)
        last = queryset.order_by("-pk").values_list("pk", flat=True).first()
        queryset = queryset.filter(pk__lte=last) if last is not None else queryset.none()
        # the rows as written: a count taken before them misses a record committed meanwhile with an id
        # below ``last`` (PostgreSQL hands ids out at insert, not at commit), which the file's read meets
        count = 0

        def counted() -> Iterator[list[object]]:
            nonlocal count
            for row in audit_csv_rows(queryset):
                count += 1
                yield row

        path: Path = opts["file"]
        try:
            # whole or not at all, this user's alone (it names people by id and staff accounts)
            write_atomic(path, lambda fh: fh.writelines(csv_chunks(list(CSV_COLUMNS), counted())),
                         binary=False, shared=False)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc
        audit_record(actor=actor, action=AuditEvent.Action.LIST_EXPORT, object_type="audit.auditevent",
                     summary=f"downloaded the audit log (export_audit) as CSV, {count} row{'' if count == 1 else 's'}: "
                             + (f"from {since.isoformat()}" if since else "no filters"))
        self.stdout.write(f"{count} audit record{'' if count == 1 else 's'} written to {path}")
        if opts["erased_ids"] is not None:
            self._erased_ids(opts["erased_ids"])

    def _erased_ids(self, path: Path) -> None:
        """The erased staff ids, as ``reapply_erasures --erased-ids`` reads them: one a person enrolled
        after a backup and erased since has nowhere else to come back from after its restore."""
        from enrollment.services import ERASED_IDS_COLUMNS, erased_staff_ids_rows

        rows = erased_staff_ids_rows()
        try:
            write_atomic(path, lambda fh: fh.writelines(csv_chunks(list(ERASED_IDS_COLUMNS), iter(rows))),
                         binary=False, shared=False)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc
        self.stdout.write(f"{len(rows)} erased staff id{'' if len(rows) == 1 else 's'} written to {path}")
