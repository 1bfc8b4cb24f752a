"""``manage.py reapply_erasures FILE.csv [--dry-run]``: after restoring a backup, erase again the
people whose erasure the backup predates, from the audit log's CSV export (``manage.py export_audit``, or
the admin's *Audit events*, *Export CSV*),
and revoke again what was revoked since (kiosk devices, API tokens, staff rights: :mod:`audit.restore`);
end every staff session the restore brought back."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.admin import CSV_COLUMNS
from audit.management.actor import add_actor_argument, command_actor
from audit.models import AuditEvent
from audit.restore import (
    KINDS,
    PASSWORD_NOUN,
    Record,
    Revoked,
    local,
    restored_sessions_end,
    revocation_reapply,
    revocation_records,
    rights_taken_from,
)
from enrollment import dispatch
from enrollment.services import (
    ERASED_IDS_COLUMNS,
    ORPHAN_AGE_S,
    Reapplied,
    StorageFull,
    erased_staff_ids_replace,
    erasure_lost,
    person_erasure_reapply,
    photo_files_sweep,
)
from masknet_site.command_line import user_path

# the note of a record applied or written again after a restore (enrollment.services.people._again,
# audit.restore.Record.again): the first one's time and actor
# (at the end of a summary, or the start of one written back, where the command writes it: a group
# name quoting the note, inside a role change's list, cannot pass for one)
FIRST_DONE = re.compile(r"^(?:erasure of person #\d+ )?recorded again after a restore \(first (?:erased|revoked) "
                        r"(\S+) by ([^()]+)\)[,:]|; again after a restore \(first (?:erased|revoked) (\S+) by "
                        r"([^()]+)\)$")
ERASED_TYPE = "enrollment.person"   # the object of every erase record (enrollment.services.person_erase)


def export_records(path: Path) -> tuple[dict[int, list[tuple[datetime, str]]], int, list[Record], datetime | None]:
    """The erase records of an audit export: ``{person id: [(erasure's time, its actor), ...]}``, oldest
    first (an id erased more than once was handed out again after an earlier restore), how many other
    rows there were, the records of the objects whose revocations are applied again
    (:data:`audit.restore.KINDS`), and the time of its latest record (``None``: none). Raises
    ``CommandError`` for a file that is not the export (its header) or an erase or revocation record it
    cannot read, before anything is erased."""
    erased: dict[int, list[tuple[datetime, str]]] = {}
    ignored = 0
    records: list[Record] = []
    latest: datetime | None = None
    kinds = {kind.object_type: set() for kind in KINDS}
    for kind in KINDS:
        kinds[kind.object_type].update(kind.actions)
    column = {name: i for i, name in enumerate(CSV_COLUMNS)}
    try:
        # utf-8-sig: a spreadsheet that saved the file again may have put a byte-order mark in front
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = csv.reader(file)
            header = next(rows, None)
            if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
                raise CommandError(f"{path} is not the audit log's CSV export (manage.py export_audit, or the "
                                   f"admin's Audit events, CSV): its first line should be {','.join(CSV_COLUMNS)}")
            for row in rows:
                if len(row) != len(CSV_COLUMNS):
                    raise CommandError(f"{path}, line {rows.line_num}: {len(row)} fields, not the export's "
                                       f"{len(CSV_COLUMNS)}; nothing was erased")
                action, object_type = row[column["action"]], row[column["object_type"]]
                object_id, when, actor = row[column["object_id"]], _time(row[column["at"]]), row[column["actor"]]
                # a username beginning "-", "+" or "@" (Django allows them) went out as "'-ops": the export's
                # guard against spreadsheet formulas; no username holds a "'", so it is taken off again
                if actor[:1] == "'" and actor[1:2] in ("-", "+", "@", "="):
                    actor = actor[1:]
                readable = object_id.isascii() and object_id.isdigit() and when is not None
                if when is not None and (latest is None or when > latest):
                    latest = when
                # a record applied again after an earlier restore: the first one's time and actor, which
                # its note keeps (they were replaced by the earlier run's, "by system", at a second restore)
                first = FIRST_DONE.search(row[column["summary"]])
                at_first, by_first = (first.group(1) or first.group(3), first.group(2) or first.group(4)) if first \
                    else (None, None)
                if first and readable and _time(at_first) is not None:
                    when, actor = _time(at_first), by_first
                if object_type in kinds and readable:
                    records.append(Record(when, actor, action, object_type, int(object_id), row[column["summary"]]))
                elif action in kinds.get(object_type, ()):
                    raise CommandError(f"{path}, line {rows.line_num}: a {action} record without an object's id or "
                                       f"time ({object_id!r}, {row[column['at']]!r}); nothing was erased or revoked")
                if action != AuditEvent.Action.ERASE or object_type != ERASED_TYPE:
                    ignored += 1
                    continue
                if not readable:
                    raise CommandError(f"{path}, line {rows.line_num}: an erase record without a person's id or "
                                       f"time ({object_id!r}, {row[column['at']]!r}); nothing was erased")
                erased.setdefault(int(object_id), []).append((when, actor))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"cannot read {path} as the audit log's CSV export: {exc}") from exc
    return {pk: sorted(set(times)) for pk, times in erased.items()}, ignored, records, latest


def erased_ids_read(path: Path) -> list[tuple[str, str, datetime]]:
    """The rows of an erased staff ids file (``export_audit --erased-ids``), read whole before anything
    changes: ``CommandError`` for another file or a row it cannot read."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = csv.reader(file)
            if tuple(h.strip() for h in next(rows, [])) != ERASED_IDS_COLUMNS:
                raise CommandError(f"{path} is not an erased staff ids file (export_audit --erased-ids): its first "
                                   f"line should be {','.join(ERASED_IDS_COLUMNS)}")
            found = []
            for row in rows:
                when = _time(row[2]) if len(row) == 3 else None
                try:
                    when = when and when.astimezone(UTC)   # a time a database can hold (not year 1 off UTC)
                except OverflowError:
                    when = None
                if when is None or not re.fullmatch(r"[0-9a-f]{64}", row[0]) or not re.fullmatch(r"[0-9a-f]{1,16}",
                                                                                                  row[1]):
                    raise CommandError(f"{path}, line {rows.line_num}: not a digest, key id and time; nothing was "
                                       "erased")
                found.append((row[0], row[1], when))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"cannot read {path} as an erased staff ids file: {exc}") from exc
    return found


def _time(text: str) -> datetime | None:
    """An export's time (TIME_ZONE's, with its offset), aware; ``None`` if it is none."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return timezone.make_aware(when) if timezone.is_naive(when) else when


class Command(BaseCommand):
    help = ("After restoring a backup: erase again each person that the audit log's CSV export FILE (manage.py "
            "export_audit, or the admin's Audit events, CSV, taken before the restore) says was erased, if the "
            "restore brought them back; then revoke again what its records say was revoked since the backup (kiosk "
            "devices and pairing links, kiosk devices replaced, kiosks, API tokens, photos removed, check-ins deleted, "
            "people deactivated, staff accounts and rights, groups' "
            "permissions, passwords changed). Each is recorded again in the audit log. Other rows are ignored. Every "
            "staff session the restored database holds (the backup's) is ended, once per restore: everyone logs in "
            "again.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=user_path,
                            help="the audit log's CSV export (its erase and revocation records)")
        parser.add_argument("--erased-ids", type=user_path, metavar="FILE",
                            help="the erased staff ids export_audit --erased-ids wrote before the restore: the "
                                 "restored database's are made those (docs/deployment.md)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be erased or revoked; change "
                                                                   "nothing")
        add_actor_argument(parser, "the erasures and revocations applied again")

    def handle(self, *args, **opts) -> None:
        erased, ignored, rows, exported = export_records(opts["file"])
        if exported is None:
            # an export of a site's log always holds records: this one was taken from an emptied or
            # newly made database (a restore block run again after a failure overwrote the real one),
            # and applying it would undo every erasure since the backup without a word
            raise CommandError(f"{opts['file']} holds no audit records: not an export of the database being "
                               "replaced (taken after a failed restore had emptied it?); nothing was erased, revoked "
                               "or ended. Use the export taken before the restore began (a site whose audit log was "
                               "empty then has nothing to apply again)")
        ids = erased_ids_read(opts["erased_ids"]) if opts["erased_ids"] is not None else None
        found = revocation_records(rows)
        dry_run = opts["dry_run"]
        actor = self.actor(opts["actor"], erased, found)
        if ids is not None:
            added, lifted = erased_staff_ids_replace(ids, actor=actor, dry_run=dry_run, source=str(opts["erased_ids"]),
                                                     since=exported)
            self.stdout.write(f"erased staff ids from {opts['erased_ids']}: {'would add' if dry_run else 'added'} "
                              f"{added} (erased since the backup), {'would lift' if dry_run else 'lifted'} {lifted} "
                              "(lifted since)")
        self.sessions(exported, dry_run, actor)
        outcomes: dict[Reapplied, list[int]] = {outcome: [] for outcome in Reapplied}
        full: tuple[int, StorageFull] | None = None
        lost_absent: list[int] = []   # absent, and erased after the backup: no erased staff id here either
        for person_id, records in sorted(erased.items()):
            (at, by), earlier = records[-1], records[:-1]
            lost = erasure_lost(person_id=person_id, erased_at=at)   # read before the record is written again
            try:
                outcome = person_erasure_reapply(person_id=person_id, erased_at=at, erased_by=by, actor=actor,
                                                 dry_run=dry_run, earlier=earlier)
            except StorageFull as exc:
                # refused whole, and the next ones would not fit either; the revocations below need no
                # room, and a revoked device or token must not stay usable meanwhile: applied, then stop
                full = (person_id, exc)
                self.stdout.write(f"person #{person_id}: not erased again, the index storage is full")
                break
            outcomes[outcome].append(person_id)
            if outcome == Reapplied.ABSENT and lost:
                lost_absent.append(person_id)
            said = "would be erased again" if dry_run and outcome == Reapplied.ERASED else outcome.label
            self.stdout.write(f"person #{person_id} (erased {timezone.localtime(at):%Y-%m-%d %H:%M} by "
                              f"{by or 'system'}): {said}"
                              + "".join(f"; also erased {timezone.localtime(when):%Y-%m-%d %H:%M} by {by or 'system'} "
                                        "(an earlier holder of the id)" for when, by in earlier))
        verb = "would erase again" if dry_run else "erased again"
        self.stdout.write(f"{len(erased)} people erased in {opts['file']}: {verb} {len(outcomes[Reapplied.ERASED])}, "
                          f"already absent {len(outcomes[Reapplied.ABSENT])}, left alone "
                          f"{len(outcomes[Reapplied.REUSED])}; {ignored} rows that are not erase records ignored")
        if lost_absent and ids is None:
            # enrolled after the backup and erased since: the restore brought back neither them nor their
            # erased staff id, which keeps HR's next import from enrolling them again (those erased
            # before the backup have theirs; --erased-ids gives theirs back)
            absent = ", ".join(f"#{pk}" for pk in lost_absent)
            self.stdout.write(f"people {absent}, already absent, were erased after the backup: the restored "
                              "database has no erased staff id of theirs; run this again with --erased-ids (the "
                              "file export_audit --erased-ids wrote before the restore), or the next import_people "
                              "enrols them again from HR's folder (docs/deployment.md, Backup and restore)")
        reused = self.revocations(found, opts["file"], dry_run, actor)
        problems = self.orphans(exported, dry_run)
        if not dry_run:   # without Celery workers, the rebuild that deactivations queued dies with the command
            try:
                if runs := dispatch.run_queued_here():
                    self.stdout.write(f"index rebuilt without the people deactivated again (training run #{runs[-1]})")
            except Exception as exc:  # noqa: BLE001 - said with the other problems, after what was done
                problems.append(f"the index rebuild after the deactivations did not run ({exc}): run "
                                "`manage.py rebuild_index --wait`")
        if full is not None:
            person_id, exc = full
            problems.append(f"person #{person_id} was not erased again: nothing of them was deleted. {exc} The people "
                            "said above are done, and the revocations applied: run the command again then")
        if outcomes[Reapplied.REUSED]:
            ids = ", ".join(f"#{i}" for i in outcomes[Reapplied.REUSED])
            problems.append(f"people {ids} were enrolled after their id's erasure (the restore set the ids back): "
                            "not erased; check by hand whether they are the people erased")
        if reused:
            problems.append(f"{', '.join(reused)} were created after their id's revocation (the restore set the ids "
                            "back): left alone; check by hand whether they are the ones revoked")
        if problems:
            raise CommandError("; ".join(problems)) from (full[1] if full else None)

    def orphans(self, exported: datetime, dry_run: bool) -> list[str]:
        """Delete the photo files no restored row names that are older than the export (the daily
        sweep waits an hour, for uploads in flight): those of photos stored between the backup's
        database dump and its copy of the media, whose people may have been erased since, came back
        with the media (their times kept) and stayed until the next day's purge. A file written after
        the export, an upload in flight on a site not stopped as the guide says, is left alone. The
        problems."""
        failed: list[str] = []
        swept = photo_files_sweep(now=exported.timestamp() + ORPHAN_AGE_S, dry_run=dry_run, failed=failed)
        self.stdout.write(f"photo files no restored photo names: {'would delete' if dry_run else 'deleted'} {swept}")
        return [f"{len(failed)} photo files no restored photo names were not deleted (see the log): delete them, "
                "or check DJANGO_MEDIA_ROOT is this database's"] if failed else []

    @staticmethod
    def actor(username: str | None, erased: dict, found: list[tuple]) -> object | None:
        """``--actor``'s user (:func:`audit.management.actor.command_actor`), allowed in the admin to
        make what this export asks for: erase people (``erase_person``, superusers') and take away
        each kind of thing it revokes (:data:`audit.restore.KINDS`' permissions). Refused too when a
        revocation to apply would take rights away from the user's own account or group: the
        restored rights, which it would take away, are not theirs to act on. Checked before anything
        is erased or revoked, with ``--dry-run`` too (it shows what the same command would do)."""
        needed = (["enrollment.erase_person"] if erased else []) + [p for kind, *_ in found for p in kind.permissions]
        user = command_actor(username, needed, changes="the erasures and revocations the export asks for",
                             holders="a superuser has them")
        own = rights_taken_from(user, found) if user is not None else []
        if own:
            raise CommandError(f"--actor {username!r}: the export takes rights away from {', '.join(own)}, the user's "
                               "own account or group, which the restore gave back; run it without --actor, or "
                               "name another user")
        return user

    def sessions(self, exported: datetime | None, dry_run: bool, actor: object | None) -> None:
        """End every staff session the restore brought back (:func:`audit.restore.restored_sessions_end`),
        first: whatever else fails, nobody's logout is undone any longer."""
        ended, earlier = restored_sessions_end(exported=exported, dry_run=dry_run, actor=actor)
        if earlier is not None:
            self.stdout.write(f"staff sessions: none ended; an earlier run after this restore ended them "
                              f"({local(earlier.at)}: {earlier.summary.split(' after ', 1)[0]})")
            return
        verb = "would end" if dry_run else "ended"
        again = ("; a second run after this restore ends none, even once the site is started again"
                 if exported is not None else "")
        self.stdout.write(f"staff sessions: {verb} {ended}, every session in the restored database (the backup's, "
                          f"logged out since or not): everyone logs in again{again}")

    def revocations(self, found: list[tuple], path: Path, dry_run: bool, actor: object | None) -> list[str]:
        """Revoke again, one line each, what the export's records say was revoked (``found``:
        :func:`audit.restore.revocation_records`), recorded as ``actor``'s (``None``: the system);
        returns the objects left alone (their ids handed out again), as ``"kiosk #3"``."""
        outcomes: dict[Revoked, list[str]] = {outcome: [] for outcome in Revoked}
        for kind, pk, revocations, history in found:
            latest = max(revocations)
            outcome = revocation_reapply(kind=kind, object_id=pk, records=revocations, history=history,
                                         dry_run=dry_run, actor=actor)
            outcomes[outcome].append(f"{kind.noun} #{pk}")
            said = "would be revoked again" if dry_run and outcome == Revoked.REVOKED else outcome.label
            if outcome == Revoked.REVOKED and kind.noun == PASSWORD_NOUN:
                # whoever ran this may be that user: the way back, where they read the outcome
                name = get_user_model().objects.filter(pk=pk).values_list("username", flat=True).first()
                said += f" (password login disabled: `manage.py changepassword {name}` sets a new one)"
            earlier = "".join(f"; also {r.summary!r} {local(r.at)} by {r.actor or 'system'}"
                              for r in sorted(set(revocations))[:-1])
            self.stdout.write(f"{kind.noun} #{pk} ({latest.summary!r} {local(latest.at)} by {latest.actor or 'system'}"
                              f"): {said}{earlier}")
        verb = "would revoke again" if dry_run else "revoked again"
        self.stdout.write(f"{sum(map(len, outcomes.values()))} revoked in {path}: {verb} "
                          f"{len(outcomes[Revoked.REVOKED])}, already revoked {len(outcomes[Revoked.ALREADY])}, left "
                          f"alone {len(outcomes[Revoked.REUSED])}")
        return outcomes[Revoked.REUSED]
