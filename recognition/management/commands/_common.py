"""Helpers shared by the recognition management commands."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


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
