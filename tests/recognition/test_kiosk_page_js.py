"""The kiosk page's own rules (static/kiosk/kiosk.js), run in Node with a scripted clock, camera and
socket: one frame in flight even after a stalled answer, notices that do not flicker between frames,
a fresh frame count per socket. The real-browser test (test_kiosk_e2e.py) covers the rest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "js" / "kiosk_page.js"


def test_kiosk_page_frame_rhythm_and_banners():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Node 20: the same as `manage.py install_models` uses)")
    done = subprocess.run([node, str(HARNESS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok  ") >= 16, done.stdout
