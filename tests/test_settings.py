"""Production settings: secrets only from the environment, `check --deploy` clean."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "masknet_site.settings.prod",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-from-the-environment-0123456789",
    "DJANGO_ALLOWED_HOSTS": "masknet.example.org",
    "DATABASE_URL": "postgres://masknet:secret@db.example.org:5432/masknet",
    "REDIS_URL": "redis://redis.example.org:6379/0",
    # whom the public privacy page names for access and erasure (else check --deploy warns: masknet.W003)
    "MASKNET_PRIVACY_CONTACT": "Data protection officer, dpo@example.org",
    # who operates the site and on what legal basis (else check --deploy warns: masknet.W005)
    "MASKNET_PRIVACY_CONTROLLER": "Example Ltd, 1 Example Street, Exampletown",
    "MASKNET_PRIVACY_LEGAL_BASIS": "your explicit consent, given when you enrolled (GDPR art. 9(2)(a))",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "MASKNET_SINGLE_NODE",
                                 "MASKNET_PRIVACY_"))}
    # whether this machine has a production environment file or not (manage.py refuses to run without it loaded)
    base["MASKNET_ENV_FILE"] = "/nonexistent/masknet/env"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.reliability
def test_check_deploy_is_clean_with_the_documented_environment():
    proc = manage("check", "--deploy", "--fail-level", "WARNING", **PROD_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


@pytest.mark.reliability
def test_check_deploy_warns_when_no_privacy_contact_is_named():
    """A production site starts without one, but ``check --deploy`` says that its privacy page names
    no one to ask for access to or erasure of face data."""
    env = {k: v for k, v in PROD_ENV.items() if k != "MASKNET_PRIVACY_CONTACT"}
    proc = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert proc.returncode != 0 and "masknet.W003" in proc.stderr and "MASKNET_PRIVACY_CONTACT" in proc.stderr
    assert manage("check", **env).returncode == 0


@pytest.mark.reliability
def test_check_deploy_warns_when_no_controller_or_legal_basis_is_stated():
    """A production site starts without them, but ``check --deploy`` says, in one warning, which of
    the data controller and the legal basis its privacy page says the operator has not stated."""
    env = {k: v for k, v in PROD_ENV.items() if k != "MASKNET_PRIVACY_LEGAL_BASIS"}
    proc = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert proc.returncode != 0 and proc.stderr.count("masknet.W005") == 1 and "masknet.W003" not in proc.stderr
    assert "MASKNET_PRIVACY_LEGAL_BASIS is not set" in proc.stderr
    assert manage("check", **env).returncode == 0


def test_check_deploy_warns_when_any_host_is_allowed():
    """``DJANGO_ALLOWED_HOSTS=*`` passed production's settings and Django's deploy checks without a word
    (a security review): any domain pointed at the server's address was then this site."""
    env = {**PROD_ENV, "DJANGO_ALLOWED_HOSTS": "masknet.example.org,*"}
    proc = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert proc.returncode != 0 and proc.stderr.count("masknet.W007") == 1, proc.stderr[-800:]
    assert "DJANGO_ALLOWED_HOSTS is '*'" in proc.stderr
    assert manage("check", **env).returncode == 0   # a warning of the deploy checks alone


@pytest.mark.reliability
@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "REDIS_URL"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    proc = manage("check", **env)
    assert proc.returncode != 0
    assert missing in proc.stderr


@pytest.mark.reliability
def test_production_runs_without_redis_only_as_a_declared_single_node():
    env = {k: v for k, v in PROD_ENV.items() if k != "REDIS_URL"}
    assert manage("check", MASKNET_SINGLE_NODE="1", **env).returncode == 0


def test_database_url_query_parameters_reach_the_driver():
    """``?sslmode=verify-full`` (TLS on the link that carries face templates) is not dropped."""
    from masknet_site.settings.base import database_from_url

    db = database_from_url("postgres://m:p@db.example.org:5432/masknet?sslmode=verify-full&sslrootcert=/etc/ca.pem")
    assert db["OPTIONS"] == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "connect_timeout": "5"}
    # a database that stops answering is given up on after 5 s unless the URL says otherwise
    assert database_from_url("postgres://m@db/masknet?connect_timeout=2")["OPTIONS"] == {"connect_timeout": "2"}
    assert db["NAME"] == "masknet" and db["CONN_MAX_AGE"] == 0   # no connections left on Daphne's threads


@pytest.mark.reliability
@pytest.mark.parametrize("program", ["worker", "beat"])
def test_celery_refuses_to_start_on_a_broker_of_its_own(program, tmp_path):
    """Without REDIS_URL a worker or beat would serve an in-memory broker no web process sends to
    (rebuilds and the retention purge would silently never run): they stop and say why."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "masknet_site", program,
                           *(["--pool", "solo"] if program == "worker" else ["-s", str(tmp_path / "schedule")])],
                          cwd=REPO, env=base, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "set REDIS_URL" in proc.stdout + proc.stderr



@pytest.mark.reliability
def test_manage_py_refuses_to_run_where_the_production_environment_is_not_loaded(tmp_path):
    """On a node with ``/etc/masknet/env`` (docs/deployment.md), ``manage.py createsuperuser`` run
    without loading it created the superuser in the development settings' SQLite file, which no site
    reads, and said nothing; ``migrate`` likewise. It now stops and says how to load it."""
    env_file = tmp_path / "env"
    env_file.write_text("DJANGO_SETTINGS_MODULE=masknet_site.settings.prod\n")
    refused = manage("check", MASKNET_ENV_FILE=str(env_file))
    assert refused.returncode == 1 and f"{env_file} is not loaded" in refused.stderr, refused.stderr
    assert f"set -a; . {env_file}; set +a" in refused.stderr
    assert manage("check", MASKNET_ENV_FILE=str(env_file),
                  DJANGO_SETTINGS_MODULE="masknet_site.settings.dev").returncode == 0   # on purpose
    assert manage("check", "--settings=masknet_site.settings.dev", MASKNET_ENV_FILE=str(env_file)).returncode == 0
    assert manage("check", MASKNET_ENV_FILE=str(tmp_path / "absent")).returncode == 0   # a development machine


@pytest.mark.reliability
def test_the_development_settings_refuse_other_hosts_with_their_public_key():
    """A deployment that forgot DJANGO_SETTINGS_MODULE runs the development settings (the default of
    manage.py, the ASGI and Celery apps): serving a real host name with the public dev key is refused."""
    refused = manage("check", DJANGO_ALLOWED_HOSTS="masknet.example.org")
    assert refused.returncode != 0 and "masknet_site.settings.prod" in refused.stderr
    # the documented deployment's variables (its own key) without the settings module: DEBUG is on
    assert manage("check", DJANGO_ALLOWED_HOSTS="masknet.example.org", DJANGO_SECRET_KEY="k" * 50).returncode != 0
    assert manage("check", DJANGO_ALLOWED_HOSTS="masknet.example.org", DJANGO_SECRET_KEY=PROD_ENV["DJANGO_SECRET_KEY"],
                  DJANGO_DEBUG="0").returncode == 0
    # serving the network, the key is held to production's rule ("short" served it: a security review),
    # whatever the hosts allowed: a client on the network may send "Host: localhost" (a diff review)
    for key, hosts in (("short", "masknet.example.org"), ("k" * 50, "masknet.example.org"), ("short", None)):
        weak = manage("check", DJANGO_SECRET_KEY=key, DJANGO_DEBUG="0",
                      **({"DJANGO_ALLOWED_HOSTS": hosts} if hosts else {}))
        assert weak.returncode != 0 and "DJANGO_SECRET_KEY is too weak" in weak.stderr, weak.stderr[-500:]
        assert key not in weak.stderr
    assert manage("check").returncode == 0           # localhost: the embedded default


@pytest.mark.reliability
def test_an_out_of_range_threshold_offset_is_refused():
    """Far out, or just below the lowest offset that keeps masked strangers out, the site refuses to
    start and names the setting; the bound itself is accepted."""
    for value in ("0.5", "-0.03"):
        proc = manage("check", MASKNET_THRESHOLD_OFFSET=value)
        assert proc.returncode != 0 and "MASKNET_THRESHOLD_OFFSET" in proc.stderr, value
    assert manage("check", MASKNET_THRESHOLD_OFFSET="-0.02").returncode == 0


@pytest.mark.reliability
def test_an_unknown_descriptor_is_refused():
    """A typo in MASKNET_DESCRIPTOR must not start a site on some other network's thresholds."""
    proc = manage("check", MASKNET_DESCRIPTOR="arcfce")
    assert proc.returncode != 0 and "MASKNET_DESCRIPTOR" in proc.stderr


@pytest.mark.reliability
def test_an_unreadable_checkin_cooldown_is_refused():
    """A typo in MASKNET_CHECKIN_COOLDOWN must stop the site at start, not fail every recognised
    face's check-in ("The frame could not be analysed"); the documented forms start."""
    for value in ("daily", "0"):
        proc = manage("check", MASKNET_CHECKIN_COOLDOWN=value)
        assert proc.returncode != 0 and "MASKNET_CHECKIN_COOLDOWN" in proc.stderr, value
    for value in ("Day", "90"):
        assert manage("check", MASKNET_CHECKIN_COOLDOWN=value).returncode == 0, value


def test_the_checkin_cooldown_is_read_by_one_rule():
    """The settings check the value with the parser that ``cooldown_window`` applies."""
    from django.core.exceptions import ImproperlyConfigured

    from masknet_site.settings.base import checkin_cooldown_minutes

    assert checkin_cooldown_minutes("day") is None and checkin_cooldown_minutes(" DAY ") is None
    assert checkin_cooldown_minutes("30") == 30 and checkin_cooldown_minutes(1440) == 1440
    for value in ("daily", "", "0", "-5", "1.5", "30m"):
        with pytest.raises(ImproperlyConfigured, match="MASKNET_CHECKIN_COOLDOWN"):
            checkin_cooldown_minutes(value)


def test_working_days_are_read_by_one_rule():
    """``MASKNET_WORKING_DAYS``: days and ranges (a range may wrap the week's end), any case; a typo
    stops the site at start rather than failing every attendance summary."""
    from django.core.exceptions import ImproperlyConfigured

    from masknet_site.settings.base import working_weekdays

    assert working_weekdays("mon-fri") == {0, 1, 2, 3, 4} and working_weekdays(" Sun - Thu ") == {6, 0, 1, 2, 3}
    assert working_weekdays("mon,wed,sat-sun") == {0, 2, 5, 6} and working_weekdays("fri-mon") == {4, 5, 6, 0}
    for value in ("", "monday", "mon-", "-fri", "mon,,fri", "mon-fri-sat", "1-5"):
        with pytest.raises(ImproperlyConfigured, match="MASKNET_WORKING_DAYS"):
            working_weekdays(value)


@pytest.mark.reliability
def test_unreadable_working_days_are_refused():
    proc = manage("check", MASKNET_WORKING_DAYS="mon-fry")
    assert proc.returncode != 0 and "MASKNET_WORKING_DAYS" in proc.stderr
    assert manage("check", MASKNET_WORKING_DAYS="sun-thu").returncode == 0


@pytest.mark.reliability
def test_the_redis_layout_survives_idle_sockets_and_lost_workers():
    """With ``REDIS_URL``: a kiosk socket's idle wait for channel messages (channels_redis's
    5-second blocking pop) must not hit redis-py's socket read timeout (5 s by default since
    redis-py 8: every idle socket's consumer died); a task of a lost worker goes back to the
    queue, and one of a killed worker is delivered again after MASKNET_TASK_REDELIVERY_S,
    longer than any task countdown (MASKNET_REBUILD_STALE_S bounds the rebuild's retries)."""
    code = (
        "import json\n"
        "from channels_redis.core import RedisChannelLayer\n"
        "from django.conf import settings as s\n"
        "host = s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]\n"
        "print(json.dumps({'socket_timeout': host['socket_timeout'], 'brpop': RedisChannelLayer.brpop_timeout,\n"
        "  'backend': s.CHANNEL_LAYERS['default']['BACKEND'],\n"
        "  'reject': s.CELERY_TASK_REJECT_ON_WORKER_LOST, 'acks_late': s.CELERY_TASK_ACKS_LATE,\n"
        "  'visibility': s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'],\n"
        "  'stale': s.MASKNET_REBUILD_STALE_S, 'debounce': s.MASKNET_REBUILD_DEBOUNCE_S}))\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "MASKNET_"))}
    proc = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], cwd=REPO,
                          env={**base, "DJANGO_SETTINGS_MODULE": "masknet_site.settings.dev",
                               "REDIS_URL": "redis://127.0.0.1:6379/0"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["socket_timeout"] > facts["brpop"]
    # whose receive waits out a Redis outage (masknet_site/channel_layer.py): the kiosk sockets stay open
    assert facts["backend"] == "masknet_site.channel_layer.RedisChannelLayer"
    assert facts["reject"] and facts["acks_late"]
    assert facts["visibility"] > max(facts["stale"], facts["debounce"], 30)   # 30: the tasks' longest retry


def test_database_urls_and_debug_read_as_documented():
    """``sqlite:///db.sqlite3`` (the README's form) is the checkout's file, not one at the root;
    ``DJANGO_DEBUG=True`` means on, as every other boolean setting reads it."""
    from masknet_site.settings.base import BASE_DIR, database_from_url, sqlite_url

    assert database_from_url("sqlite:///db.sqlite3")["NAME"] == str(BASE_DIR / "db.sqlite3")
    assert database_from_url("sqlite:////srv/masknet/db.sqlite3")["NAME"] == "/srv/masknet/db.sqlite3"
    assert database_from_url("sqlite://")["NAME"] == ":memory:"
    # the default (the checkout's own file) wherever the checkout is: a space, a '#', a '?', a '%20'
    for folder in ("/work/first run", "/home/ana/C# projects/mask?net", "/srv/100%20"):
        path = Path(folder) / "db.sqlite3"
        assert database_from_url(sqlite_url(path))["NAME"] == str(path)
    code = "from django.conf import settings; print(settings.DEBUG)"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    for value, expected in (("True", "True"), ("off", "False")):
        proc = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**base, "DJANGO_DEBUG": value})
        assert proc.stdout.strip().splitlines()[-1] == expected, proc.stderr


def test_collected_static_files_stay_readable_by_the_proxy(settings, tmp_path):
    """Photos are stored 0600 in 0700 folders (``FILE_UPLOAD_PERMISSIONS``), which the static
    storage would take too: collectstatic's output, served by nginx as another user, keeps 0644/0755."""
    import stat

    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.core.files.base import ContentFile

    settings.STATIC_ROOT = tmp_path / "static"
    previous = os.umask(0o077)
    try:
        path = Path(staticfiles_storage.path(staticfiles_storage.save("admin/css/site.css", ContentFile(b"p{}"))))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755 == stat.S_IMODE(path.parent.parent.stat().st_mode)
    assert settings.FILE_UPLOAD_PERMISSIONS == 0o600 and settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS == 0o700


def test_an_upgrade_collects_static_files_beside_the_previous_releases(settings, tmp_path):
    """``collectstatic`` runs while the previous release still serves: with plain names, a kiosk page
    it rendered meanwhile loaded the new release's script under its own HTML (the banner read
    ``starting.title``; a helper following the upgrade steps). Production names each file by its
    content too and links that name: the previous release's file stays, the new one is linked, and
    the plain name is kept (nginx's offline page links it). Each release reads its own manifest (in
    its folder): a process of the previous release started after the new one's collectstatic still
    links its own files (with one shared manifest it linked the new ones; the change's review)."""
    import stat

    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.core.management import call_command

    from masknet_site.staticstorage import ReleaseStaticFilesStorage

    prod = manage("shell", "-c", "from django.conf import settings; print(settings.STORAGES['staticfiles'])",
                  **{**PROD_ENV, "MASKNET_SINGLE_NODE": "1"})
    assert prod.returncode == 0, prod.stderr
    assert "masknet_site.staticstorage.ReleaseStaticFilesStorage" in prod.stdout
    assert "'file_permissions_mode': 420" in prod.stdout   # 0o644: still readable by nginx
    source = tmp_path / "src"
    (source / "kiosk").mkdir(parents=True)
    settings.STATICFILES_DIRS = [source]
    settings.STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]
    settings.STATIC_ROOT = root = tmp_path / "static"   # shared by the releases (nginx serves it)
    modes = {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755}

    def release(name: str, script: str, at: float) -> str:
        """Release ``name``'s collectstatic, its manifest in its own folder; the script's link."""
        settings.STORAGES = {**settings.STORAGES, "staticfiles": {
            "BACKEND": "masknet_site.staticstorage.ReleaseStaticFilesStorage",
            "OPTIONS": {**modes, "manifest_location": str(tmp_path / name / "var" / "static-manifest")}}}
        (source / "kiosk" / "kiosk.js").write_text(script)
        os.utime(source / "kiosk" / "kiosk.js", (at, at))   # collectstatic copies a file newer than its copy
        call_command("collectstatic", interactive=False, verbosity=0)
        return staticfiles_storage.url("kiosk/kiosk.js")

    old, new = release("r1", "/* release 1 */", time.time() - 60), release("r2", "/* release 2 */", time.time() + 60)
    assert old != new and old.startswith("/static/kiosk/kiosk.") and old.endswith(".js"), (old, new)
    assert (root / old.removeprefix("/static/")).read_text() == "/* release 1 */"
    assert (root / new.removeprefix("/static/")).read_text() == "/* release 2 */"
    assert (root / "kiosk" / "kiosk.js").read_text() == "/* release 2 */"
    assert stat.S_IMODE((root / new.removeprefix("/static/")).stat().st_mode) == 0o644
    assert not (root / "staticfiles.json").exists() and (tmp_path / "r2" / "var" / "static-manifest").is_dir()
    # a process of release 1 started now (a crash, a reboot) links release 1's script
    started = ReleaseStaticFilesStorage(manifest_location=tmp_path / "r1" / "var" / "static-manifest", **modes)
    assert started.url("kiosk/kiosk.js") == old
    # a file the manifest does not list yet is linked by its plain name, not a 500
    assert started.url("kiosk/added-since.js") == "/static/kiosk/added-since.js"


def test_the_development_server_logs_each_line_once():
    """Django's own console handler (DEBUG on) and the root handler both printed every "django.*"
    line, the server's requests and Channels' socket lines among them."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "MASKNET_"))}
    code = "import logging\nlogging.getLogger('django.channels.server').info('one line, once')\n"
    proc = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], cwd=REPO,
                          env={**base, "DJANGO_SETTINGS_MODULE": "masknet_site.settings.dev"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("one line, once") == 1


@pytest.mark.reliability
def test_demo_data_is_refused_under_the_production_settings():
    proc = manage("demo", "--no-enroll", **PROD_ENV)
    assert proc.returncode != 0 and "production settings" in proc.stderr


def test_the_development_guard_serves_only_this_machine():
    """``make run HOST=0.0.0.0`` without the documented variables: a client on the network that sends
    ``Host: localhost`` passed the allowed-hosts check and was served DEBUG's pages."""
    import asyncio

    from masknet_site.loopback import LoopbackOnly

    served = []

    async def app(scope, receive, send):
        served.append(scope["client"])

    async def request(kind: str, client):
        sent = []

        async def receive():
            return {"type": "websocket.connect"}

        async def send(message):
            sent.append(message)

        await LoopbackOnly(app)({"type": kind, "client": client}, receive, send)
        return sent

    local = [("127.0.0.1", 5000), ("::1", 5000), ("::ffff:127.0.0.1", 5000), ("127.0.0.2", 1), None]
    for client in local:
        assert asyncio.run(request("http", client)) == []
    assert served == local
    refused = asyncio.run(request("http", ("10.0.0.5", 5000)))
    assert refused[0]["status"] == 403 and b"development server" in refused[1]["body"]
    assert asyncio.run(request("websocket", ("192.168.1.20", 5000))) == [{"type": "websocket.close", "code": 4403}]
    assert asyncio.run(request("http", ("not-an-address", 1)))[0]["status"] == 403
    assert asyncio.run(request("http", ("::ffff:10.0.0.5", 1)))[0]["status"] == 403
    assert len(served) == len(local)


@pytest.mark.reliability
def test_the_development_settings_guard_their_asgi_application_unless_debug_is_off_with_a_key():
    code = ("from masknet_site.asgi import application; from masknet_site.loopback import LoopbackOnly; "
            "print(isinstance(application, LoopbackOnly))")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    for extra, expected in (({}, "True"), ({"DJANGO_DEBUG": "0"}, "True"),
                            ({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": PROD_ENV["DJANGO_SECRET_KEY"]}, "False")):
        proc = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**base, **extra})
        assert proc.stdout.strip().splitlines()[-1] == expected, (extra, proc.stderr)


def test_the_proxys_offline_page_reloads_itself_and_is_the_one_documented():
    """nginx's own 502 page never reloads: a kiosk that booted before the server stayed on it.
    What the page loads (its style, and offline.js, which shows it in the kiosk's language) must be
    files nginx serves from disk while no web process answers: under /static/ (the sample's
    ``location /static/``, collectstatic's output), each one in static/. The page without its script
    (or with it at an address the proxy passes on to Daphne) was English again, and no test said so."""
    page = (REPO / "static" / "offline.html").read_text()
    assert '<meta http-equiv="refresh" content="15">' in page
    assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert {"/static/kiosk/kiosk.css", "/static/kiosk/offline.js"} <= set(assets), assets
    for asset in assets:
        assert asset.startswith("/static/") and (REPO / asset.removeprefix("/")).is_file(), asset
    assert re.search(r'<script src="/static/kiosk/offline\.js" defer></script>', page)
    https = nginx_sample()[nginx_sample().index("listen 443"):]
    assert re.search(r"location /static/ \{\s*alias /srv/masknet/static/;", https)
    assert "error_page 502 504 /static/offline.html;" in https


def nginx_sample() -> str:
    """docs/deployment.md's nginx sample (what goes in nginx's ``http`` block)."""
    guide = (REPO / "docs" / "deployment.md").read_text()
    return guide.split("```nginx\n", 1)[1].split("```", 1)[0]


def test_the_proxy_sample_sends_hsts_on_what_nginx_answers_itself():
    """The guide's diagram says the proxy sets HSTS; its nginx sample sent none on its own answers
    (static files, the offline 502 page, the 404 of /media/). nginx drops a server's add_header in
    a location with an add_header of its own, and without "always" adds none to a 502 or 404: each
    such place carries it. The value is the production settings' default (one year, subdomains, preload)."""
    sample = nginx_sample()
    hsts = "add_header Strict-Transport-Security $masknet_hsts always;"
    https = sample[sample.index("listen 443"):]
    server_level = re.sub(r"location [^{]*\{[^}]*\}", "", https)
    assert hsts in server_level
    for location in re.findall(r"location [^{]*\{[^}]*\}", https):
        assert "add_header" not in location or hsts in location, location
    value = re.search(r'map \$upstream_http_strict_transport_security \$masknet_hsts \{\s*""\s+"([^"]+)";', sample)
    assert value and value.group(1) == "max-age=31536000; includeSubDomains; preload"
    prod = (REPO / "masknet_site" / "settings" / "prod.py").read_text()
    assert 'env_int("DJANGO_HSTS_SECONDS", 31536000)' in prod


CLIENT_MAP = re.compile(r"^map \$binary_remote_addr \$masknet_client \{\n.*?^\}", re.MULTILINE | re.DOTALL)


def test_the_proxy_sample_limits_an_ipv6_client_by_its_64():
    """Keyed on ``$binary_remote_addr``, the sample's limits counted each IPv6 address apart: a host
    holds a whole /64 and can use a new address for each handshake. Every limit zone is keyed on the
    sample's client variable, which the map (run in nginx below) makes an IPv6 client's /64."""
    sample = nginx_sample()
    zones = re.findall(r"^\s*limit_(?:req|conn)_zone\s+(\S+)", sample, re.MULTILINE)
    assert zones and set(zones) == {"$masknet_client"}, zones
    assert CLIENT_MAP.search(sample)
    assert "zone=masknet_sockets" in re.search(r"location /ws/ \{[^}]*\}", sample).group(0)


def _nginx() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    return found


def _nginx_conf(tmp: Path, http: str) -> Path:
    """A configuration of nginx's own around ``http`` (the inside of its ``http`` block): everything
    it writes under ``tmp``, so that it runs as any user beside any other nginx."""
    conf = tmp / "nginx.conf"
    paths = "".join(f"    {name}_temp_path {tmp / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                           "scgi"))
    conf.write_text(f"pid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'};\nevents {{}}\n"
                    f"http {{\n    access_log off;\n{paths}{http}\n}}\n")
    return conf


def test_nginx_accepts_the_proxy_sample(tmp_path):
    """``nginx -t`` on the whole sample (its certificate made here, its ports free ones of
    127.0.0.1): Debian 12's nginx 1.22, which the guide names, takes every directive in it."""
    nginx = _nginx()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the sample's server")
    from bench.live import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=masknet.example.org", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    sample = nginx_sample()
    for old, new in (("/etc/ssl/masknet/fullchain.pem", cert), ("/etc/ssl/masknet/privkey.pem", key),
                     ("listen 80;", f"listen 127.0.0.1:{free_port()};"),
                     ("listen 443 ssl", f"listen 127.0.0.1:{free_port()} ssl"),
                     ("/var/log/nginx/masknet-access.log", tmp_path / "access.log")):
        assert old in sample, old
        sample = sample.replace(old, str(new))
    conf = _nginx_conf(tmp_path, sample)
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr


def test_the_proxy_samples_client_key_counts_an_ipv6_64_as_one_client_in_nginx(tmp_path):
    """The sample's map and its socket zone (at 1 request a minute, no burst) in a running nginx that
    takes the client's address from a header (``realip``): a second address of one /64 is refused
    (429), another /64 is not, nor another IPv4 address, nor an IPv4 client seen as ``::ffff:a.b.c.d``
    (whose /64, ``::/64``, would be every IPv4 client), and bytes like a newline in the prefix count."""
    nginx = _nginx()
    from bench.live import free_port, stop_process, wait_for_port

    sample = nginx_sample()
    zone = re.search(r"^limit_req_zone \$masknet_client zone=masknet_sockets:\S+ rate=\S+;", sample, re.MULTILINE)
    assert zone, "the sample's socket zone"
    port = free_port()
    # stub_status: an answer of nginx's own after limit_req's phase ("return" comes before it), and no
    # file to read (the workers of an nginx started as root run as another user)
    server = f"""server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        location / {{ limit_req zone=masknet_sockets; limit_req_status 429; stub_status; }}
    }}"""
    conf = _nginx_conf(tmp_path, "\n".join((CLIENT_MAP.search(sample).group(0),
                                            re.sub(r"rate=\S+;", "rate=1r/m;", zone.group(0)), server)))
    log = tmp_path / "error.log"
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(log), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 30, log)

        def status(client: str) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"X-Real-IP": client})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status
            except urllib.error.HTTPError as exc:
                return exc.code

        asked = [("2001:db8:ff80:8000::1", 200), ("2001:db8:ff80:8000:ffff:ffff:ffff:fffe", 429),
                 ("2001:db8:ff80:8001::1", 200), ("a0a:a0a:a0a:a0a::1", 200), ("a0a:a0a:a0a:a0a::2", 429),
                 ("198.51.100.7", 200), ("198.51.100.7", 429), ("198.51.100.8", 200),
                 ("::ffff:198.51.100.9", 200), ("::ffff:198.51.100.10", 200)]
        assert [(client, status(client)) for client, _ in asked] == asked
    finally:
        stop_process(proc)


def test_the_proxy_samples_access_log_holds_no_query_string_nor_pairing_code(tmp_path):
    """nginx's default ``combined`` format writes ``$request``: a people search's name, the API's
    ``?staff_id=`` an HR sync asks, the erased staff ids' lookup stayed in the log after the person's
    erasure, and a pairing link's code with them. The sample's ``masknet`` format, run in nginx,
    writes the path alone. Found by a helper's review of erasure."""
    nginx = _nginx()
    from bench.live import free_port, stop_process, wait_for_port

    sample = nginx_sample()
    logged = re.search(r"^map \$uri \$masknet_pairing \{\n.*?^\}\nlog_format masknet .*?;$", sample,
                       re.MULTILINE | re.DOTALL)
    assert logged, "the sample's log format"
    assert sample.count("access_log /var/log/nginx/masknet-access.log masknet;") == 2   # both servers
    port, log = free_port(), tmp_path / "access.log"
    # the site's server as the sample has it: an error page of nginx's own for an unreachable upstream
    # every request answered by the offline page as a 502 (the web processes away), the pairing flag
    # read first as the sample's "location /" reads it
    read = "set $masknet_pairing_read $masknet_pairing;"
    assert read in re.search(r"location / \{.*?\}", sample, re.DOTALL).group(0)
    server = (f"server {{ listen 127.0.0.1:{port}; access_log {log} masknet; error_page 502 /offline.html; "
              f"location = /offline.html {{ return 204; }} location / {{ {read} return 502; }} }}")
    conf = _nginx_conf(tmp_path, "\n".join((logged.group(0), server)))
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 30, tmp_path / "error.log")
        # (the last two as Django reads them too: pairing pages, which the path as sent does not show)
        for path in ("/api/v1/people?staff_id=TB-2001", "/admin/enrollment/person/?q=Tony+Blair",
                     "/kiosk/pair/s3cretPairingCode/", "/kiosk/%70air/s3cretPairingCode/",
                     "/x/../kiosk/pair/s3cretPairingCode/"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:   # the path as written
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                assert s.recv(100).startswith(b"HTTP/1.1 502")
    finally:
        stop_process(proc)
    text = log.read_text()
    assert '"GET /api/v1/people?..."' in text and '"GET /admin/enrollment/person/?..."' in text, text
    assert text.count('"GET /kiosk/pair/..."') == 3 and "offline" not in text, text
    for secret in ("TB-2001", "Tony", "s3cretPairingCode"):
        assert secret not in text, secret


@pytest.mark.reliability
def test_an_unreadable_api_rate_is_refused_at_start():
    """Read only when a request came: a typo made every authenticated API call a 500."""
    for name, value in (("MASKNET_API_USER_RATE", "1,200/min"), ("MASKNET_API_TOKEN_RATE", "120 / min"),
                        ("MASKNET_API_RECOGNISE_RATE", "0/min")):
        proc = manage("check", **{name: value})
        assert proc.returncode != 0 and name in proc.stderr, (name, proc.stderr[-500:])
    assert manage("check", MASKNET_API_USER_RATE="20/s", MASKNET_API_TOKEN_RATE="5/hour").returncode == 0


def test_a_kiosk_language_without_a_catalog_is_refused():
    """A typo (or a language the kiosk has no words in) would show every kiosk in English without a
    word: the site refuses to start, naming the setting and the languages there are."""
    for value in ("english", "pt_BR", "xx"):
        proc = manage("check", MASKNET_KIOSK_LANGUAGE=value)
        assert proc.returncode != 0 and "MASKNET_KIOSK_LANGUAGE" in proc.stderr, (value, proc.stderr[-300:])
        assert "use one of en" in proc.stderr, proc.stderr[-300:]
    assert manage("check", MASKNET_KIOSK_LANGUAGE="de").returncode == 0


def test_an_unusable_pairing_link_lifetime_is_refused():
    """0 made every link expire as it was made (the page said "expires in 1 minutes"); 10^12 was a
    500 on every kiosk creation. The documented range starts."""
    for value in ("0", "-5", "1000000000000"):
        proc = manage("check", MASKNET_KIOSK_PAIRING_TTL_S=value)
        assert proc.returncode != 0 and "MASKNET_KIOSK_PAIRING_TTL_S" in proc.stderr, value
    assert manage("check", MASKNET_KIOSK_PAIRING_TTL_S="3600").returncode == 0


def test_vote_counts_outside_the_votes_window_are_refused_at_start():
    """``MASKNET_KIOSK_VOTE_FRAMES=7`` (or 0) started the site, and every kiosk's socket then failed as
    it opened: its page said "Connection lost — reconnecting…" for good."""
    from recognition.voting import Voter

    assert Voter().window == 6   # the window the settings' bound names
    for name in ("MASKNET_KIOSK_VOTE_FRAMES", "MASKNET_KIOSK_VOTE_FRAMES_MASKED",
                 "MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN"):
        for value in ("0", "7"):
            proc = manage("check", **{name: value})
            assert proc.returncode != 0 and f"{name}={value}: use 1 to 6" in proc.stderr, (name, value)
    assert manage("check", MASKNET_KIOSK_VOTE_FRAMES="6", MASKNET_KIOSK_VOTE_FRAMES_MASKED="1").returncode == 0


def test_retention_periods_outside_a_century_are_refused_at_start():
    """A period meant as "forever" (10,000,000 days) overflowed the dates: the daily purge failed and
    the admin's page of everyone with a kept photo answered 500."""
    for name in ("MASKNET_RETENTION_SNAPSHOT_DAYS", "MASKNET_RETENTION_DECISION_DAYS",
                 "MASKNET_RETENTION_ADAPTED_DAYS"):
        for value in ("-1", "10000000"):
            proc = manage("check", **{name: value})
            assert proc.returncode != 0 and name in proc.stderr, (name, value, proc.stderr[-300:])
    assert manage("check", MASKNET_RETENTION_ADAPTED_DAYS="36500").returncode == 0


def test_security_switches_and_login_limits_are_read_strictly():
    """DJANGO_HSTS_PRELOAD=true read as off (only "1" was on); a lockout of 0 s let every guess
    through; a session lifetime outside 1-336 hours is refused. The documented forms start."""
    prod = {**PROD_ENV}
    for name, value in (("DJANGO_HSTS_PRELOAD", "ture"), ("MASKNET_LOGIN_LOCKOUT_S", "0"),
                        ("MASKNET_LOGIN_MAX_FAILURES", "-1"), ("MASKNET_SESSION_HOURS", "0")):
        proc = manage("check", **prod, **{name: value})
        assert proc.returncode != 0 and name in proc.stderr, (name, proc.stderr[-500:])
    shown = manage("shell", "-c", "from django.conf import settings as s; print(s.SECURE_HSTS_PRELOAD, "
                   "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SESSION_COOKIE_AGE)",
                   **prod, DJANGO_HSTS_PRELOAD="true", DJANGO_HSTS_INCLUDE_SUBDOMAINS="No")
    last = shown.stdout.strip().splitlines()[-1].split() if shown.stdout.strip() else []
    assert shown.returncode == 0 and last == ["True", "False", str(12 * 3600)], shown.stderr[-500:]


def test_numeric_settings_that_are_not_numbers_are_refused_by_name(monkeypatch):
    """``MASKNET_RETENTION_SNAPSHOT_DAYS=30d`` stopped the site with int()'s ValueError, which named
    neither the variable nor what it wants; "nan" and "inf" passed float() and every comparison."""
    from django.core.exceptions import ImproperlyConfigured

    from masknet_site.settings.base import env_float, env_int

    monkeypatch.setenv("MASKNET_X", " 42 ")
    assert env_int("MASKNET_X", 1) == 42 and env_float("MASKNET_X", 1) == 42.0
    monkeypatch.delenv("MASKNET_X")
    assert env_int("MASKNET_X", 7) == 7 and env_float("MASKNET_X", 3) == 3.0
    assert isinstance(env_float("MASKNET_X", 3), float)
    for value in ("30d", "1e3", "3.5", "thirty"):
        monkeypatch.setenv("MASKNET_X", value)
        with pytest.raises(ImproperlyConfigured, match=r"MASKNET_X=.*whole number"):
            env_int("MASKNET_X", 1)
    for value in ("nan", "inf", "-inf", "1,5"):
        monkeypatch.setenv("MASKNET_X", value)
        with pytest.raises(ImproperlyConfigured, match=r"MASKNET_X=.*a number is expected"):
            env_float("MASKNET_X", 1.0)
    monkeypatch.setenv("MASKNET_X", "   ")   # only spaces: unset, as empty is
    assert env_int("MASKNET_X", 7) == 7 and env_float("MASKNET_X", 2) == 2.0
    proc = manage("check", MASKNET_MAX_PIXELS="-1")
    assert proc.returncode != 0 and "MASKNET_MAX_PIXELS=-1: use 1 or more" in proc.stderr, proc.stderr[-500:]
    monkeypatch.setenv("MASKNET_X", "11")
    with pytest.raises(ImproperlyConfigured, match=r"^MASKNET_X=11: use 10 or less \(why\)$"):
        env_int("MASKNET_X", 1, maximum=10, why_maximum="why")
    assert env_int("MASKNET_X", 1, maximum=11) == 11
    proc = manage("check", MASKNET_RETENTION_SNAPSHOT_DAYS="30d")
    assert proc.returncode != 0 and "MASKNET_RETENTION_SNAPSHOT_DAYS='30d'" in proc.stderr
    assert "ValueError" not in proc.stderr, proc.stderr[-500:]


def test_a_frame_limit_past_daphnes_own_message_limit_is_refused():
    """Daphne drops a WebSocket message over 1 MiB and resets the socket: a kiosk sending such a frame
    under ``MASKNET_MAX_FRAME_BYTES=2097152`` lost its connection with no answer (a review). Up to 1 MiB
    the consumer answers ``frame_too_large`` itself."""
    import inspect

    from daphne.server import Server

    from masknet_site.settings.base import DAPHNE_MAX_MESSAGE_BYTES

    daphnes = inspect.signature(Server.__init__).parameters["websocket_max_message_size"].default
    assert daphnes == DAPHNE_MAX_MESSAGE_BYTES   # a Daphne that changes it: the limit here follows
    proc = manage("check", MASKNET_MAX_FRAME_BYTES=str(2 * 1024 * 1024))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "MASKNET_MAX_FRAME_BYTES=2097152: use 1048576 or less (Daphne drops" in proc.stderr, proc.stderr[-800:]
    assert manage("check", MASKNET_MAX_FRAME_BYTES=str(1024 * 1024)).returncode == 0


def test_thread_counts_that_are_not_numbers_are_refused_by_name():
    proc = subprocess.run([sys.executable, "-c", "import recognition.engine.runtime"], cwd=REPO,
                          env={**os.environ, "MASKNET_MODEL_THREADS": "four"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "MASKNET_MODEL_THREADS='four'" in proc.stderr, proc.stderr[-500:]


def test_a_refused_setting_stops_any_command_in_one_line():
    """A bad value from the environment (MASKNET_RETENTION_DECISION_DAYS=-1) printed a 20-line
    traceback whose last line said what was wrong; now that line alone, and a failing status."""
    proc = manage("check", MASKNET_RETENTION_DECISION_DAYS="-1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("MaskNet is not configured correctly:") and "MASKNET_RETENTION_DECISION_DAYS" in \
        proc.stderr


@pytest.mark.parametrize("name, value", [("MASKNET_BLAS_THREADS", "-1"), ("MASKNET_MODEL_THREADS", "x"),
                                         ("MASKNET_BLAS_THREADS", "+3"), ("MASKNET_MODEL_THREADS", "3_0")])
def test_a_refused_thread_count_stops_any_command_in_one_line(name, value):
    """The engine's thread counts, read by the engine's runtime module, printed a 37-line traceback
    (a docs review): the settings refuse them first, in one line."""
    proc = manage("check", **{name: value})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert proc.stderr.startswith("MaskNet is not configured correctly:") and name in proc.stderr


def test_a_database_down_or_not_migrated_stops_a_command_in_one_line(tmp_path):
    """export_audit (a step of the restore runbook, run with the site stopped) printed 88 lines of
    traceback when the database was down, as did rebuild_index, import_people and others on a
    database not migrated; now one line that says what to check, and a failing status. Found by a
    helper's review."""
    down = manage("export_audit", str(tmp_path / "audit.csv"), DATABASE_URL="postgres://postgres@127.0.0.1:1/x")
    empty = manage("rebuild_index", "--wait", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    for proc in (down, empty):
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.startswith("the database failed (OperationalError: ") and len(proc.stderr.splitlines()) == 1
    assert "Connection refused" in down.stderr or "connection failed" in down.stderr, down.stderr
    assert "no such table" in empty.stderr and "manage.py migrate" in empty.stderr
    assert not (tmp_path / "audit.csv").exists()
    traced = manage("export_audit", str(tmp_path / "audit.csv"), "--traceback",
                    DATABASE_URL="postgres://postgres@127.0.0.1:1/x")
    assert "Traceback" in traced.stderr


@pytest.mark.parametrize(("stop", "said"), [(signal.SIGTERM, "stopped (SIGTERM)"),
                                            (signal.SIGINT, "interrupted (Ctrl-C)")])
def test_a_command_without_handling_of_its_own_says_so_in_one_line_and_ends_by_the_signal(tmp_path, stop, said):
    """SIGTERM reaches a command as a KeyboardInterrupt (for those that record what they did); one that
    does not handle it printed a traceback. One line now, and the process still ends by the signal:
    an exit status of 130 let a shell loop go on to its next command (found by a helper's review of
    the change). ``loaddata -`` waits on its standard input: stopped while it waits."""
    db = tmp_path / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    proc = subprocess.Popen([sys.executable, "manage.py", "loaddata", "--format", "json", "-"], cwd=REPO,
                            env={**env, "MASKNET_ENV_FILE": "/nonexistent/masknet/env",
                                 "DJANGO_SETTINGS_MODULE": "masknet_site.settings.test",
                                 "DATABASE_URL": f"sqlite:///{db}"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a test run started in the background (CI's) ignores
                            # SIGINT, and a child inherits that (Python then never raises KeyboardInterrupt)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        # connected (the database file open): past Django's set-up, reading its input
        while not any(os.path.realpath(f"/proc/{proc.pid}/fd/{fd}") == str(db)
                      for fd in os.listdir(f"/proc/{proc.pid}/fd")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -stop and err == said + "\n", (proc.returncode, err)


def test_sqlite_overwrites_deleted_rows_whatever_the_builds_default(tmp_path, monkeypatch, django_db_blocker):
    """An erasure's deleted rows (names, templates, snapshots) must not stay readable in the SQLite
    file's free space: every connection the settings make turns ``secure_delete`` on, also under a
    SQLite built with it off (upstream's default; Debian's build turns it on, which hid this: the end
    to end erasure test reads the file, tests/recognition/test_erasure_end_to_end.py)."""
    import sqlite3

    from django.db.backends.sqlite3 import base as sqlite_backend

    from masknet_site.settings.base import database_from_url, sqlite_url

    def upstream_build(*args, **kwargs):   # a SQLite whose default is off
        conn = sqlite3.connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite_backend.Database, "connect", upstream_build)
    settings_dict = {**database_from_url(sqlite_url(tmp_path / "db.sqlite3")), "TIME_ZONE": None,
                     "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False}
    wrapper = sqlite_backend.DatabaseWrapper(settings_dict, alias="secure-delete-check")
    try:
        with django_db_blocker.unblock(), wrapper.cursor() as cursor:   # a database of its own, not the tests'
            cursor.execute("PRAGMA secure_delete")
            assert cursor.fetchone()[0] == 1
    finally:
        wrapper.close()


_SETTINGS_PROBE = r"""
import importlib, json, os, sys
from django.core.exceptions import ImproperlyConfigured
cases, said = json.loads(sys.argv[1]), []
clean = dict(os.environ)
for module, env in cases:
    os.environ.clear()
    os.environ.update({**clean, **env})
    try:
        for name in ("masknet_site.settings.base", module):
            importlib.reload(importlib.import_module(name)) if name in sys.modules else importlib.import_module(name)
        said.append(None)
    except ImproperlyConfigured as exc:
        said.append(str(exc))
print(json.dumps(said))
"""


def _settings_said(cases: list[tuple[str, dict]]) -> list[str | None]:
    """What importing each settings module says under each environment (``None``: it starts), in one
    process (a ``manage.py`` run each took seconds)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL",
                                                                     "MASKNET_", "LOG_LEVEL", "TIME_ZONE"))}
    proc = subprocess.run([sys.executable, "-c", _SETTINGS_PROBE, json.dumps(cases)], cwd=REPO, env=base,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


BAD_VALUES = [   # each started the site, then failed later or quietly meant something else
    ("MASKNET_INDEX_KEEP", "-1"),             # every rebuild failed: "Negative indexing is not supported"
    ("MASKNET_REBUILD_STALE_S", "0"),         # every running rebuild looked killed
    ("MASKNET_REBUILD_DEBOUNCE_S", "-5"),
    ("MASKNET_KIOSK_RECHECK_S", "0"),         # the kiosk row re-read on every frame
    ("MASKNET_KIOSK_MAX_FPS", "-1"),          # quietly no limit
    ("MASKNET_GALLERY_ADAPT_MARGIN", "-3"),
    ("MASKNET_GALLERY_ADAPT_MAX_PHOTOS", "-1"),
    ("MASKNET_KIOSK_MIN_FACE_PX", "-1"),
    ("MASKNET_TASK_REDELIVERY_S", "-1"),
    ("MASKNET_GALLERY_ADAPT", "ture"),        # quietly off
    ("MASKNET_CHECKIN_SNAPSHOTS", "ture"),
    ("DJANGO_DEBUG", "ture"),
    ("MASKNET_RUNTIME", "onnx"),              # failed at the first frame, or mid-import after creating people
    ("LOG_LEVEL", "verbose"),                 # "Unable to configure root logger", naming no variable
    ("TIME_ZONE", "Europe/Lisboa"),           # Django's own ValueError, a traceback
    ("DATABASE_URL", "mysql://db/masknet"),   # a ValueError, a traceback
]


def test_settings_refuse_impossible_values_with_the_variables_name():
    """Found by a helper's review: each of these started the site without a word."""
    cases = [("masknet_site.settings.dev", {name: value}) for name, value in BAD_VALUES]
    cases += [("masknet_site.settings.dev", {"LOG_LEVEL": "debug", "MASKNET_RUNTIME": "tensorflow",
                                             "MASKNET_GALLERY_ADAPT": "Yes", "TIME_ZONE": "Europe/Lisbon"}),
              ("masknet_site.settings.dev", {"LOG_LEVEL": "warn", "MASKNET_RUNTIME": " tflite "})]
    said = _settings_said(cases)
    for (name, value), message in zip(BAD_VALUES, said, strict=False):
        assert message is not None and name in message, (name, value, message)
    assert said[-2:] == [None, None]   # lower-case and Python's other level names, spaces around a value, start


def test_production_refuses_a_weak_secret_key_and_hosts_that_name_none():
    """A key of spaces, the sample's placeholder or a short word, and a host list of "," started
    production (every request then a bare 400); a REDIS_URL of a space was a broker named " "."""
    prod = "masknet_site.settings.prod"
    said = _settings_said([(prod, {**PROD_ENV, "DJANGO_SECRET_KEY": "   "}),
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY": "…"}),
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY": "changeme"}),
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY": "ab" * 30}),
                           (prod, {**PROD_ENV, "DJANGO_ALLOWED_HOSTS": ","}),
                           (prod, {**PROD_ENV, "REDIS_URL": " "}),
                           (prod, PROD_ENV),
                           # a rotation's old key is still accepted: held to the same rule (a security review)
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY_FALLBACKS": f"{'o' * 60}x9-Q,changeme"}),
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY_FALLBACKS": "django-insecure-" + "a1b2c3d4e5" * 5}),
                           (prod, {**PROD_ENV, "DJANGO_SECRET_KEY_FALLBACKS": PROD_ENV["DJANGO_SECRET_KEY"][::-1]})])
    assert "DJANGO_SECRET_KEY must be set" in said[0]
    assert all("DJANGO_SECRET_KEY is too weak" in s for s in said[1:4]), said
    assert "DJANGO_ALLOWED_HOSTS must name" in said[4] and "REDIS_URL must be set" in said[5]
    assert said[6] is None
    assert "DJANGO_SECRET_KEY_FALLBACKS' key 2 is too weak" in said[7] and "changeme" not in said[7], said[7]
    assert "DJANGO_SECRET_KEY_FALLBACKS' key 1 is too weak" in said[8] and said[9] is None, said[8:]


def test_the_settings_know_the_engines_runtimes():
    from django.conf import settings

    from recognition.engine.runtime import RUNTIMES

    assert settings.MASKNET_RUNTIMES == RUNTIMES
