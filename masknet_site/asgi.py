"""ASGI entry point: HTTP to Django, WebSockets to the Channels router.

Django is set up first (``get_asgi_application``) so that the routing modules can
import models safely.
"""

import os
from collections.abc import Callable

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.dev")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddleware  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402
from django.urls import URLPattern, path, re_path  # noqa: E402

from enrollment.routing import websocket_urlpatterns as enrollment_ws  # noqa: E402
from masknet_site.middleware import without_nul_cookies  # noqa: E402
from masknet_site.socket_origin import SiteOriginValidator  # noqa: E402
from recognition.routing import websocket_urlpatterns as kiosk_ws  # noqa: E402


class NulCookiesDropped:
    """ASGI middleware after Channels' ``CookieMiddleware``: a cookie holding a NUL character is
    dropped before the session is looked up (PostgreSQL refuses NUL in text: the handshake failed
    with a traceback), as the HTTP side does (``masknet_site.middleware``)."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        return await self.inner({**scope, "cookies": without_nul_cookies(scope.get("cookies", {}))}, receive, send)


def staff_socket(inner: Callable) -> Callable:
    """Channels' ``AuthMiddlewareStack``, with :class:`NulCookiesDropped` before the session."""
    return CookieMiddleware(NulCookiesDropped(SessionMiddleware(AuthMiddleware(inner))))


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other socket path (``/ws/kiosk`` without its slash, ``/admin/``...): the handshake is
    refused (403), as Django answers an unknown page 404. Channels' router raised "No route found"
    instead: a 500 and a traceback in the log for each such request, from anyone, unauthenticated.
    Asynchronous: a synchronous consumer would queue on the thread the kiosks' database calls use."""

    async def connect(self) -> None:
        await self.close()


def _behind(middleware, patterns: list[URLPattern]) -> list[URLPattern]:
    """``patterns`` with each consumer wrapped in ``middleware``."""
    return [path(str(p.pattern), middleware(p.callback), name=p.name) for p in patterns]


application = ProtocolTypeRouter({
    "http": django_asgi_app,
    # the kiosk's socket is authenticated by its own cookie alone: no staff session is read for it
    # (a browser that also holds an admin session would load it from the database first, and a
    # database outage would break the handshake before the kiosk could be told "unavailable");
    # every socket's Origin must be the site's own, scheme and port included (socket_origin)
    "websocket": SiteOriginValidator(URLRouter(
        _behind(lambda inner: CookieMiddleware(NulCookiesDropped(inner)), kiosk_ws)
        + _behind(staff_socket, enrollment_ws)
        + [re_path(r"", NoSuchSocket.as_asgi())])),
})

from django.conf import settings  # noqa: E402

from enrollment import recognizer  # noqa: E402
from masknet_site import daphne_body, daphne_log  # noqa: E402
from masknet_site.loopback import LoopbackOnly  # noqa: E402

# before Daphne serves anything (it imports this module first): bodies over the limit refused
# before they are read, no multipart parse by Twisted (masknet_site/daphne_body.py)
daphne_body.install(settings.MASKNET_MAX_REQUEST_BYTES)
# its access log lines without query strings (names, staff ids) or pairing codes (daphne_log.py)
daphne_log.install()

# the face models load once Daphne serves, in a thread of their own, not when the first kiosk connects
# (a few seconds its first frame waited after every restart)
if settings.MASKNET_PRELOAD_MODELS:
    recognizer.warm_when_serving()

if settings.MASKNET_LOOPBACK_ONLY:   # the development settings with DEBUG on or their public key
    application = LoopbackOnly(application)
