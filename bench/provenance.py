"""What produced a benchmark's results file (the commit, uncommitted changes, the engine settings),
and the writing of that file.

Benchmarks cache crops and embeddings in ``var/bench`` and their figures are rendered into
``docs/`` later; a results file that says which code and settings made it can be told apart from
one that a later change made stale. Every benchmark writes its ``bench/results/<name>.json`` through
:func:`write_json` (:func:`results_path` names it), so that all of them are written alike.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _checkout() -> dict:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD"),
            "uncommitted_files": None if status is None else len(status.splitlines())}


# read when a benchmark starts (it imports this module first): the code it runs is the code
# of that moment, whatever is committed while it works
_AT_START = _checkout()


def provenance(config=None) -> dict:
    """``{"commit", "uncommitted_files", "engine", "runtime"}``: HEAD when the benchmark started
    (``None`` outside a git checkout), how many tracked files differed from it then, the engine's
    settings as this process runs them (``config``, by default ``EngineConfig()``) and the model
    runtime (``MASKNET_RUNTIME``)."""
    from recognition.engine import EngineConfig
    from recognition.engine.runtime import RUNTIME

    return {**_AT_START, "engine": dataclasses.asdict(config or EngineConfig()), "runtime": RUNTIME}


def site_descriptor() -> str:
    """The descriptor the site runs: ``MASKNET_DESCRIPTOR`` as the settings read it (SFace when unset,
    ``masknet_site/settings/base.py``): what ``make bench-speed`` measures and ``latest.json`` reports."""
    import os

    return os.environ.get("MASKNET_DESCRIPTOR", "").strip() or "sface"


def descriptor_suffix(descriptor: str) -> str:
    """``""`` for the default descriptor, ``"-<descriptor>"`` for another: the suffix of a benchmark's
    results and cache files, so that the opt-in descriptor's figures never overwrite the default's."""
    from recognition.engine.config import DESCRIPTORS

    return "" if descriptor == DESCRIPTORS[0] else f"-{descriptor}"


def settings_digest(config, *extra) -> str:
    """12 hex digits naming the engine's settings (``config``), its installed models and ``extra``:
    the key of a benchmark's cache, so that answers recorded under other settings or models are
    never replayed as this code's."""
    import hashlib

    from recognition.engine.install import installed_manifest
    from recognition.engine.runtime import RUNTIME

    models = (installed_manifest(REPO / "models") or {}).get("fingerprint")
    # the runtime too: TFLite's vectors differ from the SavedModels' in the 4th-5th decimal
    key = json.dumps([dataclasses.asdict(config), models, RUNTIME, *extra], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def results_path(name: str, repo: Path = REPO) -> Path:
    """``<repo>/bench/results/<name>.json``: where the benchmark ``name`` writes its results."""
    return repo / "bench" / "results" / f"{name}.json"


def write_json(path: Path, doc: dict, *, newline: bool = False) -> Path:
    """Write ``doc`` to ``path`` as JSON indented by 2 (numpy scalars as plain numbers; ``newline``: end
    the file with one, as the speed benchmarks' files do), making its folder; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=float) + ("\n" if newline else ""))
    return path


def write_results(name: str, meta: dict, results: dict, repo: Path = REPO) -> Path:
    """Write ``<repo>/bench/results/<name>.json`` (``{"meta": ..., "results": ...}``) and return its path."""
    return write_json(results_path(name, repo), {"meta": meta, "results": results})
