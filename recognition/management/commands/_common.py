"""Helpers shared by the recognition management commands."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def user_path(text: str) -> Path:
    """A command line's file argument, ``~`` expanded (an argparse ``type``): the shell leaves
    ``--erased-ids=~/erased.txt`` as it is, and the file went to a folder named ``~``. A ``~user``
    with no home folder is the argument's error, not a traceback."""
    import argparse

    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc}") from None


def engine_from_settings(**overrides):
    """The site's engine (``enrollment.recognizer.get_engine``: its models directory,
    ``MASKNET_DESCRIPTOR``'s defaults, thresholds moved by ``MASKNET_THRESHOLD_OFFSET``); with
    ``overrides`` (``EngineConfig`` fields, e.g. ``flip_tta=False``), an engine of the same models
    with those settings changed, for measuring a lever off."""
    from enrollment.recognizer import engine_config, get_engine

    if not overrides:
        return get_engine()
    from django.conf import settings

    from recognition.engine import load_engine

    return load_engine(settings.MASKNET_MODELS_DIR, engine_config().with_(**overrides))


def shared_data() -> Path:
    """The development data sets (``MASKNET_SHARED_DATA``, else ``../shared/data`` beside the
    checkout), as the benchmarks and tests find them: the training commands' defaults."""
    from django.conf import settings

    return Path(os.environ.get("MASKNET_SHARED_DATA", Path(settings.BASE_DIR).parent / "shared" / "data"))


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


def checked_base_url(url: str) -> str:
    """``url`` without its trailing slash, if it is an http(s) address naming a host (a pairing or
    admin link made from it opens something); else ``CommandError``."""
    from urllib.parse import urlsplit

    from django.core.management.base import CommandError

    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in url):
        # a link without them opens nothing ("https://" alone printed "https:/kiosk/pair/...")
        raise CommandError(f"--base-url must start with https:// (or http://) and name a host, not {url!r}")
    return url.rstrip("/")


def check_json_target(path: str | None, option: str = "--json") -> None:
    """Refuse a path that cannot be written (``option``'s: ``--json``, a training's ``--out``) before
    a long evaluation or training, not after it."""
    from django.core.management.base import CommandError

    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{option} {path} is a folder: name the file to write")
    folder = next((p for p in [target.parent, *target.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"{option} {path}: {folder} cannot be written to")
    try:   # os.access says yes to root everywhere, also on a read-only file system: try it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CommandError(f"{option} {path}: {folder} cannot be written to ({exc.strerror or exc})") from None


def _finite(value):
    """``value`` with NaN and infinities as ``None`` (JSON has no NaN: strict readers refuse it)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: dict, path: str | None) -> None:
    """Write ``result`` as standard JSON (NaN as ``null``) to ``path`` when given, whole or not at all."""
    from recognition.engine.files import write_text_atomic

    if path:
        text = json.dumps(_finite(json.loads(json.dumps(result, default=float))), indent=2, allow_nan=False)
        write_text_atomic(Path(path), text)


def fmt(v) -> str:
    """Format a metric for a table cell."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):   # not measured (JSON: null)
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)
