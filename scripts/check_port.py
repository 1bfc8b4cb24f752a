"""``make run``'s first step: whether the development server can listen on ``HOST PORT``.

Daphne's ``runserver`` logs "Listen failure: ... Address already in use" when it cannot listen and
then keeps running without serving anything (its file watcher holds the process) until Ctrl-C, so a
second ``make run`` beside a first one sat there looking started. Checked before ``migrate`` and the
demo data: ``make run DEMO=1`` also set a new demo password, which logged out the site already
running there. Standard library only.

Usage: ``python scripts/check_port.py HOST PORT``; exits 0 when it can listen there, else 1 after
saying why and what to do (a free port nearby, with ``make run PORT=...``).
"""

from __future__ import annotations

import errno
import socket
import sys

# how far above PORT a free one is looked for, to suggest
NEARBY = 20


def try_listen(host: str, port: int) -> OSError | None:
    """``None`` when a listening socket can be bound to ``host:port`` as Twisted binds it
    (``SO_REUSEADDR``: a port left in TIME_WAIT by a server just stopped counts as free), else the
    error."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return exc
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(1)
    except OSError as exc:
        return exc
    return None


def problem(host: str, port: int) -> str | None:
    """What stops the development server listening on ``host:port``, said for an operator, with
    what to do; ``None`` when nothing does."""
    exc = try_listen(host, port)
    if exc is None:
        return None
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"make run: HOST={host} is not an address or a name of this machine ({exc.strerror}): try HOST=127.0.0.1"
    if exc.errno == errno.EADDRINUSE:
        free = next((p for p in range(port + 1, min(port + NEARBY, 65535) + 1) if try_listen(host, p) is None), None)
        other = f"make run PORT={free}" if free else "make run PORT=<another port>"
        return (f"make run: port {port} is already in use on {host} (another `make run`, or another program, "
                f"is listening there).\nStop it (Ctrl-C in its terminal), or start this one on another port: {other}")
    if exc.errno == errno.EACCES:
        return f"make run: not allowed to listen on {where} (ports below 1024 need root): try PORT=8000"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"make run: {host} is not an address of this machine: try HOST=127.0.0.1 (this machine only) "
                "or HOST=0.0.0.0 (every interface; README: trying it from another device)")
    return f"make run: cannot listen on {where}: {exc.strerror or exc}"


def main(argv: list[str]) -> int:
    """The command line: ``HOST PORT``."""
    if len(argv) != 2:
        print("usage: check_port.py HOST PORT (make run HOST=... PORT=...: neither may be empty)", file=sys.stderr)
        return 1
    if not argv[1].isdigit() or not 0 < int(argv[1]) < 65536:
        print(f"make run: PORT must be a number from 1 to 65535, not {argv[1]!r}", file=sys.stderr)
        return 1
    said = problem(argv[0], int(argv[1]))
    if said:
        print(said, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
