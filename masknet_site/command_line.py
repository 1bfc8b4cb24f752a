"""Helpers for every app's management commands: file arguments, people lists, a progress bar, how a
command stopped by a signal says so."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where a command handles Ctrl-C (``manage.py`` turns the signal into it)."""


def stopped_by(exc: KeyboardInterrupt) -> str:
    """How a command that was stopped says so: "stopped (SIGTERM)" or "interrupted (Ctrl-C)"."""
    return "stopped (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def user_path(text: str) -> Path:
    """A command line's file argument, ``~`` expanded (an argparse ``type``): the shell leaves
    ``--erased-ids=~/erased.txt`` as it is, and the file went to a folder named ``~``. A ``~user``
    with no home folder is the argument's error, not a traceback."""
    import argparse

    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc}") from None


def people_file_lines(path: Path) -> list[str]:
    """The lines of a people list, read as UTF-8 (a byte-order mark, as Excel writes one, skipped;
    any line ending). Raises :class:`CommandError` when the file is not UTF-8 text."""
    from django.core.management.base import CommandError

    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8 text") from exc


def people_file_rows(path: Path, keep_number: Callable[[str], bool] | None = None) -> list[list[str]]:
    """The rows of a people list (LFW's ``people*.txt``: ``Name<TAB>count`` lines), each split on
    white space, without the blank lines and the lone-number lines LFW puts before the rows (its
    count, or each fold's in ``people.txt``) unless ``keep_number`` says the number is a name (a
    folder named by a numeric staff id); a name of digits followed by a count always stays.
    Raises :class:`CommandError` when the file is not UTF-8 text."""
    rows = [line.split() for line in people_file_lines(path) if line.split()]
    return [row for row in rows
            if not (len(row) == 1 and row[0].isdigit() and not (keep_number and keep_number(row[0])))]


class ProgressBar:
    """A one-line progress bar on stderr (``done/total``, rate, ETA)."""

    def __init__(self, label: str, stream=sys.stderr) -> None:
        self.label, self.stream, self.start, self.last = label, stream, time.monotonic(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = (total - done) / rate if rate else 0
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                          f"{rate:.1f}/s eta {eta:.0f}s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()
