"""Production: everything from the environment; missing essentials stop start-up."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY_FALLBACKS, env, env_int, env_list, env_switch, refuse_weak_secret_keys


def required(name: str) -> str:
    """Return an environment variable or fail loudly."""
    value = env(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in production")
    return value


DEBUG = False
SECRET_KEY = required("DJANGO_SECRET_KEY")
# what Django's check --deploy calls weak (security.W009), refused here: the sample's placeholder or a
# word typed by hand signs every session, pairing cookie and erased staff id's digest; so would a
# rotation's old key, still accepted (a weak one was let in: a security review)
refuse_weak_secret_keys(SECRET_KEY, SECRET_KEY_FALLBACKS)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:   # "," or " " was a list of "," and every request a bare 400
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name this site's host names in production, comma-separated")
required("DATABASE_URL")
# without Redis every process keeps its own channel layer, cache and task queue: events never reach
# another node's kiosks, login lockouts and rate limits count per process, and a Celery beat or
# worker would run on an in-memory broker nobody else sees (the retention purge silently never
# runs). One web process and no Celery at all is the one layout that works without it: say so.
if not env("REDIS_URL") and env("MASKNET_SINGLE_NODE") != "1":
    raise ImproperlyConfigured("REDIS_URL must be set in production (or MASKNET_SINGLE_NODE=1 for a single "
                               "web process without Celery: docs/deployment.md)")

# collectstatic also writes each file under a name carrying its digest, and pages link those: a page
# the previous release rendered during an upgrade keeps loading its own script and style
# (masknet_site.staticstorage)
STORAGES = {**STORAGES, "staticfiles": {**STORAGES["staticfiles"],  # noqa: F405
                                        "BACKEND": "masknet_site.staticstorage.ReleaseStaticFilesStorage"}}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
# on by default (check --deploy asks for both); a site whose parent domain serves other sites over
# plain HTTP, or that will not submit itself to the browsers' preload list, turns them off
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_switch("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)   # "true" read as off before
SECURE_HSTS_PRELOAD = env_switch("DJANGO_HSTS_PRELOAD", True)
# a load balancer's probe reaches a node over plain HTTP
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
