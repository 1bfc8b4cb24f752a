"""Site-wide default headers: a Content-Security-Policy, a Permissions-Policy, and no caching of
answers that depend on who is logged in.

Every response that does not set its own policy gets :data:`DEFAULT_CSP`: the admin, its login
page, the attendance pages, the webcam capture page, the Swagger UI at ``/api/docs/`` and error
pages. The kiosk pages set their own, stricter one (``recognition.views.KIOSK_CSP``), which is
kept as it is.

Scripts come only from this site's files (no inline ``<script>``, no ``eval``); styles may also be
inline (``templates/attendance/_style.html``, the Swagger UI page's ``<style>`` block, ``style``
attributes of the admin's widgets). Sockets may open to this host only (the admin's live rebuild
progress), see :func:`socket_sources`.

One exception, in development only: with ``DEBUG`` on, a 500 response (Django's technical error
page, whose inline script and ``onclick`` handlers fold the traceback) is left without a policy.
Production settings force ``DEBUG`` off.

The Permissions-Policy (:data:`DEFAULT_PERMISSIONS_POLICY`) denies every page the camera, the
microphone and the other powerful features none of them uses; the two pages that film set their own
with :func:`permissions_policy` (the kiosk, the admin's webcam capture page).

An answer to a request from a logged-in session that says nothing about caching is sent
``private, no-store`` (:class:`PrivateByDefaultMiddleware`). A write the database refused because
its disk is full is a 507 page saying so (:class:`DatabaseFullMiddleware`).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin

from masknet_site.logfilters import error_first_line

log = logging.getLogger("django.request")

CSP_HEADER = "Content-Security-Policy"
DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; "
               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")


def socket_sources(request: HttpRequest) -> str:
    """The WebSocket origins of this request's own host for ``connect-src``: ``wss://host``, and
    ``ws://host`` unless the request came over HTTPS. This host only: ``ws:``/``wss:`` alone would
    allow any host, and not every browser counts sockets as ``'self'``. Empty for a host that is
    not in ALLOWED_HOSTS (the 400 page that request gets opens no socket)."""
    try:
        host = request.get_host()   # validated against ALLOWED_HOSTS
    except DisallowedHost:
        return ""
    return f"wss://{host}" + ("" if request.is_secure() else f" ws://{host}")


def with_sockets(csp: str, request: HttpRequest) -> str:
    """``csp`` whose ``connect-src 'self'`` also allows this request's own sockets."""
    sources = socket_sources(request)
    return csp.replace("connect-src 'self'", f"connect-src 'self' {sources}") if sources else csp


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sets :data:`DEFAULT_CSP` (with this host's sockets) on every response without a policy."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if CSP_HEADER in response or (settings.DEBUG and response.status_code == 500):
            return response
        response[CSP_HEADER] = with_sockets(DEFAULT_CSP, request)
        return response


PERMISSIONS_POLICY_HEADER = "Permissions-Policy"
# Powerful features no page of the site needs, unless it names them (:func:`permissions_policy`):
# each a name Chromium knows (tests/test_csp.py asks it). Not listed, as pages use them: autoplay
# (the muted camera previews), fullscreen, the clipboard (the copy buttons write to it; their browser
# test reads it back, and a page must ask the user before reading it anyway).
POLICY_FEATURES = ("accelerometer", "browsing-topics", "camera", "display-capture", "geolocation", "gyroscope", "hid",
                   "idle-detection", "local-fonts", "magnetometer", "microphone", "midi", "payment",
                   "screen-wake-lock", "serial", "usb", "window-management", "xr-spatial-tracking")


def permissions_policy(*allowed: str) -> str:
    """A ``Permissions-Policy`` value allowing the features ``allowed`` to this origin alone and
    denying the rest of :data:`POLICY_FEATURES` to everyone: ``permissions_policy("camera")``."""
    unknown = set(allowed) - set(POLICY_FEATURES)
    if unknown:
        raise ValueError(f"not in POLICY_FEATURES: {sorted(unknown)}")
    return ", ".join(f"{name}=(self)" if name in allowed else f"{name}=()" for name in POLICY_FEATURES)


DEFAULT_PERMISSIONS_POLICY = permissions_policy()


class PermissionsPolicyMiddleware(MiddlewareMixin):
    """Sets :data:`DEFAULT_PERMISSIONS_POLICY` on every response without a policy of its own: a
    script injected into any other page (or a page it frames) cannot turn on the camera or the
    microphone, even where the browser remembers that the site was allowed them."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if PERMISSIONS_POLICY_HEADER not in response:
            response[PERMISSIONS_POLICY_HEADER] = DEFAULT_PERMISSIONS_POLICY
        return response


class PrivateByDefaultMiddleware(MiddlewareMixin):
    """``Cache-Control: private, no-store`` on a response to a logged-in session that says nothing
    about caching: what it shows may depend on who is logged in (names, photos, a CSRF token), and a
    shared staff computer's browser must not keep it after the logout. Django's admin pages are
    ``never_cache`` already, but not its password change pages, and no view outside the admin is
    unless it says so. Answers to anyone else (the privacy page, ``/healthz``) are left as they are,
    as is any view's own choice (the API schema's ``max-age``). Whether there is a login is read
    from the session alone (no query: the session is loaded for every request,
    :mod:`masknet_site.session_lifetime`)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response


def without_nul_cookies(cookies: dict[str, str]) -> dict[str, str]:
    """``cookies`` less those whose value holds a NUL character: a session key read from one
    reached PostgreSQL, which refuses NUL in text (a 500 on every page, ``/healthz`` included,
    since the session is read on each request). Such a cookie was never set by the site."""
    return {name: value for name, value in cookies.items() if "\x00" not in value}


class NulInQueryRefusedMiddleware:
    """A query string with a NUL character (``?site=%00``) is a 400: unvalidated filter values
    (the attendance pages' site, the admin's list filters) reach PostgreSQL, which refuses NUL in
    text, and that was a 500. Form and JSON fields refuse it already (Django's and DRF's validators).
    A cookie holding one is dropped (:func:`without_nul_cookies`). Under ``/api/`` the answer is the
    API's ``validation_error`` with its ``fields``, naming each parameter refused (docs/api.md)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.COOKIES = without_nul_cookies(request.COOKIES)
        try:
            # a name that itself holds NUL is not repeated back: the message goes to non_field_errors
            fields = {(key if "\x00" not in key else "non_field_errors"): ["Null characters are not allowed."]
                      for key, values in request.GET.lists()
                      if "\x00" in key or any("\x00" in value for value in values)}
            detail = "A query parameter holds a NUL character."
        except TooManyFieldsSent:   # read here first, before the API could answer it in its own form
            fields, detail = {"non_field_errors": ["Too many query parameters."]}, "Too many query parameters."
        if not fields:
            return self.get_response(request)
        if request.path.startswith("/api/"):   # the API's own error form (docs/api.md)
            response = JsonResponse({"error": "validation_error", "detail": detail, "fields": fields}, status=400)
            patch_cache_control(response, private=True, no_store=True)
            return response
        return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")


class AdminActionIdsMiddleware(MiddlewareMixin):
    """An admin list's action posted with a chosen row that is no id (``_selected_action=abc``, a
    forged or mangled form) is the site's 400 page saying so: Django filtered the list by it and
    its ``ValueError`` was a 500 on the kiosk, token and user lists. Looked at once the CSRF check
    (an earlier middleware's ``process_view``) has passed: a forged POST gets its 403 first."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method != "POST" or not request.path.startswith("/admin/"):
            return None
        try:
            chosen = request.POST.getlist(ACTION_CHECKBOX_NAME)
        except OSError:   # a body cut short (UnreadablePostError): the view's to answer, as before
            return None
        if any(not (pk.isascii() and pk.isdigit() and len(pk) < 19) for pk in chosen):
            detail = "The rows chosen were not understood (not ids of this list): go back, reload and choose again."
            return HttpResponseBadRequest(loader.get_template("400.html").render({"detail": detail}))
        return None


class DatabaseFullMiddleware(MiddlewareMixin):
    """A view's write that the database refused because its disk is full (an admin save, a check-in
    recorded by hand: ``enrollment.services.database_full``) is answered 507 Insufficient Storage with
    a page that says so and that this change was not saved (its transaction rolled back; an action on
    several people has saved those before it, each in its own), and one line in the log, instead of
    Django's bare "Server Error (500)" and a traceback. The API says the same as its ``storage_full``
    error (``api.errors``). An error in another middleware (a session saved after the view) is not
    the view's: ``handler500`` (:func:`masknet_site.errors.server_error`) answers it with the same page."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from enrollment.services.common import database_full
        from masknet_site.errors import database_full_page

        if not database_full(exception):
            return None
        first = error_first_line(exception)   # never the statement's values
        log.error("database full: %s %s: %s", request.method, request.path, first)
        return database_full_page(request)
