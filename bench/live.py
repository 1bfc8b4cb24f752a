"""Helpers for a live site on loopback, shared by ``bench/kiosk.py`` and the tests (``tests/reliability``,
the kiosk's browser test).

Free ports, a process's resident memory, Daphne started as a subprocess and stopped again, and a
TCP proxy that delays what goes through it as a slow network does (:class:`DelayProxy`).
Nothing here imports Django or TensorFlow: the callers decide the environment of the processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range: a port from that range (what binding port 0 gives) may be taken, before the server
    binds it, as the source port of one of the hundreds of connections a test makes."""
    low, high = _ephemeral_range()
    bottom, top = (10000, low - 1) if low > 11000 else (high + 1, 65535)
    rng = random.Random()
    for _ in range(200 if bottom < top else 0):   # no room outside the range: as the kernel gives
        port = rng.randint(bottom, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:   # a crowded range: whatever the kernel gives
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (``None`` when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux ``/proc``)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(x) for x in text)
    except OSError:
        pass
    return out


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 90.0,
                  log_path: Path | None = None) -> None:
    """Block until ``127.0.0.1:port`` accepts connections; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def start_daphne(port: int, env: dict[str, str], log_path: Path, host: str = "127.0.0.1",
                 timeout: float = 90.0) -> subprocess.Popen:
    """``daphne masknet_site.asgi:application`` on ``host:port`` with ``env``, output appended to
    ``log_path``; returns once the port accepts connections."""
    daphne = Path(sys.executable).with_name("daphne")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(daphne), "-b", host, "-p", str(port), "masknet_site.asgi:application"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout, log_path)
    except BaseException:
        stop_process(proc, timeout=5)
        raise
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
    """Send ``sig`` (SIGTERM), wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
    return stop_processes([proc], timeout, sig)[0]


def stop_processes(procs: list[subprocess.Popen], timeout: float = 15.0,
                   sig: int = signal.SIGTERM) -> list[int | None]:
    """:func:`stop_process` for several at once: all are sent ``sig`` before any is waited for (a
    server takes a second or two to stop); returns their exit codes."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    for proc in running:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return [proc.returncode for proc in procs]


def warm_server(port: int, token: str, frames: list[bytes], frames_needed: int = 5, timeout: float = 180.0) -> float:
    """Open a kiosk socket and send frames one at a time until ``frames_needed`` results came back
    (the server loads the models and the index on the first connection); returns the seconds to
    the first result."""
    import json

    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/kiosk/", origin=f"http://127.0.0.1:{port}",
                                     cookie=f"masknet_kiosk={token}", timeout=timeout)
    t0 = time.perf_counter()
    first = None
    try:
        ws.recv()  # hello
        for i in range(frames_needed):
            ws.send_binary(frames[i % len(frames)])
            while json.loads(ws.recv()).get("type") != "result":
                pass
            first = first if first is not None else time.perf_counter() - t0
    finally:
        ws.close()
    return round(first or 0.0, 2)


class DelayProxy:
    """A TCP proxy on loopback that delays what goes through it as a slow network does: each
    direction by half of ``rtt_ms`` (times 1 +- ``jitter``, uniformly), a ``loss`` share of the chunks
    held back a further retransmission timeout (200 ms + the round trip), order kept (TCP), and at
    most ``mbps`` megabits a second each way (0: no limit). Runs its own event loop in a thread."""

    def __init__(self, upstream_port: int, rtt_ms: float, jitter: float = 0.2, loss: float = 0.01,
                 mbps: float = 0.0, seed: int = 0) -> None:
        self.upstream, self.rtt_s, self.jitter, self.loss, self.mbps = upstream_port, rtt_ms / 1000, jitter, loss, mbps
        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.held = 0   # chunks held back as lost

    def start(self) -> int:
        """Start listening on a free port of 127.0.0.1; returns it."""
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)

    def stop(self) -> None:
        async def close():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # waited for: a task still cancelling when the loop stops is reported destroyed while pending
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _listen(self) -> int:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            # stopped with connections open: ended quietly (asyncio before 3.12 reports a cancelled
            # connection task as an "exception in callback")
            writer.close()

    def _one_way_s(self, size: int, link: list[float]) -> float:
        """When a chunk of ``size`` bytes read now arrives (loop time); ``link``: when the link is free."""
        now = self.loop.time()
        at = now
        if self.mbps:
            link[0] = max(link[0], now) + size * 8 / (self.mbps * 1e6)
            at = link[0]
        at += self.rtt_s / 2 * (1 + self.jitter * self.rng.uniform(-1, 1))
        if self.loss and self.rng.random() < self.loss:
            self.held += 1
            at += 0.2 + self.rtt_s
        return at

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if data is None:
                    break
                if at > self.loop.time():
                    await asyncio.sleep(at - self.loop.time())
                writer.write(data)
                await writer.drain()

        task = asyncio.create_task(deliver())
        last, link = 0.0, [0.0]
        try:
            while data := await reader.read(65536):
                last = max(last, self._one_way_s(len(data), link))   # TCP delivers in order
                queue.put_nowait((last, data))
        finally:
            queue.put_nowait((last, None))
            try:
                await task
            finally:
                writer.close()
