"""A staff login lasts ``MASKNET_SESSION_HOURS`` from the login itself, however its session got there.

Django gives a session an expiry date when it is saved (``SESSION_COOKIE_AGE`` from then): a
session saved under a longer setting (an earlier release's two weeks, or before an administrator
shortened ``MASKNET_SESSION_HOURS``) kept that date, and its login outlived the policy by days. The
login's time is kept in the session (:data:`LOGIN_AT`, set on ``user_logged_in``); a session whose
login is older than ``SESSION_COOKIE_AGE``, or holds a login without that time (made before this
check existed), is ended by :class:`LoginLifetimeMiddleware` on its next request, and the admin
progress socket (``enrollment.consumers``) refuses it by :func:`login_current`. So the upgrade that
brought this check logs every staff member out once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

LOGIN_AT = "masknet_login_at"   # the login's Unix time, in the session


@receiver(user_logged_in, dispatch_uid="masknet-login-time")
def stamp_login(sender, request, user, **kwargs) -> None:
    """Keep the login's time in its (new) session."""
    session = getattr(request, "session", None)
    if session is not None:
        session[LOGIN_AT] = int(time.time())


def login_current(session: Mapping) -> bool:
    """Whether ``session`` (a session or its data) holds no login, or a login younger than
    ``SESSION_COOKIE_AGE``."""
    if SESSION_KEY not in session:
        return True
    at = session.get(LOGIN_AT)
    # a time ahead of this clock is another web node's, whose clock runs ahead: the session is the
    # server's own record, so nothing to distrust (refusing it sent the login back to its form)
    return isinstance(at, int) and time.time() - at <= settings.SESSION_COOKIE_AGE


class LoginLifetimeMiddleware:
    """End a session whose login is too old (see the module); between the session and the
    authentication middleware, so that the request is then anonymous (a page that needs a login
    sends it to the login form)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and not login_current(session):
            session.flush()
        return self.get_response(request)
