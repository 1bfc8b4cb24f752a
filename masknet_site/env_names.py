"""The environment variables MaskNet reads, so that one it does not read is told apart from them
(``manage.py check``: ``masknet.W006``, :func:`recognition.checks.unknown_environment`): a misspelt
``MASKNET_GALERY_ADAPT=1`` was ignored without a word, and the site ran with the default."""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

SITE = Path(__file__).resolve().parent
# the modules that read the site's variables: the settings, and the recognizer's runtime (at import)
READERS = (SITE / "settings", SITE.parent / "recognition" / "engine" / "runtime.py")
# read by the project's commands and scripts rather than by the settings
OTHER_NAMES = frozenset({"MASKNET_ENV_FILE", "MASKNET_SHARED_DATA", "MASKNET_HUMAN_PACKAGE_DIR",
                         "MASKNET_FACE_API_PACKAGE_DIR", "MASKNET_REDIS_SERVER", "MASKNET_SCREENSHOTS_DIR"})
# the tests' and benchmarks' plumbing (README.md, "Set up, run, test")
OTHER_PREFIXES = ("MASKNET_TEST_", "MASKNET_RELIABILITY_", "MASKNET_LOAD_", "MASKNET_FUZZ_")
_NAME = re.compile(r"MASKNET_[A-Z0-9_]+")


@cache
def known_names() -> frozenset[str]:
    """Every ``MASKNET_*`` name the settings modules and the runtime spell out (parsed, not run: a
    variable read on one branch only, or by the production settings alone, counts too), and
    :data:`OTHER_NAMES`."""
    names = set(OTHER_NAMES)
    for reader in READERS:
        for path in sorted(reader.glob("*.py")) if reader.is_dir() else [reader]:
            names.update(node.value for node in ast.walk(ast.parse(path.read_text()))
                         if isinstance(node, ast.Constant) and isinstance(node.value, str)
                         and _NAME.fullmatch(node.value))
    return frozenset(names)


def unknown_names(environment: Iterable[str]) -> list[tuple[str, str | None]]:
    """The ``MASKNET_*`` names of ``environment`` that MaskNet does not read, each with the known name
    it is closest to (a likely misspelling), or ``None``."""
    known = known_names()
    return [(name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None))
            for name in sorted(environment)
            if name.startswith("MASKNET_") and name not in known and not name.startswith(OTHER_PREFIXES)]
