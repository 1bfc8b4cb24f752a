"""Every write path leaves an audit record: "an audit log of every decision and every change"
(docs/security.md, docs/kiosk.md), checked systematically.

The write paths are found, not listed by hand: every ModelAdmin of the admin site (add, change,
delete, its actions and its own URLs) and the admin site's own pages, every URL of the site outside
the admin that accepts a POST, every REST API route with an unsafe method, every management command
of the project's apps and every Celery task. Each found path must be in one of the tables below:
either a recipe that exercises it and expects an audit record (who, what, which object, a summary
without names or biometric data), or an explicit exemption saying why it writes nothing worth a
record. A new admin, action, view, endpoint, command or task fails :func:`test_every_*` until it is
given one. The kiosk consumer's decisions and gallery adaptation are covered where their machinery
is (named in :data:`ELSEWHERE`). Reads that hand out a list of people's data (the check-in and audit
CSVs: ``list_export``) or one person's (``export``) are recorded too, and are listed with the writes.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command, get_commands
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api import services as api_services
from api.models import ApiToken
from audit.models import AuditEvent
from enrollment import recognizer
from enrollment import services as enrollment
from enrollment.models import ErasedStaffId, FacePhoto, Person
from enrollment.services import photos as photo_services
from recognition import services as recognition
from recognition.models import CheckIn, Kiosk
from tests.enrollment.conftest import enqueued, isolated_storage, make_photo, png  # noqa: F401 - fixtures
from tests.routes import url_patterns

pytestmark = pytest.mark.django_db

NAME, STAFF_ID = "Eileen Collins", "E-1"
OUR_APPS = {"audit", "enrollment", "recognition", "api"}


@pytest.fixture(autouse=True)
def fresh_throttles():
    """The API's rate limits and the login throttle live in the cache."""
    cache.clear()
    yield
    cache.clear()


@dataclass
class World:
    """One of each row a write path acts on, and a superuser's admin and API clients."""

    su: User
    client: Client
    api: APIClient
    token: ApiToken
    person: Person
    photo: FacePhoto
    kiosk: Kiosk
    checkin: CheckIn
    user: User
    group: Group


def good_inspection(**kwargs) -> enrollment.PhotoInspection:
    """What the engine says of a good photo, without the engine."""
    return enrollment.PhotoInspection(ok=True, code=None, message="Good photo.", width=64, height=64, faces=1,
                                      box=[8.0, 8.0, 56.0, 56.0], quality_score=0.9, quality_verdict="ok",
                                      masked=False, masked_prob=0.02)


def upload(name: str = "new.png", seed: int = 1) -> SimpleUploadedFile:
    """A small PNG (each seed another file: a duplicate is refused before it is audited)."""  # noqa: D401
    img = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return SimpleUploadedFile(name, png(img), content_type="image/png")


@pytest.fixture
def world(db, monkeypatch, make_photo) -> World:  # noqa: F811 - the fixture imported above
    # photos are checked as the engine would pass them, without loading it
    monkeypatch.setattr(recognizer, "get_engine", object)
    monkeypatch.setattr(photo_services, "photo_inspect", lambda *, data, engine=None: good_inspection())
    su = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(su)
    person = enrollment.person_create(actor=None, full_name=NAME, staff_id=STAFF_ID, department="Flight")
    photo = make_photo(person)
    kiosk, _code = recognition.kiosk_create(actor=None, name="Front door", location="Main entrance")
    kiosk = recognition.kiosk_pair(code=_code)[0]
    checkin = recognition.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.7, threshold=0.5, masked=True,
                                         frames=4, index_version=None).checkin
    token, secret = api_services.api_token_create(actor=None, name="hr-system", scopes=["admin"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return World(su=su, client=client, api=api, token=token,
                 person=person, photo=photo, kiosk=kiosk, checkin=checkin,
                 user=User.objects.create_user("door", password="Old-passw0rd!"),
                 group=Group.objects.create(name="Door staff"))


def ok(response, *codes: int):
    """``response``, once its status is one of ``codes`` (default: 200, 201, 204, 302)."""
    assert response.status_code in (codes or (200, 201, 202, 204, 302)), response.content.decode()[:2000]
    return response


def action(w: World, changelist: str, name: str, *pks: int, **extra) -> None:
    """An admin action on the rows ``pks``, confirmed where the action asks."""
    ok(w.client.post(reverse(f"admin:{changelist}_changelist"),
                     {"action": name, "_selected_action": [str(pk) for pk in pks], **extra}))


def joined(user: User) -> dict:
    """The user change form's date fields, unchanged."""
    values = {"date_joined_0": f"{user.date_joined:%Y-%m-%d}", "date_joined_1": f"{user.date_joined:%H:%M:%S}"}
    return {**values, **{f"initial-{k}": v for k, v in values.items()}}


def person_form(w: World, **extra) -> dict:
    p = w.person
    data = {"full_name": p.full_name, "staff_id": p.staff_id, "department": p.department, "active": "on",
            "notes": p.notes, "seen": Person.objects.get(pk=p.pk).updated_at.isoformat(), **extra}
    return {k: v for k, v in data.items() if v not in ("", None)}


Recipe = Callable[[World], tuple[str, str]]   # does the write; returns the (action, object type) expected

# ------------------------------------------------------------------------------ the admin site
# (model label, operation) -> recipe; operations: "add", "change", "delete", "action:<name>",
# "url:<url name>" (the admin's own views beyond Django's standard ones)

ADMIN: dict[tuple[str, str], Recipe] = {
    ("auth.user", "add"): lambda w: (ok(w.client.post(reverse("admin:auth_user_add"), {
        "username": "newcomer", "password1": "A-new-passw0rd!", "password2": "A-new-passw0rd!",
        "usable_password": "true"})), ("create", "auth.user"))[1],
    ("auth.user", "change"): lambda w: (ok(w.client.post(reverse("admin:auth_user_change", args=[w.user.pk]), {
        "username": "door", "is_active": "on", "is_staff": "on", **joined(w.user)})), ("role_change", "auth.user"))[1],
    ("auth.user", "delete"): lambda w: (ok(w.client.post(reverse("admin:auth_user_delete", args=[w.user.pk]),
                                                         {"post": "yes"})), ("delete", "auth.user"))[1],
    ("auth.user", "action:delete_selected"): lambda w: (action(w, "auth_user", "delete_selected", w.user.pk,
                                                               post="yes"), ("delete", "auth.user"))[1],
    ("auth.user", "url:auth_user_password_change"): lambda w: (ok(w.client.post(
        reverse("admin:auth_user_password_change", args=[w.user.pk]),
        {"password1": "A-new-passw0rd!", "password2": "A-new-passw0rd!", "usable_password": "true"})),
        ("update", "auth.user"))[1],
    ("auth.group", "add"): lambda w: (ok(w.client.post(reverse("admin:auth_group_add"), {"name": "Reception"})),
                                      ("role_change", "auth.group"))[1],
    ("auth.group", "change"): lambda w: (ok(w.client.post(reverse("admin:auth_group_change", args=[w.group.pk]),
                                                          {"name": "Front desk", "permissions": []})),
                                         ("role_change", "auth.group"))[1],
    ("auth.group", "delete"): lambda w: (ok(w.client.post(reverse("admin:auth_group_delete", args=[w.group.pk]),
                                                          {"post": "yes"})), ("role_change", "auth.group"))[1],
    ("auth.group", "action:delete_selected"): lambda w: (action(w, "auth_group", "delete_selected", w.group.pk,
                                                                post="yes"), ("role_change", "auth.group"))[1],
    ("api.apitoken", "add"): lambda w: (ok(w.client.post(reverse("admin:api_apitoken_add"), {
        "name": "payroll", "scopes": ["read"], "rate": "", "expires_at": ""})), ("create", "api.apitoken"))[1],
    ("api.apitoken", "action:revoke"): lambda w: (action(w, "api_apitoken", "revoke", w.token.pk),
                                                  ("deactivate", "api.apitoken"))[1],
    ("recognition.kiosk", "add"): lambda w: (ok(w.client.post(reverse("admin:recognition_kiosk_add"), {
        "name": "Side door", "location": "", "site": "main", "active": "on"})), ("create", "recognition.kiosk"))[1],
    ("recognition.kiosk", "change"): lambda w: (ok(w.client.post(
        reverse("admin:recognition_kiosk_change", args=[w.kiosk.pk]),
        {"name": "Front door", "location": "Side entrance", "site": "main", "active": "on"})),
        ("update", "recognition.kiosk"))[1],
    ("recognition.kiosk", "delete"): lambda w: (ok(w.client.post(
        reverse("admin:recognition_kiosk_delete", args=[w.kiosk.pk]), {"post": "yes"})),
        ("delete", "recognition.kiosk"))[1],
    ("recognition.kiosk", "action:delete_selected"): lambda w: (action(
        w, "recognition_kiosk", "delete_selected", w.kiosk.pk, post="yes"), ("delete", "recognition.kiosk"))[1],
    ("recognition.kiosk", "action:revoke_selected"): lambda w: (action(
        w, "recognition_kiosk", "revoke_selected", w.kiosk.pk), ("deactivate", "recognition.kiosk"))[1],
    ("recognition.kiosk", "url:recognition_kiosk_pairing"): lambda w: (ok(w.client.post(
        reverse("admin:recognition_kiosk_pairing", args=[w.kiosk.pk]))), ("update", "recognition.kiosk"))[1],
    ("recognition.kiosk", "url:recognition_kiosk_revoke"): lambda w: (ok(w.client.post(
        reverse("admin:recognition_kiosk_revoke", args=[w.kiosk.pk]))), ("deactivate", "recognition.kiosk"))[1],
    ("recognition.checkin", "add"): lambda w: (ok(w.client.post(reverse("admin:recognition_checkin_add"), {
        "person": w.person.pk, "at_0": f"{timezone.localdate() - timedelta(days=1):%Y-%m-%d}", "at_1": "09:00",
        "site": "main", "reason": "kiosk offline"})), ("checkin_manual", "recognition.checkin"))[1],
    ("recognition.checkin", "delete"): lambda w: (ok(w.client.post(
        reverse("admin:recognition_checkin_delete", args=[w.checkin.pk]), {"post": "yes"})),
        ("delete", "recognition.checkin"))[1],
    ("enrollment.person", "add"): lambda w: (ok(w.client.post(reverse("admin:enrollment_person_add"), {
        "full_name": "Mei Lin", "staff_id": "ML-1", "active": "on"})), ("create", "enrollment.person"))[1],
    ("enrollment.person", "change"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_change", args=[w.person.pk]), person_form(w, department="Ground"))),
        ("update", "enrollment.person"))[1],
    # the change form's other writes: photos removed and uploaded with it
    ("enrollment.person", "change:remove_photos"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_change", args=[w.person.pk]),
        person_form(w, remove_photos=[w.photo.pk]))), ("photo_remove", "enrollment.facephoto"))[1],
    ("enrollment.person", "change:photos"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_change", args=[w.person.pk]), person_form(w, photos=[upload()]))),
        ("photo_add", "enrollment.facephoto"))[1],
    ("enrollment.person", "action:rebuild_index"): lambda w: (action(
        w, "enrollment_person", "rebuild_index", w.person.pk), ("rebuild", "enrollment.trainingrun"))[1],
    ("enrollment.person", "action:deactivate"): lambda w: (action(
        w, "enrollment_person", "deactivate", w.person.pk), ("deactivate", "enrollment.person"))[1],
    ("enrollment.person", "action:reactivate"): lambda w: (
        enrollment.person_deactivate(person=w.person, actor=None),
        action(w, "enrollment_person", "reactivate", w.person.pk), ("update", "enrollment.person"))[2],
    ("enrollment.person", "action:stop_gallery_adaptation"): lambda w: (action(
        w, "enrollment_person", "stop_gallery_adaptation", w.person.pk), ("update", "enrollment.person"))[1],
    ("enrollment.person", "action:resume_gallery_adaptation"): lambda w: (
        enrollment.person_gallery_adaptation_stop(person=w.person, actor=None),
        action(w, "enrollment_person", "resume_gallery_adaptation", w.person.pk), ("update", "enrollment.person"))[2],
    ("enrollment.person", "action:erase_biometric_data"): lambda w: (action(
        w, "enrollment_person", "erase_biometric_data", w.person.pk, post="yes"), ("erase", "enrollment.person"))[1],
    ("enrollment.person", "url:enrollment_person_rebuild"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_rebuild"))), ("rebuild", "enrollment.trainingrun"))[1],
    ("enrollment.person", "url:enrollment_person_erase"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_erase", args=[w.person.pk]), {"post": "yes"})),
        ("erase", "enrollment.person"))[1],
    ("enrollment.person", "url:enrollment_person_export"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_export", args=[w.person.pk]))), ("export", "enrollment.person"))[1],
    # reads that hand out a list of people's data: who downloaded which list, when
    ("recognition.checkin", "url:recognition_checkin_export"): lambda w: (ok(w.client.get(
        reverse("admin:recognition_checkin_export"), {"q": NAME, "person__id__exact": w.person.pk})),
        ("list_export", "recognition.checkin"))[1],
    ("audit.auditevent", "url:audit_auditevent_export"): lambda w: (ok(w.client.get(
        reverse("admin:audit_auditevent_export"), {"q": STAFF_ID})), ("list_export", "audit.auditevent"))[1],
    ("enrollment.person", "url:enrollment_person_capture_save"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_person_capture_save", args=[w.person.pk]), {"photos": [upload(seed=2)]})),
        ("photo_add", "enrollment.facephoto"))[1],
    ("enrollment.facephoto", "delete"): lambda w: (ok(w.client.post(
        reverse("admin:enrollment_facephoto_delete", args=[w.photo.pk]), {"post": "yes"})),
        ("photo_remove", "enrollment.facephoto"))[1],
    ("enrollment.facephoto", "action:delete_selected"): lambda w: (action(
        w, "enrollment_facephoto", "delete_selected", w.photo.pk, post="yes"),
        ("photo_remove", "enrollment.facephoto"))[1],
    # lifting an erased staff id (the erasure keeps it): the world's person erased first
    ("enrollment.erasedstaffid", "delete"): lambda w: (enrollment.person_erase(person=w.person, actor=None), ok(
        w.client.post(reverse("admin:enrollment_erasedstaffid_delete", args=[ErasedStaffId.objects.get().pk]),
                      {"post": "yes"})), ("delete", "enrollment.erasedstaffid"))[2],
    ("enrollment.erasedstaffid", "action:delete_selected"): lambda w: (
        enrollment.person_erase(person=w.person, actor=None),
        action(w, "enrollment_erasedstaffid", "delete_selected", ErasedStaffId.objects.get().pk, post="yes"),
        ("delete", "enrollment.erasedstaffid"))[2],
    ("enrollment.facephoto", "action:embed_again"): lambda w: (
        FacePhoto.objects.filter(pk=w.photo.pk).update(embedding_state=FacePhoto.Embedding.FAILED,
                                                       embed_failed_version=recognizer.template_version()),
        action(w, "enrollment_facephoto", "embed_again", w.photo.pk), ("update", "enrollment.facephoto"))[2],
    # the admin site's own pages
    ("site", "url:password_change"): lambda w: (w.user.__setattr__("is_staff", True), w.user.save(),
                                                w.client.force_login(w.user), ok(w.client.post(
        reverse("admin:password_change"), {"old_password": "Old-passw0rd!", "new_password1": "A-new-passw0rd!",
                                           "new_password2": "A-new-passw0rd!"})), ("update", "auth.user"))[4],
    ("site", "url:logout"): lambda w: (ok(w.client.post(reverse("admin:logout"))), ("logout", "auth.user"))[1],
}

# (model label, operation) -> why it needs no record
ADMIN_EXEMPT: dict[tuple[str, str], str] = {
    # the audit log itself: no add, change or delete permission (the ORM refuses too)
    ("enrollment.person", "url:enrollment_person_capture"): "a read: the webcam page",
    ("enrollment.person", "url:enrollment_person_capture_check"):
        "a read: one frame's quality check, nothing stored, no face searched",
    ("enrollment.trainingrun", "url:enrollment_trainingrun_status"):
        "a read (it hands overdue runs to the runner again, writing nothing)",
    ("site", "url:login"): "audited by audit/logins.py (tests/audit/test_logins.py): needs a password",
    ("site", "url:index"): "a read", ("site", "url:password_change_done"): "a read",
    ("site", "url:jsi18n"): "a read", ("site", "url:autocomplete"): "a read",
    ("site", "url:view_on_site"): "a redirect", ("site", "url:app_list"): "a read",
}

_STANDARD_SUFFIXES = ("_changelist", "_add", "_history", "_delete", "_change")


def admin_operations(rf) -> set[tuple[str, str]]:
    """What a superuser may do in the admin: per registered model, add/change/delete as its
    ModelAdmin allows them, each action, each URL of its own; and the admin site's own pages."""
    su = User.objects.create_superuser("probe", "probe@example.com", "pw")
    request = rf.get("/admin/")
    request.user = su
    found = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        for op in ("add", "change", "delete"):
            allowed = getattr(model_admin, f"has_{op}_permission")(request)
            if allowed:
                found.add((label, op))
        found |= {(label, f"action:{name}") for name in model_admin.get_actions(request)}
        standard = {f"{model._meta.app_label}_{model._meta.model_name}{suffix}" for suffix in _STANDARD_SUFFIXES}
        found |= {(label, f"url:{u.name}") for u in model_admin.get_urls()
                  if isinstance(u, URLPattern) and u.name and u.name not in standard}
    found |= {("site", f"url:{u.name}") for u in admin.site.get_urls() if isinstance(u, URLPattern) and u.name}
    su.delete()
    return found


def test_every_admin_write_is_audited_or_exempt(rf):
    """A ModelAdmin, action or admin view without a recipe below (or an exemption saying why it
    writes nothing) fails here; and a recipe for something the admin no longer has, too."""
    found = admin_operations(rf)
    covered = {key if not key[1].startswith("change:") else (key[0], "change") for key in ADMIN} | set(ADMIN_EXEMPT)
    assert found - covered == set(), "admin write paths without an audit recipe or an exemption"
    assert covered - found == set(), "recipes or exemptions for admin paths that do not exist"
    assert not set(ADMIN) & set(ADMIN_EXEMPT)


def test_a_new_admin_without_a_recipe_is_found(rf):
    """The check above sees what is registered, not a list: a ModelAdmin added to the site (here
    Django's LogEntry, for the test's length) is a write path it reports."""
    from django.contrib.admin.models import LogEntry

    admin.site.register(LogEntry)
    try:
        found = admin_operations(rf)
    finally:
        admin.site.unregister(LogEntry)
    assert {("admin.logentry", "add"), ("admin.logentry", "change"), ("admin.logentry", "delete"),
            ("admin.logentry", "action:delete_selected")} <= found


def _summaries_hold_no_personal_data(events: list[AuditEvent]) -> None:
    """Ids only: no name or staff id, no encoded image or vector."""
    for event in events:
        assert NAME not in event.summary and "Eileen" not in event.summary, event.summary
        assert STAFF_ID not in event.summary.split(), event.summary
        assert not re.search(r"[A-Za-z0-9+/=]{48,}", event.summary), event.summary


def expect_audited(w: World, recipe: Recipe, actor: str) -> None:
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    expected_action, expected_type = recipe(w)
    new = list(AuditEvent.objects.filter(id__gt=before).order_by("id"))
    seen = [(e.actor, e.action, e.object_type, e.summary) for e in new]
    assert any((e.action, e.object_type, e.actor) == (expected_action, expected_type, actor) for e in new), (
        f"no {expected_action} {expected_type} record by {actor}: {seen}")
    _summaries_hold_no_personal_data(new)


@pytest.mark.parametrize("key", sorted(ADMIN), ids=lambda k: f"{k[0]}:{k[1]}")
def test_each_admin_write_is_audited(world, key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        expect_audited(world, ADMIN[key], actor="door" if key == ("site", "url:password_change") else "root")


# ------------------------------------------------------------------------- the REST API
# (URL name, method) -> recipe; the actor is the token's service account

API: dict[tuple[str, str], Recipe] = {
    ("person-list", "POST"): lambda w: (ok(w.api.post("/api/v1/people", {"full_name": "Mei Lin", "staff_id": "ML-1"},
                                                      format="json")), ("create", "enrollment.person"))[1],
    ("person-detail", "PUT"): lambda w: (ok(w.api.put(f"/api/v1/people/{w.person.pk}", {
        "full_name": NAME, "staff_id": STAFF_ID, "department": "Ground", "notes": "", "active": True},
        format="json")), ("update", "enrollment.person"))[1],
    ("person-detail", "PATCH"): lambda w: (ok(w.api.patch(f"/api/v1/people/{w.person.pk}", {"department": "Ground"},
                                                          format="json")), ("update", "enrollment.person"))[1],
    ("person-deactivate", "POST"): lambda w: (ok(w.api.post(f"/api/v1/people/{w.person.pk}/deactivate")),
                                              ("deactivate", "enrollment.person"))[1],
    ("person-erase", "POST"): lambda w: (ok(w.api.post(f"/api/v1/people/{w.person.pk}/erase")),
                                         ("erase", "enrollment.person"))[1],
    # a read, but one that hands a person's data out: audited as the admin's export is
    ("person-export", "GET"): lambda w: (ok(w.api.get(f"/api/v1/people/{w.person.pk}/export")),
                                         ("export", "enrollment.person"))[1],
    # a read that hands out a list of people's check-ins: audited as the admin's CSV is
    ("checkin-csv", "GET"): lambda w: (ok(w.api.get("/api/v1/checkins/csv", {"person": w.person.pk})),
                                       ("list_export", "recognition.checkin"))[1],
    # ... and so does each page of its JSON list
    ("checkin-list", "GET"): lambda w: (ok(w.api.get("/api/v1/checkins", {"person": w.person.pk})),
                                        ("list_export", "recognition.checkin"))[1],
    ("checkin-list", "POST"): lambda w: (ok(w.api.post("/api/v1/checkins", {
        "person": w.person.pk, "at": (timezone.now() - timedelta(days=1)).isoformat(), "reason": "badge reader"},
        format="json")), ("checkin_manual", "recognition.checkin"))[1],
    ("photo-list", "POST"): lambda w: (ok(w.api.post(f"/api/v1/people/{w.person.pk}/photos", {"image": upload()},
                                                     format="multipart")), ("photo_add", "enrollment.facephoto"))[1],
    ("photo-detail", "DELETE"): lambda w: (ok(w.api.delete(f"/api/v1/people/{w.person.pk}/photos/{w.photo.pk}")),
                                           ("photo_remove", "enrollment.facephoto"))[1],
    ("kiosk-list", "POST"): lambda w: (ok(w.api.post("/api/v1/kiosks", {"name": "Side door"}, format="json")),
                                       ("create", "recognition.kiosk"))[1],
    ("kiosk-detail", "PUT"): lambda w: (ok(w.api.put(f"/api/v1/kiosks/{w.kiosk.pk}", {"name": "Front door 2"},
                                                     format="json")), ("update", "recognition.kiosk"))[1],
    ("kiosk-detail", "PATCH"): lambda w: (ok(w.api.patch(f"/api/v1/kiosks/{w.kiosk.pk}", {"location": "Lobby"},
                                                         format="json")), ("update", "recognition.kiosk"))[1],
    ("kiosk-revoke", "POST"): lambda w: (ok(w.api.post(f"/api/v1/kiosks/{w.kiosk.pk}/revoke")),
                                         ("deactivate", "recognition.kiosk"))[1],
    ("kiosk-pairing-link", "POST"): lambda w: (ok(w.api.post(f"/api/v1/kiosks/{w.kiosk.pk}/pairing-link")),
                                               ("update", "recognition.kiosk"))[1],
    ("rebuild-list", "POST"): lambda w: (ok(w.api.post("/api/v1/index/rebuilds")),
                                         ("rebuild", "enrollment.trainingrun"))[1],
}

# face searches: they need the engine and an index (tests/api/test_recognition.py asserts their
# records, api_identify and api_verify, with the real engine)
API_ELSEWHERE: dict[tuple[str, str], str] = {
    ("identify", "POST"): "tests/api/test_recognition.py::test_identify_and_verify_decisions",
    ("verify", "POST"): "tests/api/test_recognition.py::test_identify_and_verify_decisions",
}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def api_writes() -> set[tuple[str, str]]:
    """The API routes' unsafe methods (a viewset's as routed; an APIView's handlers)."""
    found = set()
    for route, pattern in url_patterns():
        if not route.startswith("api/"):
            continue
        actions = getattr(pattern.callback, "actions", None)
        view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
        if actions is not None:
            methods = {m.upper() for m in actions}
        elif view is not None:
            methods = {m.upper() for m in view.http_method_names if hasattr(view, m)}
        else:
            methods = set()   # a plain function (the API's 404 for unknown paths)
        found |= {(pattern.name, m) for m in methods if m in UNSAFE}
    return found


def test_every_api_write_is_audited():
    found = api_writes()
    covered = {k for k in API if k[1] in UNSAFE} | set(API_ELSEWHERE)
    assert found - covered == set(), "API write endpoints without an audit recipe"
    assert covered - found == set(), "recipes for API endpoints that do not exist"


@pytest.mark.parametrize("key", sorted(API), ids=lambda k: f"{k[1]} {k[0]}")
def test_each_api_write_is_audited(world, key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        expect_audited(world, API[key], actor=api_services.api_token_username(world.token.name))


# ------------------------------------------------------------- the site's other pages that write

SITE_WRITES: dict[str, str] = {
    # the one-time pairing link, POSTed by the kiosk device: "paired a device with kiosk #N"
    "kiosk-pair": "tests/audit/test_audit_coverage.py::test_pairing_a_device_is_audited",
    # a list of check-ins as CSV: who downloaded it (the day's, a person's and the summary's CSV, ?format=csv of
    # pages that write nothing without it, are tested beside it)
    "attendance-export": "tests/audit/test_audit_coverage.py::test_attendance_csvs_are_audited",
}


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b(?!.*\bdjango_session\b)", re.I | re.S)


def test_no_other_page_of_the_site_writes(world):
    """Every URL outside the admin and the API, asked with GET and POST by a superuser and by a
    paired kiosk device (an id in the path: an existing person's), writes nothing to the database
    (a staff session's row aside), but those named in :data:`SITE_WRITES` (each audited, by the
    test named)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recognition.views import KIOSK_COOKIE

    _kiosk, code = recognition.kiosk_create(actor=None, name="Tablet")
    device = Client()
    device.post(recognition.pairing_path(code))
    assert device.cookies.get(KIOSK_COOKIE)
    writes = []
    for route, pattern in url_patterns():
        if route.startswith(("admin/", "api/")) or pattern.name in SITE_WRITES:
            continue
        # a text parameter (a one-time code, a token) gets no value that names a row here, so the
        # page's write would go unseen: such a page is listed in SITE_WRITES
        assert "<str:" not in route, f"{route}: list it in SITE_WRITES with the test of its audit record"
        path = "/" + re.sub(r"<int:\w+>", str(world.person.pk), re.sub(r"<str:\w+>", "x", route))
        for who, client in (("superuser", world.client), ("kiosk", device)):
            for method in (client.get, client.post):
                with CaptureQueriesContext(connection) as queries:
                    method(path)
                writes += [(route, who, method.__name__, q["sql"][:80]) for q in queries if _WRITE.match(q["sql"])]
    assert writes == []


def test_pairing_a_device_is_audited(world):
    _kiosk, code = recognition.kiosk_create(actor=None, name="Side door")
    expect_audited(world, lambda w: (ok(Client().post(recognition.pairing_path(code))),
                                     ("update", "recognition.kiosk"))[1], actor="system")


@pytest.mark.parametrize("url", ["attendance-export", "attendance-day", "attendance-person", "attendance-summary"])
def test_attendance_csvs_are_audited(world, url):
    """The attendance pages' CSVs, the filtered export and the ``?format=csv`` of a day's and a
    person's page and of the summary, each a ``list_export`` by the staff user."""
    path = reverse(url, args=[world.person.pk]) if url == "attendance-person" else reverse(url)
    query = {"person": world.person.pk} if url == "attendance-export" else {"format": "csv"}
    expect_audited(world, lambda w: (ok(w.client.get(path, query)), ("list_export", "recognition.checkin"))[1],
                   actor="root")


# ------------------------------------------------------------------------ management commands

def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


COMMANDS: dict[str, Recipe] = {
    "create_kiosk": lambda w: (run("create_kiosk", "Side door"), ("create", "recognition.kiosk"))[1],
    "purge_expired": lambda w: (run("purge_expired"), ("purge", "masknet.retention_purge"))[1],
    "rebuild_index": lambda w: (run("rebuild_index", "--wait"), ("rebuild", "enrollment.trainingrun"))[1],
    "export_audit": lambda w: (run("export_audit", os.path.join(tempfile.mkdtemp(), "audit.csv")),
                               ("list_export", "audit.auditevent"))[1],
    "demo": lambda w: (run("demo", "--no-enroll"), ("import", "recognition.kiosk"))[1],
    "createsuperuser": lambda w: (run("createsuperuser", "--noinput", username="boss", email="b@example.com"),
                                  ("create", "auth.user"))[1],
}

COMMANDS_ELSEWHERE: dict[str, str] = {
    # need the face models (one import record; each person and photo audited as well)
    "import_people": "tests/enrollment/test_commands_enrollment.py::test_import_people_then_rebuild",
    # need an erasure in a restored backup's audit CSV
    "reapply_erasures": "tests/enrollment/test_reapply_erasures.py",
    # asks for the password at a prompt
    "changepassword": "tests/audit/test_audit.py::test_createsuperuser_and_changepassword_are_audited",
}

# commands that change no data of the site (files of the models directory, or nothing at all)
COMMANDS_EXEMPT: dict[str, str] = {
    "install_models": "writes the models directory; a new recognizer version makes the site ask for a "
                      "rebuild, which is audited (index_refresh_if_outdated)",
    "evaluate_pairs": "a benchmark: reads images, prints figures",
    "evaluate_identification": "a benchmark: reads images, prints figures",
    "mask_faces": "writes masked copies of a development data set, outside the site",
    "train_adapter": "development: writes a model file for study (measured, not built into the product)",
    "train_mask_classifier": "development: writes a model file; installed only by install_models",
}


def test_every_command_of_the_project_is_audited_or_exempt():
    """Django's own data commands (``migrate``, ``flush``, ``loaddata``, ``shell``, ``dbshell``,
    ``clearsessions``) work beneath the application and are outside its audit log by nature; the
    project's commands (and the two of Django's it overrides) are each accounted for here."""
    ours = {name for name, app in get_commands().items() if app.split(".")[-1] in OUR_APPS}
    covered = set(COMMANDS) | set(COMMANDS_ELSEWHERE) | set(COMMANDS_EXEMPT)
    assert ours - covered == set(), "management commands without an audit recipe or an exemption"
    assert covered - ours == set()


# audited commands whose records name the system, with no --actor: no person decides what they do
COMMANDS_SYSTEM_ACTOR: dict[str, str] = {
    "purge_expired": "applies the retention settings, as the daily Celery beat task does (the same records, "
                     "'system'); cron runs it, and who set the settings decided",
    "demo": "made-up data for a demonstration (make run DEMO=1), not a change to the site's people or kiosks",
}


def test_every_audited_command_names_its_actor_or_is_the_systems():
    """A command a person runs to make a change (import, rebuild, kiosk, restore's re-applied
    erasures and revocations, Django's user commands) takes ``--actor USERNAME``
    (:mod:`audit.management.actor`): without it the log said "system" for every such change."""
    from django.core.management import load_command_class

    audited = set(COMMANDS) | set(COMMANDS_ELSEWHERE)
    assert set(COMMANDS_SYSTEM_ACTOR) <= audited
    for name in sorted(audited - set(COMMANDS_SYSTEM_ACTOR)):
        parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
        assert "--actor" in parser._option_string_actions, f"{name} has no --actor"
    for name in COMMANDS_SYSTEM_ACTOR:
        parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
        assert "--actor" not in parser._option_string_actions, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_is_audited(world, name, settings, django_capture_on_commit_callbacks):
    settings.SETTINGS_MODULE = "masknet_site.settings.test"   # None under the settings fixture (demo reads it)
    with django_capture_on_commit_callbacks(execute=True):
        expect_audited(world, COMMANDS[name], actor="system")


# ------------------------------------------------------------------------------- Celery tasks

def _rebuild_task(w: World) -> tuple[str, str]:
    from enrollment.tasks import rebuild_index_task

    run_ = enrollment.index_rebuild_request(actor=None, reason="test")
    rebuild_index_task(run_.pk)
    return "rebuild", "enrollment.trainingrun"


def _purge_task(w: World) -> tuple[str, str]:
    from recognition.tasks import purge_expired_task

    purge_expired_task()
    return "purge", "masknet.retention_purge"


TASKS: dict[str, Recipe] = {"enrollment.rebuild_index": _rebuild_task, "recognition.purge_expired": _purge_task}
TASKS_EXEMPT: dict[str, str] = {
    # hands runs whose message was lost to the runner again; a run given up is recorded by
    # index_rebuild_resume (_run_give_up), the run itself by the rebuild
    "enrollment.resume_rebuilds": "sends messages again, changes nothing itself",
}


def test_every_celery_task_is_audited_or_exempt():
    from masknet_site.celery import app

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.split(".")[0] in OUR_APPS}
    assert ours == set(TASKS) | set(TASKS_EXEMPT)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_is_audited(world, name, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        expect_audited(world, TASKS[name], actor="system")


# ------------------------------------------------------------- decisions, tested with their machinery

ELSEWHERE = {
    "kiosk check-in accepted (new / already)": "tests/recognition/test_consumer.py (checkin_accepted)",
    "kiosk refused: unknown, a match no longer active, not shown under a welcome":
        "tests/recognition/test_consumer.py (checkin_unknown)",
    "kiosk refused: quality": "tests/recognition/test_consumer.py (checkin_quality)",
    "gallery adaptation: photo kept / removal stops it": "tests/enrollment/test_gallery_adaptation.py",
    "staff login, logout, failed login, lockout": "tests/audit/test_logins.py",
    "retention purge (snapshots, decisions, adapted photos, files)": "tests/recognition/test_retention.py",
    "index versions a rebuild's switch deletes":
        "tests/enrollment/test_rebuild.py::test_each_pruned_version_is_on_record",
    "a group's deletion, as a role change of each member":
        "tests/audit/test_audit.py::test_members_of_a_deleted_group_have_their_role_change_recorded",
}


def test_the_tests_named_elsewhere_exist():
    """The tables' pointers to the tests that check a path with its own machinery stay true."""
    from tests.conftest import REPO

    pointers = [*API_ELSEWHERE.values(), *COMMANDS_ELSEWHERE.values(), *SITE_WRITES.values(), *ELSEWHERE.values()]
    for pointer in pointers:
        path, _, test = pointer.split(" ")[0].partition("::")
        text = (REPO / path).read_text()
        assert not test or f"def {test}(" in text, pointer
