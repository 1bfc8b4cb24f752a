"""Request bodies reaching a real Daphne (``daphne masknet_site.asgi:application``, as
docs/deployment.md starts it, nothing in front): one over ``MASKNET_MAX_REQUEST_BYTES`` is refused
(413) before it is read and its bytes are dropped, and Twisted does not parse multipart bodies
itself (``masknet_site/daphne_body.py``).

Raw sockets, so that the test decides when the body is sent and sees the answer as it comes.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

from bench.live import free_port, rss_mb, start_daphne, stop_process

LIMIT = 1024 * 1024
PATH = "/admin/login/"   # a page anyone may POST to (Django's CSRF check refuses it: 403)


@pytest.fixture(scope="module")
def daphne(tmp_path_factory):
    """A Daphne with a 1 MiB limit, on a free port; yields ``(port, pid)``."""
    tmp = tmp_path_factory.mktemp("daphne_body")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "masknet_site.settings.test",
           "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "MASKNET_TEST_MEDIA_ROOT": str(tmp / "media"),
           "MASKNET_TEST_INDEX_DIR": str(tmp / "index"), "MASKNET_MAX_REQUEST_BYTES": str(LIMIT),
           "LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MASKNET_TEST_SQLITE", None)
    env.pop("REDIS_URL", None)
    port = free_port()
    proc = start_daphne(port, env, tmp / "daphne.log")
    yield port, proc.pid
    stop_process(proc)


def head(port: int, content_type: str, length: int | None, extra: str = "") -> socket.socket:
    """A connection that has sent a POST's request line and headers (``length`` ``None``: chunked)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{framing}\r\n"
              f"{extra}\r\n".encode())
    return s


def answer(s: socket.socket) -> bytes:
    """The server's answer: its head and its ``Content-Length`` of body (or what came before the
    connection closed, or before 10 s of silence)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
            head_, sep, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head_)
            if sep and length and len(body) >= int(length.group(1)):
                break
    except TimeoutError:
        pass
    finally:
        s.close()
    return data


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def test_a_declared_length_over_the_limit_is_answered_413_before_the_body_is_sent(daphne):
    port, _ = daphne
    for extra in ("", "Expect: 100-continue\r\n"):
        s = head(port, "multipart/form-data; boundary=x", 10**9, extra)   # and no body at all
        data = answer(s)
        assert status(data) == 413, data[:200]
        head_, _, body = data.partition(b"\r\n\r\n")
        assert b"Connection: close" in head_ and b"Content-Type: text/plain" in head_
        assert body == b"Request body too large: this site accepts up to %d bytes.\n" % LIMIT
        assert b"100 Continue" not in data


def test_a_body_over_the_limit_sent_whole_is_dropped_and_answered_413(daphne):
    """A client that sends all of it before reading (a browser, ``requests``) gets the 413, not a
    reset connection, and Daphne keeps none of it."""
    port, pid = daphne
    piece = os.urandom(64 * 1024)
    for length in (64 * 1024 * 1024, None):   # declared, then chunked (nobody announced a length)
        before = rss_mb(pid)
        s = head(port, "application/octet-stream", length)
        for _ in range(64 * 1024 * 1024 // len(piece)):
            s.sendall(piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
        if length is None:
            s.sendall(b"0\r\n\r\n")
        data = answer(s)
        assert status(data) == 413, data[:200]
        assert rss_mb(pid) - before < 16, "Daphne kept the refused body in memory"


def test_a_body_of_the_limit_reaches_the_application_and_one_byte_more_does_not(daphne):
    port, _ = daphne
    for length, expected in ((LIMIT, 403), (LIMIT + 1, 413)):
        s = head(port, "application/octet-stream", length)
        try:
            s.sendall(b"\0" * length)
        except OSError:
            pass
        assert status(answer(s)) == expected


def test_a_multipart_body_twisted_could_not_parse_reaches_django(daphne):
    """Twisted answered a multipart body without a boundary itself: a bare ``400`` without any
    header, parsing the whole body in memory first; now it goes to Django, which answers it."""
    port, _ = daphne
    s = head(port, "multipart/form-data", 5)
    s.sendall(b"hello")
    data = answer(s)
    assert data != b"HTTP/1.1 400 Bad Request\r\n\r\n"
    assert status(data) == 400 and b"Content-Type: text/html" in data


def test_small_requests_are_served_as_before(daphne):
    port, _ = daphne
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    start = time.monotonic()
    data = answer(s)
    assert status(data) in (200, 302), data[:300]
    assert time.monotonic() - start < 10
