"""The kiosk page's layout in a real headless Chromium, at the sizes it is used at (a wall screen either
way up, a tablet on a stand, a phone): a welcome, however long the name, leaves the face in the video
visible. A long name's welcome took four lines and covered the lower face, on a landscape screen too.
The privacy notice line is shown whole, readable (14 px at the least), and over neither the face nor the banner.

The page, its style sheet and script are the real ones, served by a live server and paired as a
kiosk is; the socket's answers are scripted in the browser (what a server says when it greets
someone, with the face's box), so that any name can be shown without the models or a face video.
"""

from __future__ import annotations

import time

import pytest

from recognition import services
from recognition.kiosk_text import catalog
from recognition.models import Kiosk

from .test_kiosk_e2e import CHROMEDRIVER, CHROMIUM, LiveServer, browser_available  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = ((1920, 1080), (1080, 1920), (768, 1024), (390, 844))
# a face at arm's length as the kiosk's frames show it (tests/recognition/faces.py, kiosk_view: eyes at
# 0.42 of the frame's height, 170 px of 640 wide): the detector's box, in fractions of the frame
FACE_BOX = [0.37, 0.24, 0.63, 0.6]
# a longer notice than the default (MASKNET_KIOSK_NOTICE, with the page's address for "{url}"): two lines on a phone
NOTICE = ("Face recognition records attendance at this entrance · Privacy notice: {url} "
          "(reception has a printed copy)")
NAMES = ("Eileen Collins", "Maria Guadalupe Fernández-Castellanos de la Vega",
         # 60: two lines by length alone were too few on a wide screen (it ended in "…" at 1920x1080)
         "Eileen Marie Collins-Youngblood van der Berg-Alexandrovna Sm",
         "Bartholomew-Maximilian Oluwaseun Wolfeschlegelsteinhausenbergerdorff Juan Carlos de la Santísima "
         "Trinidad Fernández-Castellanos y Montenegro del Río Grande de Quintanilla Alessandra Beatriz")

# the page's WebSocket, answering as the server does: "hello", then each frame with window.answer
SOCKET = """
window.answer = null;
class ScriptedSocket {
  constructor(url) {
    this.readyState = 0; this.bufferedAmount = 0; this.frames = 0;
    setTimeout(() => { this.readyState = 1; this.onmessage({ data: JSON.stringify(
      { type: "hello", kiosk: "Front door", location: "Main entrance", ready: true }) }); }, 20);
  }
  send() {
    const frame = ++this.frames;
    setTimeout(() => { if (window.answer) this.onmessage({ data: JSON.stringify(
      Object.assign({ type: "result", frame: frame, ms: 40 }, window.answer)) }); }, 20);
  }
  close() {}
}
ScriptedSocket.CONNECTING = 0; ScriptedSocket.OPEN = 1; ScriptedSocket.CLOSING = 2; ScriptedSocket.CLOSED = 3;
window.WebSocket = ScriptedSocket;
"""

LAYOUT = """
const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const title = document.getElementById('banner-title'), face = document.getElementById('facebox');
const notice = document.getElementById('privacy-notice');
const font = parseFloat(getComputedStyle(title).fontSize);
// the title's text goes on below its box where the style sheet cuts it short (with an ellipsis)
const text = document.createRange();
text.selectNodeContents(title);
const lines = [...text.getClientRects()];
return {state: document.getElementById('stage').dataset.state, title: title.textContent, font: font,
        titleLines: Math.round(title.getBoundingClientRect().height / parseFloat(getComputedStyle(title).lineHeight)),
        detail: document.getElementById('banner-detail').textContent,
        banner: box(document.getElementById('banner')), face: box(face), faceShown: !face.hidden,
        clipped: lines[lines.length - 1].bottom > title.getBoundingClientRect().bottom + font / 2,
        viewport: [innerWidth, innerHeight], notice: box(notice), noticeText: notice.textContent,
        noticeFont: parseFloat(getComputedStyle(notice).fontSize),
        noticeShown: getComputedStyle(notice).visibility === 'visible' && notice.offsetHeight > 0,
        noticeCut: notice.scrollHeight > notice.clientHeight + 1 || notice.scrollWidth > notice.clientWidth + 1};
"""


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--window-size=1280,900",
                 "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-GB",
                 "--force-prefers-reduced-motion"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def apart(a: list[float], b: list[float]) -> bool:
    """Whether boxes ``a`` and ``b`` (left, top, right, bottom) do not overlap."""
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def show(driver, answer: dict, timeout: float = 15, detail: str = "") -> dict:
    """Answer the page's frames with ``answer`` until it shows it (with ``detail`` in its detail line);
    the layout then."""
    driver.execute_script("window.answer = arguments[0]", answer)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        layout = driver.execute_script(LAYOUT)
        if layout["state"] == answer["state"] and (answer["name"] or "") in layout["title"] \
                and detail in layout["detail"]:
            time.sleep(0.3)   # the face box's move (reduced motion: none) and the fonts settled
            return driver.execute_script(LAYOUT)
        time.sleep(0.05)
    raise AssertionError(f"the page never showed {answer} (last: {driver.execute_script(LAYOUT)})")


def check_size(driver, server, tmp_path, width: int, height: int, notice: str, language: str, names) -> None:
    """At ``width`` x ``height``, in ``language`` (the kiosk's): each of ``names`` welcomed (and, with
    any, one greeted again) and a bare and a masked face not recognised leave the face's box visible, and
    the notice whole, readable and over neither."""
    words = catalog(language)["screen"]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    driver.get(server.url + "/kiosk/")
    for state, name in [("checked_in", n) for n in names] + [("already", NAMES[1])] * bool(names):
        layout = show(driver, {"state": state, "reason": None, "box": FACE_BOX, "masked": True,
                               "name": name, "time": "08:59", "progress": 1.0})
        driver.save_screenshot(str(tmp_path / f"{language}-{state}-{len(name)}-{width}x{height}.png"))
        where = (language, width, height, state, name, layout)
        assert layout["viewport"] == [width, height] and layout["faceShown"], where
        # the banner starts below the face's box (the page pads the detector's box a little)
        assert layout["banner"][1] >= layout["face"][3], where
        # names are shown whole up to a length; a longer one ends in "…" (two or three lines)
        assert layout["clipped"] == (len(name) > 100), where
        assert layout["font"] >= 18, where    # still read from a step away
        # the privacy notice: whole, small but readable, over neither the face nor the banner
        assert layout["noticeText"] == notice and layout["noticeShown"] and not layout["noticeCut"], where
        # 14 px at the least: 12.8 px on a phone or a tablet was small for a line all in front are to read
        assert layout["noticeFont"] >= 14, where
        assert apart(layout["notice"], layout["face"]) and apart(layout["notice"], layout["banner"]), where
        assert 0 <= layout["notice"][1] and layout["notice"][3] <= height, where
    # nor does "Not recognised" (its title took two lines on a wall screen, over the chin), a
    # masked face's either, whose detail (lower the mask for a moment) is the longer
    for masked, detail in ((False, words["unknown.detail"]), (True, words["unknown.detail_masked"])):
        layout = show(driver, {"state": "unknown", "reason": None, "box": FACE_BOX, "masked": masked,
                               "name": None, "time": None, "progress": 1.0}, detail=detail)
        where = (language, width, height, "unknown", masked, layout)
        assert layout["title"] == words["unknown.title"] and layout["titleLines"] == 1, where
        assert layout["banner"][1] >= layout["face"][3], where
        assert apart(layout["notice"], layout["face"]) and apart(layout["notice"], layout["banner"]), where


# the camera another program holds: the page's "camera in use", among its tallest banners (no camera)
CAMERA_BUSY = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("busy", "NotReadableError"));"""
NO_CAMERA_LAYOUT = """
const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
return {banner: box(document.getElementById('banner')), notice: box(document.getElementById('privacy-notice')),
        top: box(document.querySelector('.topbar')), title: document.getElementById('banner-title').textContent};
"""


def check_without_camera(driver, server) -> None:
    """A camera's trouble (here another program holds it) puts the banner in the middle of the dark
    screen: centred over the whole height, a tall banner on a short landscape screen (800x480 in German,
    640x360 in every language) rose over the top bar's privacy notice and date (a helper's review). It
    stays under the top bar now, and on the screen."""
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAMERA_BUSY})
    try:
        for language in ("en", "de"):
            Kiosk.objects.update(language=language)
            for width, height in ((800, 480), (640, 360), (1280, 720), (390, 844)):
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                       {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
                driver.get(server.url + "/kiosk/")
                end = time.monotonic() + 15
                while driver.execute_script("return document.getElementById('stage').dataset.state") != "camera_busy":
                    assert time.monotonic() < end, "the page never said the camera is in use"
                    time.sleep(0.05)
                time.sleep(0.3)
                layout = driver.execute_script(NO_CAMERA_LAYOUT)
                where = (language, width, height, layout)
                assert layout["title"] == catalog(language)["screen"]["camera_busy.title"], where
                assert layout["banner"][1] >= layout["notice"][3] and layout["banner"][1] >= layout["top"][3] - 1, where
                assert layout["banner"][3] <= height, where
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
        Kiosk.objects.update(language="")


def test_a_welcome_leaves_the_face_in_the_video_visible(browser_available, tmp_path, monkeypatch):  # noqa: F811
    kiosk, code = services.kiosk_create(actor=None, name="Front door", location="Main entrance")
    monkeypatch.setenv("MASKNET_KIOSK_NOTICE", NOTICE)   # the live server's setting
    server = LiveServer(tmp_path / "server.log")
    address = server.url.removeprefix("http://") + "/privacy/"
    notice = NOTICE.replace("{url}", address)

    def notice_in(language: str) -> str:
        """The notice of a kiosk in ``language``: its address carries it where it is not the site's (en)."""
        return notice if language == "en" else NOTICE.replace("{url}", f"{address}?lang={language}")

    driver = chromium()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SOCKET})
        driver.get(server.url + services.pairing_path(code))
        driver.find_element("id", "pair-button").click()
        for width, height in SIZES:
            check_size(driver, server, tmp_path, width, height, notice, "en", NAMES)
        # German, the longest of the kiosk's languages ("Willkommen zurück, " is 19 characters to "Hello
        # again, "'s 13): the same checks, its long names, "already" and "not recognised" included
        Kiosk.objects.filter(pk=kiosk.pk).update(language="de")
        for width, height in SIZES:
            check_size(driver, server, tmp_path, width, height, notice_in("de"), "de", NAMES[1:])
        # the other languages' "not recognised", whose details are longer than English's (German's,
        # 120 characters to 84, put the banner over the chin's box on a wall screen)
        for language in ("pt", "es", "fr"):
            Kiosk.objects.filter(pk=kiosk.pk).update(language=language)
            for width, height in SIZES:
                check_size(driver, server, tmp_path, width, height, notice_in(language), language, ())
        Kiosk.objects.filter(pk=kiosk.pk).update(language="")
        # a welcome fitted upright (three lines) is fitted again when the screen turns (two lines):
        # it ended in "…" until the next title
        name = "Eileen Marie Collins-Youngblood van der Berg-Alexandrovna Smith Okonkwo Fi"   # 75
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1080, "height": 1920, "deviceScaleFactor": 1, "mobile": False})
        show(driver, {"state": "checked_in", "reason": None, "box": FACE_BOX, "masked": True,
                      "name": name, "time": "09:00", "progress": 1.0})
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(0.3)
        layout = driver.execute_script(LAYOUT)
        assert layout["viewport"] == [1920, 1080] and name in layout["title"], layout
        assert not layout["clipped"] and layout["font"] >= 18, ("turned", layout)
        # a browser with a small base font (10 px) on a phone: a long name's size by its length is
        # under 18 px, and fitting it must not make it larger (the floor set it to 18 px, cut short)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": False})
        driver.get(server.url + "/kiosk/")
        driver.execute_script("document.documentElement.style.fontSize = '10px'")
        layout = show(driver, {"state": "checked_in", "reason": None, "box": FACE_BOX, "masked": True,
                               "name": NAMES[-1], "time": "09:01", "progress": 1.0})
        by_length = 0.6 * 0.064 * 390    # var(--title), 6.4vmin, at the name's length's scale (0.6)
        assert layout["font"] <= by_length + 0.5, ("small base font", by_length, layout)
        check_without_camera(driver, server)
    except BaseException:
        print(f"--- server log\n{server.tail()}")
        raise
    finally:
        driver.quit()
        server.stop()
