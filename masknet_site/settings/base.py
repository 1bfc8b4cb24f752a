"""Settings shared by every environment; every tunable comes from an environment variable."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from recognition.kiosk_text import languages as kiosk_languages

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """Read an environment variable (empty, or spaces alone, counts as unset: `DJANGO_SECRET_KEY='   '`
    was a key of three spaces, `REDIS_URL=' '` a broker named " ")."""
    value = os.environ.get(name, "")
    return value if value.strip() != "" else default


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_bool(name: str, default: bool = False) -> bool:
    """Read a yes/no environment variable: 1/true/yes/on or 0/false/no/off (any case); anything else
    stops the site, as :func:`env_switch` (``MASKNET_GALLERY_ADAPT=ture`` quietly meant off)."""
    return env_switch(name, default)


def env_switch(name: str, default: bool) -> bool:
    """A security switch from the environment: 1/true/yes/on or 0/false/no/off (any case); anything
    else stops the site (``DJANGO_HSTS_PRELOAD=ture`` must not quietly mean off)."""
    value = env(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in _ON:
        return True
    if value.strip().lower() in _OFF:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: use 1/true/yes/on or 0/false/no/off")


def env_int(name: str, default: int, minimum: int | None = None, *, maximum: int | None = None,
            why_maximum: str = "") -> int:
    """Read a whole number from the environment; anything else, or one below ``minimum`` or above
    ``maximum`` (``why_maximum`` says why, in the refusal), stops the site with the setting's name
    (``int()``'s own ValueError named neither the variable nor what it wants)."""
    value = (env(name) or "").strip()   # only spaces: unset, as empty is
    try:
        number = int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: a whole number is expected") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number}: use {minimum} or more")
    if maximum is not None and number > maximum:
        why = f" ({why_maximum})" if why_maximum else ""
        raise ImproperlyConfigured(f"{name}={number}: use {maximum} or less{why}")
    return number


def env_float(name: str, default: float, minimum: float | None = None, *, above: float | None = None) -> float:
    """Read a number (decimals allowed) from the environment, as :func:`env_int`; ``minimum``: the
    least it may be, ``above``: a bound it must exceed (a wait of 0 s re-reads on every frame)."""
    value = (env(name) or "").strip()
    if not value:
        return float(default)
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):   # "nan" and "inf" parse too
        raise ImproperlyConfigured(f"{name}={value!r}: a number is expected")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value}: use {minimum:g} or more")
    if above is not None and number <= above:
        raise ImproperlyConfigured(f"{name}={value}: use more than {above:g}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated list from the environment."""
    return [v.strip() for v in (env(name, default) or "").split(",") if v.strip()]


def checkin_cooldown_minutes(value: object) -> int | None:
    """``MASKNET_CHECKIN_COOLDOWN`` read: ``None`` for ``"day"`` (one check-in per calendar day),
    otherwise the positive number of minutes of a window. Anything else raises
    ImproperlyConfigured. Here, free of Django models, so that the settings can check the value at
    start-up with the rule :func:`recognition.services.cooldown_window` applies."""
    setting = str(value).strip().lower()
    if setting == "day":
        return None
    try:
        minutes = int(setting)
    except ValueError:
        minutes = 0
    if minutes <= 0:
        raise ImproperlyConfigured(
            f"MASKNET_CHECKIN_COOLDOWN={value!r}: use 'day' or a positive number of minutes (docs/kiosk.md)")
    return minutes


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def working_weekdays(value: object) -> frozenset[int]:
    """``MASKNET_WORKING_DAYS`` read: the weekdays (0 = Monday, as ``date.weekday()``) on which people
    are expected in, from days and ranges separated by commas, any case: ``mon-fri`` (the default),
    ``sun-thu``, ``mon,tue,thu``; a range may wrap the week's end (``sat-wed``). Anything else, or no
    day at all, raises ImproperlyConfigured. Here, free of Django models, so that the settings check
    the value at start-up with the rule the attendance pages apply."""
    days: set[int] = set()
    for part in str(value).lower().split(","):
        first, _dash, last = (p.strip() for p in part.partition("-"))
        if first not in _WEEKDAYS or (last and last not in _WEEKDAYS) or (_dash and not last):
            raise ImproperlyConfigured(f"MASKNET_WORKING_DAYS={value!r}: use days (mon, tue, wed, thu, fri, sat, "
                                       "sun) and ranges of them separated by commas, e.g. mon-fri or sun-thu")
        start, stop = _WEEKDAYS.index(first), _WEEKDAYS.index(last or first)
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return frozenset(days)


def database_from_url(url: str) -> dict:
    """Turn ``sqlite:///path`` or ``postgres://user:pw@host:port/name`` into a DATABASES entry.
    ``sqlite:///db.sqlite3`` is relative (to the checkout), ``sqlite:////srv/db.sqlite3`` absolute."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)[1:]   # the slash after the (empty) host is not part of the path
        name = str(BASE_DIR / path) if path and not path.startswith("/") and path != ":memory:" else path
        # a generous lock timeout: the embedded runner writes progress from a background thread;
        # transactions take the write lock when they begin: one that read first (a check-in reads
        # its kiosk, then inserts) and then wrote beside another failed "database is locked" at
        # once, since SQLite cannot wait to upgrade a reader. secure_delete: a deleted row's bytes
        # are overwritten with zeros, not left in the file's free space (an erased person's name,
        # templates and snapshots stayed readable in db.sqlite3 under SQLite builds that leave it
        # off, the upstream default; Debian's turns it on)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:",
                "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                            "init_command": "PRAGMA secure_delete = ON"}}
    if parsed.scheme in ("postgres", "postgresql"):
        # query parameters are libpq's connection options: ?sslmode=verify-full&sslrootcert=...
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        # a database that stops answering (a partition, a failover) rather than refusing must not
        # hold a kiosk's check-in, or the one thread Channels runs every socket's queries on, for
        # the operating system's TCP timeout (about two minutes): connecting gives up after 5 s
        options.setdefault("connect_timeout", "5")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            # no persistent connections: under ASGI (Daphne) each request's sync code runs on a
            # thread of its own, and a connection kept open there outlives the thread until the
            # garbage collector finds it (Django's docs; measured: 15 of 30 requests left one open)
            "CONN_MAX_AGE": 0,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parsed.scheme!r} (sqlite:///PATH or "
                               "postgres://USER:PASSWORD@HOST:PORT/NAME)")


def refuse_weak_secret_keys(key: str, fallbacks: list[str]) -> None:
    """Stop the site when ``key`` (``DJANGO_SECRET_KEY``) or one of ``fallbacks`` (a rotation's old
    keys, still accepted) is what Django's check --deploy calls weak (security.W009): under 50
    characters, under 5 different ones, or Django's own ``django-insecure-`` key. They sign every
    session and pairing cookie and the erased staff ids' digests; the refusal never shows a key."""
    named = [("DJANGO_SECRET_KEY", key), *((f"DJANGO_SECRET_KEY_FALLBACKS' key {n}", k)
                                           for n, k in enumerate(fallbacks, 1))]
    for name, value in named:
        if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure-"):
            raise ImproperlyConfigured(f"{name} is too weak: use 50 or more random characters, e.g. the output "
                                       "of python -c 'import secrets; print(secrets.token_urlsafe(50))'")


SECRET_KEY = env("DJANGO_SECRET_KEY", "")
# keys SECRET_KEY had before a rotation, still accepted (Django's signatures; the digests of erased
# staff ids, which cannot be made again under a new key: docs/security.md, "Erasure on request")
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    # before django.contrib.auth: its createsuperuser and changepassword commands are audited ones
    "audit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "recognition",
    "enrollment",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # outermost with the other header middleware: the refusals below (the login throttle's 429, a
    # NUL's 400) answer before the middleware under them, and went out without it
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # a default Content-Security-Policy on every response without one of its own (the kiosk has its own)
    "masknet_site.middleware.ContentSecurityPolicyMiddleware",
    # no camera, microphone or other powerful feature but on the pages that set their own policy
    "masknet_site.middleware.PermissionsPolicyMiddleware",
    # an answer to a logged-in session, without a Cache-Control of its own: private, no-store
    "masknet_site.middleware.PrivateByDefaultMiddleware",
    # ?x=%00: a 400, not PostgreSQL's refusal as a 500
    "masknet_site.middleware.NulInQueryRefusedMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # an admin action posted with a chosen row that is no id: a 400 saying so, not Django's 500
    "masknet_site.middleware.AdminActionIdsMiddleware",
    # a login older than MASKNET_SESSION_HOURS ends, whatever expiry date its session was saved with
    "masknet_site.session_lifetime.LoginLifetimeMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "masknet_site.login_throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # a write the database refused for want of disk space: a 507 page saying so, not a bare 500
    "masknet_site.middleware.DatabaseFullMiddleware",
]

ROOT_URLCONF = "masknet_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "masknet_site.asgi.application"

def sqlite_url(path: Path) -> str:
    """The ``sqlite:///`` URL of an absolute ``path``, read back by :func:`database_from_url` as
    that path: quoted, since a checkout in a folder named with ``#`` or ``?`` otherwise lost the
    rest of its path to the URL's fragment or query (an SQLite file made in a parent folder)."""
    return f"sqlite:///{quote(str(path))}"


DATABASES = {"default": database_from_url(env("DATABASE_URL", sqlite_url(BASE_DIR / "db.sqlite3")))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# dates and times as 2026-12-03 08:59 (00-23 hours, as the kiosk shows them); a format module,
# since the language's formats win over DATE_FORMAT, TIME_FORMAT... in settings (masknet_site/formats/en)
FORMAT_MODULE_PATH = ["masknet_site.formats"]
TIME_ZONE = env("TIME_ZONE", "UTC").strip()
try:   # Django's own refusal is a traceback ending in a ValueError from deep in its set-up
    ZoneInfo(TIME_ZONE)
except (ValueError, ZoneInfoNotFoundError):
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r}: a zone of the tz database is expected, such as "
                               "Europe/Lisbon or UTC") from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Django's two finders, answering a path that leaves the static folders with a 404 (not a 500)
STATICFILES_FINDERS = ["masknet_site.staticfinders.FileSystemFinder", "masknet_site.staticfinders.AppDirectoriesFinder"]
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
# Uploaded face photos are biometric data: kept outside the static root, never served publicly.
MEDIA_ROOT = Path(env("DJANGO_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = "/media/"  # never routed: photos are served by enrollment.views after a permission check
# Gallery index versions (templates of every enrolled person): outside MEDIA_ROOT and static, never served.
MASKNET_INDEX_DIR = Path(env("MASKNET_INDEX_DIR", str(BASE_DIR / "var" / "index")))
# Free space under which the media, index and SQLite folders count as low: /healthz's storage_low and
# a warning on the admin's people and rebuild pages (0 = not watched). A full disk refuses photos and rebuilds.
MASKNET_STORAGE_LOW_MB = env_int("MASKNET_STORAGE_LOW_MB", 1024, minimum=0)
# Stored files (photos, and their folders faces/<person id>/) readable by the services' user only,
# as the index files are (Django's default is 0644, and folders follow the umask: 0755).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# ... except collectstatic's output, which nginx (another user) serves: the static storage would
# otherwise take the modes above.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
                    "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755}},
}

# Input limits (bytes and pixels) applied before any decoding.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Kiosk frames are 30-80 kB JPEGs. Daphne itself drops WebSocket messages over 1 MiB, resetting the
# kiosk's socket with no answer: a larger limit is refused (the kiosk answered frame_too_large up to
# 1 MiB and was cut off past it; a review). (0 or less refused every image, some with a 500)
DAPHNE_MAX_MESSAGE_BYTES = 1024 * 1024   # daphne.server.Server's websocket_max_message_size default
MASKNET_MAX_FRAME_BYTES = env_int("MASKNET_MAX_FRAME_BYTES", 512 * 1024, minimum=1, maximum=DAPHNE_MAX_MESSAGE_BYTES,
                                  why_maximum="Daphne drops a WebSocket message over 1 MiB before the kiosk's "
                                              "consumer reads it, and the kiosk's socket is reset without an answer")
MASKNET_MAX_PIXELS = env_int("MASKNET_MAX_PIXELS", 4096 * 4096, minimum=1)
MASKNET_MAX_PHOTO_BYTES = env_int("MASKNET_MAX_PHOTO_BYTES", 8 * 1024 * 1024, minimum=1)
# the largest archive "Export personal data" builds (in memory): a larger one is refused, not built
MASKNET_EXPORT_MAX_BYTES = env_int("MASKNET_EXPORT_MAX_BYTES", 64 * 1024 * 1024, minimum=1)
# A request up to this size is held in memory (the ASGI handler's copy of the body and its uploaded
# files): a photo of MASKNET_MAX_PHOTO_BYTES with its multipart envelope. The API's identify and
# verify refuse larger ones (413) rather than write their images to disk (docs/security.md); larger
# uploads elsewhere (the admin's batches of enrollment photos) are spooled to a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = MASKNET_MAX_PHOTO_BYTES + 64 * 1024
# Under Daphne, a request body over this is refused (413) before it is read (masknet_site.daphne_body):
# the nginx sample's client_max_body_size 100m, for a Daphne that nothing is in front of
MASKNET_MAX_REQUEST_BYTES = env_int("MASKNET_MAX_REQUEST_BYTES", 100 * 1024 * 1024, minimum=1)

# Retraining: changes within this many seconds of each other lead to one rebuild; inactive
# index versions kept for rollback (older ones and their files are deleted).
MASKNET_REBUILD_DEBOUNCE_S = env_float("MASKNET_REBUILD_DEBOUNCE_S", 3, minimum=0)
MASKNET_INDEX_KEEP = env_int("MASKNET_INDEX_KEEP", 2, minimum=0)   # -1 failed every rebuild
# A running rebuild whose heartbeat (written at least twice a second while it works) is older than
# this was killed: the next rebuild, or its own task delivered again, takes the run over.
MASKNET_REBUILD_STALE_S = env_float("MASKNET_REBUILD_STALE_S", 120, above=0)   # 0: every run looked killed

# Kiosks and check-ins (recognition app; see docs/kiosk.md).
# Cooldown: "day" = one check-in per person per calendar day (TIME_ZONE) per site; a number N =
# one per fixed N-minute window per site. Enforced by a unique constraint in the database.
MASKNET_CHECKIN_COOLDOWN = env("MASKNET_CHECKIN_COOLDOWN", "day")
# checked now: a typo would otherwise start the site and fail every recognised face's check-in
checkin_cooldown_minutes(MASKNET_CHECKIN_COOLDOWN)
# The days people are expected in (the attendance summary counts only these as missing; the day
# page's chart stripes the others): days and ranges, e.g. "mon-fri" or "sun-thu". Checked now, as the
# cooldown is: a typo would otherwise fail every summary
MASKNET_WORKING_DAYS = env("MASKNET_WORKING_DAYS", "mon-fri")
working_weekdays(MASKNET_WORKING_DAYS)
# Keep the aligned face crop (JPEG) of each check-in; off by default (biometric data).
MASKNET_CHECKIN_SNAPSHOTS = env_bool("MASKNET_CHECKIN_SNAPSHOTS", False)
# Gallery adaptation (docs/enrollment.md): a person's first check-in of a window, unmasked and
# recognised at least MASKNET_GALLERY_ADAPT_MARGIN above the unmasked threshold, adds the face's
# part of that frame to their photos (source "check-in") while they have fewer than
# MASKNET_GALLERY_ADAPT_MAX_PHOTOS. A second photo is what masked recognition lacks most
# (docs/accuracy.md, "Gallery adaptation"). Off by default: it stores biometric images nobody uploaded.
MASKNET_GALLERY_ADAPT = env_bool("MASKNET_GALLERY_ADAPT", False)
MASKNET_GALLERY_ADAPT_MARGIN = env_float("MASKNET_GALLERY_ADAPT_MARGIN", 0.1, minimum=0)
MASKNET_GALLERY_ADAPT_MAX_PHOTOS = env_int("MASKNET_GALLERY_ADAPT_MAX_PHOTOS", 3, minimum=1)
# Retention (docs/security.md): check-in snapshot images, and recognition decision records (audit rows
# of kiosk decisions and API identify/verify), older than this many days are deleted by the daily
# purge (Celery beat below, or `manage.py purge_expired` from cron); 0 = keep forever. Check-ins
# themselves (attendance) and administrative audit records are kept.
MASKNET_RETENTION_SNAPSHOT_DAYS = env_int("MASKNET_RETENTION_SNAPSHOT_DAYS", 30)
MASKNET_RETENTION_DECISION_DAYS = env_int("MASKNET_RETENTION_DECISION_DAYS", 365)
# ... and photos kept by gallery adaptation (source "check-in"): deleted this many days after they were
# kept, adaptation going on (the next confident check-in may keep a newer face); 0 = as long as the
# person's other photos
MASKNET_RETENTION_ADAPTED_DAYS = env_int("MASKNET_RETENTION_ADAPTED_DAYS", 180)
# a century at most ("forever" is 0): a larger number overflowed the dates, the purge failed and the
# admin's pages of people with a kept photo answered 500
RETENTION_DAYS_MAX = 36500
for _name, _days in (("MASKNET_RETENTION_SNAPSHOT_DAYS", MASKNET_RETENTION_SNAPSHOT_DAYS),
                     ("MASKNET_RETENTION_DECISION_DAYS", MASKNET_RETENTION_DECISION_DAYS),
                     ("MASKNET_RETENTION_ADAPTED_DAYS", MASKNET_RETENTION_ADAPTED_DAYS)):
    if not 0 <= _days <= RETENTION_DAYS_MAX:
        raise ImproperlyConfigured(f"{_name}={_days}: use 0 (keep forever) or 1 to {RETENTION_DAYS_MAX} days")
# A web process (Daphne, `manage.py runserver`) loads the face models in a thread of its own as soon as
# it serves (enrollment.recognizer.warm_when_serving, asked by masknet_site/asgi.py), so that the first
# kiosk after a restart or a deploy is answered at once, not after the load; off: on first use (a kiosk's
# socket, the admin's photo pages). Commands, Celery workers and the tests never load them for this.
MASKNET_PRELOAD_MODELS = env_switch("MASKNET_PRELOAD_MODELS", True)
# Engine threads shared by every open kiosk socket (each socket has at most one frame in there).
MASKNET_KIOSK_WORKERS = env_int("MASKNET_KIOSK_WORKERS", 2, minimum=1)
# (below 1 every frame was refused: each kiosk "out of order", nothing said at start)
MASKNET_KIOSK_MAX_FRAME_PIXELS = env_int("MASKNET_KIOSK_MAX_FRAME_PIXELS", 1920 * 1080, minimum=1)
# Faces narrower than this (pixels of the <=640x480 frame) are asked to come closer.
MASKNET_KIOSK_MIN_FACE_PX = env_int("MASKNET_KIOSK_MIN_FACE_PX", 80, minimum=0)
# Voting: consistent accepted frames needed before a check-in (masked faces need more).
MASKNET_KIOSK_VOTE_FRAMES = env_int("MASKNET_KIOSK_VOTE_FRAMES", 3)
MASKNET_KIOSK_VOTE_FRAMES_MASKED = env_int("MASKNET_KIOSK_VOTE_FRAMES_MASKED", 4)
# ... and once a presence was called "not recognised", a later check-in in it needs this many
# (of a window of 6; not 6, so that one weak frame per window cannot block an employee for good):
# a stranger who stays must not be let in by a lucky run (bench/voting.py).
MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN = env_int("MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN", 5)
# each a count of frames of the vote's window (recognition.voting.Voter's, 6 frames): outside 1-6 the
# site started and every kiosk's socket then failed as it opened ("Connection lost", for good)
KIOSK_VOTE_WINDOW = 6
for _name in ("MASKNET_KIOSK_VOTE_FRAMES", "MASKNET_KIOSK_VOTE_FRAMES_MASKED",
              "MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN"):
    if not 1 <= globals()[_name] <= KIOSK_VOTE_WINDOW:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]}: use 1 to {KIOSK_VOTE_WINDOW} (frames of the "
                                   f"vote's window of {KIOSK_VOTE_WINDOW})")
MASKNET_KIOSK_PAIRING_TTL_S = env_int("MASKNET_KIOSK_PAIRING_TTL_S", 24 * 3600)
# staff logins last a working day, not Django's two weeks (the admin holds biometric data); the
# daily purge deletes expired sessions' rows
MASKNET_SESSION_HOURS = env_int("MASKNET_SESSION_HOURS", 12)
if not 1 <= MASKNET_SESSION_HOURS <= 24 * 14:
    raise ImproperlyConfigured(f"MASKNET_SESSION_HOURS={MASKNET_SESSION_HOURS}: use 1 to 336 hours")
SESSION_COOKIE_AGE = MASKNET_SESSION_HOURS * 3600
# after a login whose ?next= was refused (another site's address): the site's root, which leads each
# role to a page of theirs (Django's default, /accounts/profile/, is no page here: a 404)
LOGIN_REDIRECT_URL = "home"
if not 60 <= MASKNET_KIOSK_PAIRING_TTL_S <= 30 * 24 * 3600:   # 0: every link expired when made; 1e12: a 500
    raise ImproperlyConfigured(f"MASKNET_KIOSK_PAIRING_TTL_S={MASKNET_KIOSK_PAIRING_TTL_S}: use 60 (a minute) "
                               "to 2592000 (30 days) seconds")
# Frames a second one kiosk socket may send (bursts of twice that pass; the page sends <= 8, and never
# more than this); 0 = no limit.
MASKNET_KIOSK_MAX_FPS = env_float("MASKNET_KIOSK_MAX_FPS", 15, minimum=0)   # -1 quietly meant no limit
# how often an open kiosk socket re-reads its kiosk row and the active index version (seconds)
MASKNET_KIOSK_RECHECK_S = env_float("MASKNET_KIOSK_RECHECK_S", 30, above=0)
# set by the development settings (masknet_site.loopback): serve only this machine's clients
MASKNET_LOOPBACK_ONLY = False

# the name a kiosk greets a person with: "full" ("Welcome, Ana Silva": two people who share a first
# name can tell a mix-up) or "first" ("Welcome, Ana": less of the name for whoever stands nearby)
MASKNET_KIOSK_GREETING = env("MASKNET_KIOSK_GREETING", "full")
if MASKNET_KIOSK_GREETING not in ("full", "first"):
    raise ImproperlyConfigured(f"MASKNET_KIOSK_GREETING={MASKNET_KIOSK_GREETING!r}: use full or first")
# the language of the kiosks' screens, where a kiosk does not choose its own (Kiosk.language in the
# admin): a catalog's code in recognition/kiosk_text/ (docs/kiosk.md, "Languages"). A typo would show
# every kiosk in English without a word: refused at start
MASKNET_KIOSK_LANGUAGE = env("MASKNET_KIOSK_LANGUAGE", "en").strip()
if MASKNET_KIOSK_LANGUAGE not in kiosk_languages():
    raise ImproperlyConfigured(f"MASKNET_KIOSK_LANGUAGE={MASKNET_KIOSK_LANGUAGE!r}: use one of "
                               f"{', '.join(kiosk_languages())} (the kiosk's catalogs, recognition/kiosk_text/)")

# Who people ask for access to or erasure of their data, shown on the public privacy page (/privacy/,
# recognition/privacy.py): free text, a name, an email or a desk; unset, the page says to ask
# reception or the site's administrator and `check --deploy` warns (masknet.W003)
MASKNET_PRIVACY_CONTACT = (env("MASKNET_PRIVACY_CONTACT") or "").strip()
# The organisation operating the site (the data controller: name and address), and the legal basis it
# relies on for the biometric data (e.g. "your explicit consent, given when you enrolled (GDPR art.
# 9(2)(a))"), shown on the privacy page: free text only the operator can know; unset, the page says
# the operator has not stated it and whom to ask, and `check --deploy` warns (masknet.W005)
MASKNET_PRIVACY_CONTROLLER = (env("MASKNET_PRIVACY_CONTROLLER") or "").strip()
MASKNET_PRIVACY_LEGAL_BASIS = (env("MASKNET_PRIVACY_LEGAL_BASIS") or "").strip()
# the kiosk screen's line about face recognition; empty: "Face recognition records attendance here ·
# Privacy: <host>/privacy/". "{url}" in it becomes the privacy page's address
MASKNET_KIOSK_NOTICE = (env("MASKNET_KIOSK_NOTICE") or "").strip()

# Added to both calibrated match thresholds (masked and unmasked; docs/kiosk.md, Settings):
# > 0 lets fewer strangers in and makes enrolled people wait for more frames, < 0 the reverse
# (bench/voting.py measures both directions). Raising and lowering it both act at once (a rebuild
# records the percentile it fitted, which raises the engine's threshold of the moment; on an index
# built before that was recorded, lowering acts from the next rebuild). Bounded to
# [-0.02, +0.05]: the joined scores (FaceRes + dlib's ResNet) sit within 0.14 of 1.0 above the
# thresholds, so small offsets move a lot; -0.02 already lets about a sixth of masked strangers
# through the kiosk's vote and -0.04 more than half (bench/voting.py), which no entrance should be
# one typo away from.
THRESHOLD_OFFSET_RANGE = (-0.02, 0.05)
MASKNET_THRESHOLD_OFFSET = env_float("MASKNET_THRESHOLD_OFFSET", 0)
if not THRESHOLD_OFFSET_RANGE[0] <= MASKNET_THRESHOLD_OFFSET <= THRESHOLD_OFFSET_RANGE[1]:
    raise ImproperlyConfigured(
        f"MASKNET_THRESHOLD_OFFSET={MASKNET_THRESHOLD_OFFSET} is outside [{THRESHOLD_OFFSET_RANGE[0]}, "
        f"{THRESHOLD_OFFSET_RANGE[1]}] (below -0.02 masked strangers get in; see docs/kiosk.md)")

# The network that describes faces for matching: "sface" (default; the OpenCV Zoo's SFace, Apache-2.0,
# from a pinned PyPI wheel), "faceres+resnet" (the models of MIT npm packages; weaker on masked faces) or
# "arcface" (InsightFace's w600k_mbf, released for non-commercial research only: set it only where that
# licence, or one bought from InsightFace, allows the use; docs/MODELS.md). `manage.py install_models`
# fetches it; a change rebuilds every index.
MASKNET_DESCRIPTOR = env("MASKNET_DESCRIPTOR", "sface")
if MASKNET_DESCRIPTOR not in ("sface", "faceres+resnet", "arcface"):
    raise ImproperlyConfigured(f"MASKNET_DESCRIPTOR={MASKNET_DESCRIPTOR!r}: use sface, faceres+resnet or arcface")

# How the face models run (read by recognition.engine.runtime itself, which benches use without
# Django): checked here too, so that a misspelt value stops the site at start rather than its
# first frame, or an import after it created people (tests/test_settings.py ties the two lists)
MASKNET_RUNTIMES = ("tflite", "tensorflow")
if env("MASKNET_RUNTIME", "tflite").strip() not in MASKNET_RUNTIMES:
    raise ImproperlyConfigured(f"MASKNET_RUNTIME={env('MASKNET_RUNTIME')!r}: use {' or '.join(MASKNET_RUNTIMES)}")
# the engine's thread counts (read by recognition.engine.runtime too, which benches use without
# Django), checked here so that a bad one stops every command in one line, not a traceback
# (its rule: digits alone; int() here let "+3" or "3_0" through to its traceback: a diff review)
for _threads in ("MASKNET_BLAS_THREADS", "MASKNET_MODEL_THREADS"):
    if (_count := (env(_threads) or "").strip()) and not (_count.isascii() and _count.isdigit()):
        raise ImproperlyConfigured(f"{_threads}={_count!r}: a whole number of threads is expected (0 or more)")
# Converted models (git-ignored; built by `manage.py install_models`).
MASKNET_MODELS_DIR = Path(env("MASKNET_MODELS_DIR", str(BASE_DIR / "models")))


def redis_channel_hosts(url: str) -> list[dict]:
    """The channel layer's connection settings for a Redis URL.

    channels_redis waits for messages with a 5-second BZPOPMIN; redis-py 8 gives every socket a
    5-second read timeout by default, so an idle socket's wait would end in TimeoutError and kill
    the kiosk's consumer (every ~5 s): reads may take 15 s, not forever (a Redis that vanished
    without closing the connection is noticed). A connection that a restarted Redis closed is
    noticed on its next use and retried on a fresh one (3 times, backing off) instead of failing
    that kiosk's socket (tests/reliability/test_redis_layer.py).
    """
    return [{"address": url, "socket_timeout": 15, "socket_connect_timeout": 5,
             "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), 3)}]


# How many entries a cache in a process's memory holds (the embedded default's, and the stand-in
# for Redis while it is away): Django's 300 let a flood of logins under made-up names cull a
# victim's login lockout in seconds, and then five more guesses; an entry takes a few hundred bytes
LOCAL_CACHE_ENTRIES = 500_000
# Redis (broker, results, channel layer) when REDIS_URL is set; embedded otherwise.
REDIS_URL = env("REDIS_URL")
# "celery": tasks go to the broker; "thread": a background thread of this process runs them.
MASKNET_TASK_RUNNER = "celery" if REDIS_URL else "thread"
if REDIS_URL:
    # channels_redis's layer, except that a receive waits a Redis outage out: the kiosk sockets stay open
    CHANNEL_LAYERS = {"default": {"BACKEND": "masknet_site.channel_layer.RedisChannelLayer",
                                  "CONFIG": {"hosts": redis_channel_hosts(REDIS_URL)}}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # shared by every web node: login lockouts and API rate limits count across the cluster; while
    # Redis is away, each process counts alone (masknet_site.cache: sign-ins and the API were 500s);
    # a Redis host that drops packets costs a request a second at most, then is left for 5 s
    CACHES = {"default": {"BACKEND": "masknet_site.cache.SharedCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "masknet",
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # this process's memory (Django's default, but room for LOCAL_CACHE_ENTRIES: masknet_site.cache)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "OPTIONS": {"MAX_ENTRIES": LOCAL_CACHE_ENTRIES}}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
# A task is acknowledged when it has finished, so a worker that dies mid-task leaves it in Redis:
# a lost pool process puts it back at once (reject_on_worker_lost); a whole worker killed (SIGKILL,
# machine lost) leaves it unacknowledged, and Redis delivers it again after MASKNET_TASK_REDELIVERY_S.
# Copies are harmless: a rebuild's copy that finds the run still beating waits for it, and takes the
# run over once its heartbeat is older than MASKNET_REBUILD_STALE_S (enrollment.services.index._run_claim).
# Task countdowns (debounce, retries) stay below this delay.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
MASKNET_TASK_REDELIVERY_S = env_int("MASKNET_TASK_REDELIVERY_S", 600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": MASKNET_TASK_REDELIVERY_S,
                                   # look for abandoned tasks every few seconds, not every 100 s
                                   "unacked_restore_interval": max(1, min(10, MASKNET_TASK_REDELIVERY_S // 4)),
                                   "unacked_restore_throttle": 1}
CELERY_TASK_SOFT_TIME_LIMIT = 3 * 3600
# nothing reads a task's result (a run's outcome is its TrainingRun row): with results kept, every
# hand-off subscribed to the result store first, and with Redis away that retried for about 19 s
# inside the admin's request, once per change (a five-photo capture: over a minute)
CELERY_TASK_IGNORE_RESULT = True
# `celery -A masknet_site beat` (make beat; one per cluster): the retention purge, daily at 03:30 TIME_ZONE
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "purge-expired": {"task": "recognition.purge_expired", "schedule": crontab(hour=3, minute=30)},
    # a rebuild whose message was lost (Redis away at the hand-off) starts within a minute or two
    # even where no admin page or kiosk is open to notice it (an API-only site)
    # (expires: one that waited a minute behind a long rebuild is superseded by the next)
    "resume-rebuilds": {"task": "enrollment.resume_rebuilds", "schedule": 60.0, "options": {"expires": 60}},
}



def log_level(name: str, default: str) -> str:
    """A logging level's name from the environment, any case (``debug`` stopped every command with
    "Unable to configure root logger", naming no variable)."""
    value = (env(name) or default).strip().upper()
    value = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(value, value)   # Python's other names for them
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"):
        raise ImproperlyConfigured(f"{name}={value!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


LOG_LEVEL = log_level("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"secrets": {"()": "masknet_site.logfilters.SecretsFilter"},
                "client_errors": {"()": "masknet_site.logfilters.ClientErrorTracebackFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["secrets", "client_errors"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # never SQL statements, even with DEBUG and LOG_LEVEL=DEBUG: their parameters hold face templates
    # and snapshots (biometric data; tests/recognition/test_no_biometrics_in_logs.py)
    "loggers": {"django.db.backends": {"level": "INFO"},
                # through the root handler only: Django's own console handler (DEBUG on) printed
                # every line of "django.*" (Channels' server log included) a second time
                "django": {"handlers": [], "level": "INFO", "propagate": True}},
}

# REST API (api app, /api/v1/): schema by drf-spectacular; per-token rate limits (docs/api.md).
# Only the API's own ways in: DRF's default adds HTTP Basic, which would answer every request that
# carries a username and password with whether they are right, past the login lockout.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiTokenAuthentication",
                                       "api.authentication.StaffSessionAuthentication"],
}
SPECTACULAR_SETTINGS = {
    "SERVE_AUTHENTICATION": [],  # the schema is public: nothing to authenticate
    "TITLE": "MaskNet API",
    "DESCRIPTION": ("People, photos, check-ins, kiosks, the recognition index, identify and verify. "
                    "docs/api.md in MaskNet's source tree tells tokens, scopes, rate limits, paging and errors."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # a kiosk's language by a name of its own, not the generic "LanguageEnum" the field's name gives,
    # which a later field named language would take (renaming this one under generated clients)
    # a check-in's source (kiosk, manual) likewise: beside a photo's "source", two enums of one field name
    # were each renamed with a hash; both named here, the photo's keeps the name it had
    "ENUM_NAME_OVERRIDES": {"KioskLanguageEnum": "recognition.models.kiosk_language_choices",
                            "SourceEnum": "enrollment.models.FacePhoto.Source",
                            "CheckInSourceEnum": "recognition.models.CheckIn.Source"},
    # drf-spectacular's default hook (enums as components), and every 429's Retry-After header
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.serializers.declare_retry_after",
                            "api.serializers.declare_answers_whole"],
}
MASKNET_API_TOKEN_RATE = env("MASKNET_API_TOKEN_RATE", "600/min")  # per token, unless the token sets its own
MASKNET_API_USER_RATE = env("MASKNET_API_USER_RATE", "1200/min")  # per staff session user
# identify and verify, per token or user, on top of the above (each runs the networks)
MASKNET_API_RECOGNISE_RATE = env("MASKNET_API_RECOGNISE_RATE", "120/min")
# read when a request comes: a typo ("1,200/min") made every authenticated API call a 500. The
# periods DRF's throttles read (by their first letter: "3/month" would be 3 a minute)
API_RATE_PATTERN = r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)"
for _name in ("MASKNET_API_TOKEN_RATE", "MASKNET_API_USER_RATE", "MASKNET_API_RECOGNISE_RATE"):
    if not re.fullmatch(API_RATE_PATTERN, globals()[_name]):
        raise ImproperlyConfigured(f"{_name}={globals()[_name]!r}: use N/s, N/min, N/hour or N/day (N >= 1)")
# Staff login: this many failed logins per username and client address lock that pair out for
# MASKNET_LOGIN_LOCKOUT_S seconds (masknet_site/login_throttle.py).
# (each 1 or more: a lockout of 0 s let every guess through, the cache keeping no count)
MASKNET_LOGIN_MAX_FAILURES = env_int("MASKNET_LOGIN_MAX_FAILURES", 5, minimum=1)
MASKNET_LOGIN_LOCKOUT_S = env_int("MASKNET_LOGIN_LOCKOUT_S", 300, minimum=1)
# ... and this many per username from all addresses together (an attacker varying the address)
MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME = env_int("MASKNET_LOGIN_MAX_FAILURES_PER_USERNAME",
                                                  10 * MASKNET_LOGIN_MAX_FAILURES, minimum=1)
# ... and per client address across all usernames, unless anyone logged in from that address in
# the last 30 days (login_throttle.py): one client trying a new username each time
MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("MASKNET_LOGIN_MAX_FAILURES_PER_ADDRESS",
                                                 10 * MASKNET_LOGIN_MAX_FAILURES, minimum=1)
