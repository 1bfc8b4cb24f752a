"""Local development: the embedded default (SQLite, in-memory channel layer, threads)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env("DJANGO_DEBUG", "1") in ("1", "true", "yes", "on")
# A fixed development key is fine here; prod refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env("DJANGO_SECRET_KEY", "dev-insecure-masknet-key-do-not-use-in-production")
