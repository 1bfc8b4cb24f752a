"""The pages' own scripts, run in Node with a scripted clock, camera, socket and server
(tests/js/*.js; no browser): the kiosk page's frame rhythm and banners, the admin's webcam capture and
index status bar, the proxy's offline page's language.
The real-browser test (tests/recognition/test_kiosk_e2e.py) covers the kiosk end to end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"


@pytest.mark.parametrize(("harness", "checks"),
                         [("kiosk_page.js", 134), ("capture_page.js", 50), ("training_status.js", 37),
                          ("offline_page.js", 5)])
def test_page_script(harness: str, checks: int):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Node 20: the same as `manage.py install_models` uses)")
    done = subprocess.run([node, str(JS / harness)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok  ") == checks, done.stdout
