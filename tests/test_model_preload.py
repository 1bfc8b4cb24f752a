"""A web process loads the face models as soon as it serves (``MASKNET_PRELOAD_MODELS``,
``enrollment.recognizer.warm_when_serving``), not when the first kiosk connects: a real ``daphne``
loads them without any request, ``manage.py runserver`` (as ``make run`` starts it) in the child its
autoreloader serves from and never in that parent, and with the setting off nothing loads.

The sign is the line ``get_engine`` logs when this process's models have loaded, with the
process's resident memory (about 820 MB more once loaded), and what ``/healthz`` says of it
(``models_loaded``, which a load balancer can wait for). The development settings, whose log goes
to stderr (the test settings' root logger has no handler), on a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.live import children, free_port, rss_mb, start_daphne, stop_processes, wait_for_port

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parent.parent
LOADED = "face models loaded in"
LOAD_TIMEOUT_S = 120.0   # two loads at once on two busy cores (3-10 s each alone)
SMALL_MB = 400           # a served process without its models (~130-160 MB); with them ~950 MB


def lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if LOADED in line]


_never_loaded: set[Path] = set()   # waited for in vain already: the next test using it fails at once


def wait_loaded(log: Path, timeout: float = LOAD_TIMEOUT_S) -> float:
    """Seconds until ``log`` says the models loaded; fails with the log's tail after ``timeout``."""
    start = time.monotonic()
    while log not in _never_loaded and time.monotonic() - start < timeout:
        if lines(log):
            return time.monotonic() - start
        time.sleep(0.1)
    _never_loaded.add(log)
    pytest.fail(f"no {LOADED!r} line after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def get(port: int, path: str = "/healthz") -> int:
    return health(port, path)[0]


def health(port: int, path: str = "/healthz") -> tuple[int, dict]:
    """The status and the JSON of ``/healthz`` (a 503 too: the test database has no tables)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def servers(tmp_path_factory, installed_models):
    """Three processes started at once: ``daphne`` with the default (on) and with
    ``MASKNET_PRELOAD_MODELS=0``, and ``manage.py runserver`` with the default. Yields a dict of
    ``(process, port, log)`` by name, and one of ``(status, loaded)`` of the first request to
    runserver and to the one with the setting off, sent as soon as runserver listened, and the
    ``models_loaded`` of its answer."""
    tmp = tmp_path_factory.mktemp("preload")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "MASKNET_PRELOAD_MODELS"))}
    env.update({"DJANGO_SETTINGS_MODULE": "masknet_site.settings.dev",
                "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "DJANGO_MEDIA_ROOT": str(tmp / "media"),
                "MASKNET_INDEX_DIR": str(tmp / "index"),
                "MASKNET_MODELS_DIR": str(installed_models), "LOG_LEVEL": "INFO", "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONUNBUFFERED": "1"})
    started: dict[str, tuple[subprocess.Popen, int, Path]] = {}
    try:
        for name, extra in (("daphne", {}), ("off", {"MASKNET_PRELOAD_MODELS": "0"})):
            port, log = free_port(), tmp / f"{name}.log"
            started[name] = (start_daphne(port, {**env, **extra}, log), port, log)
        port, log = free_port(), tmp / "runserver.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "manage.py", "runserver", "--insecure", f"127.0.0.1:{port}"],
                                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        started["runserver"] = (proc, port, log)
        wait_for_port(port, proc, 90, log)
        # at once, as a probe or a kiosk would: answered, and whether the models had loaded by then
        first = {}
        for name in ("runserver", "off"):
            status, body = health(started[name][1])
            first[name] = (status, bool(lines(started[name][2])), body["models_loaded"])
        yield started, first
    finally:
        stop_processes([proc for proc, _, _ in started.values()])


def test_daphne_loads_the_models_as_it_serves_without_any_request(servers):
    proc, _, log = servers[0]["daphne"]
    # only connections that wait_for_port opened and closed: no request reached it
    wait_loaded(log)
    assert len(lines(log)) == 1
    assert rss_mb(proc.pid) > 2 * SMALL_MB
    # what a load balancer waiting for a warm node reads; "models" meant installed all along
    status, body = health(servers[0]["daphne"][1])
    assert body["models_loaded"] is True and body["models"] is True, (status, body)


def test_runserver_loads_them_once_in_the_process_that_serves_after_its_first_answer(servers):
    """``make run``: the autoreloader's parent only restarts its child, which serves; the first
    request is answered before the load starts (TensorFlow's libraries hold the GIL while they load)."""
    proc, _, log = servers[0]["runserver"]
    status, loaded, said = servers[1]["runserver"]
    assert status in (200, 503) and not loaded, "the first answer waited for the models"
    assert said is False   # /healthz told it: this process had not loaded them yet
    wait_loaded(log)
    time.sleep(2)   # a second load (the parent's) would come about as late
    assert len(lines(log)) == 1
    (child,) = children(proc.pid)
    assert rss_mb(proc.pid) < SMALL_MB, "the autoreloader's parent loaded the models"
    assert rss_mb(child) > 2 * SMALL_MB


def test_with_the_setting_off_nothing_loads_until_it_is_needed(servers):
    proc, _, log = servers[0]["off"]
    assert servers[1]["off"][0] in (200, 503)   # answered: a request does not load them either
    assert servers[1]["off"][2] is False
    # both others, started with it, have loaded theirs (on the same cores): then some more
    took = max(wait_loaded(servers[0][name][2]) for name in ("daphne", "runserver"))
    time.sleep(max(2.0, took / 2))
    assert not lines(log)
    assert rss_mb(proc.pid) < SMALL_MB
    status, body = health(servers[0]["off"][1])
    assert body["models_loaded"] is False and body["models"] is True, (status, body)   # installed, not loaded
