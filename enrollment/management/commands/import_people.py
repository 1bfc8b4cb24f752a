"""``manage.py import_people DIR``: one folder per person (the name from the folder), photos inside."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_record
from enrollment import services
from enrollment.models import FacePhoto, Person
from recognition.management.commands._common import ProgressBar

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
STAFF_ID_MAX = Person._meta.get_field("staff_id").max_length


def person_folders(root: Path, limit: int | None, people_list: Path | None) -> list[Path]:
    """Folders to import: alphabetical, or in the order of a people list (``Name<TAB>count`` lines
    as in LFW's ``peopleDevTrain.txt``; a lone number on the first line is skipped)."""
    if people_list:
        names = [line.split("\t")[0].strip() for line in people_list.read_text().splitlines()]
        folders = [root / n for n in names if n and not n.isdigit() and (root / n).is_dir()]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return folders[:limit] if limit else folders


class Command(BaseCommand):
    help = ("Import people from DIR (one sub-folder per person, named like Jane_Doe; photos inside), "
            "then rebuild the index.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("dir", type=Path)
        parser.add_argument("--limit", type=int, help="import only the first N people")
        parser.add_argument("--people-list", type=Path, help="order (and choice) of people: LFW people*.txt format")
        parser.add_argument("--max-photos", type=int, help="at most N photos per person")
        parser.add_argument("--department", default="", help="department of the imported people")
        after = parser.add_mutually_exclusive_group()   # as the README shows them: one or the other
        after.add_argument("--no-rebuild", action="store_true", help="do not rebuild the index afterwards")
        after.add_argument("--wait", action="store_true",
                           help="rebuild in the foreground even when Celery workers are configured")

    def handle(self, *args, **opts) -> None:
        root: Path = opts["dir"]
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory")
        for key in ("limit", "max_photos"):   # 0 would mean "everyone" for one and "nothing" for the other
            if opts[key] is not None and opts[key] < 1:
                raise CommandError(f"--{key.replace('_', '-')} must be at least 1")
        if opts["people_list"] and not opts["people_list"].is_file():
            raise CommandError(f"people list {opts['people_list']} not found")
        folders = person_folders(root, opts["limit"], opts["people_list"])
        # the folder name is the staff id: one too long would be cut, and two such folders merged
        # into one person (the wrong identity); a name with nothing in it has no staff id
        unusable = [f for f in folders if not f.name.strip() or len(f.name.strip()) > STAFF_ID_MAX]
        if unusable:
            raise CommandError(f"{len(unusable)} folder names cannot be staff ids (empty, or longer than "
                               f"{STAFF_ID_MAX} characters), e.g. {unusable[0].name!r}: rename them")
        plan = [(f, sorted(p for p in f.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[: opts["max_photos"]])
                for f in folders]
        total = sum(len(photos) for _, photos in plan)
        self.stdout.write(f"importing {len(plan)} people, {total} photos from {root}")
        created = existing = added = empty = 0
        refused: dict[str, list[str]] = defaultdict(list)
        bar, done, started = ProgressBar("import"), 0, time.monotonic()
        finished = False
        try:
            for folder, photos in plan:
                staff_id = folder.name.strip()   # as person_create stores it
                person = Person.objects.filter(staff_id=staff_id).first()
                if person is None:
                    person = services.person_create(actor=None, full_name=staff_id.replace("_", " "),
                                                    staff_id=staff_id, department=opts["department"])
                    created += 1
                else:
                    existing += 1
                for photo in photos:
                    try:
                        data = photo.read_bytes()
                    except OSError:   # a file that cannot be read (permissions, a vanished network share)
                        data = None
                        refused["unreadable"].append(str(photo.relative_to(root)))
                    try:
                        if data is not None:   # (a full or read-only media folder still stops the import)
                            services.photo_add(person=person, data=data, filename=photo.name, actor=None,
                                               source=FacePhoto.Source.IMPORT, embed=True, schedule_rebuild=False)
                            added += 1
                    except services.PhotoRefused as exc:
                        refused[exc.code].append(str(photo.relative_to(root)))
                    except Person.DoesNotExist as exc:   # erased by an administrator during the import
                        raise CommandError(f"{staff_id} was erased during the import") from exc
                    done += 1
                    bar(done, total)
                empty += not person.photos.exists()
            finished = True
        finally:
            # what was added stays (photos already there are skipped as duplicates when the import
            # is run again), and the audit log says so even when the import stopped half-way
            n_refused = sum(len(v) for v in refused.values())
            audit_record(actor=None, action=AuditEvent.Action.IMPORT, object_type="enrollment.person",
                         summary=f"import_people{'' if finished else ' (interrupted)'}: {created} people created, "
                                 f"{added} photos added, {n_refused} refused")
            if not finished:
                self.stderr.write(f"import interrupted after {done} of {total} photos: what was added is kept; "
                                  "run it again to go on, or `manage.py rebuild_index` to index what is there")
        seconds = time.monotonic() - started
        self.stdout.write(f"people: {created} created, {existing} already there; photos: {added} added, "
                          f"{n_refused} refused; {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} photos/s)")
        if empty:
            self.stdout.write(f"{empty} people have no accepted photo yet (they are not in the index)")
        self._refusals(refused, opts["verbosity"])
        if not opts["no_rebuild"]:
            self._rebuild(opts["wait"])

    def _refusals(self, refused: dict[str, list[str]], verbosity: int) -> None:
        if not refused:
            return
        self.stdout.write("refused photos:")
        for code, count in Counter({k: len(v) for k, v in refused.items()}).most_common():
            paths = refused[code] if verbosity > 1 else refused[code][:5]
            more = f" (+{count - len(paths)} more; -v 2 lists all)" if count > len(paths) else ""
            self.stdout.write(f"  {code} ({count}): {services.REFUSALS.get(code, code)}")
            for p in paths:
                self.stdout.write(f"    {p}")
            if more:
                self.stdout.write(f"   {more}")

    def _rebuild(self, wait: bool) -> None:
        if settings.MASKNET_TASK_RUNNER == "celery" and not wait:
            with transaction.atomic():
                run = services.index_rebuild_request(actor=None, reason="import_people", force=True)
            self.stdout.write(f"index rebuild queued for the Celery workers (training run #{run.pk})")
            return
        from .rebuild_index import rebuild_foreground

        rebuild_foreground(self.stdout)
