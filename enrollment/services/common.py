"""What the enrollment services share: their base error, the audit actions they record, the
wording of counts and sizes in their messages and audit summaries, errors as staff may read them, and
the order the changes to many people lock them in."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.db.models import QuerySet

from audit.models import AuditEvent

from ..models import Person

Action = AuditEvent.Action


class EnrollmentError(Exception):
    """Base class of the enrollment app's refusals."""


# what a write into a full storage raises: no space left on the device, or the disk quota of the
# site's user used up (a volume or share with quotas)
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

STORAGE_FULL_MESSAGES = {
    "media": "The photo could not be stored: the server's storage for photos is full, and nothing of it was "
             "kept. Free space there (the media folder, DJANGO_MEDIA_ROOT), then add it again.",
    "index": "The server's storage for the recognition index is full: nothing was changed, the previous "
             "index stays active. Free space there (the index folder, MASKNET_INDEX_DIR), then try again.",
    "database": "The server's database is out of disk space: this change was not saved. Free space on the disk "
                "that holds the database (PostgreSQL's data folder, or the SQLite file's), then try again.",
}

# how a database says its disk is full: SQLite's SQLITE_FULL ("database or disk is full"), PostgreSQL's
# SQLSTATE 53100 disk_full ("could not extend file ...: No space left on device")
SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)
PG_DISK_FULL = "53100"


# the storages :func:`storage_low` watches, as the admin names them
STORAGE_NAMES = {"media": "the photo storage (DJANGO_MEDIA_ROOT)", "index": "the index storage (MASKNET_INDEX_DIR)",
                 "database": "the SQLite database's disk"}


def storage_paths(database: dict | None = None) -> dict[str, Path]:
    """The folders this node writes biometric data and its database into, by :data:`STORAGE_NAMES`'
    names: the media and index folders, and the SQLite file's folder (a PostgreSQL server's disk is
    not this node's to see). ``database``: a ``DATABASES`` entry, the default one's if not given."""
    paths = {"media": Path(settings.MEDIA_ROOT), "index": Path(settings.MASKNET_INDEX_DIR)}
    database = database or settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and str(database.get("NAME") or ":memory:") != ":memory:":
        paths["database"] = Path(database["NAME"]).parent
    return paths


def storage_free() -> dict[str, int | None]:
    """The free bytes of each of :func:`storage_paths`' filesystems that this node's user may fill
    (``statvfs``'s ``f_bavail``), read at the nearest folder that exists (a fresh site's media folder
    is made with its first photo); ``None`` where it cannot be read."""
    free: dict[str, int | None] = {}
    for name, path in storage_paths().items():
        path = path.resolve()
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            stat = os.statvfs(path)
        except OSError:
            free[name] = None
            continue
        free[name] = stat.f_bavail * stat.f_frsize
    return free


def storage_low() -> dict[str, int]:
    """The storages whose free space is under ``MASKNET_STORAGE_LOW_MB`` (0: none is watched), with
    their free bytes: a warning before a full disk refuses photos, rebuilds and check-ins."""
    limit = settings.MASKNET_STORAGE_LOW_MB * 2**20
    if limit <= 0:
        return {}
    return {name: free for name, free in storage_free().items() if free is not None and free < limit}


def storage_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a write refused for want of space (:data:`STORAGE_FULL_ERRNOS`), or was
    raised from one (``raise ... from``), or is a file error raised while handling one (numpy's
    ``savez`` failing again as it closes the file). Any other error raised while handling it (a
    database error in a cleanup) is its own: not said as a full storage, its traceback kept."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StorageFull) or (isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or (exc.__context__ if isinstance(exc, OSError) else None)
    return False


def database_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (Django's database error, or its driver's, which Django's is raised from) is a
    write the database refused because its disk is full (:data:`SQLITE_FULL`, :data:`PG_DISK_FULL`).
    Kept apart from :func:`storage_full`, whose callers name the folder that is full."""
    seen = set()
    # database errors only, each raised from the next (Django's from its driver's): any other error,
    # even one raised while a full disk was being handled, is its own, its traceback kept
    while _database_error(exc) and id(exc) not in seen:
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL \
                or PG_DISK_FULL in (getattr(exc, "sqlstate", None), getattr(exc, "pgcode", None)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False


def _database_error(exc: BaseException | None) -> bool:
    """Django's database errors, SQLite's, and PostgreSQL drivers' (which carry an SQLSTATE)."""
    return isinstance(exc, (DatabaseError, sqlite3.Error)) or hasattr(exc, "sqlstate") or hasattr(exc, "pgcode")


class StorageFull(EnrollmentError):
    """A write refused because its storage is full (:func:`storage_full`), raised from that error
    once nothing of the write is left: ``where`` is ``"media"`` (photo files) or ``"index"`` (index
    versions); the message says which and what to do."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(STORAGE_FULL_MESSAGES[where])


# an absolute file path on the server: POSIX or home-relative, Windows or UNC; quoted as Python's
# OSError writes it (spaces allowed inside), or bare (up to the next space or quote: a bare path with a
# space is cut there, so the site's own folders are looked for by name first). A relative one
# ("recognition/engine/assets/...", a photo's storage name "faces/12/....jpg") is the product's, kept.
_ROOT = r"(?:~?/|[A-Za-z]:[\\/]|\\\\)"
_QUOTED_PATH = re.compile(rf"'{_ROOT}[^'\n]*'|\"{_ROOT}[^\"\n]*\"")
_BARE_PATH = re.compile(rf"(?<![\w.:/\\~\]-]){_ROOT}[^\s'\"]+")
SERVER_PATH_SHOWN = "[server path]"
# the settings naming the site's folders (and its checkout's), whose names may hold spaces
_FOLDER_SETTINGS = ("MASKNET_MODELS_DIR", "MASKNET_INDEX_DIR", "MEDIA_ROOT", "STATIC_ROOT", "BASE_DIR")


def _paths_hidden(text: str) -> str:
    text = _QUOTED_PATH.sub(SERVER_PATH_SHOWN, text)
    folders = {str(getattr(settings, name, "") or "").rstrip("/\\") for name in _FOLDER_SETTINGS}
    for folder in sorted((f for f in folders if os.path.isabs(f) and len(f) > 1), key=len, reverse=True):
        text = re.sub(re.escape(folder) + r"(?:[/\\][^\s'\"]*)?", SERVER_PATH_SHOWN, text)
    return _BARE_PATH.sub(SERVER_PATH_SHOWN, text)


_LOGGED = " (details in the server's log)"


def error_shown(exc: BaseException) -> str:
    """``"<type>: <message>"`` of ``exc`` as it is stored for staff and API tokens to read (a
    rebuild's ``error``, a photo's ``embedding_error``): absolute file paths of the server replaced by
    ``[server path]`` ("the models in /srv/... are missing", "Permission denied: '/var/...'"), and a
    database error's text (hosts, user names, SQL and the values it quotes) left out. The server's
    log keeps the whole error: callers log it where they record this."""
    name = type(exc).__name__
    if isinstance(exc, DatabaseError):
        return f"{name}: the database refused or lost the request (details in the server's log)"
    text = str(exc)
    shown = _paths_hidden(text)
    return f"{name}: {shown}" + (_LOGGED if shown != text else "")


# the names Django gives the database's errors (django.db.utils), as a stored error starts with them
_DATABASE_ERRORS = frozenset({"DatabaseError", "DataError", "OperationalError", "IntegrityError", "InternalError",
                              "ProgrammingError", "NotSupportedError", "InterfaceError"})


def stored_error_shown(text: str) -> str:
    """An error stored before :func:`error_shown` existed (``"<type>: <message>"`` as it was written
    then) as :func:`error_shown` would have written it: for the data migration that rewrites them.
    Idempotent: what it returns comes back unchanged."""
    name, sep, message = text.partition(": ")
    if sep and name in _DATABASE_ERRORS:
        return f"{name}: the database refused or lost the request (details in the server's log)"
    shown = _paths_hidden(text)
    if shown == text:
        return text
    return shown if shown.endswith(_LOGGED) else shown + _LOGGED


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``3 photos``; ``plural`` where adding an s is wrong (``person``, ``people``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def amount(n: float, unit: str) -> str:
    """``n`` of ``unit`` as people read it: bytes from 1 MiB on in MiB to a tenth ("1.5 MiB"), a
    whole number of MiB without one ("64 MiB", where "64.0 MiB" read as a rounded figure), else the
    whole number with thousands separators ("524,288 bytes", "40,000,000 pixels"). Only an exact
    multiple loses its tenth: 8 MiB and a few bytes still reads "8.0 MiB", not the "8 MiB" of the
    limit it is over."""
    if unit == "bytes" and n >= 2**20:
        return f"{n // 2**20:.0f} MiB" if n % 2**20 == 0 else f"{n / 2**20:.1f} MiB"
    return f"{n:,.0f} {unit}"


BULK_BATCH = 500   # people locked and changed at a time by the changes to many people (SQL parameter limits)


def people_locked(people: Iterable[int], **still: object) -> Iterator[QuerySet[Person]]:
    """The changes to many people's batches: ``people`` (ids) that still match ``still`` (``active=True``),
    :data:`BULK_BATCH` at a time, each batch a query that locks its rows (``SELECT ... FOR UPDATE``) once
    evaluated, in id order. Every multi-person lock takes them in that order, so two such changes, or
    one and an erasure, wait for each other rather than deadlock (locked in the admin list's name
    order, 500-person batches deadlocked: a review); call inside a transaction."""
    ids = sorted(set(people))
    for start in range(0, len(ids), BULK_BATCH):
        yield Person.objects.select_for_update().filter(pk__in=ids[start:start + BULK_BATCH], **still).order_by("pk")
