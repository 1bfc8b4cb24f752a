"""Test settings: fast hashing, temporary media, the embedded defaults unless overridden."""

import atexit
import shutil
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES, LOGGING, env, env_switch, log_level

SECRET_KEY = "test-only-masknet-key"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Temporary per test session; a process started by the tests (a Celery worker, Daphne) is given the
# same folders through variables of its own: never a node's DJANGO_MEDIA_ROOT or MASKNET_INDEX_DIR
# (tests run on a production node must not write into its volumes).


def _own_temporary(prefix: str) -> str:
    """A new temporary folder, deleted when this process exits: test photos are face photos."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


MEDIA_ROOT = Path(env("MASKNET_TEST_MEDIA_ROOT") or _own_temporary("masknet-test-media-"))
MASKNET_INDEX_DIR = Path(env("MASKNET_TEST_INDEX_DIR") or _own_temporary("masknet-test-index-"))
MASKNET_REBUILD_DEBOUNCE_S = 0.0
# a Daphne a test starts (and this process) loads no face models at its start unless the test asks:
# most never analyse a face, and each load is ~820 MB and seconds of both cores
MASKNET_PRELOAD_MODELS = env_switch("MASKNET_PRELOAD_MODELS", False)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # a file, not :memory:, so that a Celery worker process can share the test database
    DATABASES["default"]["TEST"] = {
        "NAME": env("MASKNET_TEST_SQLITE") or str(Path(_own_temporary("masknet-test-db-")) / "test.sqlite3")}
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "loggers": LOGGING["loggers"],
           "root": {"level": log_level("LOG_LEVEL", "WARNING")}}
