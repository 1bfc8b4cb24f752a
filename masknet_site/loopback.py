"""The development settings' guard: with DEBUG on or their public secret key, only this machine's
own clients are served.

The development settings refuse to name other hosts in ``DJANGO_ALLOWED_HOSTS``, but that checks
the ``Host`` header a client sends, not who connects: ``make run HOST=0.0.0.0`` without the
documented variables served anyone on the network who sent ``Host: localhost`` (DEBUG's pages and
tracebacks, the admin's login, the kiosk's socket).
"""

from __future__ import annotations

import ipaddress

REFUSED = (b"This is a development server (DEBUG on, or its public secret key): it serves only this "
           b"machine. To try it from another device, start it with DJANGO_DEBUG=0, DJANGO_SECRET_KEY and "
           b"DJANGO_ALLOWED_HOSTS set (README).\n")


def is_local(client: list | tuple | None) -> bool:
    """Whether an ASGI ``client`` (host, port) is this machine; no client (a Unix socket, an
    in-process test) counts as local."""
    if not client:
        return True
    try:
        address = ipaddress.ip_address(str(client[0]).split("%")[0])
    except ValueError:
        return False
    # a dual-stack socket names an IPv4 client ::ffff:127.0.0.1 (loopback to Python only from 3.13)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class LoopbackOnly:
    """ASGI middleware: HTTP requests and WebSocket handshakes from other machines are refused
    (403, or a close with 4403 before the handshake completes); everything else goes to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and not is_local(scope.get("client")):
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": REFUSED})
            else:
                await receive()   # websocket.connect
                await send({"type": "websocket.close", "code": 4403})
            return
        await self.app(scope, receive, send)
