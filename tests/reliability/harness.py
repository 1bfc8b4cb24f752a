"""Multi-process harness of the reliability tests (issue 7).

A test cluster made of real processes on loopback, as a deployment lays them out over machines
(docs/deployment.md):

* :class:`PostgresDatabase`: a database of its own on the machine's PostgreSQL, created for the
  test session and dropped after it;
* :class:`RedisServer`: a private ``redis-server`` on a free port, without persistence, that a
  test may stop and start again;
* :class:`TcpProxy`: a TCP relay between the web nodes and PostgreSQL that can *cut* the
  database off (every relayed connection closed, new ones refused) and *restore* it;
* :class:`WebNode` (Daphne) and :class:`WorkerNode` (``celery worker``), sharing the database,
  Redis and one folder for media and index files (the shared volume);
* :class:`ControlProcess`: ``tests/reliability/control.py``, the administrator's node that
  enrols people and reads the database through the product's own code;
* :class:`KioskClient`: a simulated kiosk page that behaves like ``static/kiosk/kiosk.js``: one
  frame in flight, at most 8 frames a second, an unanswered frame given up after 5 s, and a
  lost socket reconnected with exponential backoff (0.5 s doubling to 15 s, jittered ±20 %),
  except after ``revoked`` / close code 4403 (or a refused handshake whose status check answers
  401/403): then it stops, like an unpaired page.

Nothing here imports Django or TensorFlow: the test process only drives the others.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

from bench.live import REPO, children, free_port, rss_mb, start_daphne, stop_process, wait_for_port

PG_ADMIN_URL = os.environ.get("MASKNET_RELIABILITY_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("MASKNET_REDIS_SERVER", "redis-server")
TRACEBACK = "Traceback (most recent call last)"
# the engine's time a 640x480 kiosk frame on the machines the scenes' timings were set on (40-70 ms)
REFERENCE_ENGINE_MS = 70.0

# kiosk.js
MAX_FPS = 8
STALL_S = 5.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 15.0
CLOSE_REVOKED = 4403


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.25, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy (returned); ``AssertionError`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------
# PostgreSQL, Redis, the database proxy


def postgres_unavailable() -> str | None:
    """Why the machine's PostgreSQL cannot be used (``None`` when it can)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is a reason to skip
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})"
    return None


class PostgresDatabase:
    """A database of its own on the server of ``PG_ADMIN_URL``: created, then dropped."""

    def __init__(self, name: str, admin_url: str = PG_ADMIN_URL) -> None:
        self.name, self.admin_url = name, admin_url
        parsed = urlparse(admin_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 5432
        self.user, self.password = parsed.username or "postgres", parsed.password or ""

    def url(self, port: int | None = None) -> str:
        """``DATABASE_URL`` of this database, optionally through another port (the proxy)."""
        auth = quote(self.user) + (f":{quote(self.password)}" if self.password else "")
        return f"postgres://{auth}@{self.host}:{port or self.port}/{self.name}"

    def create(self, prefix: str = "masknet_reliability_") -> PostgresDatabase:
        """Create it, after dropping databases that earlier sessions (``<prefix><pid>_...``) left
        behind when they were killed before their clean-up."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                (prefix.replace("_", r"\_") + "%",))]
            for name in names:
                pid = name[len(prefix):].split("_")[0]
                if name == self.name or (pid.isdigit() and not Path(f"/proc/{pid}").exists()):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def redis_unavailable() -> str | None:
    """Why a private ``redis-server`` cannot be started (``None`` when it can)."""
    if shutil.which(REDIS_SERVER) is None:
        return f"{REDIS_SERVER} is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis client package is not installed"
    return None


class RedisServer:
    """A private ``redis-server`` on ``port``: no snapshots, no append-only file, so a restart
    starts empty (like a Redis that lost its memory)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [shutil.which(REDIS_SERVER) or REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def ping() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-1000:]}")
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(ping, 20, 0.1, "redis-server to answer PING")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port (empty)."""
        self.stop()
        time.sleep(down_s)
        self.start()


class TcpProxy:
    """Relays ``127.0.0.1:port`` to ``target``; :meth:`cut` closes every relayed connection and
    refuses new ones (accepted, then closed at once) until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open = True
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepted = self.refused = 0
        # connections PostgreSQL itself did not take while open (the cause of an "unavailable"
        # answer that no cut explains): (monotonic time, error)
        self.upstream_failures: list[tuple[float, str]] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="db-proxy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError as exc:
                self.upstream_failures.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                _close(client)
                continue
            client.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if not self._open:
                    _close(client, upstream)
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            _close(*pair)

    @property
    def connections(self) -> int:
        """Connections relayed right now."""
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        """The database becomes unreachable for the web nodes."""
        with self._lock:
            self._open = False
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            _close(*pair)

    def restore(self) -> None:
        """The database is reachable again."""
        self._open = True

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self._listener)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# processes of the cluster


class Node:
    """One process of the cluster, with its log file."""

    kind = "node"

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name, self.env, self.log_path = name, env, log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tracebacks(self) -> list[str]:
        """Python tracebacks in this node's log (each with the 15 lines that follow)."""
        lines = self.log_text().splitlines()
        return ["\n".join(lines[i:i + 15]) for i, line in enumerate(lines) if TRACEBACK in line]

    def mark(self) -> int:
        """The log's current length: :meth:`log_since` reads what came after."""
        return len(self.log_text())

    def log_since(self, mark: int) -> str:
        return self.log_text()[mark:]

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=timeout)


class WebNode(Node):
    """Daphne serving ``masknet_site.asgi:application`` on its own port."""

    kind = "web"

    def __init__(self, name: str, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        super().__init__(name, env, log_path)
        self.port = port or free_port()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebNode:
        self.proc = start_daphne(self.port, self.env, self.log_path, timeout=120)
        self.starts += 1
        return self

    def restart(self, down_s: float = 0.0) -> None:
        """Terminate Daphne and start it again on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid) if self.alive() else None


class WorkerNode(Node):
    """``celery -A masknet_site worker`` with one pool process (the deployment's ``--concurrency 1``),
    run the way docs/deployment.md asks: under a supervisor that starts it again whenever it exits
    (systemd's ``Restart=always``; see :meth:`Cluster.supervise`). ``exits`` records each exit the
    supervisor saw: ``(monotonic time, exit code, log tail)``."""

    kind = "worker"

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, env, log_path)
        self.lock = threading.RLock()
        self.stopping = False
        self.exits: list[tuple[float, int | None, str]] = []
        self.started_at_log = 0     # log length when the current process started

    def start(self, wait: bool = True) -> WorkerNode:
        with self.lock:
            if self.alive():
                return self
            self.stopping = False
            mark = self.started_at_log = self.mark()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "masknet_site", "worker", "--loglevel", "INFO",
                     "--concurrency", "1", "--without-gossip", "--without-mingle", "--hostname", f"{self.name}@%h"],
                    cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            self.starts += 1
        if wait:
            self.wait_ready(mark)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        with self.lock:
            self.stopping = True
            super().stop(timeout)

    def supervise_once(self) -> bool:
        """Start the worker again if it exited without being stopped; True when it did."""
        with self.lock:
            if self.stopping or self.proc is None or self.proc.poll() is None:
                return False
            self.exits.append((time.monotonic(), self.proc.returncode, self.log_text()[-2000:]))
            self.start(wait=False)
            return True

    def wait_ready(self, mark: int | None = None, timeout: float = 120.0) -> None:
        """Block until the current process says it is ready (its log since ``mark``)."""
        mark = self.started_at_log if mark is None else mark

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_since(mark)[-3000:]}")
            return " ready." in self.log_since(mark)

        wait_until(ready, timeout, 0.3, f"{self.name} to be ready")

    def kill(self) -> list[int]:
        """SIGKILL the worker's main process and its pool processes, all at once (no chance to
        clean up, as when a machine dies); returns the pids killed. The supervisor then starts
        a new worker process."""
        with self.lock:
            pids = [self.pid, *children(self.pid)]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
        for pid in pids[1:]:
            wait_until(lambda p=pid: not Path(f"/proc/{p}").exists() or _zombie(p), 10, 0.1, f"pid {pid} to die")
        return pids


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return True


class ControlProcess:
    """``python -m tests.reliability.control``: requests in, JSON answers out (see that module)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._lines: queue.Queue[str | None] = queue.Queue()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.control"], cwd=REPO, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                         bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self._reply(120)  # "ready"
        except BaseException:
            self.close()   # the caller never gets this object to close: do not leave the process behind
            raise

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                self._lines.put(line[3:])
        self._lines.put(None)

    def _reply(self, timeout: float) -> object:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the control process did not answer within {timeout:.0f} s") from None
        if line is None:
            raise AssertionError(f"the control process exited: {self.log_path.read_text()[-3000:]}")
        reply = json.loads(line)
        if not reply["ok"]:
            if "skip" in reply:
                raise ControlSkip(reply["skip"])
            raise AssertionError(f"control: {reply['error']}\n{reply.get('traceback', '')}")
        return reply["result"]

    def call(self, op: str, timeout: float = 300.0, **args: object) -> object:
        """Run one operation in the control process and return its result."""
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
            except OSError:
                pass
            stop_process(self.proc, timeout=10)


class ControlSkip(Exception):
    """The control process says the test cannot run here (e.g. no test faces)."""


# ----------------------------------------------------------------------------------------------
# simulated kiosks

Scene = Callable[[float], tuple[str | None, bytes]]   # monotonic time -> (who is shown, JPEG frame)


@dataclass
class Answer:
    """One message of the server to a kiosk: a ``result`` or an ``error`` (others are counted)."""

    at: float                 # monotonic time it arrived
    connection: int           # which socket of this kiosk (1, 2, ... after reconnects)
    shown: str | None         # who was in the frame it answers (None: nobody or unknown frame)
    type: str
    state: str | None = None
    name: str | None = None
    code: str | None = None
    message: str | None = None   # an error's text: "unavailable" is the database or the index file


@dataclass
class Close:
    """A socket of this kiosk ended."""

    at: float
    code: int | None
    had_hello: bool


class KioskClient(threading.Thread):
    """One kiosk page (see the module docstring). ``scene(now)`` says what the camera sees."""

    def __init__(self, base_url: str, token: str, scene: Scene, name: str = "kiosk", seed: int = 0) -> None:
        super().__init__(daemon=True, name=name)
        self.base_url, self.token, self.scene = base_url, token, scene
        self.ws_url = base_url.replace("http://", "ws://") + "/ws/kiosk/"
        self._stop_event = threading.Event()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self.closes: list[Close] = []
        self.other: dict[str, int] = {}
        self.connect_failures = 0
        self.connections = 0
        self.backoffs: list[float] = []
        self.stopped: str | None = None          # why it gave up for good ("revoked", "unpaired")
        self.failure: str | None = None          # an unexpected exception in the client itself
        # per socket
        self._ws = None
        self._hello = False
        self._in_flight = False
        self._shown: dict[int, str | None] = {}
        self._seq = 0
        self._connection = 0

    # ------------------------------------------------------------------ life

    def stop(self, join: float = 10.0) -> None:
        """Close the page."""
        self._stop_event.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.ident is not None:   # started (stop() may run in a finally before every client started)
            self.join(join)

    def run(self) -> None:
        attempt = 0
        try:
            while not self._stop_event.is_set() and self.stopped is None:
                greeted = self._session()
                if greeted:
                    attempt = 0
                if self._stop_event.is_set() or self.stopped is not None:
                    break
                base = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** attempt)
                attempt += 1
                delay = base * (0.8 + self._rng.random() * 0.4)
                self.backoffs.append(delay)
                self._stop_event.wait(delay)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.failure = f"{type(exc).__name__}: {exc}"

    def _session(self) -> bool:
        """One socket, from connecting to its close; True when the server said hello (kiosk.js
        resets the backoff on hello, so a socket accepted and closed at once backs off)."""
        import websocket

        try:
            ws = websocket.create_connection(self.ws_url, origin=self.base_url,
                                             cookie=f"masknet_kiosk={self.token}", timeout=15)
        except websocket.WebSocketBadStatusException:
            self.connect_failures += 1
            self._after_refused_handshake()
            return False
        except (OSError, websocket.WebSocketException):
            self.connect_failures += 1
            return False
        self.connections += 1
        self._ws, self._hello, self._in_flight, self._shown, self._seq = ws, False, False, {}, 0
        self._connection = self.connections
        ws.settimeout(None)
        closed: list[Close] = []
        reader = threading.Thread(target=self._read, args=(ws, closed), daemon=True)
        reader.start()
        sent_at = last_send = 0.0
        while reader.is_alive() and not self._stop_event.is_set():
            now = time.monotonic()
            if self._in_flight and now - sent_at > STALL_S:
                self._in_flight = False   # lost answer: try again
            if not self._in_flight and self._hello and now - last_send >= 1.0 / MAX_FPS:
                shown, frame = self.scene(now)
                self._in_flight, sent_at, last_send = True, now, now
                self._seq += 1
                self._shown[self._seq] = shown
                try:
                    ws.send_binary(frame)
                except Exception:  # noqa: BLE001 - the reader sees the close
                    self._in_flight = False
            time.sleep(0.03)
        try:
            ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass
        reader.join(5)
        self._ws = None
        if closed:
            self.closes.append(closed[0])
            if closed[0].code == CLOSE_REVOKED:
                self.stopped = "revoked"
            elif not closed[0].had_hello:
                self._after_refused_handshake()
        else:
            self.closes.append(Close(time.monotonic(), None, self._hello))
        return self._hello

    def _read(self, ws, closed: list[Close]) -> None:
        import websocket

        abnf = websocket.ABNF
        code = None
        parts: list[bytes] = []
        try:
            while True:
                # frames read one by one rather than by recv_data_frame, which echoes a close frame
                # before returning it: when the server has already dropped the connection that echo
                # raises and the server's close code would be lost (read as "closed without a code")
                frame = ws.recv_frame()
                if frame.opcode == abnf.OPCODE_CLOSE:
                    data = frame.data or b""
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    try:
                        ws.send_close()
                    except Exception:  # noqa: BLE001 - the server may be gone already: the code is what counts
                        pass
                    break
                if frame.opcode == abnf.OPCODE_PING:
                    ws.pong(frame.data)
                    continue
                if frame.opcode not in (abnf.OPCODE_TEXT, abnf.OPCODE_BINARY, abnf.OPCODE_CONT):
                    continue
                parts.append(frame.data if isinstance(frame.data, bytes) else frame.data.encode())
                if frame.fin:
                    data, parts = b"".join(parts), []
                    self._on_message(json.loads(data))
        except Exception:  # noqa: BLE001 - a dropped connection ends the socket like a close
            pass
        closed.append(Close(time.monotonic(), code, self._hello))

    def _on_message(self, msg: dict) -> None:
        kind = msg.get("type")
        now = time.monotonic()
        if kind == "hello":
            self._hello = True
        elif kind in ("result", "error"):
            self._in_flight = False
            # the greeting's first word: the cluster's people are "<key> Reliability"
            name = (msg.get("name") or "").split()[0] if msg.get("name") else msg.get("name")
            answer = Answer(now, self._connection, self._shown.pop(msg.get("frame"), None), kind,
                            msg.get("state"), name, msg.get("code"), msg.get("message"))
            with self._lock:
                self.answers.append(answer)
        elif kind == "dropped":
            self._in_flight = False
            self._count("dropped")
        elif kind == "revoked":
            self.stopped = "revoked"
            self._count("revoked")
        else:
            self._count(str(kind))

    def _count(self, kind: str) -> None:
        with self._lock:
            self.other[kind] = self.other.get(kind, 0) + 1

    def _after_refused_handshake(self) -> None:
        """kiosk.js asks ``/kiosk/status``: 401/403 means unpaired (stop), anything else retry."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.base_url + "/kiosk/status",
                                         headers={"Cookie": f"masknet_kiosk={self.token}"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                self.stopped = "unpaired"
        except OSError:
            pass

    # ------------------------------------------------------------------ reading what happened

    def answers_between(self, start: float = 0.0, end: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.at < end]

    def results_since(self, start: float) -> list[Answer]:
        return [a for a in self.answers_between(start) if a.type == "result"]

    def errors(self, code: str | None = None) -> list[Answer]:
        return [a for a in self.answers_between() if a.type == "error" and (code is None or a.code == code)]


def outcome_runs(kiosk: KioskClient, start: float = 0.0) -> list[tuple[str, str | None, Answer]]:
    """Each stretch of results with the same outcome (``checked_in``, ``already``, ``unknown``)
    on one socket: ``(state, name, first answer)``. The first answer is the one whose frame
    completed the vote, so ``first.shown`` is who was actually in front of the kiosk."""
    runs: list[tuple[str, str | None, Answer]] = []
    previous: tuple | None = None
    for a in kiosk.results_since(start):
        key = (a.connection, a.state, a.name)
        if a.state in ("checked_in", "already", "unknown") and key != previous:
            runs.append((a.state, a.name, a))
        previous = key
    return runs


def load_frames(info: dict) -> tuple[dict[str, list[bytes]], bytes]:
    """The frames the control process wrote: ``({first name: [JPEG, ...]}, empty frame)``."""
    frames = {key: [Path(p).read_bytes() for p in paths] for key, paths in info["frames"].items()}
    return frames, Path(info["empty"]).read_bytes()


def rotation(frames: dict[str, list[bytes]], empty: bytes, order: list[str | None], start: float, offset: int,
             show_s: float, gap_s: float) -> Scene:
    """A camera that sees ``order[(slot + offset) % len(order)]`` for ``show_s`` seconds, then
    nobody for ``gap_s`` seconds (the presence ends), then the next one. Kiosks with offsets
    that are equal modulo ``len(order)`` see the same person at the same moment."""
    cycle = show_s + gap_s

    def scene(now: float) -> tuple[str | None, bytes]:
        elapsed = max(0.0, now - start)
        slot, phase = divmod(elapsed, cycle)
        key = order[(int(slot) + offset) % len(order)]
        if phase >= show_s or key is None:
            return None, empty
        pictures = frames[key]
        return key, pictures[int(now * MAX_FPS) % len(pictures)]

    return scene


def showing(frames: dict[str, list[bytes]], empty: bytes, who: Callable[[], str | None]) -> Scene:
    """A camera that sees whoever ``who()`` says now (``None``: nobody)."""

    def scene(now: float) -> tuple[str | None, bytes]:
        key = who()
        if key is None:
            return None, empty
        pictures = frames[key]
        return key, pictures[int(now * MAX_FPS) % len(pictures)]

    return scene


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds: ``samples`` is ``[(monotonic, MB)]``."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            value = rss_mb(self.pid)
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def at(self, when: float) -> float | None:
        """The sample nearest to ``when``."""
        if not self.samples:
            return None
        return min(self.samples, key=lambda s: abs(s[0] - when))[1]


REPORTS: list[str] = []   # tables of this session, printed in pytest's terminal summary (tests/conftest.py)


def print_table(title: str, rows: Iterable[dict]) -> str:
    """A small fixed-width table of results: printed now (visible with ``-s``, or with a
    failure's captured output) and again in the terminal summary at the end of the run."""
    rows = list(rows)
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = [title, "  ".join(c.rjust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).rjust(widths[c]) for c in cols) for r in rows]
    text = "\n".join(lines)
    print("\n" + text)
    REPORTS.append(text)
    return text


def error_causes(c: Cluster, marks: dict[str, int]) -> dict[str, list[str]]:
    """What a kiosk's ``error`` answer had as its cause, to report beside it: each marked web node's
    warnings since its mark about the database or the index file, and the proxy's failed
    connections to PostgreSQL."""
    causes = {n.name: [line for line in n.log_since(marks[n.name]).splitlines()
                       if "unreachable" in line or "disk is full" in line or "cannot load index" in line]
              for n in c.web if n.name in marks}   # a test of one node marks that node alone
    causes["db-proxy"] = [f"{at:.1f}: {error}" for at, error in c.proxy.upstream_failures]
    return causes


def log_errors(text: str) -> list[str]:
    """Lines of a log that report a server error: tracebacks, ERROR/CRITICAL records, 5xx answers
    (except 503, the deliberate "temporarily unavailable")."""
    bad = re.compile(r"Traceback \(most recent call last\)|\bERROR\b|\bCRITICAL\b|\" 5(?!03)\d\d ")
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if bad.search(line):
            # a traceback is reported whole (up to its exception line), so a failure says what broke
            end = i + 1
            if TRACEBACK in line:
                while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                    end += 1
                end = min(end + 1, len(lines))
            out.append("\n".join(lines[i:end]))
    return out


@dataclass
class Cluster:
    """The processes of one test session, sharing one database, one Redis and one folder."""

    tmp: Path
    database: PostgresDatabase
    redis: RedisServer
    proxy: TcpProxy
    base_env: dict[str, str]
    control: ControlProcess | None = None
    info: dict = field(default_factory=dict)
    web: list[WebNode] = field(default_factory=list)
    workers: list[WorkerNode] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    _next_token: int = 0
    _slowness: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self, *, via_proxy: bool, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        env["DATABASE_URL"] = self.database.url(self.proxy.port if via_proxy else None)
        if via_proxy:
            # the proxy relays in this process's Python threads, beside the kiosk clients': on a
            # loaded 2-core machine a connection through it can take longer than the product's 5 s
            # connect_timeout (meant for a database that stops answering, which a cut is not: the
            # proxy refuses at once), and a kiosk would be told "unavailable" with the database up
            env["DATABASE_URL"] += "?connect_timeout=20"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def add_web(self, name: str, **extra: str) -> WebNode:
        """A Daphne node that reaches PostgreSQL through the proxy (so its database can be cut)."""
        node = WebNode(name, self.env(via_proxy=True, LOG_LEVEL="WARNING", **extra), self.tmp / f"{name}.log")
        self.web.append(node)
        return node

    def add_worker(self, name: str, **extra: str) -> WorkerNode:
        node = WorkerNode(name, self.env(via_proxy=False, LOG_LEVEL="INFO", **extra), self.tmp / f"{name}.log")
        self.workers.append(node)
        return node

    def take_tokens(self, n: int) -> list[str]:
        """``n`` paired kiosks no other test used (more are paired when needed)."""
        with self._lock:
            if self._next_token + n > len(self.tokens):
                self.tokens += self.control.call("kiosks", n=self._next_token + n - len(self.tokens))
            out = self.tokens[self._next_token:self._next_token + n]
            self._next_token += n
            return out

    def warm(self, node: WebNode, face: str | None = None) -> None:
        """Load the models and the index in ``node`` (the first frame of a fresh Daphne is slow),
        with frames of ``face`` (someone nobody enrolled: no check-in) or of nobody."""
        from bench.live import warm_server

        frames, empty = load_frames(self.info)
        token = self.take_tokens(1)[0]
        warm_server(node.port, token, frames[face] if face else [empty], frames_needed=3)

    def slowness(self, face: str) -> float:
        """How much slower than the machines these tests' timings were set on (engine 40-70 ms a
        640x480 kiosk frame, docs/performance.md) this one analyses a frame: the median engine time
        (the answers' ``ms``) of a few frames of ``face`` (someone nobody enrolled) sent one at a time
        to the first web node, over :data:`REFERENCE_ENGINE_MS`; at least 1. Measured once."""
        if self._slowness is None:
            import json

            import websocket

            frames, _ = load_frames(self.info)
            node = self.web[0]
            ws = websocket.create_connection(f"ws://127.0.0.1:{node.port}/ws/kiosk/",
                                             origin=f"http://127.0.0.1:{node.port}",
                                             cookie=f"masknet_kiosk={self.take_tokens(1)[0]}", timeout=120)
            times = []
            try:
                ws.recv()  # hello
                for i in range(8):
                    ws.send_binary(frames[face][i % len(frames[face])])
                    while (msg := json.loads(ws.recv())).get("type") != "result":
                        pass
                    times.append(float(msg.get("ms", 0.0)))
            finally:
                ws.close()
            self._slowness = max(1.0, statistics.median(times[2:]) / REFERENCE_ENGINE_MS)
            print(f"\nthis machine: engine {statistics.median(times[2:]):.0f} ms a kiosk frame, "
                  f"slowness {self._slowness:.2f}")
        return self._slowness

    def supervise(self, interval: float = 0.5) -> threading.Event:
        """Start the supervisor of the workers (a thread); set the returned event to end it."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(interval):
                for node in list(self.workers):
                    try:
                        node.supervise_once()
                    except Exception:  # noqa: BLE001 - try again on the next round
                        pass

        threading.Thread(target=loop, name="supervisor", daemon=True).start()
        return done

    def stop_all(self) -> None:
        for node in [*self.web, *self.workers]:
            try:
                node.stop(timeout=15)
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass

    def ensure_running(self) -> None:
        """Start again any node a test left stopped (each test leaves the cluster usable)."""
        for node in self.web:
            if not node.alive():
                node.start()
        for node in self.workers:
            node.start()      # (returns at once when it runs)
            node.wait_ready()
        wait_for_port(self.redis.port, timeout=5)
