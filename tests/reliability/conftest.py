"""The test cluster shared by the reliability tests of this package (started once, stopped after
the package's last test): a PostgreSQL database of its own, a private Redis, two Daphne web nodes
(reaching PostgreSQL through a proxy that can cut it off), two Celery workers (under a supervisor
that starts an exited worker again, as systemd's ``Restart=always`` does), the control process,
and four people enrolled (Alice, Bruno, Chen, Dana; Emil and Fay are faces nobody enrolled yet).

Skips, saying why, when PostgreSQL, ``redis-server``, the face models or the test faces are missing.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from tests.conftest import RELIABILITY_TABLE, models_dir

from .harness import (
    REPORTS,
    Cluster,
    ControlProcess,
    ControlSkip,
    PostgresDatabase,
    RedisServer,
    TcpProxy,
    free_port,
    postgres_unavailable,
    redis_unavailable,
)

ENROLLED = ["Alice", "Bruno", "Chen", "Dana"]
NEWCOMER = "Emil"      # enrolled by the scale-out test
STRANGER = "Fay"       # never enrolled
# short enough for tests, long enough for a loaded 2-core machine (see harness and docs/reliability.md)
CLUSTER_SETTINGS = {
    "MASKNET_KIOSK_RECHECK_S": "2",        # kiosk sockets re-read their kiosk row and the index often
    "MASKNET_REBUILD_STALE_S": "20",       # a rebuild silent this long was killed
    "MASKNET_TASK_REDELIVERY_S": "20",     # a task unacknowledged this long is delivered again
}


@pytest.fixture(scope="package")
def cluster(tmp_path_factory, installed_models):
    """The running cluster (see the module docstring)."""
    for reason in (postgres_unavailable(), redis_unavailable()):
        if reason:
            pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("reliability")
    database = PostgresDatabase(f"masknet_reliability_{os.getpid()}_{uuid.uuid4().hex[:6]}").create()
    redis = proxy = control = supervisor = None
    c: Cluster | None = None
    try:
        redis = RedisServer(free_port(), tmp / "redis").start()
        proxy = TcpProxy((database.host, database.port))
        env = dict(os.environ)
        env.pop("MASKNET_TEST_SQLITE", None)
        env.update({"DJANGO_SETTINGS_MODULE": "masknet_site.settings.test", "REDIS_URL": redis.url,
                    "MASKNET_TEST_MEDIA_ROOT": str(tmp / "media"), "MASKNET_TEST_INDEX_DIR": str(tmp / "index"),
                    "MASKNET_MODELS_DIR": str(models_dir()), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                    "LOG_LEVEL": "WARNING", **CLUSTER_SETTINGS})
        c = Cluster(tmp=tmp, database=database, redis=redis, proxy=proxy, base_env=env)
        control = c.control = ControlProcess(c.env(via_proxy=False, LOG_LEVEL="INFO"), tmp / "control.log")
        control.call("migrate")
        try:
            c.info = control.call("setup", frames_dir=str(tmp / "frames"), enrolled=ENROLLED, kiosks=30, timeout=600)
        except ControlSkip as exc:
            pytest.skip(str(exc))
        c.tokens = list(c.info["tokens"])
        nodes = [c.add_web("web-a"), c.add_web("web-b"), c.add_worker("worker-1"), c.add_worker("worker-2")]
        errors: list[BaseException] = []

        def start(node) -> None:
            try:
                node.start()
                if node.kind == "web":
                    c.warm(node, STRANGER)
            except BaseException as exc:  # noqa: BLE001 - raised below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        if errors:
            raise errors[0]
        stuck = [n.name for n, t in zip(nodes, threads, strict=True) if t.is_alive()]
        assert not stuck, f"nodes still starting after 300 s: {stuck}"
        supervisor = c.supervise()
        yield c
    finally:
        if supervisor is not None:
            supervisor.set()
        if c is not None:
            c.stop_all()
        if control is not None:
            control.close()
        if proxy is not None:
            proxy.close()
        if redis is not None:
            redis.stop()
        database.drop()


@pytest.fixture
def healthy(cluster):
    """Every node running before and after the test (a test that broke one starts it again)."""
    cluster.ensure_running()
    yield cluster
    cluster.ensure_running()


@pytest.fixture(autouse=True)
def tables_reported(request):
    """The tables a test printed (``harness.print_table``) carried by its teardown report, which
    the terminal summary reads (``tests/conftest.py``), in this process or, under xdist, another."""
    before = len(REPORTS)
    yield
    request.node.user_properties.extend((RELIABILITY_TABLE, text) for text in REPORTS[before:])
