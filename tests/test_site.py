"""Site-wide URLs."""

import pytest


@pytest.mark.django_db
def test_home_leads_staff_to_attendance_behind_a_login(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[0][0] == "/attendance/"
    assert "login" in response.redirect_chain[-1][0]


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    """A model change without its migration would pass every test here (pytest-django builds the
    test database from the migrations) and fail on a real deployment's ``migrate``."""
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_healthz_is_ready_only_when_the_models_the_database_and_the_cache_are(client, settings, tmp_path,
                                                                              monkeypatch):
    """The load balancer's probe: 200 with every part there; 503 naming the part that is not (an
    empty models folder, the ArcFace descriptor chosen but not installed, the database away)."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    from recognition import views
    from recognition.engine import install
    from tests.conftest import models_dir

    monkeypatch.setattr(views, "HEALTH_TTL_S", 0.0)   # every probe checks afresh (see the next test)
    settings.MASKNET_MODELS_DIR = models_dir()
    ready = client.get("/healthz")
    if ready.status_code == 503 and not ready.json()["models"]:
        pytest.skip("models not installed (python manage.py install_models)")
    assert ready.status_code == 200 and ready.json() == {**ready.json(), "ok": True, "models": True,
                                                         "database": True, "cache": True,
                                                         "descriptor": settings.MASKNET_DESCRIPTOR}
    settings.MASKNET_MODELS_DIR = tmp_path
    empty = client.get("/healthz")
    assert empty.status_code == 503 and empty.json()["models"] is False and empty.json()["database"] is True
    settings.MASKNET_MODELS_DIR = models_dir()
    monkeypatch.setattr(install, "descriptor_installed", lambda path, name: False)
    for descriptor in ("sface", "arcface"):   # the npm models are there, the descriptor's network is not
        settings.MASKNET_DESCRIPTOR = descriptor
        assert client.get("/healthz").json()["models"] is False
    settings.MASKNET_DESCRIPTOR = "faceres+resnet"   # needs none
    assert client.get("/healthz").json()["models"] is True
    settings.MASKNET_DESCRIPTOR = "sface"
    monkeypatch.undo()
    monkeypatch.setattr(views, "HEALTH_TTL_S", 0.0)

    def refused(self, *args, **kwargs):
        raise views.OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refused)
    down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["database"] is False and down.json()["ok"] is False
    assert down.json()["retention_purge_overdue"] is None   # unknown, not "on time"


@pytest.mark.django_db
def test_healthz_warm_starts_the_load_on_a_node_that_does_not_preload(client, settings, monkeypatch,
                                                                      no_engine_warm_up):
    """With ``MASKNET_PRELOAD_MODELS`` off the models loaded on a first frame, which a balancer that
    probes ``?warm=1`` never sends a node answering 503: the probe itself starts the load."""
    from enrollment import recognizer
    from recognition import views
    from tests.conftest import models_dir

    settings.MASKNET_MODELS_DIR, settings.MASKNET_PRELOAD_MODELS = models_dir(), False
    monkeypatch.setattr(views, "_health", None)
    monkeypatch.setattr(recognizer, "_loaded", False)
    assert client.get("/healthz").status_code in (200, 503) and no_engine_warm_up == []   # a plain probe: no load
    cold = client.get("/healthz?warm=1")
    if not cold.json()["models"]:
        pytest.skip("models not installed (python manage.py install_models)")
    assert cold.status_code == 503 and no_engine_warm_up == [True]
    monkeypatch.setattr(recognizer, "_loaded", True)   # what the load started above ends in
    assert client.get("/healthz?warm=1").status_code == 200 and no_engine_warm_up == [True]


@pytest.mark.django_db
def test_healthz_says_whether_this_process_has_loaded_the_models(client, settings, monkeypatch):
    """``models`` means installed: a node answers 200 while it loads them. ``models_loaded`` says
    whether this process has them (a balancer can wait for a warm node), read afresh even while the
    rest of the answer is reused, and ``ok`` does not depend on it."""
    from enrollment import recognizer
    from recognition import views
    from tests.conftest import models_dir

    settings.MASKNET_MODELS_DIR = models_dir()
    monkeypatch.setattr(views, "_health", None)
    monkeypatch.setattr(recognizer, "_loaded", False)   # this process as it starts
    cold = client.get("/healthz")
    if not cold.json()["models"]:
        pytest.skip("models not installed (python manage.py install_models)")
    assert cold.status_code == 200 and cold.json()["ok"] is True and cold.json()["models_loaded"] is False
    # a balancer that reads the status alone asks ?warm=1: 503 until the models are loaded
    cold_warm = client.get("/healthz?warm=1")
    assert cold_warm.status_code == 503 and cold_warm.json() == cold.json()
    assert "no-store" in cold["Cache-Control"]   # a proxy must not keep this moment's answer
    monkeypatch.setattr(views, "HEALTH_TTL_S", 3600.0)   # the answer above is reused from here on
    recognizer.get_engine()   # the load the preload, a kiosk's socket or a photo check starts
    warm = client.get("/healthz")
    assert warm.status_code == 200 and warm.json() == {**cold.json(), "models_loaded": True}
    assert b'"models_loaded": true' in warm.content   # as docs/deployment.md's HAProxy check matches it
    assert client.get("/healthz?warm=1").status_code == 200


def test_the_favicon_is_served_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/static/favicon.svg")


@pytest.mark.django_db
def test_healthz_answers_from_a_short_cache_and_logs_a_failure_once(client, monkeypatch, caplog):
    """Anyone can call it: its answer is reused for HEALTH_TTL_S (no database connection per call),
    and a failing check is logged when it starts failing, not at every probe."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    from recognition import views

    calls = []

    def refused(self, *args, **kwargs):
        calls.append(1)
        raise views.OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refused)
    monkeypatch.setattr(views, "_health", None)
    monkeypatch.setattr(views, "_health_failing", set())
    with caplog.at_level("WARNING", logger="recognition.views"):
        assert [client.get("/healthz").json()["database"] for _ in range(3)] == [False] * 3
        assert len(calls) == 1                                   # two answers from the cache
        monkeypatch.setattr(views, "HEALTH_TTL_S", 0.0)
        client.get("/healthz")
        assert len(calls) == 2
    assert [r.getMessage() for r in caplog.records].count("healthz: the database check fails") == 1


@pytest.mark.django_db
def test_a_login_lasts_the_session_hours_from_the_login_whatever_its_session_says(client, settings):
    """Sessions saved under a longer lifetime (an earlier release's two weeks) kept their expiry
    date after an upgrade: a login outlived MASKNET_SESSION_HOURS by days. A login older than it,
    or one without its time (made before the check existed), ends at its next request."""
    import time

    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from masknet_site.session_lifetime import LOGIN_AT

    User.objects.create_superuser("boss", "b@example.org", "x-long-password-1")
    client.login(username="boss", password="x-long-password-1")
    assert client.get("/admin/").status_code == 200
    key = client.cookies["sessionid"].value
    store = SessionStore(key)
    assert abs(store[LOGIN_AT] - time.time()) < 60

    store[LOGIN_AT] = int(time.time()) - settings.SESSION_COOKIE_AGE + 120   # two minutes left
    store.save()
    assert client.get("/admin/").status_code == 200
    store[LOGIN_AT] = int(time.time()) + 300   # stamped by a web node whose clock runs ahead
    store.save()
    assert client.get("/admin/").status_code == 200
    store[LOGIN_AT] = int(time.time()) - settings.SESSION_COOKIE_AGE - 1
    store.save()
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    assert not SessionStore().exists(key)   # the old session is gone, not only its login

    client.login(username="boss", password="x-long-password-1")
    store = SessionStore(client.cookies["sessionid"].value)
    del store[LOGIN_AT]    # as a session saved by an earlier release
    store.save()
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("path, status", [
    ("/static/kiosk/kiosk.js", 200),
    ("/static/admin/css/base.css", 200),
    ("/static/../manage.py", 404),
    ("/static/..%2f..%2fetc/passwd", 404),
    ("/static/admin/../../../etc/passwd", 404),
])
def test_the_development_servers_static_files_answer_a_path_leaving_them_with_a_404(path, status):
    """``make run``'s static handler (the one Daphne's runserver wraps the site in) answered 500
    with a traceback for a path leaving the static folders: Django's finders raise
    SuspiciousFileOperation, which the handler does not catch."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    response = StaticFilesHandler(WSGIHandler()).get_response(RequestFactory().get(path))
    assert response.status_code == status


def test_services_import_no_views_and_share_the_checkin_csv_writer():
    """A service reaching into a views module (even lazily, inside a function) inverts the layers:
    the attendance CSV's columns and rows live in ``recognition.exports``, which the services,
    the views, the admin and the API all import."""
    import ast
    from pathlib import Path

    from api import views as api_views
    from enrollment.services import export as enrollment  # the subject-access export
    from recognition import admin, exports
    from recognition import views as recognition_views

    root = Path(__file__).resolve().parent.parent
    for path in sorted([*root.glob("*/services.py"), *root.glob("*/services/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
                assert not any(n.split(".")[-1] == "views" for n in names), (path, ast.unparse(node))
    for module in (enrollment, recognition_views, admin, api_views):
        assert module.checkin_csv_rows is exports.checkin_csv_rows, module
        assert module.CHECKIN_CSV_HEADER is exports.CHECKIN_CSV_HEADER, module
