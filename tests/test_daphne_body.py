"""Request bodies reaching a real Daphne (``daphne masknet_site.asgi:application``, as
docs/deployment.md starts it, nothing in front): one over ``MASKNET_MAX_REQUEST_BYTES`` is refused
(413) before it is read and its bytes are dropped, and Twisted does not parse multipart bodies
itself (``masknet_site/daphne_body.py``).

Raw sockets, so that the test decides when the body is sent and sees the answer as it comes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

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
           "LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("MASKNET_TEST_SQLITE", None)
    env.pop("REDIS_URL", None)
    port = free_port()
    proc = start_daphne(port, env, tmp / "daphne.log")
    yield port, proc.pid, tmp / "daphne.log"
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
    port, _, _ = daphne
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
    port, pid, _ = daphne
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
    port, _, _ = daphne
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
    port, _, _ = daphne
    s = head(port, "multipart/form-data", 5)
    s.sendall(b"hello")
    data = answer(s)
    assert data != b"HTTP/1.1 400 Bad Request\r\n\r\n"
    assert status(data) == 400 and b"Content-Type: text/html" in data


def test_small_requests_are_served_as_before(daphne):
    port, _, _ = daphne
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    start = time.monotonic()
    data = answer(s)
    assert status(data) in (200, 302), data[:300]
    assert time.monotonic() - start < 10


def test_a_chunked_body_reaches_the_application_with_its_length():
    """Django and DRF read a request without ``Content-Length`` as having no body: an API client that
    streamed its body (``Transfer-Encoding: chunked``, an HR sync's PATCH deactivating someone) was
    answered 200 with nothing changed, and its uploads "No file was submitted". Daphne now hands the
    application a chunked body with the length it had. Found by a helper's review of the API."""
    from bench.live import wait_for_port

    port = free_port()
    daphne = Path(sys.executable).with_name("daphne")
    proc = subprocess.Popen([str(daphne), "-b", "127.0.0.1", "-p", str(port), "tests.daphne_echo:application"],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 60)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"PATCH /api/v1/people/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n7\r\n{\"activ\r\n9\r\ne\": false\r\n1\r\n}\r\n0\r\n\r\n")
        data = answer(s)
        assert status(data) == 200, data[:300]
        assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"content_length": "17", "transfer_encoding": None,
                                                                  "body": 17}
        s = socket.create_connection(("127.0.0.1", port), timeout=10)   # a declared length, as before
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
        assert json.loads(answer(s).partition(b"\r\n\r\n")[2]) == {"content_length": "3",
                                                                     "transfer_encoding": None, "body": 3}
    finally:
        stop_process(proc)


def test_the_access_log_holds_no_query_string_nor_pairing_code(daphne):
    """Daphne's access log line (stdout at its default verbosity: the journal under the guide's
    unit) carried the path as sent: a people search's name, the API's ``?staff_id=`` of an HR sync,
    the erased staff ids' lookup, which stayed there after the person's erasure, and a pairing
    link's code. Found by a helper's review of erasure."""
    port, _, log = daphne
    for path in ("/api/v1/people?staff_id=TB-2001", "/admin/enrollment/person/?q=Tony+Blair",
                 "/kiosk/pair/s3cretPairingCode/"):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert status(answer(s)) > 0
    deadline = time.monotonic() + 10
    while True:
        # the access log's own lines (this test's settings give Python's log lines no filter: the
        # site's mask their pairing codes, tests/recognition/test_no_biometrics_in_logs.py)
        lines = [line for line in log.read_text(errors="replace").splitlines() if " - - [" in line]
        if any("/kiosk/pair/" in line for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    text = "\n".join(lines)
    assert '"GET /api/v1/people?…"' in text, text
    assert '"GET /admin/enrollment/person/?…"' in text and '"GET /kiosk/pair/…/"' in text, text
    for secret in ("TB-2001", "Tony", "s3cretPairingCode"):
        assert secret not in text, secret
