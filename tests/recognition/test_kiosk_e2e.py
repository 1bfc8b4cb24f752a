"""End to end, in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
Selenium) against a live Daphne server (``manage.py runserver``, which is Daphne's) sharing the
test database:

* Chromium's fake camera plays a video made at test time from the astronaut photo (Eileen
  Collins, enrolled through the enrollment services) wearing a synthetic mask. It walks through
  the states (nobody, too far, too dark, blurred, steady); the page must greet "Eileen Collins" and a
  ``CheckIn`` must exist. When the video loops she is "already checked in".
* A second browser, paired with another kiosk, plays a masked Tom Hanks (not enrolled): the page
  says "Not recognised" and no check-in is made for him.
* Camera errors and a lost connection show their banners.
* A branch office's kiosk reaches the site through a proxy that delays its traffic as a 300 ms round
  trip does (``bench/live.py``'s ``DelayProxy``): Eileen is welcomed there too, and its page kept
  more than one frame in flight, where the front door's on the plain loopback never had two
  (Chromium's own record of each socket's messages: :class:`KioskSocketLog`).

Screenshots of each state are written to the test's temporary folder, or to
``MASKNET_SCREENSHOTS_DIR`` when set: ``make screenshots`` refreshes docs/screenshots/ (see the
README and docs/kiosk.md), so that a test run never rewrites tracked files.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from bench.live import DelayProxy
from enrollment import services as enrollment
from recognition import services
from recognition.consumers import KIOSK_COOKIE
from recognition.models import CheckIn

from . import faces

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.models, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots"   # replaced by the test (see the ``shot_dir`` fixture)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FPS = 10
NOT_THIS_TESTS = {"attendance.png"}   # screenshots the docs show that this test does not take (made by hand)


# ------------------------------------------------------------------------------------------ helpers


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """A raw YUV4MPEG2 (4:2:0) video, the format Chromium's fake camera plays (and loops)."""
    h, w = frames[0].shape[:2]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_available():
    """Skips (with the reason) when Chromium, its driver or Selenium is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian packages chromium, chromium-driver: "
                    "scripts/install_browser.sh, run by `make test`)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (requirements-dev.txt)")


def chrome(video: Path, size: tuple[int, int] = (1280, 800), network_log: bool = False):
    """Headless Chromium whose camera plays ``video``; ``network_log``: chromedriver keeps DevTools'
    network events (:class:`KioskSocketLog` reads them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-video-capture={video}", f"--window-size={size[0]},{size[1]}",
                 "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-GB",
                 "--force-prefers-reduced-motion"):   # no transitions: screenshots show settled states
        options.add_argument(flag)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def database_url() -> str:
    """A ``DATABASE_URL`` for the test database this process uses (SQLite file or PostgreSQL)."""
    from urllib.parse import quote

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return "sqlite:///" + str(db["NAME"])
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'])}"


class LiveServer:
    """``manage.py runserver`` (Daphne) on a free port, sharing the test database and folders."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "masknet_site.settings.test",
               "DATABASE_URL": database_url(),
               "MASKNET_TEST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
               "MASKNET_TEST_INDEX_DIR": str(settings.MASKNET_INDEX_DIR),
               "MASKNET_MODELS_DIR": str(settings.MASKNET_MODELS_DIR), "LOG_LEVEL": "WARNING",
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload", "--insecure"],
            cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        import urllib.error
        import urllib.request

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server stopped:\n{self.tail()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                return
            except urllib.error.HTTPError:
                return            # 503 without models still means it is up
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start in {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class KioskSocketLog:
    """The kiosk sockets' messages as Chromium's network stack sent and received them (DevTools'
    ``Network.webSocketFrameSent`` / ``Received`` events, kept by chromedriver in its performance log:
    ``chrome(..., network_log=True)``): what went over the wire, whatever the page thinks of it.

    ``sockets``, one per kiosk socket in the order they opened: ``sent``, the binary frames sent (the
    server numbers them 1, 2, ... in its answers); ``most_in_flight``, the most frames sent and not
    yet answered (a ``result``, ``dropped`` or ``error`` naming the frame) at any send, leaving out
    those the page gave up on (unanswered for its ``STALL_MS``: a first frame that waits for the
    server's models, and the one sent after it, are not frames sent ahead); the answers' ``types``;
    ``net_ms``, each result's latency at the network stack less its ``server_ms`` (the round trip the
    page works from), and ``engine_ms``, its ``ms``; ``unmatched``, answers to no frame seen sent."""

    STALL_S = 5.0   # kiosk.js's STALL_MS
    # a frame unanswered this long when the next is sent counts as given up: the page's timer and the
    # network stack's timestamps differ by a few ms, and a first frame that waited for the models on a
    # loaded machine (CI beside other work) had its successor counted as sent ahead, 4.99 s after it;
    # a frame sent ahead goes one pace (125 ms or the engine's time) after the one before, never seconds
    GIVEN_UP_S = STALL_S - 1.0

    def __init__(self, driver) -> None:
        self.driver = driver
        self._by_id: dict[str, dict] = {}

    @property
    def sockets(self) -> list[dict]:
        return list(self._by_id.values())

    def read(self) -> None:
        """Take the events chromedriver gathered since the last read (it hands each over once)."""
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            method, params = event.get("method", ""), event.get("params", {})
            if method == "Network.webSocketCreated" and "/ws/kiosk/" in params.get("url", ""):
                self._by_id[params["requestId"]] = {
                    "url": params["url"], "sent": 0, "flight": {}, "given_up": set(), "most_in_flight": 0,
                    "types": {}, "net_ms": [], "engine_ms": [], "unmatched": 0}
            sock = self._by_id.get(params.get("requestId"))
            if sock is not None and method == "Network.webSocketFrameSent":
                self._sent(sock, params["response"], params["timestamp"])
            elif sock is not None and method == "Network.webSocketFrameReceived":
                self._received(sock, params["response"], params["timestamp"])

    def _sent(self, sock: dict, frame: dict, at: float) -> None:
        if frame["opcode"] != 2:   # binary: a camera frame
            return
        flight = sock["flight"]
        for number in [n for n, sent_at in flight.items() if at - sent_at > self.GIVEN_UP_S]:
            del flight[number]
            sock["given_up"].add(number)
        sock["sent"] += 1
        flight[sock["sent"]] = at
        sock["most_in_flight"] = max(sock["most_in_flight"], len(flight))

    def _received(self, sock: dict, frame: dict, at: float) -> None:
        if frame["opcode"] != 1:
            return
        msg = json.loads(frame["payloadData"])
        sock["types"][msg.get("type")] = sock["types"].get(msg.get("type"), 0) + 1
        if msg.get("type") not in ("result", "dropped", "error") or not msg.get("frame"):
            return
        sent_at = sock["flight"].pop(msg["frame"], None)
        if sent_at is None:
            sock["unmatched"] += msg["frame"] not in sock["given_up"]
        elif msg["type"] == "result" and "server_ms" in msg:
            sock["net_ms"].append(round((at - sent_at) * 1000 - msg["server_ms"]))
            sock["engine_ms"].append(msg["ms"])

    @staticmethod
    def sends_ahead(sock: dict, frame_interval_ms: float = 125.0, margin: float = 1.25) -> bool | None:
        """Whether kiosk.js's rule (``inFlightAllowed``: one more frame in flight per pace that fits in
        the round trip, the pace being the engine's median time or the frame interval, whichever is
        longer) has the page send frames ahead on this socket, from the wire's numbers: True where
        the shortest round trip is clearly longer than the pace, False where clearly shorter, None
        in between (the page judges its last few answers, the timestamps differ by a few ms)."""
        if not sock["net_ms"]:
            return None
        engine = sorted(sock["engine_ms"])[len(sock["engine_ms"]) // 2]
        pace, rtt = max(frame_interval_ms, engine), min(sock["net_ms"])
        return True if rtt >= pace * margin else False if rtt * margin < pace else None

    @staticmethod
    def summary(sockets: list[dict]) -> str:
        def median(values: list[float]) -> str:
            return f"{sorted(values)[len(values) // 2]} ms" if values else "-"

        return "; ".join(f"{s['sent']} frames sent, at most {s['most_in_flight']} in flight, answers {s['types']}, "
                         f"round trip less server_ms: min {min(s['net_ms'], default='-')} ms, median "
                         f"{median(s['net_ms'])}, engine median {median(s['engine_ms'])}" for s in sockets)


def page_state(driver) -> tuple[str, str, str, bool]:
    """``(state, reason, banner title, connection lost)``."""
    return tuple(driver.execute_script(
        "const s = document.getElementById('stage'); if (!s) return ['', '', '', false];"
        "return [s.dataset.state || '', s.dataset.reason || '', document.getElementById('banner-title').textContent,"
        "s.dataset.connection === 'lost'];"))


SHOT_NAMES = {
    ("searching", ""): "kiosk-1-looking-for-a-face.png",
    ("adjust", "too_small"): "kiosk-2-move-closer.png",
    ("adjust", "too_dark"): "kiosk-3-too-dark.png",
    ("adjust", "blurry"): "kiosk-4-hold-still.png",
    ("recognising", ""): "kiosk-5-recognising.png",
    ("checked_in", ""): "kiosk-6-welcome.png",
    ("already", ""): "kiosk-7-already-checked-in.png",
    ("unknown", ""): "kiosk-8-not-recognised.png",
}


def watch(driver, until: str, timeout: float, shots: dict[str, float],
          changes: list[tuple[float, str]] | None = None) -> tuple[str, float]:
    """Poll the page until its state is ``until``; screenshot each state the first time it shows
    and append ``(time, state)`` to ``changes`` at each change. Returns the banner title and the
    seconds it took."""
    start = time.monotonic()
    changes = [] if changes is None else changes
    while time.monotonic() - start < timeout:
        state, reason, title, _ = page_state(driver)
        if not changes or changes[-1][1] != state:
            changes.append((time.monotonic(), state))
        name = SHOT_NAMES.get((state, reason if state == "adjust" else ""))
        if name and name not in shots:
            driver.save_screenshot(str(SHOTS / name))
            shots[name] = time.monotonic() - start
        if state == until:
            return title, time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"the page never showed {until!r} in {timeout} s (last: {page_state(driver)}, "
                         f"seen: {sorted(shots)})")


def docs_screenshots() -> set[str]:
    """The screenshots README.md and docs/*.md show (``screenshots/NAME.png``), this test's to take
    but ``NOT_THIS_TESTS``."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return {name for page in pages for name in re.findall(r"screenshots/([\w.-]+\.png)", page.read_text())}


def warm_up(server: LiveServer, token: str) -> None:
    """Open the kiosk socket once from here, so that the server loads its models (about 10 s on
    2 cores) while the test builds its videos and starts the browser."""
    try:
        import websocket  # websocket-client, a dependency of selenium
    except ImportError:
        return
    ws = websocket.create_connection(server.url.replace("http://", "ws://") + "/ws/kiosk/", timeout=10,
                                     cookie=f"{KIOSK_COOKIE}={token}", origin=server.url)
    assert '"hello"' in ws.recv()
    ws.close()


def wait_for(driver, predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = page_state(driver)
        if predicate(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {page_state(driver)})")


# -------------------------------------------------------------------------------------------- test


@pytest.mark.parametrize(("net_ms", "engine_ms", "ahead"), [
    ([300, 373, 340], [90, 80, 85], True),        # an idle machine: two or three frames fit in the trip
    ([300, 373, 340], [480, 520, 500], False),    # a loaded one: the engine is the slower
    ([300, 373, 340], [372, 380, 360], None),     # too close to call from the wire (seen under load)
    ([300, 373, 340], [260, 250, 270], None),
    ([300, 310, 320], [20, 30, 25], True),        # a quick engine: the frame interval (125 ms) is the pace
    ([], [], None)])
def test_the_wire_is_judged_by_the_pages_rule_for_frames_sent_ahead(net_ms, engine_ms, ahead):
    """What the slow-network check of the test below expects (``KioskSocketLog.sends_ahead``)."""
    assert KioskSocketLog.sends_ahead({"net_ms": net_ms, "engine_ms": engine_ms}) is ahead


@pytest.fixture
def shot_dir(tmp_path, monkeypatch) -> Path:
    """Where this run's screenshots go: ``MASKNET_SCREENSHOTS_DIR`` or the test's own folder."""
    folder = Path(os.environ.get("MASKNET_SCREENSHOTS_DIR") or tmp_path / "screenshots").resolve()
    monkeypatch.setattr(sys.modules[__name__], "SHOTS", folder)
    return folder


def test_kiosk_in_a_real_browser(browser_available, engine, astronaut_bgr, registry_photos, person, settings,
                                 tmp_path, shot_dir):
    started, started_wall = time.monotonic(), time.time()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {name}")

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MASKNET_INDEX_DIR = tmp_path / "index"
    settings.MASKNET_INDEX_DIR.mkdir()
    SHOTS.mkdir(parents=True, exist_ok=True)
    front, front_code = services.kiosk_create(actor=None, name="Front door", location="Main entrance")
    side, side_code = services.kiosk_create(actor=None, name="Side door", location="Car park")
    branch, branch_code = services.kiosk_create(actor=None, name="Branch office", location="Over the VPN",
                                                site="branch")
    _, hall_token = services.kiosk_pair(code=services.kiosk_create(actor=None, name="Hall")[1])
    server = LiveServer(tmp_path / "server.log")
    proxy = None
    drivers = []
    shots: dict[str, float] = {}
    try:
        warm_up(server, hall_token)
        phase("server up, loading its models")

        # Eileen enrolled from her unmasked photo; the index built now (the rebuild task's service)
        enrollment.photo_add(person=person, data=faces.jpeg(astronaut_bgr, 92), actor=None, schedule_rebuild=False)
        assert enrollment.index_rebuild(run_id=None).state == "succeeded"
        # her video (10 frames/s, looping): nobody, too far, too dark, blurred, then steady. Too far:
        # 1.5 s with her face about 63-72 px wide (zoom 0.4), every frame under the kiosk's 80 px
        # (MASKNET_KIOSK_MIN_FACE_PX); "move closer" shows after two such answers in a row. At 0.45
        # for 1 s it measured 74-81 px, a third of the frames passing, and under load the prompt, and
        # its screenshot (kiosk-2, in docs/kiosk.md), was missed.
        eileen = faces.with_mask(engine, astronaut_bgr, seed=3, style="surgical")
        m, _ = faces.kiosk_view(engine, eileen)
        room = faces.empty_room()[0]
        clip = (faces.empty_room(15) + faces.frames(eileen, m, 15, seed=1, zoom=0.4, background=room)
                + faces.frames(eileen, m, 10, seed=2, brightness=0.17) + faces.frames(eileen, m, 10, seed=3, blur=5)
                + faces.frames(eileen, m, 20, seed=4, jitter=2))
        eileen_video = write_y4m(tmp_path / "eileen-masked.y4m", clip)
        steady_video = write_y4m(tmp_path / "eileen-masked-steady.y4m", clip[-20:])
        tom = faces.with_mask(engine, registry_photos["Tom_Hanks_54745.png"], seed=4, style="kn95")
        m, _ = faces.kiosk_view(engine, tom, face_width=150)
        tom_video = write_y4m(tmp_path / "stranger-masked.y4m",
                              faces.empty_room(5) + faces.frames(tom, m, 30, seed=5, background=room))
        phase("enrolled, videos written")

        # --- Eileen at the front door
        a = chrome(eileen_video, network_log=True)
        drivers.append(a)
        wire = KioskSocketLog(a)
        a.get(server.url + services.pairing_path(front_code))
        a.save_screenshot(str(SHOTS / "pairing.png"))
        a.find_element("id", "pair-button").click()
        title, took = watch(a, "checked_in", 60, shots)
        phase(f"welcome ({took:.1f} s after the kiosk page opened)")
        assert title == "Welcome, Eileen Collins", title
        assert "Checked in at" in a.find_element("id", "banner-detail").text
        assert a.find_element("id", "chip-mask").is_displayed()
        checkin = CheckIn.objects.get()
        assert checkin.person_id == person.pk and checkin.kiosk_id == front.pk and checkin.masked

        # the video loops: she leaves, comes back, and is already checked in
        changes: list[tuple[float, str]] = []
        title, _ = watch(a, "already", 30, shots, changes)
        # from the moment she is steady in front of the camera (first "recognising" after the
        # quality prompts) to the answer on screen: decoding, engine, voting, database, page
        steady = [t for t, state in changes if state == "recognising"]
        phase(f"already checked in ({changes[-1][0] - steady[0]:.2f} s from recognising to the answer)")
        assert title.startswith("Hello again, ") and CheckIn.objects.count() == 1
        a.set_window_size(720, 1280)            # a tablet on a stand
        time.sleep(0.4)
        a.save_screenshot(str(SHOTS / "kiosk-portrait.png"))
        # on the loopback (a round trip of a few ms) the page kept one frame in flight at a time
        wire.read()
        plain = wire.sockets
        phase(f"plain loopback: {wire.summary(plain)}")
        assert plain and all(s["unmatched"] == 0 for s in plain) and sum(s["sent"] for s in plain) > 10
        assert max(s["most_in_flight"] for s in plain) == 1, wire.summary(plain)
        a.quit()
        drivers.remove(a)

        # --- a branch office's kiosk over a slow network: the site through a proxy adding a 300 ms
        # round trip (+-20 % jitter); Eileen steps up, masked, from the start of her video
        c = chrome(steady_video, network_log=True)
        drivers.append(c)
        wire = KioskSocketLog(c)
        proxy = DelayProxy(server.port, 300, loss=0)
        via = f"http://127.0.0.1:{proxy.start()}"
        c.get(via + services.pairing_path(branch_code))
        c.find_element("id", "pair-button").click()
        title, took = watch(c, "checked_in", 30, dict.fromkeys(SHOT_NAMES.values(), 0.0))   # no screenshots
        assert title == "Welcome, Eileen Collins", title
        assert CheckIn.objects.filter(kiosk=branch, person=person).exists()
        # frames went ahead of their answers: the page took the round trip from its answers' latency
        # less their server_ms and allowed more than one frame in flight (from its first answers on),
        # unless the engine is slower than the round trip: then it keeps one. Which of the two is
        # judged from the wire's numbers: on a loaded machine (CI beside other runs) the engine's
        # median was 372 ms against the proxy's 300 ms, the page rightly kept one frame in flight,
        # and the test, which wanted more whatever the engine's speed, failed
        end = time.monotonic() + 5
        while True:
            wire.read()
            slow = wire.sockets
            if max((s["most_in_flight"] for s in slow), default=0) > 1 or time.monotonic() > end:
                break
            time.sleep(0.2)
        phase(f"300 ms round trip: welcome {took:.1f} s after pairing; {wire.summary(slow)}")
        assert all(s["url"].startswith(via.replace("http", "ws")) and s["unmatched"] == 0 for s in slow)
        # (only where clearly so: the page judges its last few answers, and a fluctuating engine may
        # have let it send one ahead now and then where the whole socket's median says otherwise)
        assert any(s["net_ms"] for s in slow), wire.summary(slow)   # answers to judge by (the welcome may take 4)
        for sock in slow:
            if KioskSocketLog.sends_ahead(sock):
                assert sock["most_in_flight"] > 1, wire.summary([sock])
        if not any(KioskSocketLog.sends_ahead(s) for s in slow):
            warnings.warn("frames sent ahead were not required in this run: the engine was not clearly quicker than "
                          f"the 300 ms round trip ({wire.summary(slow)})", stacklevel=1)
        c.quit()
        drivers.remove(c)
        proxy.stop()
        proxy = None

        # --- a stranger at the side door
        b = chrome(tom_video)
        drivers.append(b)
        b.get(server.url + "/kiosk/")
        assert "not a kiosk yet" in b.page_source
        b.save_screenshot(str(SHOTS / "not-paired.png"))
        b.get(server.url + services.pairing_path(side_code))
        b.find_element("id", "pair-button").click()
        # camera problems first (the browser's own errors, raised on purpose), then the real camera
        for error, name, expect in (("NotAllowedError", "kiosk-9-camera-denied.png", "Camera access is blocked"),
                                    ("NotFoundError", "kiosk-10-no-camera.png", "No camera found")):
            script = b.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
                f"navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('test', '{error}'));")})
            b.refresh()
            wait_for(b, lambda s, e=expect: s[2] == e, 15, expect)
            b.save_screenshot(str(SHOTS / name))
            b.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
        b.refresh()
        phase("camera errors shown")
        title, took = watch(b, "unknown", 30, shots)
        phase(f"not recognised ({took:.1f} s)")
        assert title.startswith("Not recognised"), title
        time.sleep(0.5)
        assert CheckIn.objects.count() == 2 and not CheckIn.objects.filter(kiosk=side).exists()

        # --- the server goes away: the kiosk says so and keeps trying
        server.stop()
        wait_for(b, lambda s: s[0] == "connection_lost" and s[3], 20, "the connection-lost banner")
        b.save_screenshot(str(SHOTS / "kiosk-11-connection-lost.png"))
        # ... and reconnects by itself when the server is back (same address)
        server = LiveServer(tmp_path / "server.log", port=server.port)
        wait_for(b, lambda s: s[0] != "connection_lost" and not s[3], 30, "the reconnection")
        phase("reconnected")
    except BaseException:
        for d in drivers:
            try:
                print(f"--- {d.current_url}\n{d.find_element('tag name', 'body').text[:1500]}")
                print(d.get_log("browser")[-20:])
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                print(f"(no page: {exc})")
        print(f"--- server log\n{server.tail()}")
        raise
    finally:
        for d in drivers:
            d.quit()
        if proxy is not None:
            proxy.stop()
        server.stop()
    phase(f"done; screenshots: {', '.join(sorted(shots))}")
    for name in ("kiosk-5-recognising.png", "kiosk-6-welcome.png", "kiosk-8-not-recognised.png"):
        assert (SHOTS / name).stat().st_size > 10_000
    # every picture the docs show was taken by this run: a state that went by unseen left the last
    # run's picture in docs/screenshots (make screenshots) and nobody noticed
    stale = sorted(name for name in docs_screenshots() - NOT_THIS_TESTS
                   if not (SHOTS / name).is_file() or (SHOTS / name).stat().st_mtime < started_wall - 1)
    missed = f"screenshots the docs show were not taken by this run: {stale} (taken: {sorted(shots)})"
    # a failure where the pictures are refreshed (make screenshots); in the suite a transient prompt
    # missed on a loaded machine says so, since the kiosk's behaviour is asserted above
    if os.environ.get("MASKNET_SCREENSHOTS_DIR"):
        assert not stale, missed
    elif stale:
        warnings.warn(missed, stacklevel=1)
