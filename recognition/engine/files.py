"""Writing and reading the engine's own ``.npz`` files (index versions, the mask head, the adapter)."""

from __future__ import annotations

import os
import tempfile
import tokenize
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

# what np.load raises for a missing, truncated, damaged or foreign file: besides the obvious, a
# damaged zip directory can read as a zip feature zipfile lacks (NotImplementedError) or as an
# encrypted member (RuntimeError), and a damaged .npy header fails to parse (tokenize.TokenError)
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError,
              tokenize.TokenError)


def process_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0o022


def write_atomic(path: Path, write: Callable[[IO], None], *, binary: bool, shared: bool) -> None:
    """``write`` into a temporary file in ``path``'s folder, synced, then renamed over ``path`` and
    the folder synced: a reader (or a crash, or Ctrl-C) never meets a half-written file, and a power
    loss cannot leave a committed index version naming an empty file. The file is the owner's alone
    (``mkstemp``'s ``0600``) unless ``shared``: then as the umask allows, as a plain write would be.
    A folder made for a private file is the owner's alone too (``0700``; the index folder was ``0755``
    under the usual umask, which showed every version's file name: a security review)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, **({} if shared else {"mode": 0o700}))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        if shared:
            os.fchmod(fd, 0o666 & ~process_umask())
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:   # the rename itself: some filesystems (network ones) refuse to sync a folder
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            pass
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def savez_atomic(path: Path, *, compressed: bool = False, shared: bool = False, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` (.npz) whole or not at all (:func:`write_atomic`). The file is
    the owner's alone (``0600``: index versions hold biometric templates) unless ``shared`` (a
    trained model, which the site may run as another user than the one who trained it)."""
    write_atomic(path, lambda fh: (np.savez_compressed if compressed else np.savez)(fh, **arrays),
                  binary=True, shared=shared)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all, readable as a plain write makes it (results
    and a model's metrics are no secrets)."""
    write_atomic(path, lambda fh: fh.write(text), binary=False, shared=True)
