"""Kiosk load benchmark: real WebSockets to a running Daphne on loopback, plus enrollment throughput.

Usage: ``python bench/kiosk.py [--seconds S] [--kiosks 1,4,8] [--soak SECONDS] [--out PATH]``.

Sets up a temporary site (SQLite database, media and index folders under a temp dir), enrols
test people through ``enrollment.services.photo_add`` and one ``index_rebuild`` (timed: the
enrollment throughput), creates and pairs kiosks with ``recognition.services`` (what
``manage.py create_kiosk`` and the pairing link do), starts ``daphne`` as a subprocess and runs
1, 4 and 8 simulated kiosks. Each kiosk behaves like ``static/kiosk/kiosk.js``: a camera tick
every 100 ms (10 frames/s) sends the next JPEG only when no frame is in flight (a tick that
finds one in flight is skipped: ``skipped``). Reported per level: answer latency p50/p95 (send
to result), answered frames/s in total, frames the server dropped as stale, server RSS at start
and end. ``--greedy S`` (default 10) adds a run of kiosks that send every tick without waiting
(the server must drop stale frames, not queue them: latency stays bounded); ``--soak 120`` adds a
long 8-kiosk run for the RSS-flat check.

``--rtt 0,50,150,300`` (``--network-only`` for that part alone) measures one kiosk over a slow
network: an asyncio TCP proxy in this process (``live.DelayProxy``, which the kiosk's browser test
uses too) delays each direction by half the round trip, with jitter and an occasional segment held
back as a TCP retransmission would be, between Daphne and a client paced as ``kiosk.js`` paces the
page (:class:`PageKiosk`: one frame in flight, or up to 3 ahead by the page's rule with ``--modes``'
``ahead``, at most 8 a second, JPEG quality 0.8, 640x480). The client shows an empty room, then a
person steps in (scikit-image's astronaut, bare or with a mask drawn by the product's renderer), at
a random moment; reported per round trip: seconds from stepping in to the welcome (bare / masked),
answered frames a second and the answer latency p50/p95. Each setting is repeated (``--repeat``, the
spread is printed) and the 0 ms baseline runs in the same run.

Prints a table and writes ``bench/results/kiosk.json`` (``kiosk-network.json`` with ``--network-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from frames import face_crops, jpeg, machine, make_frames, source_photos, stats  # noqa: E402
from live import DelayProxy, free_port, rss_mb, warm_server  # noqa: E402
from live import start_daphne as start_daphne_env  # noqa: E402
from provenance import results_path, write_json  # noqa: E402

TICK_S = 0.1  # 10 frames/s


def site_env(tmp: Path) -> dict[str, str]:
    """Environment of the temporary site (shared by this process and the Daphne subprocess)."""
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "masknet_site.settings.test",
                "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "DJANGO_MEDIA_ROOT": str(tmp / "media"),
                "MASKNET_INDEX_DIR": str(tmp / "index"), "LOG_LEVEL": "WARNING",
                # the test settings take their folders from these only (never a node's volumes): without
                # them this process and Daphne would each make their own, and Daphne never finds the index
                "MASKNET_TEST_MEDIA_ROOT": str(tmp / "media"), "MASKNET_TEST_INDEX_DIR": str(tmp / "index")})
    env.pop("REDIS_URL", None)
    return env


def prepare_site(tmp: Path, n_kiosks: int) -> dict:
    """Migrate, enrol the test people (timed), pair the kiosks; returns tokens, frames, figures."""
    os.environ.update(site_env(tmp))
    import django

    django.setup()
    from django.core.management import call_command

    from enrollment import services as enrol
    from enrollment.recognizer import get_engine
    from recognition import services as kiosks

    call_command("migrate", verbosity=0, interactive=False)
    engine = get_engine()
    crops = face_crops(engine, source_photos())
    photos = [(name, jpeg(crop, 92)) for name, crop in crops]
    t0 = time.perf_counter()
    added = 0
    for i, (name, data) in enumerate(photos):
        person = enrol.person_create(actor=None, full_name=f"Bench Person {i}", staff_id=f"B{i:04d}")
        try:
            enrol.photo_add(person=person, data=data, actor=None, filename=f"{name}.jpg", schedule_rebuild=False)
            added += 1
        except enrol.PhotoRefused:
            continue
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    enrol.index_rebuild_now()
    rebuild_s = time.perf_counter() - t0
    tokens = []
    for i in range(n_kiosks):
        kiosk, code = kiosks.kiosk_create(actor=None, name=f"Bench kiosk {i}")
        tokens.append(kiosks.kiosk_pair(code=code)[1])
    frames = [jpeg(f) for _, f in make_frames(crops, per_crop=3, seed=3)]
    return {"tokens": tokens, "frames": frames, "per_person": 3, "scenes": scenes(engine, crops[0][1]),
            "enrollment": {"photos": added, "photo_add_s": round(add_s, 2), "rebuild_s": round(rebuild_s, 2),
                           "photos_per_s": round(added / (add_s + rebuild_s), 2) if added else None,
                           "photo_add_per_s": round(added / add_s, 2) if added else None}}


class Kiosk(threading.Thread):
    """One simulated kiosk page: 10 ticks/s, one frame in flight, latency per answer."""

    def __init__(self, url: str, origin: str, token: str, frames: list[bytes], until: float, offset: int,
                 greedy: bool = False) -> None:
        super().__init__(daemon=True)
        self.url, self.origin, self.token, self.frames, self.until = url, origin, token, frames, until
        self.offset, self.greedy = offset, greedy
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.engine_ms: list[float] = []
        self.sent = self.skipped = self.dropped = self.errors = 0
        self.states: dict[str, int] = {}
        self.failure: str | None = None

    def run(self) -> None:
        import websocket

        try:
            ws = websocket.create_connection(self.url, origin=self.origin, cookie=f"masknet_kiosk={self.token}",
                                             timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.failure = f"connect: {exc}"
            return
        try:
            hello = json.loads(ws.recv())
            assert hello.get("type") == "hello", hello
            ws.settimeout(TICK_S)
            in_flight: float | None = None
            next_tick = time.perf_counter()
            i = self.offset
            while time.perf_counter() < self.until:
                now = time.perf_counter()
                if now >= next_tick:
                    next_tick += TICK_S
                    if in_flight is None or self.greedy:
                        ws.send_binary(self.frames[i % len(self.frames)])
                        i += 1
                        self.sent += 1
                        in_flight = time.perf_counter()
                        self.sent_at[self.sent] = in_flight  # the server numbers frames 1, 2, ...
                    else:
                        self.skipped += 1
                try:
                    ws.settimeout(max(0.001, next_tick - time.perf_counter()))
                    msg = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                kind = msg.get("type")
                if kind == "result":
                    sent = self.sent_at.pop(msg.get("frame"), None)
                    if sent is not None:
                        self.latencies.append((time.perf_counter() - sent) * 1000)
                    self.engine_ms.append(msg.get("ms", 0))
                    self.states[msg["state"]] = self.states.get(msg["state"], 0) + 1
                    in_flight = None
                elif kind == "dropped":
                    self.dropped += 1
                    self.sent_at.pop(msg.get("frame"), None)
                elif kind == "error":
                    self.errors += 1
                    in_flight = None
        except Exception as exc:  # noqa: BLE001
            self.failure = repr(exc)
        finally:
            ws.close()


def run_level(port: int, tokens: list[str], frames: list[bytes], seconds: float, pid: int,
              greedy: bool = False, per_person: int = 3) -> dict:
    """``len(tokens)`` kiosks for ``seconds``; ``greedy`` kiosks send every tick without waiting for
    answers (not what the page does: it shows that the server drops stale frames instead of queueing)."""
    url, origin = f"ws://127.0.0.1:{port}/ws/kiosk/", f"http://127.0.0.1:{port}"
    rss_start = rss_mb(pid)
    load_start = os.getloadavg()[0]
    until = time.perf_counter() + seconds
    # kiosk i shows one enrolled person (their 3 frames in turn), as a real kiosk mostly does
    people = max(1, len(frames) // per_person)
    ks = [Kiosk(url, origin, t, [frames[(i % people) * per_person + j] for j in range(per_person)], until, 0,
                greedy=greedy) for i, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for k in ks:
        k.start()
    for k in ks:
        k.join(seconds + 30)
    wall = time.perf_counter() - t0
    lat = [x for k in ks for x in k.latencies]
    eng = [x for k in ks for x in k.engine_ms]
    answered = len(lat)
    return {"kiosks": len(tokens), "greedy": greedy, "seconds": round(wall, 1), "latency": stats(lat),
            "engine_ms": stats(eng),
            "answered": answered, "answered_per_s": round(answered / wall, 2), "sent": sum(k.sent for k in ks),
            "skipped_in_flight": sum(k.skipped for k in ks), "dropped_stale": sum(k.dropped for k in ks),
            "errors": sum(k.errors for k in ks), "states": _merge([k.states for k in ks]),
            "failures": [k.failure for k in ks if k.failure], "rss_mb_start": rss_start, "rss_mb_end": rss_mb(pid),
            "load_avg_start": round(load_start, 2), "load_avg_end": round(os.getloadavg()[0], 2)}


def _merge(dicts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def scenes(engine, crop, n: int = 8) -> dict[str, list[bytes]]:
    """What a kiosk camera sees (JPEG quality 80, 640x480), ``n`` frames each: ``empty`` (a wall),
    ``bare`` (the enrolled person of ``crop`` at varied places and sizes) and ``masked`` (the same
    frames with a mask drawn by the product's renderer on the face's landmarks)."""
    import numpy as np

    from recognition.engine import NoFaceFound
    from recognition.engine.masks import render_mask

    rng = np.random.default_rng(5)
    wall = np.full((480, 640, 3), 128, np.uint8)
    empty = [jpeg(np.clip(wall + rng.integers(-6, 7, wall.shape), 0, 255).astype(np.uint8)) for _ in range(n)]
    bare, masked = [], []
    for _, frame in make_frames([("person", crop)], per_crop=3 * n, seed=7):
        try:
            face = engine.analyze(frame, embed=False)[0]
        except NoFaceFound:
            continue
        if face.quality.ok and len(bare) < n:
            bare.append(jpeg(frame))
            masked.append(jpeg(render_mask(frame, face.landmarks, rng)))
    return {"empty": empty, "bare": bare, "masked": masked}


WELCOME_STATES = ("checked_in", "already")


class PageKiosk(threading.Thread):
    """One kiosk page as ``static/kiosk/kiosk.js`` paces it: a pump every 30 ms sends the next frame
    once the frames in flight allow it (one, or more when ``ahead``: the page's rule, below) and 1/8 s
    has passed since the last; an answer unanswered for 5 s is given up. The scene: an empty room for
    2-2.5 s (the presence before ends), then a person steps in (``presences``: "bare" or "masked"),
    until their welcome or 8 s; recorded: seconds from stepping in to the welcome, every answer's
    latency, answers a second."""

    PUMP_S, MIN_INTERVAL_S, STALL_S, MAX_AHEAD, SAMPLES = 0.03, 1 / 8, 5.0, 3, 8

    def __init__(self, url: str, origin: str, token: str, scenes: dict[str, list[bytes]], presences: list[str],
                 ahead: bool, seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.url, self.origin, self.token, self.scenes, self.presences = url, origin, token, scenes, presences
        self.ahead, self.rng = ahead, random.Random(seed)
        self.latencies: list[float] = []
        self.welcome_s: dict[str, list[float | None]] = {"bare": [], "masked": []}
        self.frames_to_welcome: list[int] = []
        self.answered = self.dropped = self.errors = self.sent = 0
        self.most_in_flight = 0
        self.seconds = 0.0
        self.failure: str | None = None
        self._net: list[float] = []       # recent answers' latency less the server's own time (s)
        self._engine: list[float] = []    # recent answers' engine time (s)

    def in_flight_allowed(self) -> tuple[int, float]:
        """(frames that may be in flight, seconds between sends): kiosk.js's ``inFlightAllowed``."""
        if not self.ahead or not self._net:
            return 1, self.MIN_INTERVAL_S
        pace = max(self.MIN_INTERVAL_S, sorted(self._engine)[len(self._engine) // 2])
        return min(self.MAX_AHEAD, 1 + int(min(self._net) // pace)), pace

    def run(self) -> None:
        import websocket

        try:
            ws = websocket.create_connection(self.url, origin=self.origin, cookie=f"masknet_kiosk={self.token}",
                                             timeout=30)
            while json.loads(ws.recv()).get("type") != "hello":
                pass
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.failure = f"connect: {exc}"
            return
        flight: dict[int, float] = {}
        last_send = 0.0
        t0 = time.perf_counter()
        plan = [("empty", 2.0 + self.rng.uniform(0, 0.5))]
        for kind in self.presences:
            plan += [(kind, 8.0), ("empty", 2.0 + self.rng.uniform(0, 0.5))]
        try:
            for kind, seconds in plan:
                start = time.perf_counter()
                sent_at_start = self.sent
                welcomed = None
                while time.perf_counter() - start < seconds and welcomed is None:
                    now = time.perf_counter()
                    for frame, at in list(flight.items()):
                        if now - at > self.STALL_S:
                            del flight[frame]
                    allowed, pace = self.in_flight_allowed()
                    if len(flight) < allowed and now - last_send >= (pace if flight else self.MIN_INTERVAL_S):
                        ws.send_binary(self.rng.choice(self.scenes[kind]))
                        self.sent += 1
                        last_send = flight[self.sent] = time.perf_counter()
                        self.most_in_flight = max(self.most_in_flight, len(flight))
                    ws.settimeout(self.PUMP_S)
                    try:
                        msg = json.loads(ws.recv())
                    except websocket.WebSocketTimeoutException:
                        continue
                    sent_at = flight.pop(msg.get("frame"), None)
                    if msg.get("type") == "result":
                        self.answered += 1
                        if sent_at is not None:
                            latency = time.perf_counter() - sent_at
                            self.latencies.append(latency * 1000)
                            if isinstance(msg.get("server_ms"), (int, float)):
                                self._net = (self._net + [max(0.0, latency - msg["server_ms"] / 1000)])[-self.SAMPLES:]
                                self._engine = (self._engine + [msg.get("ms", 0) / 1000])[-self.SAMPLES:]
                        if kind != "empty" and msg.get("state") in WELCOME_STATES:
                            welcomed = time.perf_counter() - start
                            self.frames_to_welcome.append(self.sent - sent_at_start)
                    elif msg.get("type") == "dropped":
                        self.dropped += 1
                    elif msg.get("type") == "error":
                        self.errors += 1
                if kind != "empty":
                    self.welcome_s[kind].append(welcomed)
        except Exception as exc:  # noqa: BLE001
            self.failure = repr(exc)
        finally:
            self.seconds = time.perf_counter() - t0
            ws.close()


def run_network(port: int, token: str, scenes: dict[str, list[bytes]], rtts: list[float], repeat: int,
                modes: list[bool], presences: int, jitter: float, loss: float, mbps: float) -> dict:
    """One kiosk through a :class:`DelayProxy` at each round trip, each mode (``ahead`` off/on) and
    repeat, interleaved (the shared machine's load falls on every setting alike)."""
    kinds = (["bare", "masked"] * presences)[:max(1, presences)]
    runs = []
    for r in range(repeat):
        for rtt in rtts:
            for ahead in modes:
                proxy = DelayProxy(port, rtt, jitter=jitter if rtt else 0, loss=loss if rtt else 0, mbps=mbps,
                                   seed=r * 1000 + int(rtt))
                via = proxy.start()
                load = os.getloadavg()[0]
                k = PageKiosk(f"ws://127.0.0.1:{via}/ws/kiosk/", f"http://127.0.0.1:{via}", token, scenes, kinds,
                              ahead, seed=r * 1000 + int(rtt))
                k.start()
                k.join(60 + 12 * len(kinds))
                proxy.stop()
                runs.append({"rtt_ms": rtt, "ahead": ahead, "repeat": r, "welcome_s": k.welcome_s,
                             "frames_to_welcome": k.frames_to_welcome, "latency": stats(k.latencies),
                             "answered_per_s": round(k.answered / k.seconds, 2) if k.seconds else None,
                             "dropped": k.dropped, "errors": k.errors, "most_in_flight": k.most_in_flight,
                             "held_back": proxy.held, "failure": k.failure, "load_avg": round(load, 2)})
                print(f"  rtt {rtt:>4.0f} ms ahead={ahead!s:<5} repeat {r}: welcome {k.welcome_s} "
                      f"{runs[-1]['answered_per_s']} answers/s p50 {runs[-1]['latency']['p50_ms']} ms"
                      + (f" FAILED {k.failure}" if k.failure else ""), flush=True)
    return {"jitter": jitter, "loss": loss, "mbps": mbps, "presences": kinds, "runs": runs}


def network_table(net: dict) -> list[str]:
    """The slow-network table: per round trip and mode, the median over the repeats' presences and
    the spread (the repeats' own medians, lowest-highest)."""
    import statistics

    def cell(values: list[float], digits: int = 2) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{statistics.median(values):.{digits}f}"

    def spread(per_repeat: list[list[float]], digits: int = 2) -> str:
        meds = [statistics.median(v) for v in ([x for x in vs if x is not None] for vs in per_repeat) if v]
        return f" ({min(meds):.{digits}f}-{max(meds):.{digits}f})" if len(meds) > 1 else ""

    lines = ["| RTT ms | frames ahead | welcome s, bare | welcome s, masked | not welcomed in 8 s "
             "| frames to a welcome | answers/s | p50 ms | p95 ms |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["rtt_ms"], r["ahead"]) for r in net["runs"]})
    for rtt, ahead in keys:
        runs = [r for r in net["runs"] if r["rtt_ms"] == rtt and r["ahead"] == ahead]
        row = [f"{rtt:g}", "up to 3" if ahead else "no (one in flight)"]
        for kind in ("bare", "masked"):
            per = [r["welcome_s"][kind] for r in runs]
            row.append(cell([x for v in per for x in v]) + spread(per))
        missed = sum(x is None for r in runs for v in r["welcome_s"].values() for x in v)
        total = sum(len(v) for r in runs for v in r["welcome_s"].values())
        row.append(f"{missed} of {total}")
        row.append(cell([x for r in runs for x in r["frames_to_welcome"]], 0))
        for key, digits in (("answered_per_s", 1), ("p50_ms", 0), ("p95_ms", 0)):
            per = [[r["answered_per_s"] if key == "answered_per_s" else r["latency"][key]] for r in runs]
            row.append(cell([v[0] for v in per], digits) + spread(per, digits))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def start_daphne(tmp: Path, port: int) -> subprocess.Popen:
    """Daphne serving the temporary site on loopback; returns once the port accepts connections."""
    return start_daphne_env(port, site_env(tmp), tmp / "daphne.log", timeout=60)


def run(seconds: float, levels: list[int], soak: float, greedy: float = 0.0, network: dict | None = None) -> dict:
    """The whole kiosk benchmark; returns the JSON document. ``network``: :func:`run_network`'s
    options (``rtts`` and the rest), or ``None``; ``levels`` empty: the slow-network part alone."""
    with tempfile.TemporaryDirectory(prefix="masknet-bench-") as d:
        tmp = Path(d)
        site = prepare_site(tmp, max(levels or [1]))
        port = free_port()
        proc = start_daphne(tmp, port)
        try:
            doc = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "frames": len(site["frames"]), "fps_per_kiosk": 1 / TICK_S, "enrollment": site["enrollment"],
                   "server_workers": int(os.environ.get("MASKNET_KIOSK_WORKERS", "2")), "levels": {}}
            doc["first_answer_s"] = warm_server(port, site["tokens"][0], site["frames"])
            doc["rss_mb_after_warmup"] = rss_mb(proc.pid)
            if network:
                doc["network"] = run_network(port, site["tokens"][0], site["scenes"], **network)
            for n in levels:
                doc["levels"][str(n)] = run_level(port, site["tokens"][:n], site["frames"], seconds, proc.pid)
            if greedy:
                n = max(levels)
                doc["greedy"] = run_level(port, site["tokens"][:n], site["frames"], greedy, proc.pid, greedy=True)
            if soak:
                n = max(levels)
                doc["soak"] = run_level(port, site["tokens"][:n], site["frames"], soak, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    doc["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def summary(doc: dict) -> dict:
    """The contract keys of ``latest.json`` that this benchmark fills."""
    lv = doc["levels"]
    out = {"enrollment_photos_per_s": doc["enrollment"]["photos_per_s"]}
    if not lv:   # the slow-network part alone
        return out
    for n, r in lv.items():
        out[f"kiosk_p50_ms_{n}"] = r["latency"]["p50_ms"]
        out[f"kiosk_p95_ms_{n}"] = r["latency"]["p95_ms"]
        out[f"kiosk_fps_{n}"] = r["answered_per_s"]
        out[f"kiosk_dropped_{n}"] = r["dropped_stale"]
        if r["rss_mb_start"] is not None and r["rss_mb_end"] is not None:
            out[f"kiosk_rss_growth_mb_{n}"] = round(r["rss_mb_end"] - r["rss_mb_start"], 1)
    if "greedy" in doc:
        g = doc["greedy"]
        out["greedy_kiosk_p95_ms"] = g["latency"]["p95_ms"]
        out["greedy_dropped_stale"] = g["dropped_stale"]
    if "soak" in doc:
        s = doc["soak"]
        out["soak_seconds"] = s["seconds"]
        out["soak_rss_growth_mb"] = round(s["rss_mb_end"] - s["rss_mb_start"], 1)
        out["kiosk_rss_growth_mb_8"] = out["soak_rss_growth_mb"]  # the 2-minute run is the better figure
    return out


def print_table(doc: dict) -> None:
    m = doc["machine"]
    e = doc["enrollment"]
    print(f"\n{m['cpu']} · {m['cores']} cores · load {m['load_avg']} -> {m['load_avg_end']}")
    print(f"enrollment: {e['photos']} photos, photo_add {e['photo_add_s']} s + rebuild {e['rebuild_s']} s "
          f"= {e['photos_per_s']} photos/s")
    if "network" in doc:
        n = doc["network"]
        print(f"\none kiosk over a slow network (jitter +-{n['jitter']:.0%} each way, {n['loss']:.1%} of chunks held "
              f"back a retransmission, {n['mbps'] or 'unlimited'} Mbit/s; median, and in brackets the repeats' "
              f"medians lowest-highest):")
        print("\n".join(network_table(n)))
    if not doc["levels"]:
        return
    print(f"{'kiosks':>7}{'p50 ms':>9}{'p95 ms':>9}{'answered/s':>12}{'dropped':>9}{'skipped':>9}"
          f"{'engine p50':>12}{'RSS MB':>16}{'load':>12}")
    rows = list(doc["levels"].items()) + [(k, doc[k]) for k in ("greedy", "soak") if k in doc]
    for name, r in rows:
        rss = f"{r['rss_mb_start']}->{r['rss_mb_end']}"
        load = f"{r['load_avg_start']}->{r['load_avg_end']}"
        print(f"{name:>7}{r['latency']['p50_ms'] or 0:>9.1f}{r['latency']['p95_ms'] or 0:>9.1f}"
              f"{r['answered_per_s']:>12.2f}{r['dropped_stale']:>9}{r['skipped_in_flight']:>9}"
              f"{r['engine_ms']['p50_ms'] or 0:>12.1f}{rss:>16}{load:>12}")
        if r["failures"]:
            print("   failures:", r["failures"][:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per level (default 20)")
    parser.add_argument("--kiosks", default="1,4,8", help="levels (default 1,4,8)")
    parser.add_argument("--soak", type=float, default=0.0, help="extra run with the most kiosks (e.g. 120)")
    parser.add_argument("--greedy", type=float, default=10.0,
                        help="seconds of kiosks that send every tick without waiting (stale-frame check; 0: skip)")
    parser.add_argument("--rtt", default="", help="round trips (ms) for the slow-network run, e.g. 0,50,150,300")
    parser.add_argument("--network-only", action="store_true", help="the slow-network run alone")
    parser.add_argument("--repeat", type=int, default=3, help="slow network: runs of each setting (default 3)")
    parser.add_argument("--presences", type=int, default=4,
                        help="slow network: people stepping in per run, bare and masked in turn (default 4)")
    parser.add_argument("--jitter", type=float, default=0.2, help="slow network: +- share of each one-way delay")
    parser.add_argument("--loss", type=float, default=0.01,
                        help="slow network: share of chunks held back a retransmission timeout (default 0.01)")
    parser.add_argument("--mbps", type=float, default=0.0, help="slow network: Mbit/s each way (default: no limit)")
    parser.add_argument("--modes", default="one,ahead",
                        help="slow network: 'one' (one frame in flight) and/or 'ahead' (the page's frames ahead)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    network = None
    if args.rtt:
        network = {"rtts": [float(x) for x in args.rtt.split(",")], "repeat": args.repeat,
                   "modes": [m == "ahead" for m in args.modes.split(",")], "presences": args.presences,
                   "jitter": args.jitter, "loss": args.loss, "mbps": args.mbps}
    levels = [] if args.network_only else [int(x) for x in args.kiosks.split(",")]
    args.out = args.out or results_path("kiosk-network" if args.network_only else "kiosk", REPO)
    doc = run(args.seconds, levels, args.soak, 0.0 if args.network_only else args.greedy, network)
    write_json(args.out, doc, newline=True)
    print_table(doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
