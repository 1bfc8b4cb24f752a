"""The HTTP headers of every page and download of the site, found by walking the URL conf.

Every URL pattern of the site (the admin's, its custom views included, the API's, the kiosk's, the
attendance pages, the photo views, ``/healthz``, ``/privacy/``...) is asked with GET by an
anonymous browser, a superuser's session and a paired kiosk device, an id in the path naming an
existing row of the model the route is about; a few downloads that need a query string or a POST
are added (:data:`EXTRA_GETS`, :func:`test_personal_data_downloads`). Each answer must carry:

* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a CSP with
  ``frame-ancestors 'none'``, ``Cross-Origin-Opener-Policy: same-origin``, and the site's
  ``Referrer-Policy`` (the kiosk pages a stricter one: :data:`STRICT_REFERRER`);
* a ``Permissions-Policy`` denying the camera, the microphone and the other powerful features,
  but on the two pages that film (:data:`CAMERA_PAGES`), which allow the camera to this origin;
* ``Cache-Control: no-store`` on every answer to a staff session and every successful answer to
  anyone else, but the public, data-free ones (:data:`PUBLIC`);
* on a download, ``Content-Disposition: attachment`` with a filename (photos are shown inline), CSV
  as ``text/csv; charset=utf-8``, and any text type with its charset; no person's name in a header.

Under the production settings (a process of its own): the same headers, and HSTS over HTTPS.
"""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from api import services as api_services
from enrollment import services as enrollment
from enrollment.admin import CAPTURE_PERMISSIONS_POLICY
from enrollment.models import IndexVersion
from masknet_site.middleware import DEFAULT_PERMISSIONS_POLICY, POLICY_FEATURES, permissions_policy
from recognition import services as recognition
from recognition.consumers import KIOSK_COOKIE
from recognition.views import KIOSK_PERMISSIONS_POLICY
from tests.api.helpers import make_world

# isolated media and index folders; rebuild requests recorded instead of run
from tests.enrollment.conftest import enqueued, isolated_storage  # noqa: F401
from tests.routes import url_patterns
from tests.test_settings import PROD_ENV, manage

# the pages that film, and their own policy: every other page is denied the camera
CAMERA_PAGES = {
    "kiosk/": KIOSK_PERMISSIONS_POLICY,                                      # the kiosk screen (also unpaired, 503)
    "admin/enrollment/person/<int:object_id>/capture/": CAPTURE_PERMISSIONS_POLICY,   # the webcam capture page
}
# answers that hold no personal data and that a browser or a proxy may keep (when no staff
# session asked: a staff session's answers are never stored, whatever the page)
PUBLIC = {
    "healthz",           # whether the node can serve: no data (docs/security.md)
    "favicon.ico",       # a permanent redirect to a static file
    "privacy/",          # the site's public privacy notice, from its settings
    "api/schema/",       # the API's description, cached 10 minutes on purpose (docs/api.md)
}
# the API schema says so itself, even to a staff session (public, the same for everyone)
OWN_CACHING = {"api/schema/"}
# the kiosk family keeps the pairing code of its URL out of any Referer (recognition.views._kiosk_headers)
STRICT_REFERRER = {"kiosk/", "kiosk/pair/<str:code>/"}
# pages asked for a second time with a query string that makes them a download (or a script)
EXTRA_GETS = {
    "attendance/": "?format=csv",
    "attendance/people/<int:pk>/": "?format=csv",
    "attendance/summary/": "?format=csv",
    "api/docs/": "?script=",
    "api/schema/": "?format=json",
}

NAME = "Eileen Collins"


def routes() -> list[str]:
    """Every route of the URL conf, as written in it (``admin/<app>/<model>/<path:object_id>/change/``)."""
    return [route for route, _pattern in url_patterns()]


@pytest.fixture
def world(db):
    """A row of every model the admin lists, a superuser's session, an admin API token and a paired
    kiosk device, and a fresh pairing code."""
    w = make_world()
    su = User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.force_login(su)
    _token, secret = api_services.api_token_create(actor=None, name="hr-system", scopes=["admin"])
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    Group.objects.create(name="Door staff")
    # an erased staff id (its admin's change page): a person erased at their request
    gone = enrollment.person_create(actor=None, full_name="Gone Person", staff_id="G-9")
    enrollment.person_erase(person=gone, actor=None)
    IndexVersion.objects.create(path="index-old.npz", sha256="0" * 64, people_count=1, template_count=2, dim=8,
                                model_version="test")
    _kiosk, code = recognition.kiosk_create(actor=None, name="Tablet")
    device = Client()
    assert device.post(recognition.pairing_path(code)).status_code == 302 and device.cookies.get(KIOSK_COOKIE)
    _kiosk, fresh_code = recognition.kiosk_create(actor=None, name="Side door")
    return {"world": w, "staff": staff, "token": token, "device": device, "code": fresh_code}


def concrete(route: str, world: dict) -> str:
    """``route`` with each parameter given a value that names an existing row of its model."""
    w = world["world"]
    by_name = {"person_pk": w.person.pk, "code": world["code"], "app_label": "enrollment",
               "content_type_id": apps.get_model("contenttypes", "ContentType").objects.get_for_model(w.person).pk,
               "url": "no-such-page", "path": "no-such-endpoint"}
    def row():
        """The row a route's own id names, from where the route is."""
        owner = re.match(r"admin/(\w+)/(\w+)/<", route)
        if owner:
            return apps.get_model(*owner.groups()).objects.order_by("pk").first()
        return next(obj for prefix, obj in (
            ("enrollment/photos/", w.photo), ("attendance/people/", w.person),
            ("api/v1/^people/(?P<person_pk>", w.photo), ("api/v1/^people/", w.person),
            ("api/v1/^kiosks/", w.kiosk), ("api/v1/^index/rebuilds/", w.run), ("admin/r/", w.person),
        ) if route.startswith(prefix))

    def value(name: str) -> str:
        return str(by_name[name] if name in by_name else row().pk)

    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m.group(1)), route)
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", lambda m: value(m.group(1)), path)
    return "/" + path.replace("^", "").replace("$", "")


def check(route: str, who: str, response, found: dict) -> None:
    """Every header rule of the module docstring, for one answer."""
    where = f"{who} GET {route} ({response.status_code})"
    assert response.status_code < 500, where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert response["X-Frame-Options"] == "DENY", where
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"], where
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", where
    assert response["Referrer-Policy"] == ("strict-origin" if route in STRICT_REFERRER else "same-origin"), where
    policy = response["Permissions-Policy"]
    assert policy in {DEFAULT_PERMISSIONS_POLICY, CAMERA_PAGES.get(route)}, (where, policy)
    if policy != DEFAULT_PERMISSIONS_POLICY:
        found.setdefault("camera", set()).add(route)
    cache = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    stored_ok = route in OWN_CACHING or (route in PUBLIC and who != "staff") \
        or (who != "staff" and response.status_code >= 300)   # a redirect to the login, a refusal: no data
    assert stored_ok or "no-store" in cache, (where, response.get("Cache-Control"))
    content_type = response.get("Content-Type", "")
    if content_type.startswith("text/"):
        assert "charset=" in content_type, (where, content_type)
    if content_type.startswith("text/csv"):
        assert content_type == "text/csv; charset=utf-8", where
    disposition = response.get("Content-Disposition")
    if disposition is not None and disposition != "inline":
        assert re.fullmatch(r"(attachment|inline); filename(\*=utf-8''[^\s\"]+|=\"[^\"\r\n]+\")", disposition), where
        found.setdefault("downloads", set()).add(route)
    for name, value in response.items():
        assert NAME not in value, (where, name)


@pytest.mark.django_db
def test_every_page_of_the_site_sends_its_headers(world):
    clients = {"anonymous": Client(), "staff": world["staff"], "device": world["device"]}
    found: dict[str, set[str]] = {}
    walked = routes()
    for route in walked:
        path = concrete(route, world)
        for who, client in clients.items():
            check(route, who, client.get(path), found)
            if route in EXTRA_GETS:
                check(route, who, client.get(path + EXTRA_GETS[route]), found)
    # the tables name routes that exist, and each camera page did allow the camera
    assert (set(CAMERA_PAGES) | PUBLIC | STRICT_REFERRER | set(EXTRA_GETS)) <= set(walked)
    assert found["camera"] == set(CAMERA_PAGES)
    # the walk reached the downloads (a page that became one unnoticed is checked all the same)
    assert {"attendance/export.csv", "attendance/", "attendance/summary/", "admin/recognition/checkin/export.csv",
            "admin/audit/auditevent/export.csv", "api/v1/^checkins/csv$"} <= found["downloads"]


@pytest.mark.django_db
def test_the_early_refusals_send_the_headers_too(settings):
    """The login throttle's 429 and the 400 for a NUL in the query answer before the middleware that
    set X-Frame-Options did (found by a helper's review): they are checked as every page is."""
    from tests.logins import login, make_staff

    settings.MASKNET_LOGIN_MAX_FAILURES = 1
    make_staff()
    client, found = Client(), {}
    login(client, "alice", "wrong")
    locked = login(client, "alice", "wrong")
    assert locked.status_code == 429
    check("admin/login/", "anonymous", locked, found)
    nul = client.get("/attendance/?site=%00")
    assert nul.status_code == 400
    check("attendance/", "anonymous", nul, found)


@pytest.mark.django_db
def test_the_camera_pages_answer_with_their_own_policy(world):
    """The walk accepts either policy on these routes (a redirect to the login gets the default):
    here, each page itself, and the pairing page that leads to the kiosk keeps the camera denied."""
    person = world["world"].person.pk
    capture = world["staff"].get(f"/admin/enrollment/person/{person}/capture/")
    assert capture.status_code == 200 and capture["Permissions-Policy"] == CAPTURE_PERMISSIONS_POLICY
    kiosk = world["device"].get("/kiosk/")
    assert kiosk.status_code == 200 and kiosk["Permissions-Policy"] == KIOSK_PERMISSIONS_POLICY
    assert "camera=(self)" in kiosk["Permissions-Policy"] and "microphone=()" in kiosk["Permissions-Policy"]
    assert "screen-wake-lock=(self)" in kiosk["Permissions-Policy"]   # kiosk.js keeps the screen on
    pairing = Client().get(recognition.pairing_path(world["code"]))
    assert pairing.status_code == 200 and pairing["Permissions-Policy"] == DEFAULT_PERMISSIONS_POLICY
    assert world["staff"].get("/admin/")["Permissions-Policy"] == DEFAULT_PERMISSIONS_POLICY


def test_the_default_policy_denies_every_powerful_feature():
    assert "camera=()" in DEFAULT_PERMISSIONS_POLICY and "microphone=()" in DEFAULT_PERMISSIONS_POLICY
    assert "geolocation=()" in DEFAULT_PERMISSIONS_POLICY and "(self)" not in DEFAULT_PERMISSIONS_POLICY
    assert DEFAULT_PERMISSIONS_POLICY.count("=()") == len(POLICY_FEATURES)
    assert permissions_policy("camera") == DEFAULT_PERMISSIONS_POLICY.replace("camera=()", "camera=(self)")
    with pytest.raises(ValueError):
        permissions_policy("kamera")


@pytest.mark.django_db
def test_staff_pages_outside_never_cache_are_not_stored(world):
    """Django's admin leaves its password change pages cacheable, and Swagger UI's page and init
    script (its CSRF token) said nothing: a browser could keep them after the logout."""
    for path in ("/admin/password_change/", "/admin/password_change/done/", "/api/docs/", "/api/docs/?script=",
                 "/admin/jsi18n/", "/privacy/", "/"):
        response = world["staff"].get(path)
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], path
    # anyone else's answer from a public page is left as it is
    assert "Cache-Control" not in Client().get("/privacy/")


@pytest.mark.django_db
def test_personal_data_downloads(world):
    """The subject-access archive (admin POST, API with an admin token) and the CSVs: attachments
    named without a person's name, never stored."""
    w = world["world"]
    admin_zip = world["staff"].post(reverse("admin:enrollment_person_export", args=[w.person.pk]))
    api_zip = world["token"].get(f"/api/v1/people/{w.person.pk}/export", HTTP_ACCEPT="application/zip")
    api_csv = world["token"].get("/api/v1/checkins/csv")
    for response in (admin_zip, api_zip):
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == f'attachment; filename="person-{w.person.pk}-data.zip"'
    for response in (admin_zip, api_zip, api_csv):
        check("download", "token", response, {})
        assert "no-store" in response["Cache-Control"]
    assert api_csv["Content-Disposition"].startswith('attachment; filename="checkins-')
    for photo_view in ("image", "thumb"):
        photo = world["staff"].get(f"/enrollment/photos/{w.photo.pk}/{photo_view}")
        assert photo["Content-Type"] in {"image/png", "image/jpeg"} and photo["Content-Disposition"] == "inline"
        assert "no-store" in photo["Cache-Control"]


# what a process under the production settings answers (no database: /healthz says it cannot reach
# it, the other pages need none for an anonymous visitor)
PROD_SCRIPT = """
import json
from django.test import Client
c = Client(HTTP_HOST="masknet.example.org")
out = {}
for path in ("/privacy/", "/admin/login/", "/kiosk/", "/healthz", "/no-such-page"):
    for scheme in ("https", "http"):
        r = c.get(path, HTTP_X_FORWARDED_PROTO=scheme)
        out[scheme + " " + path] = {"status": r.status_code, **dict(r.items())}
print("HEADERS " + json.dumps(out))
"""


def test_production_headers(tmp_path):
    proc = manage("shell", "-c", PROD_SCRIPT, **{**{k: v for k, v in PROD_ENV.items() if k != "REDIS_URL"},
                                                   "MASKNET_SINGLE_NODE": "1",
                                                   "DATABASE_URL": f"sqlite:///{tmp_path}/none.sqlite3"})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("HEADERS ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    answers = json.loads(line.removeprefix("HEADERS "))
    for key, headers in answers.items():
        scheme, path = key.split(" ")
        if scheme == "http" and path != "/healthz":   # redirected to HTTPS first (a probe's is exempt)
            assert headers["status"] == 301 and headers["Location"] == f"https://masknet.example.org{path}", key
            continue
        if scheme == "http":   # HSTS only over HTTPS, as browsers read it only there
            assert "Strict-Transport-Security" not in headers, key
        else:
            assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload", key
        assert headers["X-Content-Type-Options"] == "nosniff", key
        assert headers["X-Frame-Options"] == "DENY", key
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", key
        assert headers["Referrer-Policy"] == ("strict-origin" if path.startswith("/kiosk/") else "same-origin"), key
        # /kiosk/ without a paired device's cookie is the "not a kiosk yet" page: it never films
        assert headers["Permissions-Policy"] == DEFAULT_PERMISSIONS_POLICY, key
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], key
    assert "no-store" in answers["https /admin/login/"]["Cache-Control"]
    assert "no-store" in answers["https /kiosk/"]["Cache-Control"]
