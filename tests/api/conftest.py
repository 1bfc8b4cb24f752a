"""Fixtures of the API tests: users of each role, tokens with scopes, API clients, isolated media
and index folders, rebuild requests recorded instead of run, and a fresh throttle cache."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.test import APIClient

from api import services as api_services
from enrollment import services as enrollment
from enrollment.models import Person
from enrollment.roles import enrollers_group_ensure

# the same helpers and autouse fixtures as the enrollment tests (isolated media/index folders,
# rebuild requests recorded after commit instead of run)
from tests.enrollment.conftest import enqueued, isolated_storage, jpeg, png  # noqa: E402, F401


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Rate-limit buckets live in the cache: start every test with empty ones."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def enroller(db) -> User:
    user = User.objects.create_user("enroller", password="pw", is_staff=True)
    user.groups.add(enrollers_group_ensure())
    return user


@pytest.fixture
def viewer(db) -> User:
    """Staff who may read check-ins and kiosks only."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_checkin", "view_kiosk"]))
    return user


@pytest.fixture
def plain_staff(db) -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def make_token(db) -> Callable[..., str]:
    """``make_token(scopes, name=..., rate=...)`` -> the secret of a new token."""
    counter = iter(range(1000))

    def make(scopes: list[str], *, name: str | None = None, rate: str = "") -> str:
        _token, secret = api_services.api_token_create(actor=None, name=name or f"integration-{next(counter)}",
                                                       scopes=scopes, rate=rate)
        return secret

    return make


@pytest.fixture
def client_for(db, make_token, superuser, enroller, viewer, plain_staff) -> Callable[[str], APIClient]:
    """``client_for(who)``: an API client as ``anonymous``, a staff session (``superuser``,
    ``enroller``, ``viewer``, ``plain_staff``) or a token (``token:<scope>[+<scope>]``)."""
    users = {"superuser": superuser, "enroller": enroller, "viewer": viewer, "plain_staff": plain_staff}

    def make(who: str) -> APIClient:
        client = APIClient()
        if who.startswith("token:"):
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(who[6:].split('+'))}")
        elif who != "anonymous":
            client.force_authenticate(None)
            client.force_login(users[who])
        return client

    return make


@pytest.fixture
def person(db) -> Person:
    return enrollment.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1", department="Flight")


@pytest.fixture
def make_fake_index(db):
    """An active index version with random templates for the given people (no engine)."""
    from enrollment.models import IndexVersion
    from recognition.engine.index import Index

    def make(*people: Person, model_version: str | None = None) -> IndexVersion:
        from django.conf import settings

        from enrollment.recognizer import template_version

        rng = np.random.default_rng(1)
        index = Index(8)
        for p in people:
            index.add(str(p.pk), rng.normal(size=(2, 8)))
        folder = settings.MASKNET_INDEX_DIR
        folder.mkdir(parents=True, exist_ok=True)
        sha = index.save(folder / "index-test.npz")
        return IndexVersion.objects.create(path="index-test.npz", sha256=sha, people_count=len(people),
                                           template_count=len(index), dim=8, is_active=True,
                                           model_version=model_version or template_version(),
                                           metrics={"thresholds": {"masked": 0.4, "unmasked": 0.5}})

    return make
