"""Request bodies under Daphne: one over ``MASKNET_MAX_REQUEST_BYTES`` is refused (413) before it is
read, and Twisted no longer parses multipart bodies itself.

Without a proxy in front (``make run``, or a site where Daphne terminates TLS), the body of any
request, from anyone, reaches Twisted before Django sees the request. Twisted stores the whole body
(in a temporary file above 100,000 bytes), and for a ``multipart/form-data`` POST reads it back
into memory and parses it with the ``email`` package into ``request.args``, which Daphne never uses
(it reads the body again for the application): a 200 MB upload to ``/admin/login/`` held 2.6 GB at
its peak, a 1 GB one over 6 GB (docs/security.md). A multipart body Twisted could not parse (no
boundary) got a bare ``400`` without headers instead of the application's answer. Daphne then hands
the whole body to the application at once, so each request in flight may still hold its body in
memory: the limit bounds that too.

:func:`install` puts :class:`BoundedWebRequest` in place of Daphne's request class (Daphne's
``HTTPFactory`` looks the class up by name in its module at each connection). ``masknet_site.asgi``
calls it, which Daphne imports (``daphne`` or ``manage.py runserver``) before it serves anything.
It changes nothing under another server, which never builds Daphne's requests.
"""

from __future__ import annotations

import logging

from daphne import http_protocol
from twisted.web import http

logger = logging.getLogger(__name__)


class BoundedWebRequest(http_protocol.WebRequest):
    """Daphne's request, refusing a body over :attr:`max_body_bytes` as it arrives and without
    Twisted's own parse of form bodies.

    A ``Content-Length`` over the limit is answered at once, when the headers have arrived (a client
    that sent ``Expect: 100-continue`` is spared sending the body); a chunked body, whose length
    nobody announced, when it passes the limit. The rest of the body is read and dropped, never
    stored, so that a client that sends it all before reading the answer sees the 413 (closing the
    socket under unread data makes the kernel reset the connection instead); the connection is
    closed once the body has ended.
    """

    #: set by :func:`install` from ``MASKNET_MAX_REQUEST_BYTES``
    max_body_bytes: int = 100 * 1024 * 1024

    def __init__(self, *args, **kwargs) -> None:
        # Twisted >= 25.5: no multipart or urlencoded parse into request.args (Daphne ignores them;
        # Django parses the body itself, streaming, with its own limits)
        kwargs["parsePOSTFormSubmission"] = False
        self._body_bytes = 0
        self._refused = False
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        """Twisted, once the headers are in: ``length`` is ``Content-Length`` (``None`` when
        chunked)."""
        super().gotLength(length)
        if length is not None and length > self.max_body_bytes:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        """Twisted, for each piece of the body: stored up to the limit, dropped once refused."""
        if self._refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body_bytes:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Twisted, once the body has ended: a refused request (answered already) closes its
        connection instead of reaching the application. A chunked body reaches it with the length
        it had: Django (and DRF) read a request without ``Content-Length`` as having no body, so an
        API client that streams its body (an HR sync's PATCH) was answered 200 with nothing changed,
        and its uploads "No file was submitted"."""
        if self._refused:
            self.channel.loseConnection()
            return
        if self.requestHeaders.hasHeader(b"transfer-encoding"):
            self.requestHeaders.removeHeader(b"transfer-encoding")
            self.requestHeaders.setRawHeaders(b"content-length", [b"%d" % self._body_bytes])
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        # no "100 Continue" after the answer (Twisted sends it after gotLength when asked)
        self.requestHeaders.removeHeader(b"Expect")
        self.content.close()   # what was stored so far (a temporary file above 100,000 bytes)
        if not isinstance(self.channel, http.HTTPChannel):
            # HTTP/2 (Twisted's optional h2 support, not installed by requirements.txt): its
            # streams have no raw transport to answer on; the body is dropped as above
            self.channel.loseConnection()
            return
        body = b"Request body too large: this site accepts up to %d bytes.\n" % self.max_body_bytes
        self.channel.writeHeaders(b"HTTP/1.1", b"413", b"Content Too Large", [
            (b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"%d" % len(body)),
            (b"Connection", b"close")])
        self.channel.write(body)
        peer = getattr(self.client, "host", None)
        logger.warning("Request body over MASKNET_MAX_REQUEST_BYTES (%d) refused (413) from %s",
                       self.max_body_bytes, peer)


def install(max_body_bytes: int) -> None:
    """Make Daphne build :class:`BoundedWebRequest` for each HTTP request, with this limit."""
    BoundedWebRequest.max_body_bytes = max_body_bytes
    http_protocol.WebRequest = BoundedWebRequest
