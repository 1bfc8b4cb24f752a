"""Each endpoint's permissions: per token scope (``admin`` implies every scope) and per staff
role (Django permissions: superusers, Enrollers, a check-in viewer, staff without permissions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from enrollment import recognizer
from enrollment.models import FacePhoto

from .helpers import make_world

pytestmark = pytest.mark.django_db

ALL_WHO = ["anonymous", "plain_staff", "enroller", "viewer", "superuser",
           "token:read", "token:enrol", "token:recognise", "token:admin"]


def upload(name: str = "x.jpg", data: bytes = b"not an image at all") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


# (name, method, url template, body maker, token scope, staff roles allowed)
ENDPOINTS = [
    ("people list", "get", "/api/v1/people", None, "read", {"superuser", "enroller"}),
    ("person retrieve", "get", "/api/v1/people/{person}", None, "read", {"superuser", "enroller"}),
    ("person create", "post", "/api/v1/people", lambda w: {"full_name": "Ann Bee", "staff_id": "A-9"}, "enrol",
     {"superuser", "enroller"}),
    ("person update", "patch", "/api/v1/people/{person}", lambda w: {"department": "Ops"}, "enrol",
     {"superuser", "enroller"}),
    ("person deactivate", "post", "/api/v1/people/{person}/deactivate", None, "enrol", {"superuser", "enroller"}),
    ("person erase", "post", "/api/v1/people/{person}/erase", None, "admin", {"superuser"}),
    # tokens only: a staff session's cookie would go with another site's link (test_people_photos)
    ("person export", "get", "/api/v1/people/{person}/export", None, "admin", set()),
    ("photos list", "get", "/api/v1/people/{person}/photos", None, "read", {"superuser", "enroller"}),
    ("photo retrieve", "get", "/api/v1/people/{person}/photos/{photo}", None, "read", {"superuser", "enroller"}),
    ("photo upload", "post", "/api/v1/people/{person}/photos", lambda w: {"image": upload()}, "enrol",
     {"superuser", "enroller"}),
    ("photo delete", "delete", "/api/v1/people/{person}/photos/{photo}", None, "enrol", {"superuser", "enroller"}),
    ("check-ins", "get", "/api/v1/checkins", None, "read", {"superuser", "viewer"}),
    ("check-ins csv", "get", "/api/v1/checkins/csv", None, "read", {"superuser", "viewer"}),
    # recorded by hand (a viewer reads check-ins but may not add one: recognition.add_checkin)
    ("check-in by hand", "post", "/api/v1/checkins", lambda w: {
        "person": w.person.pk, "at": (timezone.now() - timedelta(days=1)).isoformat(), "reason": "badge reader"},
     "admin", {"superuser"}),
    ("kiosks", "get", "/api/v1/kiosks", None, "read", {"superuser", "viewer"}),
    ("kiosk retrieve", "get", "/api/v1/kiosks/{kiosk}", None, "read", {"superuser", "viewer"}),
    ("kiosk create", "post", "/api/v1/kiosks", lambda w: {"name": "Side door"}, "admin", {"superuser"}),
    ("kiosk update", "patch", "/api/v1/kiosks/{kiosk}", lambda w: {"location": "Side entrance"}, "admin",
     {"superuser"}),
    ("kiosk replace", "put", "/api/v1/kiosks/{kiosk}", lambda w: {"name": "Back door"}, "admin", {"superuser"}),
    ("kiosk revoke", "post", "/api/v1/kiosks/{kiosk}/revoke", None, "admin", {"superuser"}),
    ("kiosk pairing link", "post", "/api/v1/kiosks/{kiosk}/pairing-link", None, "admin", {"superuser"}),
    ("index", "get", "/api/v1/index", None, "read", {"superuser", "enroller"}),
    ("rebuilds", "get", "/api/v1/index/rebuilds", None, "read", {"superuser", "enroller"}),
    ("rebuild progress", "get", "/api/v1/index/rebuilds/{run}", None, "read", {"superuser", "enroller"}),
    ("rebuild start", "post", "/api/v1/index/rebuilds", None, "enrol", {"superuser", "enroller"}),
    ("identify", "post", "/api/v1/identify", lambda w: {"image": upload()}, "recognise", {"superuser", "enroller"}),
    ("verify", "post", "/api/v1/verify", lambda w: {"image": upload(), "person": w.person.pk}, "recognise",
     {"superuser", "enroller"}),
]


def allowed(who: str, scope: str, roles: set[str]) -> bool:
    if who.startswith("token:"):
        return who[6:] in (scope, "admin")
    return who in roles


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_endpoint_permissions(endpoint, client_for, monkeypatch):
    """Every kind of caller against one endpoint (each call rolled back, so writes do not leak)."""
    # the uploads here are refused for their file type before the engine would look at them
    monkeypatch.setattr(recognizer, "get_engine", lambda: None)
    name, method, template, body, scope, roles = endpoint
    world = make_world()
    url = template.format(person=world.person.pk, photo=world.photo.pk, kiosk=world.kiosk.pk, run=world.run.pk)
    for who in ALL_WHO:
        cache.clear()
        with transaction.atomic():
            client = client_for(who)
            data = body(world) if body else None
            fmt = "multipart" if data and "image" in data else "json"
            response = getattr(client, method)(url, data, format=fmt)
            transaction.set_rollback(True)
        check(response, who, scope, roles)


def check(response, who: str, scope: str, roles: set[str]) -> None:
    """401 for anonymous callers, 403 with a reason for callers without the scope or permission."""
    where = (who, response.status_code, response.content[:300])
    if who == "anonymous":
        assert response.status_code == 401, where
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"] == "not_authenticated"
    elif allowed(who, scope, roles):
        assert response.status_code < 400 or response.status_code in (409, 422), where
    else:
        assert response.status_code == 403, where
        body_json = response.json()
        assert body_json["error"] == "permission_denied" and body_json["detail"], where
        if who.startswith("token:"):
            assert f"'{scope}' scope" in body_json["detail"], where


def test_face_search_needs_its_own_permission_not_the_people_list(django_user_model):
    """Identify and verify run a 1:N face search: staff who may read the people list may not run
    one without ``recognise_face`` (Enrollers have it)."""
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    make_world()
    reader = django_user_model.objects.create_user("reader", password="pw", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_person"))
    client = APIClient()
    client.force_login(reader)
    assert client.get("/api/v1/people").status_code == 200
    for url in ("/api/v1/identify", "/api/v1/verify"):
        assert client.post(url, {"image": upload()}, format="multipart").status_code == 403, url
    reader.user_permissions.add(Permission.objects.get(codename="recognise_face"))
    client.force_login(django_user_model.objects.get(pk=reader.pk))   # permissions are cached per user object
    assert client.post("/api/v1/identify", {"image": upload()}, format="multipart").status_code != 403


def test_uploading_a_photo_from_a_session_also_needs_to_see_people(django_user_model, monkeypatch):
    """Staff with ``add_facephoto`` alone could upload to any person id and tell from the answer
    (404, or the photo's own 400/422) which ids exist; the admin's capture page also asks for
    ``view_person``. Now every id answers the same 403 until they may see people."""
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    monkeypatch.setattr(recognizer, "get_engine", lambda: None)
    world = make_world()
    adder = django_user_model.objects.create_user("adder", password="pw", is_staff=True)
    adder.user_permissions.add(Permission.objects.get(codename="add_facephoto"))
    client = APIClient()
    client.force_login(adder)
    missing = world.person.pk + 1000

    def answers() -> dict[int, tuple[int, str]]:
        out = {}
        for pk in (world.person.pk, missing):
            r = client.post(f"/api/v1/people/{pk}/photos", {"image": upload()}, format="multipart")
            out[pk] = (r.status_code, r.json()["error"])
        return out

    denied = answers()
    assert set(denied.values()) == {(403, "permission_denied")}, denied
    assert FacePhoto.objects.filter(person=world.person).count() == 1
    for codename in ("view_person", "change_person"):
        adder.user_permissions.set(Permission.objects.filter(codename__in=["add_facephoto", codename]))
        client.force_login(django_user_model.objects.get(pk=adder.pk))   # permissions are cached per user
        allowed_now = answers()
        assert allowed_now[missing] == (404, "not_found"), (codename, allowed_now)
        assert allowed_now[world.person.pk][0] in (400, 422), (codename, allowed_now)   # the file's own refusal
