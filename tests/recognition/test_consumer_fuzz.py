"""Hostile messages through the real ASGI stack to one authenticated kiosk socket (issue 7).

The real decoder runs (``analyze_frame`` is not scripted); only the engine behind it is a stub
that finds no face, so no models are needed. Every message gets exactly one answer with its frame
number: a typed error, or a normal ``result`` for a decodable image. The socket is the same one
from the first message to the last, a valid frame is still answered at the end, and the Python
heap does not grow with the number of messages.

``MASKNET_FUZZ_MESSAGES`` sets how many messages (300 by default, as in CI; ``make soak`` sends
10,000). The run prints its count, time and heap figures (shown with ``pytest -s``).
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import threading
import time
import tracemalloc
from typing import NamedTuple

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.db import connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from recognition import consumers
from recognition.engine import NoFaceFound

from ..test_fuzz_decode import hostile
from .conftest import open_kiosk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

MAX_FRAME_BYTES = 64 * 1024
MESSAGES = int(os.environ.get("MASKNET_FUZZ_MESSAGES", "300"))
WARM = min(50, max(1, MESSAGES // 6))   # heap compared from here on (caches and the socket are warm)
ERROR_CODES = {"binary_expected", "frame_too_large", "not_an_image", "unreadable_image"}
# Heap figures leave out what hypothesis allocated while generating examples: it keeps some of them
# (the first 10,000-message run grew 180 MB that way), which is not the consumer's memory. Every
# message is built or copied on the event loop's thread (see ``materialise``), so a consumer that
# kept messages would still be counted.
HYPOTHESIS_BOOKKEEPING = [tracemalloc.Filter(False, pattern) for pattern in
                          ("*/hypothesis/*", "*/sortedcontainers/*", "*/tests/test_fuzz_decode.py",
                           "*/tracemalloc.py")]   # and the first snapshot itself


class Oversized(NamedTuple):
    """A binary message of ``size`` bytes (over the limit), built only when sent."""

    size: int


class NoFaceEngine:
    """The engine after a successful decode: sees nobody (no models needed)."""

    def analyze(self, image, **kwargs):
        assert image.ndim == 3 and image.dtype == np.uint8
        raise NoFaceFound("no face")


def messages():
    """Binary frames from the decoder fuzz (random, truncated, corrupted, PNG/GIF/WebP/BMP, 1x1,
    20000x20000+ headers), text messages, and binary messages over the frame limit."""
    text = st.text(max_size=2048)
    oversized = st.integers(MAX_FRAME_BYTES + 1, 4 * MAX_FRAME_BYTES).map(Oversized)
    return st.one_of(hostile(), hostile(), hostile(), text, oversized)


class LoopThread:
    """One event loop in a thread, so the socket outlives every hypothesis example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def materialise(message: bytes | str | Oversized) -> bytes | str:
    """The message to send, allocated by the caller, not by hypothesis (see ``HYPOTHESIS_BOOKKEEPING``)."""
    if isinstance(message, Oversized):
        return b"\xff\xd8\xff" + b"\0" * (message.size - 3)
    return bytes(bytearray(message)) if isinstance(message, bytes) else (message + ".")[:-1]


def heap_snapshot() -> tracemalloc.Snapshot:
    """The traced heap, less hypothesis's own bookkeeping (after a collection: garbage cycles are not kept)."""
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(HYPOTHESIS_BOOKKEEPING)


def heap_size(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


def valid_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_hostile_messages_get_typed_answers_and_the_socket_survives(paired, monkeypatch, settings):
    settings.MASKNET_MAX_FRAME_BYTES = MAX_FRAME_BYTES
    settings.MASKNET_KIOSK_MAX_FPS = 0          # a fuzzer is faster than any camera: no rate limit here
    monkeypatch.setattr(consumers, "get_engine", NoFaceEngine)
    runner = LoopThread()
    comm = runner.run(open_kiosk(paired[1]))
    sent = {"n": 0}
    answers: dict[str, int] = {}
    heap: list[tracemalloc.Snapshot] = []
    spike = {"bytes": 0, "frame": 0}

    async def exchange(message):
        # send_input, not send_to: empty messages are hostile input too
        key = "text" if isinstance(message, str) else "bytes"
        await comm.send_input({"type": "websocket.receive", key: materialise(message)})
        return await comm.receive_json_from(timeout=10)

    @hypothesis_settings(max_examples=MESSAGES, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
    @given(messages())
    def one_message(message):
        sent["n"] += 1
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        answer = runner.run(exchange(message))
        grew = tracemalloc.get_traced_memory()[1] - before
        if grew > spike["bytes"]:
            spike.update(bytes=grew, frame=sent["n"])
        assert answer["frame"] == sent["n"], answer
        if answer["type"] == "error":
            assert answer["code"] in ERROR_CODES and answer["message"], answer
            if isinstance(message, str):
                assert answer["code"] == "binary_expected"
            elif isinstance(message, Oversized) or len(message) > MAX_FRAME_BYTES:
                assert answer["code"] == "frame_too_large"
        else:
            assert answer["type"] == "result" and answer["state"] == "searching", answer
            assert isinstance(message, bytes) and len(message) <= MAX_FRAME_BYTES
        answers[answer.get("code", answer["type"])] = answers.get(answer.get("code", answer["type"]), 0) + 1
        if sent["n"] == WARM:
            heap.append(heap_snapshot())

    tracemalloc.start()
    started = time.perf_counter()
    try:
        one_message()
        elapsed = time.perf_counter() - started
        heap.append(heap_snapshot())   # after the last hostile message
        last = runner.run(exchange(valid_jpeg()))
    finally:
        tracemalloc.stop()
        runner.run(comm.disconnect())
        # the consumer's database work ran on asgiref's shared sync thread: close its connection
        # there, or PostgreSQL cannot drop the test database
        runner.run(database_sync_to_async(connections.close_all)())
        runner.stop()
    mib = 1024 * 1024
    warm, end = heap_size(heap[0]), heap_size(heap[-1])
    top = ", ".join(f"{stat.traceback[0].filename.rsplit('/', 2)[-1]} {stat.size_diff / 1024:+.0f} kB"
                    for stat in heap[-1].compare_to(heap[0], "filename")[:3])
    print(f"\nconsumer fuzz: {sent['n']} messages in {elapsed:.1f} s ({sent['n'] / elapsed:.0f}/s); "
          f"heap (less hypothesis's bookkeeping) {warm / mib:.2f} MiB after {WARM}, {end / mib:.2f} MiB after "
          f"{sent['n']} ({(end - warm) / mib:+.2f} MiB; most: {top}); largest rise during one message "
          f"{spike['bytes'] / mib:.2f} MiB (message {spike['frame']}); answers {dict(sorted(answers.items()))}")
    assert sent["n"] >= MESSAGES
    assert last == {**last, "type": "result", "state": "searching", "frame": sent["n"] + 1}
    # every kind of answer was exercised
    assert {"result", "binary_expected", "frame_too_large", "not_an_image", "unreadable_image"} <= set(answers)
    # bounded memory: the heap after the last message is within a few MB of the heap once warm,
    # and no single message made it balloon (a 20000x20000 claim would be 1.2 GB decoded)
    assert len(heap) == 2 and end - warm < 8 * mib, (warm, end)
    assert spike["bytes"] < 64 * mib, spike

