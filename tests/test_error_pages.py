"""The site's error pages (``templates/4xx.html``, ``500.html``, ``403_csrf.html``) and its
``handler500`` (:func:`masknet_site.errors.server_error`): Django's bare "Not Found" and "Server
Error (500)" lines, with no way back, were what a staff member saw."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client
from django.urls import get_resolver, path

from masknet_site import errors
from masknet_site import urls as site_urls
from tests.logins import LOGIN


def _boom(request):
    raise RuntimeError("a bug in a view")


def _remember(request):
    """A page that keeps something in a visitor's (new) session: saved after the view, an INSERT."""
    request.session["seen"] = True
    return HttpResponse("ok")


# this module is also the URL configuration of the tests that need a view that fails; the same views
# under /api/ (before the API's own catch-all) stand for an error no API view answered
urlpatterns = [path("boom/", _boom), path("remember/", _remember), path("api/boom/", _boom),
               path("api/remember/", _remember), *site_urls.urlpatterns]
handler400, handler500 = site_urls.handler400, site_urls.handler500


def _page(response) -> str:
    text = response.content.decode()
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>" in text and "MaskNet" in text and '<a href="/">' in text, text[:400]
    return text


@pytest.mark.django_db
def test_an_unknown_address_gets_the_sites_404_page():
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    text = _page(response)
    assert "There is nothing at this address" in text and "The requested resource" not in text


def test_the_site_answers_errors_no_view_answered_with_its_own_handlers():
    assert get_resolver().resolve_error_handler(400) is errors.bad_request
    assert get_resolver().resolve_error_handler(500) is errors.server_error


@pytest.mark.django_db
def test_a_failing_view_gets_the_sites_500_page(settings, caplog):
    settings.ROOT_URLCONF = __name__
    with caplog.at_level("ERROR", logger="django.request"):
        response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    text = _page(response)
    assert "Something went wrong on the server" in text and "Server Error (500)" not in text
    assert any(r.exc_info and "a bug in a view" in str(r.exc_info[1]) for r in caplog.records)   # still logged


@pytest.mark.django_db
def test_a_form_sent_without_its_csrf_token_says_how_to_go_on():
    User.objects.create_superuser("alice", "alice@example.com", "right-password-123")
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"username": "alice", "password": "right-password-123"})
    assert response.status_code == 403
    text = _page(response)
    assert "The form could not be checked, so nothing was changed" in text
    assert "reload the page and send the form again" in text
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_session_that_the_full_database_could_not_save_gets_the_507_page(database_full, caplog):
    """A login whose session the database could not save for want of disk space, after the view
    (the session middleware's UPDATE, which Django turns into ``SessionInterrupted``): Django's bare
    "Bad Request (400)" before ``handler400``; now the same 507 page as a view's own write
    (``DatabaseFullMiddleware``), one log line that says so, and the login did not take."""
    User.objects.create_superuser("alice", "alice@example.com", "right-password-123")
    client = Client(raise_request_exception=False)
    with database_full("django_session", "UPDATE"), caplog.at_level("ERROR", logger="django.request"):
        response = client.post(LOGIN, {"username": "alice", "password": "right-password-123", "next": "/admin/"})
    assert response.status_code == 507, response.content[:300]
    assert "The server&#x27;s database is out of disk space" in response.content.decode()
    assert "right-password-123" not in caplog.text
    # first the line that says why (Django's own then says the session "was deleted" meanwhile)
    said = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert said[0].startswith("database full: POST /admin/login/: the session was not saved"), said
    # the session that holds the login was never saved: the next page asks for a login again
    assert client.get("/admin/").status_code == 302
    # with room again, the login goes through
    response = client.post(LOGIN, {"username": "alice", "password": "right-password-123", "next": "/admin/"})
    assert response.status_code == 302 and client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_new_session_the_full_database_could_not_save_gets_the_507_page_or_the_apis_error(settings,
                                                                                             database_full):
    """A new session saved after the view (an INSERT, whose error reaches ``handler500``): the 507
    page, and under /api/ the API's own ``storage_full`` (an HTML page there was no API answer)."""
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    with database_full("django_session"):
        page = client.get("/remember/")
        api = client.get("/api/remember/")
    assert page.status_code == 507 and "out of disk space" in page.content.decode()
    assert api.status_code == 507 and api["Content-Type"] == "application/json"
    assert api.json()["error"] == "storage_full" and "out of disk space" in api.json()["detail"]
    assert "no-store" in api["Cache-Control"]


@pytest.mark.django_db
def test_an_error_under_the_api_that_no_api_view_answered_is_in_the_apis_shape(settings):
    """docs/api.md: every error has the API's shape; Django's answers before or after the view were
    HTML pages (a host it does not serve, a failure outside the API's views)."""
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    answer = client.get("/api/boom/")
    assert answer.status_code == 500 and answer.json() == {
        "error": "server_error", "detail": "The server could not answer this request; it was logged. Try again later."}
    refused = client.get("/api/v1/people", HTTP_HOST="evil.example")
    assert refused.status_code == 400 and refused.json()["error"] == "bad_request"
    assert client.get("/admin/", HTTP_HOST="evil.example")["Content-Type"].startswith("text/html")
