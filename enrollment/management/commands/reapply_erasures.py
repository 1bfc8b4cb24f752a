"""``manage.py reapply_erasures FILE.csv [--dry-run]``: after restoring a backup, erase again the
people whose erasure the backup predates, from the audit log's CSV export (admin, *Audit events*)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.admin import CSV_COLUMNS
from audit.models import AuditEvent
from enrollment.services import Reapplied, person_erasure_reapply

ERASED_TYPE = "enrollment.person"   # the object of every erase record (enrollment.services.person_erase)


def erase_records(path: Path) -> tuple[dict[int, list[tuple[datetime, str]]], int]:
    """The erase records of an audit export: ``{person id: [(erasure's time, its actor), ...]}``, oldest
    first (an id erased more than once was handed out again after an earlier restore), and how many
    other rows there were. Raises ``CommandError`` for a file that is not the export (its
    header) or an erase record it cannot read, before anything is erased."""
    erased: dict[int, list[tuple[datetime, str]]] = {}
    ignored = 0
    column = {name: i for i, name in enumerate(CSV_COLUMNS)}
    try:
        # utf-8-sig: a spreadsheet that saved the file again may have put a byte-order mark in front
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = csv.reader(file)
            header = next(rows, None)
            if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
                raise CommandError(f"{path} is not the audit log's CSV export (admin, Audit events, CSV): its first "
                                   f"line should be {','.join(CSV_COLUMNS)}")
            for row in rows:
                if len(row) != len(CSV_COLUMNS):
                    raise CommandError(f"{path}, line {rows.line_num}: {len(row)} fields, not the export's "
                                       f"{len(CSV_COLUMNS)}; nothing was erased")
                if row[column["action"]] != AuditEvent.Action.ERASE or row[column["object_type"]] != ERASED_TYPE:
                    ignored += 1
                    continue
                erased_id, at, actor = row[column["object_id"]], row[column["at"]], row[column["actor"]]
                try:
                    when = datetime.fromisoformat(at)
                except ValueError:
                    when = None
                if not erased_id.isascii() or not erased_id.isdigit() or when is None:
                    raise CommandError(f"{path}, line {rows.line_num}: an erase record without a person's id or "
                                       f"time ({erased_id!r}, {at!r}); nothing was erased")
                if timezone.is_naive(when):
                    when = timezone.make_aware(when)
                erased.setdefault(int(erased_id), []).append((when, actor))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"cannot read {path} as the audit log's CSV export: {exc}") from exc
    return {pk: sorted(set(records)) for pk, records in erased.items()}, ignored


class Command(BaseCommand):
    help = ("After restoring a backup: erase again each person that the audit log's CSV export FILE (admin, "
            "Audit events, action \"erase\", CSV, exported before the restore) says was erased, if the restore "
            "brought them back; the erasure is recorded again in the audit log. Other rows are ignored.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="the audit log's CSV export (its erase records)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be erased; change nothing")

    def handle(self, *args, **opts) -> None:
        erased, ignored = erase_records(opts["file"])
        dry_run = opts["dry_run"]
        outcomes: dict[Reapplied, list[int]] = {outcome: [] for outcome in Reapplied}
        for person_id, records in sorted(erased.items()):
            (at, actor), earlier = records[-1], records[:-1]
            outcome = person_erasure_reapply(person_id=person_id, erased_at=at, erased_by=actor, actor=None,
                                             dry_run=dry_run, earlier=earlier)
            outcomes[outcome].append(person_id)
            said = "would be erased again" if dry_run and outcome == Reapplied.ERASED else outcome.label
            self.stdout.write(f"person #{person_id} (erased {timezone.localtime(at):%Y-%m-%d %H:%M} by "
                              f"{actor or 'system'}): {said}"
                              + "".join(f"; also erased {timezone.localtime(when):%Y-%m-%d %H:%M} by {by or 'system'} "
                                        "(an earlier holder of the id)" for when, by in earlier))
        verb = "would erase again" if dry_run else "erased again"
        self.stdout.write(f"{len(erased)} people erased in {opts['file']}: {verb} {len(outcomes[Reapplied.ERASED])}, "
                          f"already absent {len(outcomes[Reapplied.ABSENT])}, left alone "
                          f"{len(outcomes[Reapplied.REUSED])}; {ignored} rows that are not erase records ignored")
        if outcomes[Reapplied.REUSED]:
            ids = ", ".join(f"#{i}" for i in outcomes[Reapplied.REUSED])
            raise CommandError(f"people {ids} were enrolled after their id's erasure (the restore set the ids back): "
                               "not erased; check by hand whether they are the people erased")
