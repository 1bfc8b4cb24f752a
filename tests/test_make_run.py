"""``make run`` as an operator meets it: a checkout in a folder whose path has a space, and a port
another server already listens on (``scripts/check_port.py``).

The Makefile runs in a copy of the checkout's make files under ``tmp_path / "a checkout"``, with a
stand-in ``manage.py`` that records each command it is given, so that no site starts."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_port  # noqa: E402  (scripts/ is no package)

FAKE_MANAGE = """import sys
from pathlib import Path
with open(Path(__file__).with_name("manage.log"), "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The Makefile, requirements and scripts in a folder whose path has spaces, with a virtualenv
    marked as installed (its ``python`` the one running the tests) and the stand-in ``manage.py``."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path / "my projects" / "mask net"
    (root / "scripts").mkdir(parents=True)
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "scripts/check_port.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "manage.py").write_text(FAKE_MANAGE)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    digest = hashlib.sha1((root / "requirements.txt").read_bytes() + (root / "requirements-dev.txt").read_bytes())
    (root / ".venv" / f".installed-requirements-dev-{digest.hexdigest()[:12]}").touch()
    return root


def make_run(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``make run ARGS`` in ``root``: the process, and the ``manage.py`` commands it ran."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "--no-print-directory", "run", f"PYTHON={sys.executable}", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    log = root / "manage.log"
    return done, log.read_text().splitlines() if log.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_run_works_in_a_checkout_whose_path_has_spaces(checkout):
    port = free_port()
    done, ran = make_run(checkout, f"PORT={port}", "DEMO=1")
    assert done.returncode == 0, done.stderr
    assert ran == ["install_models", "migrate --noinput", f"demo --base-url http://127.0.0.1:{port}",
                   f"runserver --insecure 127.0.0.1:{port}"]


def test_make_run_in_a_set_up_checkout_needs_no_other_python_than_its_virtualenvs(checkout):
    """A checkout set up with another ``PYTHON`` (``make setup PYTHON=python3.12``) ran ``make run``
    with its virtualenv alone; the port check, moved before the install to run with the system's
    Python, stopped it with "python3.11 is required". It uses the virtualenv's when there is one."""
    port = free_port()
    done, ran = make_run(checkout, f"PORT={port}", "PYTHON=no-such-python3")   # the last PYTHON= wins
    assert done.returncode == 0, done.stderr
    assert ran == ["install_models", "migrate --noinput", f"runserver --insecure 127.0.0.1:{port}"]
    (checkout / "manage.log").unlink()
    with socket.socket() as busy:   # and the check still runs, with that Python
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        done, ran = make_run(checkout, f"PORT={taken}", "PYTHON=no-such-python3")
    assert done.returncode != 0 and ran == [] and f"port {taken} is already in use" in done.stderr


def test_make_run_on_a_port_in_use_stops_before_anything_and_says_which_port_to_use(checkout):
    """Daphne's runserver logged "Listen failure" on a busy port and then kept running, serving
    nothing, until Ctrl-C; ``DEMO=1`` first set a new demo password under the site already there."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done, ran = make_run(checkout, f"PORT={port}", "DEMO=1")
    assert done.returncode != 0
    # no install (a fresh checkout's whole set-up), no migrate, no demo password, no server
    assert ran == []
    assert f"port {port} is already in use on 127.0.0.1" in done.stderr
    assert "make run PORT=" in done.stderr


@pytest.mark.parametrize("port", ["", "80a", "70000"])
def test_make_run_refuses_a_port_that_is_no_port(checkout, port):
    done, ran = make_run(checkout, f"PORT={port}")
    assert done.returncode != 0 and ran == []
    assert "PORT must be a number from 1 to 65535" in done.stderr


def test_the_port_suggested_instead_of_a_busy_one_is_free():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        said = check_port.problem("127.0.0.1", port)
    suggested = int(said.rsplit("PORT=", 1)[1])
    assert port < suggested <= port + check_port.NEARBY
    assert check_port.problem("127.0.0.1", free_port()) is None


def test_a_host_that_is_not_this_machines_is_said_so():
    assert "is not an address" in check_port.problem("192.0.2.123", free_port())    # TEST-NET-1
    assert "HOST=no-such-host.invalid is not" in check_port.problem("no-such-host.invalid", free_port())


def test_make_run_keeps_the_embedded_database_to_its_user(checkout):
    """db.sqlite3 holds every face template; a first ``make run`` under the usual umask 022 left it
    readable by everyone on the machine (photos and index files are 0600). The migrate and the server
    run under umask 077, and a database file made before is closed. Found by a helper following the
    README."""
    (checkout / "manage.py").write_text(
        "import os, sys\nfrom pathlib import Path\nmask = os.umask(0)\n"
        "with open(Path(__file__).with_name('manage.log'), 'a') as fh:\n"
        "    fh.write(f'{sys.argv[1]} {mask:03o}\\n')\n")
    db = checkout / "db.sqlite3"
    db.write_bytes(b"")
    db.chmod(0o644)
    port = free_port()
    env_before = os.environ.pop("DATABASE_URL", None)
    try:
        done, ran = make_run(checkout, f"PORT={port}")
    finally:
        if env_before is not None:
            os.environ["DATABASE_URL"] = env_before
    assert done.returncode == 0, done.stderr
    assert ran[1:] == ["migrate 077", "runserver 077"], ran
    assert db.stat().st_mode & 0o777 == 0o600
