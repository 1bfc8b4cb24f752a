"""The shared cache with Redis away (masknet_site/cache.py): sign-ins and the API were 500s
(``redis.exceptions.ConnectionError`` from the login lockout and rate-limit counters) while the
kiosks went on checking people in, and ``/healthz`` took every node out of its balancer. Each
process now counts alone meanwhile; the limits still hold. Redis here is a port nobody listens on."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api import services as api_services
from masknet_site import cache as shared
from tests.logins import login, make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_outage(monkeypatch):
    """Each test starts with Redis not known to be away, and an empty local store."""
    from django.core.cache.backends.locmem import LocMemCache

    monkeypatch.setattr(shared, "_outage", shared._Outage())
    LocMemCache(shared.LOCAL_NAME, {}).clear()
    yield
    LocMemCache(shared.LOCAL_NAME, {}).clear()


@pytest.fixture
def redis_away(settings):
    """The production cache settings (masknet_site/settings/base.py) on a Redis that is not there."""
    settings.CACHES = {"default": {"BACKEND": "masknet_site.cache.SharedCache",
                                   "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0", "KEY_PREFIX": "masknet",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}


def test_every_cache_object_of_the_process_counts_in_one_store(redis_away, caplog):
    """Django makes a cache object per thread and, under ASGI (Daphne), per request: a store per
    object counted each request from zero, so no lockout or rate limit held while Redis was away, and
    each object warned once. Found by a helper's review."""
    from django.core.cache import caches

    first, second = caches.create_connection("default"), caches.create_connection("default")
    first.add("count", 0)
    assert first.incr("count") == 1 and second.incr("count") == 2
    assert len([r for r in caplog.records if r.name == "masknet_site.cache"]) == 1


def test_sign_ins_are_counted_and_locked_out_with_redis_away(client, settings, redis_away, caplog):
    settings.MASKNET_LOGIN_MAX_FAILURES = 3
    make_staff()
    with pytest.raises(Exception):   # noqa: B017 - whatever redis-py raises: Redis is away indeed
        cache.ping()
    assert [login(client, "alice", "wrong").status_code for _ in range(3)] == [200, 200, 200]
    assert login(client, "alice", "right-password-123").status_code == 429   # locked, in this process
    assert login(client, "alice", "right-password-123", ip="10.0.0.2").status_code == 302
    said = [r for r in caplog.records if r.name == "masknet_site.cache"]
    assert len(said) == 1 and "login lockouts and API rate limits are counted by each process" in said[0].getMessage()


def test_the_api_answers_and_limits_its_rate_with_redis_away(settings, redis_away):
    settings.MASKNET_API_TOKEN_RATE = "2/min"
    _token, secret = api_services.api_token_create(actor=None, name="hr", scopes=["read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [api.get("/api/v1/people").status_code for _ in range(3)] == [200, 200, 429]


def test_healthz_reports_redis_away_and_stays_ready(client, settings, redis_away, monkeypatch):
    from recognition import views
    from tests.conftest import models_dir

    monkeypatch.setattr(views, "HEALTH_TTL_S", 0.0)
    settings.MASKNET_MODELS_DIR = models_dir()
    body = client.get("/healthz")
    if not body.json()["models"]:
        pytest.skip("models not installed (python manage.py install_models)")
    assert body.status_code == 200 and body.json()["cache"] is False and body.json()["ok"] is True


def test_redis_is_tried_again_after_a_few_seconds(settings, redis_away, monkeypatch):
    """While away the local cache answers without trying Redis (a host that drops packets would cost
    each request its timeout); after RETRY_S, Redis is tried again."""
    clock = [1000.0]
    monkeypatch.setattr(shared.time, "monotonic", lambda: clock[0])
    tried = []
    real = shared.RedisCache.get

    def get(self, *args, **kwargs):
        tried.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(shared.RedisCache, "get", get)
    cache.set("k", 1)
    assert cache.get("k") == 1 and tried == []   # set failed over; get answered locally, Redis not tried
    clock[0] += shared.RETRY_S
    assert cache.get("k") == 1 and tried == ["k"]


def test_with_redis_there_the_counts_are_shared_through_it(settings, redis_url):
    """The same backend on a Redis that answers: the counts are Redis's (every process sees them)."""
    import redis

    settings.CACHES = {"default": {"BACKEND": "masknet_site.cache.SharedCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": "masknet"}}
    cache.ping()
    cache.add("count", 0)
    assert cache.incr("count") == 1
    assert redis.Redis.from_url(redis_url).get(":1:".join(["masknet", "count"])) == b"1"


def test_the_stand_in_holds_as_many_entries_as_the_embedded_cache(settings, redis_away):
    """The stand-in had Django's 300 entries: a flood of made-up logins culled lockouts."""
    cache.set("lock", 1)
    for i in range(2000):
        cache.set(f"flood-{i}", 1)
    assert cache.get("lock") == 1
