"""Local development: the embedded default (SQLite, in-memory channel layer, threads)."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, SECRET_KEY_FALLBACKS, env, env_bool, refuse_weak_secret_keys

DEV_KEY = "dev-insecure-masknet-key-do-not-use-in-production"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "testserver"}

DEBUG = env_bool("DJANGO_DEBUG", True)
# A fixed development key is fine here; prod refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env("DJANGO_SECRET_KEY", DEV_KEY)

# These are also the settings of a process started without DJANGO_SETTINGS_MODULE (manage.py, the
# ASGI app, the Celery app): one that serves other hosts with DEBUG on or the public key above is a
# production deployment that forgot masknet_site.settings.prod (its other variables, the secret key
# included, set as docs/deployment.md says). Refuse rather than serve it with DEBUG and no HTTPS.
if (DEBUG or SECRET_KEY == DEV_KEY) and set(ALLOWED_HOSTS) - LOCAL_HOSTS:
    raise ImproperlyConfigured(
        f"DJANGO_ALLOWED_HOSTS names {sorted(set(ALLOWED_HOSTS) - LOCAL_HOSTS)} but these are the development "
        "settings (DEBUG on, or their public secret key): set DJANGO_SETTINGS_MODULE=masknet_site.settings.prod "
        "for a deployment (docs/deployment.md), or DJANGO_DEBUG=0 and DJANGO_SECRET_KEY to serve other hosts "
        "from a development copy")

# ... and whatever DJANGO_ALLOWED_HOSTS says, only this machine's own clients are served then (a
# client sets the Host header it is checked against): masknet_site.loopback
MASKNET_LOOPBACK_ONLY = DEBUG or SECRET_KEY == DEV_KEY

# Otherwise (DEBUG off, a key of its own) any client is served, whatever DJANGO_ALLOWED_HOSTS names
# (a client on the network sending "Host: localhost" passes it): the key is held to production's
# rule ("short" served the network: security reviews)
if not MASKNET_LOOPBACK_ONLY:
    refuse_weak_secret_keys(SECRET_KEY, SECRET_KEY_FALLBACKS)
