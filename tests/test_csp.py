"""The site-wide Content-Security-Policy (masknet_site/middleware.py).

* Fast: every kind of page (admin, login, attendance, webcam capture, the privacy page, Swagger UI, its init script,
  JSON, CSV, images, errors) carries the default policy, with this host's sockets; the kiosk pages
  keep their own, stricter one; no page of ours needs an inline script or event handler.
* In a real headless Chromium (as tests/recognition/test_kiosk_e2e.py, whose helpers it uses) against
  a live server: a staff member logs in and opens each page; the browser's console must show no
  Content Security Policy violation and no Permissions-Policy refusal, every feature the
  Permissions-Policy names must be one the browser knows and a page other than the two that film
  must be refused the camera, and the pages' scripts must still work (the camera starts on
  the capture page, Swagger UI renders and runs an operation, the add form saves).
"""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseServerError
from django.test import Client, RequestFactory

from masknet_site.middleware import POLICY_FEATURES, ContentSecurityPolicyMiddleware
from recognition import services
from recognition.consumers import KIOSK_COOKIE
from recognition.views import KIOSK_CSP
from tests.api.helpers import make_world

# isolated media and index folders; rebuild requests recorded instead of run
from tests.enrollment.conftest import enqueued, isolated_storage  # noqa: F401
from tests.recognition.test_kiosk_e2e import CHROMEDRIVER, CHROMIUM, LiveServer, browser_available  # noqa: F401

# the default policy, written out: a change to it must be a deliberate one
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
          "media-src 'self' blob: mediastream:; connect-src 'self'{sockets}; frame-ancestors 'none'; "
          "base-uri 'self'; form-action 'self'; object-src 'none'")


def policy(host: str = "testserver", secure: bool = False) -> str:
    return POLICY.format(sockets=f" wss://{host}" + ("" if secure else f" ws://{host}"))


def staff_pages(world) -> list[str]:
    """A page of each kind a staff member opens (HTML)."""
    person, photo, kiosk, run = world.person.pk, world.photo.pk, world.kiosk.pk, world.run.pk
    return ["/admin/", "/admin/enrollment/person/", "/admin/enrollment/person/add/",
            f"/admin/enrollment/person/{person}/change/", f"/admin/enrollment/person/{person}/capture/",
            "/admin/enrollment/facephoto/", f"/admin/enrollment/facephoto/{photo}/change/",
            "/admin/enrollment/indexversion/", "/admin/enrollment/trainingrun/",
            f"/admin/enrollment/trainingrun/{run}/change/", "/admin/audit/auditevent/",
            "/admin/recognition/checkin/", "/admin/recognition/kiosk/", f"/admin/recognition/kiosk/{kiosk}/change/",
            "/admin/auth/user/", "/admin/password_change/", "/attendance/", f"/attendance/people/{person}/",
            "/api/docs/"]


# a <script> element that runs its own text (not a data block such as json_script's), an inline event
# handler attribute, a javascript: URL: none may be needed under script-src 'self'
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=|javascript:", re.I)


@pytest.fixture
def world(db):
    return make_world()


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


# ------------------------------------------------------------------------------------------- fast


def test_every_kind_of_page_carries_the_default_policy(world, staff_client):
    anonymous = Client()
    for path in ["/admin/login/", "/admin/logout/", "/api/schema/", "/healthz", "/no-such-page",
                 "/api/docs/", "/api/docs/?script=", "/privacy/"]:
        response = anonymous.get(path)
        assert response["Content-Security-Policy"] == policy(), path
    for path in staff_pages(world):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == policy(), path
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (path, INLINE_SCRIPT.search(html).group(0))
        assert not INLINE_HANDLER.search(html), (path, INLINE_HANDLER.search(html).group(0))
    # not HTML: JSON, CSV, JavaScript, a photo
    for path in ["/api/v1/people", "/attendance/export.csv", "/api/docs/?script=",
                 f"/enrollment/photos/{world.photo.pk}/thumb"]:
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == policy(), path


def test_over_https_only_secure_sockets(staff_client):
    response = staff_client.get("/attendance/", secure=True)
    assert response["Content-Security-Policy"] == policy(secure=True)
    assert "connect-src 'self' wss://testserver;" in response["Content-Security-Policy"]


def test_a_host_not_allowed_gets_no_socket_source(db):
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Security-Policy"] == POLICY.format(sockets="")


def test_the_kiosk_keeps_its_own_policy(db):
    client = Client()
    unpaired = client.get("/kiosk/")
    assert unpaired.status_code == 403 and unpaired["Content-Security-Policy"] == KIOSK_CSP
    _kiosk, code = services.kiosk_create(actor=None, name="Front door")
    assert client.get(f"/kiosk/pair/{code}/")["Content-Security-Policy"] == KIOSK_CSP
    _kiosk, token = services.kiosk_pair(code=code)
    client.cookies[KIOSK_COOKIE] = token
    page = client.get("/kiosk/")
    assert page.status_code == 200
    assert page["Content-Security-Policy"] == KIOSK_CSP.replace(
        "connect-src 'self'", "connect-src 'self' wss://testserver ws://testserver")
    assert "style-src 'self';" in page["Content-Security-Policy"]      # stricter: no inline styles


def test_swagger_ui_loads_its_init_script_from_the_staff_only_view(db, staff_client):
    html = staff_client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in html
    script = staff_client.get("/api/docs/?script=")
    assert script["Content-Type"] == "application/javascript"
    assert b"SwaggerUIBundle(" in script.content and b'"/api/schema/"' in script.content
    # the script holds the page's CSRF token: for staff only, as the page is
    assert Client().get("/api/docs/?script=").status_code == 302
    plain = Client()
    plain.force_login(User.objects.create_user("someone", password="pw"))
    assert plain.get("/api/docs/?script=").status_code == 302


def test_a_response_with_its_own_policy_is_left_alone(rf: RequestFactory):
    def own(request):
        response = HttpResponse()
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert ContentSecurityPolicyMiddleware(own)(rf.get("/"))["Content-Security-Policy"] == "default-src 'none'"


def test_debug_error_pages_are_left_without_a_policy(rf: RequestFactory, settings):
    """Django's technical 500 page (DEBUG only) folds its traceback with an inline script."""
    middleware = ContentSecurityPolicyMiddleware(lambda request: HttpResponseServerError("boom"))
    settings.DEBUG = True
    assert "Content-Security-Policy" not in middleware(rf.get("/"))
    settings.DEBUG = False
    assert middleware(rf.get("/"))["Content-Security-Policy"] == policy()


# ---------------------------------------------------------------------------------------- browser


def chromium():
    """Headless Chromium with a fake camera, keeping its console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def until(predicate, timeout: float, what: str):
    """``predicate()``'s first true value within ``timeout`` seconds. An element not there yet, or
    gone with the page it was on (a form posted, a page still loading), counts as "not yet"."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.e2e
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_under_the_policy_in_a_real_browser(browser_available, settings, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    # no models for the live server: the capture page's checks answer "models missing" at once
    # instead of loading the networks (what matters here is what the browser may load and run)
    settings.MASKNET_MODELS_DIR = tmp_path / "no-models"
    world = make_world()
    User.objects.create_superuser("csp", "csp@example.com", "csp-test-password")
    server = LiveServer(tmp_path / "server.log")
    driver = chromium()
    console: dict[str, list[str]] = {}

    def collect(page: str) -> None:
        time.sleep(0.8)   # what the page's scripts do right after loading (fetch, sockets)
        console.setdefault(page, []).extend(f"[{e['level']}] {e['message']}" for e in driver.get_log("browser"))

    def visit(path: str) -> None:
        driver.get(server.url + path)
        assert "Server Error" not in driver.title, path

    def check_page(path: str) -> None:
        """Open ``path``; where the page has scripts, wait until they have done their part."""
        visit(path)
        if "/capture/" in path:   # the fake camera plays in the page's <video>
            assert driver.execute_script("return document.featurePolicy.allowsFeature('camera')")
            until(lambda: driver.execute_script(
                "const v = document.getElementById('mn-video'); return v.readyState >= 2 && v.videoWidth > 0"),
                15, "the camera on the capture page")
            until(lambda: "Starting" not in driver.find_element(By.ID, "mn-feedback").text, 15,
                  "the capture page's first check")
        if path == "/api/docs/":
            until(lambda: driver.find_elements(By.CSS_SELECTOR, ".opblock"), 20, "Swagger UI's operations")
            driver.find_element(By.CSS_SELECTOR, "#operations-people-people_list .opblock-summary").click()
            until(lambda: driver.find_elements(By.CSS_SELECTOR, ".try-out__btn"), 5, "Try it out").pop().click()
            until(lambda: driver.find_elements(By.CSS_SELECTOR, ".execute"), 5, "Execute").pop().click()
            status = until(lambda: driver.find_elements(
                By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"), 10, "the response")
            assert status[0].text.strip() == "200"
        if path in ("/admin/enrollment/trainingrun/", f"/admin/enrollment/person/{world.person.pk}/change/"):
            until(lambda: driver.execute_script("return !document.querySelector('.mn-run').hidden"), 5,
                  "the rebuild progress script")

    try:
        visit("/admin/login/")
        collect("/admin/login/")
        driver.find_element(By.NAME, "username").send_keys("csp")
        driver.find_element(By.NAME, "password").send_keys("csp-test-password")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        until(lambda: driver.current_url.endswith("/admin/"), 10, "the login")
        collect("/admin/ (after the login form)")

        for path in staff_pages(world) + ["/kiosk/", "/privacy/"]:
            try:
                check_page(path)
            except AssertionError as e:   # with what the console said (a violation is the likely cause)
                raise AssertionError(f"{path}: {e}\nconsole: {driver.get_log('browser')}") from None
            collect(path)

        # a form posted and redirected (form-action 'self')
        visit("/admin/enrollment/person/add/")
        driver.find_element(By.NAME, "full_name").send_keys("Sally Ride")
        driver.find_element(By.NAME, "staff_id").send_keys("S-1")
        driver.find_element(By.NAME, "_save").click()
        until(lambda: driver.find_elements(By.CSS_SELECTOR, ".messagelist .success"), 10, "the saved person")
        collect("/admin/enrollment/person/add/ (saved)")
        driver.find_element(By.CSS_SELECTOR, "#logout-form button").click()
        until(lambda: "Logged out" in driver.title, 10, "the logged-out page")
        collect("/admin/logout/")

        # the control: the browser enforces the policy and its violations reach the log read above
        blocked = driver.execute_script(
            "const s = document.createElement('script'); s.textContent = 'window.mnInline = 1';"
            "document.head.appendChild(s); return window.mnInline === undefined;")
        control = [e["message"] for e in driver.get_log("browser")]
        assert blocked and any("Content Security Policy" in m for m in control), (
            f"an inline script ran or its violation was not logged: is the policy sent? {control}")
        # the Permissions-Policy: names Chromium knows, none allowed here (the logged-out page)
        known, allowed = driver.execute_script(
            "return [document.featurePolicy.features(), document.featurePolicy.allowedFeatures()]")
        assert set(POLICY_FEATURES) <= set(known), set(POLICY_FEATURES) - set(known)
        assert not set(POLICY_FEATURES) & set(allowed), set(POLICY_FEATURES) & set(allowed)
        # a page other than the kiosk and the capture page may not film, even
        # with the camera granted (the fake UI grants every request); its refusal reaches the log too
        camera = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.mediaDevices.getUserMedia({video: true}).then("
            "  s => { s.getTracks().forEach(t => t.stop()); done('granted'); }, e => done(e.name));")
        denied = [e["message"] for e in driver.get_log("browser")]
        assert camera == "NotAllowedError" and any("ermissions policy" in m for m in denied), (camera, denied)
    finally:
        driver.quit()
        server.stop()

    for page, lines in console.items():   # shown with -s, or when the test fails
        print(page, *(f"\n    {line[:300]}" for line in lines))
    # a CSP violation, or anything the browser says of a Permissions-Policy (a feature it does not
    # know, a page of ours refused a feature it uses: the capture page's camera, the kiosk's wake lock)
    violations = {page: [m for m in lines if "Content Security Policy" in m or "ermissions" in m and "olicy" in m]
                  for page, lines in console.items()}
    violations = {page: lines for page, lines in violations.items() if lines}
    assert not violations, violations
    assert set(staff_pages(world)) <= set(console), sorted(console)
