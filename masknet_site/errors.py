"""The site's answers to an error no view answered: Django's ``handler400`` and ``handler500``.

A write the database refused for want of disk space that was not a view's own gets the same 507
page as a view's (:class:`masknet_site.middleware.DatabaseFullMiddleware`): a new session saved
after the view (an INSERT, whose error reaches :func:`server_error`), and an existing one (the
session saved after a login: Django turns its refused UPDATE into ``SessionInterrupted``, a 400
that says the session was deleted meanwhile, which reaches :func:`bad_request`). Anything else gets
the site's own page (``templates/400.html``, ``500.html``: they need no database and no request),
or, under ``/api/``, the API's error shape (``storage_full``, ``bad_request``, ``server_error``).
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.utils.cache import patch_cache_control
from django.utils.html import escape
from django.views import defaults

from masknet_site.logfilters import error_first_line

log = logging.getLogger("django.request")

# the page of a write the database refused for want of disk space (no template: nothing more to go wrong)
DATABASE_FULL_PAGE = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Database full</title>"
                      "<h1>The change was not saved</h1><p>{message}</p><p>Where several were made at once "
                      "(an action on several people), those before it stand: see the list. Ask the site's "
                      "administrator.</p></html>")


def _api(request: HttpRequest | None) -> bool:
    return request is not None and request.path.startswith("/api/")


def _api_error(code: str, detail: str, status: int) -> JsonResponse:
    """The API's error shape (docs/api.md), for an error under ``/api/`` that no API view answered
    (a session saved after the view, a request Django refused before it)."""
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    patch_cache_control(response, private=True, no_store=True)
    return response


def database_full_page(request: HttpRequest | None = None) -> HttpResponse:
    """The 507 page of a write the database refused because its disk is full (no template: nothing
    more to go wrong); under ``/api/`` the API's ``storage_full`` error."""
    from enrollment.services.common import STORAGE_FULL_MESSAGES

    if _api(request):
        return _api_error("storage_full", STORAGE_FULL_MESSAGES["database"], 507)
    return HttpResponse(DATABASE_FULL_PAGE.format(message=escape(STORAGE_FULL_MESSAGES["database"])),
                        status=507, content_type="text/html; charset=utf-8")


def server_error(request: HttpRequest, template_name: str = defaults.ERROR_500_TEMPLATE_NAME) -> HttpResponse:
    """``handler500``: the 507 page where the error is the database's full disk, else Django's own
    500 view (which renders ``templates/500.html`` without a context). Django logs either answer
    with its traceback ("Insufficient Storage: /admin/login/")."""
    from api.errors import SERVER_ERROR_DETAIL
    from enrollment.services.common import database_full

    error = sys.exc_info()[1]
    if error is not None and database_full(error):
        return database_full_page(request)
    if _api(request):
        return _api_error("server_error", SERVER_ERROR_DETAIL, 500)
    return defaults.server_error(request, template_name)


def bad_request(request: HttpRequest, exception: Exception,
                template_name: str = defaults.ERROR_400_TEMPLATE_NAME) -> HttpResponse:
    """``handler400``: the 507 page where the session middleware could not save a session for want of
    disk space (Django says ``SessionInterrupted``, from its ``UpdateError``, from the database's
    error), with one line in the log that says so; else Django's own 400 view."""
    from enrollment.services.common import database_full

    if isinstance(exception, SessionInterrupted):
        update_error = exception.__context__
        database_error = update_error.__context__ if update_error is not None else None
        if database_error is not None and database_full(database_error):
            log.error("database full: %s %s: the session was not saved: %s", request.method, request.path,
                      error_first_line(database_error))
            return database_full_page(request)
    if isinstance(exception, TooManyFilesSent):   # a bare "Bad Request" lost the whole form, unsaid why
        detail = (f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files were sent at once, the most one form "
                  "takes: nothing was saved. Go back and choose fewer (add the rest in a second save).")
        if _api(request):
            return _api_error("bad_request", detail, 400)
        return HttpResponseBadRequest(loader.get_template(template_name).render({"detail": detail}))
    if _api(request):
        return _api_error("bad_request", "The request could not be read.", 400)
    return defaults.bad_request(request, exception, template_name)
