"""The recognizer's package boundary (design §5, points 1 and 4): ``recognition.engine`` is plain
Python that Django code calls into, never the reverse, and importing it loads no model runtime.

Nothing else checked either: an engine module importing ``django.conf`` for a setting, or TensorFlow
at module level, would pass every other test (they run under Django, with the models loaded)
while Daphne, Celery and ``migrate`` each paid TensorFlow's import and the engine stopped being
usable outside the site (the benches, the evaluation commands' plain-Python use)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a web framework, its task queue or socket layer, or a model runtime: none belongs in an import of the engine
FORBIDDEN = ("django", "channels", "celery", "rest_framework", "tensorflow", "tflite_runtime", "ai_edge_litert",
             "keras", "dlib")

SCRIPT = """
import importlib, json, pkgutil, sys
import recognition.engine as engine
names = sorted(m.name for m in pkgutil.iter_modules(engine.__path__))
for name in names:
    importlib.import_module("recognition.engine." + name)
print(json.dumps({"modules": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _import_every_engine_module() -> dict:
    """Import each module of ``recognition.engine`` in a fresh interpreter (no settings module set);
    the engine's modules and the top-level packages that ended up loaded."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}   # no DJANGO_SETTINGS_MODULE
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_engine_pulls_in_no_django_and_no_model_runtime():
    seen = _import_every_engine_module()
    assert {"decode", "detect", "embed", "gallery", "index", "runtime"} <= set(seen["modules"])
    assert "numpy" in seen["loaded"]   # the scan sees the packages the engine does import
    leaked = sorted(set(FORBIDDEN) & set(seen["loaded"]))
    assert leaked == [], f"importing recognition.engine loaded {leaked}"
