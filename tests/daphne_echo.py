"""A bare ASGI application for ``tests/test_daphne_body.py``: with :mod:`masknet_site.daphne_body`
installed (1 MiB), it answers, as JSON, the ``Content-Length`` and ``Transfer-Encoding`` headers
and the body's length as they reached the application. No Django: the request class is Daphne's
alone to judge."""

from __future__ import annotations

import json

from masknet_site import daphne_body

daphne_body.install(1024 * 1024)


async def application(scope: dict, receive, send) -> None:
    """Echo what reached the application of one HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
    answer = json.dumps({"content_length": headers.get("content-length"),
                         "transfer_encoding": headers.get("transfer-encoding"), "body": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})
