"""The attendance page's 30-day chart in a real headless Chromium (as tests/enrollment/test_admin_browser.py,
whose logged-in browser it uses) against a live server, at a desktop's 1920 px and a phone's 390 px:
on the phone the bars scroll in a box that is a tab stop, opens on the day shown and scrolls with the
arrow keys, and nothing else on the page is wider than the screen; on the desktop, where the 30 days
fit, the box is no tab stop and the first Tab into the chart lands on a day's bar. The staff pages with
tables or long lines of their own read on both (the day's lists: in, missing, at another site; a person's
history; a new API token's page; a kiosk's new pairing link): no word broken across lines (nor a staff id
after its hyphen), nothing wider than the page, none of the day's lists wider than its column (1280 px
too; at 800 px beside the admin's navigation a list too wide scrolls in a box of its own, a tab stop); the
token and the link show whole, and their Copy buttons put them on the clipboard.
The admin's lists (check-ins, kiosks, people, photos, training runs, audit log) fit a 375 px phone
with the columns that name their rows, and show every column on a desktop.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from enrollment import services as enrollment
from enrollment.models import Person
from recognition import services
from recognition.attendance import is_working_day
from tests.enrollment.conftest import make_photo  # noqa: F401
from tests.enrollment.test_admin_browser import admin_browser  # noqa: F401
from tests.recognition.conftest import earlier_today
from tests.recognition.test_kiosk_e2e import browser_available  # noqa: F401
from tests.test_csp import until

# the chart's box, how far it scrolls, where the day shown is in it; what is wider than the page
STATE = """
const box = document.querySelector('.att-chart-scroll'), shown = box.querySelector('[aria-current]');
const b = box.getBoundingClientRect(), s = shown.getBoundingClientRect();
const page = document.documentElement.clientWidth;
const wider = [...document.querySelectorAll('#content-main *')].filter((e) => !box.contains(e))
  .filter((e) => e.getBoundingClientRect().right > page + 0.5)
  .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
return {tabindex: box.getAttribute('tabindex'), scrollLeft: box.scrollLeft, pageWidth: page, wider,
        overflows: box.scrollWidth > box.clientWidth, shownInView: s.left >= b.left - 1 && s.right <= b.right + 1};
"""


def tab_into_the_chart(driver) -> None:
    """Tab from the line above the chart (focused by script, as a reader's cursor would be there)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("const note = document.querySelector('.att-chart-note');"
                          "note.setAttribute('tabindex', '-1'); note.focus()")
    ActionChains(driver).send_keys(Keys.TAB).perform()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_chart_scrolls_with_the_keyboard_on_a_phone(admin_browser):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver, server = admin_browser
    kiosk, _code = services.kiosk_create(actor=None, name="A kiosk with a long name, at the front door")
    for i, name in enumerate(["Eileen Collins", "Tom Hanks", "Maria Konstantinopoulou-Papadopoulou"]):
        person = enrollment.person_create(actor=None, full_name=name, staff_id=f"P-{i}", department="Engineering")
        services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=i == 0, frames=4,
                                index_version=1, at=earlier_today(i))

    driver.set_window_size(390, 844)
    driver.get(server.url + "/attendance/")
    assert driver.execute_script("return innerWidth") <= 400
    state = until(lambda: (s := driver.execute_script(STATE))["scrollLeft"] > 0 and s, 5, "the chart scrolled")
    assert state["overflows"] and state["tabindex"] == "0" and state["shownInView"], state
    assert state["wider"] == [], state
    tab_into_the_chart(driver)
    assert driver.execute_script("return document.activeElement.className") == "att-chart-scroll"
    ActionChains(driver).send_keys(Keys.ARROW_LEFT * 4).perform()
    until(lambda: driver.execute_script(STATE)["scrollLeft"] < state["scrollLeft"], 5, "the arrow keys to scroll")

    driver.set_window_size(1920, 1080)
    driver.get(server.url + "/attendance/")
    state = until(lambda: (s := driver.execute_script(STATE))["tabindex"] is None and s, 5, "the box's tab stop gone")
    assert not state["overflows"] and state["shownInView"] and state["wider"] == [], state
    tab_into_the_chart(driver)
    first = driver.execute_script("return document.activeElement.querySelector('title').textContent")
    # 29 days ago: nobody enrolled yet (a day off counts nobody missing either: it says so)
    day_off = not is_working_day(timezone.localdate() - timedelta(days=29))
    assert first.endswith(": 0 checked in, not a working day" if day_off else ": 0 checked in, 0 missing"), first


# on a staff page's content (#content-main): the words that run onto two lines (split at spaces, and
# after hyphens, where a line may end; not in the chart, a closed <details>, visually hidden headings
# or a token that wraps anywhere: a pairing link, an API token);
# what reaches past the page outside a box that scrolls; whether the page scrolls sideways; whether each
# mask badge is beside its row's link (not on a line of its own under the row); whether the lists'
# column headings show
FITS = """
const split = [], page = document.documentElement.clientWidth, main = document.querySelector('#content-main');
const hidden = (el) => {
  if (getComputedStyle(el).overflowWrap === 'anywhere') return true;   // a token shown whole: wraps anywhere
  for (let e = el; e; e = e.parentElement) if (getComputedStyle(e).clipPath !== 'none') return true;
  return el.closest('svg, details:not([open]) > :not(summary)') !== null;
};
const scrolls = (el) => { for (let e = el.parentElement; e && e !== main; e = e.parentElement) {
  if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return true; } return false; };
const walk = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
for (let node; (node = walk.nextNode());) {
  if (hidden(node.parentElement)) continue;
  for (const m of node.data.matchAll(/[^\\s-]+-?/g)) {
    const r = document.createRange();
    r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
    if (new Set([...r.getClientRects()].map((q) => Math.round(q.top))).size > 1) split.push(m[0]);
  }
}
const past = [...main.querySelectorAll('*')].filter((e) => !scrolls(e) && e.getBoundingClientRect().right > page + 0.5)
  .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
const beside = [...main.querySelectorAll('.att-list .att-masked')].map((badge) =>
  badge.getBoundingClientRect().top < badge.closest('tr').querySelector('a').getBoundingClientRect().bottom);
const head = main.querySelector('.att-list thead');
// the staff ids on more than one line ("STAFF-" and "1": broken after a hyphen, which split allows)
const wrapped = [...main.querySelectorAll('.att-list td.staff')].filter((td) => { const r = document.createRange();
  r.selectNodeContents(td); return new Set([...r.getClientRects()].map((q) => Math.round(q.top))).size > 1; })
  .map((td) => td.textContent);
// how far each of the summary's figures ends from its cell's right (a list of missing days: its count)
const numbers = [...main.querySelectorAll('#summary td.n')].map((td) => {
  const r = document.createRange(); r.selectNodeContents(td.querySelector('summary') || td);
  return Math.round(td.getBoundingClientRect().right - parseFloat(getComputedStyle(td).paddingRight)
                    - Math.max(...[...r.getClientRects()].map((q) => q.right))); });
// what runs out of its list's column (under the list beside it, which hides it)
// (in a box of its own that scrolls it is hidden there, not under the next list)
const outside = [...main.querySelectorAll('.att-cols > .module')].flatMap((m) => {
  const edge = m.getBoundingClientRect().right;
  return [...m.querySelectorAll('*')].filter((e) => !scrolls(e) && e.getBoundingClientRect().right > edge + 0.5)
    .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right - edge)}`); });
// each list's scroll box: its table, whether it overflows, whether it is a tab stop
const boxes = [...main.querySelectorAll('.att-scroll')].map((b) =>
  [b.querySelector('table').id, b.scrollWidth > b.clientWidth + 1, b.getAttribute('tabindex') === '0']);
return {split, past, beside, wrapped, outside, numbers, boxes, cells: main.querySelectorAll('.att-list td').length,
        sideways: document.documentElement.scrollWidth > page,
        headers: head !== null && head.getBoundingClientRect().height > 2};
"""


# a long value shown whole (templates/admin/_copy_value.html): its text, whether it runs out of its
# box or the page, whether its Copy button shows
VALUE = """
const value = document.querySelector('.copy-value-text'), page = document.documentElement.clientWidth;
return {text: value.textContent, scrollWidth: value.scrollWidth, clientWidth: value.clientWidth,
        right: value.getBoundingClientRect().right, page, fontSize: getComputedStyle(value).fontSize,
        button: !document.querySelector('.copy-value-button').hidden};
"""

# what the clipboard holds, and put something there (the permission is granted to the page; through
# Navigator's own getter, as the test hides navigator.clipboard from the page's script)
API = "Object.getOwnPropertyDescriptor(Navigator.prototype, 'clipboard').get.call(navigator)"
CLIPBOARD = f"""
const done = arguments[arguments.length - 1];
{API}.readText().then(done, (e) => done('refused: ' + e));
"""
WRITE = f"""
const done = arguments[arguments.length - 1];
{API}.writeText(arguments[0]).then(() => done(), (e) => done('refused: ' + e));
"""


def staff_page(driver, server, page: str) -> dict:
    """Open ``page`` of the staff pages: the day (in, missing, at another site), a person's history
    (six columns), the summary of two weeks (eight), the page that shows a new API token once (made through
    the admin's form), or the page that shows a kiosk's new pairing link once (made by its button)."""
    from selenium.webdriver.common.by import By

    if page == "pairing":
        kiosk = services.kiosk_create(actor=None, name=f"Side door {driver.get_window_size()['width']}",
                                      with_link=False)[0]
        driver.get(server.url + f"/admin/recognition/kiosk/{kiosk.pk}/pairing/")
        driver.find_element(By.CSS_SELECTOR, "#content-main input[type=submit]").click()
        until(lambda: driver.find_elements(By.ID, "pairing-url"), 10, "the new pairing link's page")
    elif page == "api-token":
        driver.get(server.url + "/admin/api/apitoken/add/")
        driver.find_element(By.NAME, "name").send_keys(f"Reporting dashboard {driver.get_window_size()['width']}")
        driver.find_element(By.CSS_SELECTOR, "input[name=scopes]").click()
        driver.find_element(By.NAME, "_save").click()
        until(lambda: driver.find_elements(By.ID, "api-token-secret"), 10, "the new token's page")
    elif page == "summary":   # the last two weeks, everyone enrolled before them, the lists of missing days opened
        Person.objects.update(created_at=timezone.now() - timedelta(days=30))
        today = timezone.localdate()
        driver.get(server.url + f"/attendance/summary/?date_from={today - timedelta(days=13)}&date_to={today}")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#summary details")) == 4
        driver.execute_script("document.querySelectorAll('#summary details').forEach((d) => { d.open = true; })")
    else:
        person = Person.objects.get(staff_id="STAFF-1")
        driver.get(server.url + ("/attendance/?site=main" if page == "day" else f"/attendance/people/{person.pk}/"))
    return driver.execute_script(FITS)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", ["day", "person", "summary", "api-token", "pairing"])
def test_staff_pages_fit_a_phone_and_a_desktop(admin_browser, page):  # noqa: F811
    """…and a long value (the API token, the pairing link) shows whole on both, its Copy button
    putting it on the clipboard."""
    driver, server = admin_browser
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url, "permissions": [
        "clipboardReadWrite", "clipboardSanitizedWrite"]})
    front, _code = services.kiosk_create(actor=None, name="A kiosk with a long name, at the front door")
    other, _code = services.kiosk_create(actor=None, name="Warehouse loading bay", site="Distribution centre")
    people = [("Eileen Collins", "Engineering", front), ("Maria Konstantinopoulou-Papadopoulou", "Administration",
              front), ("Tom Hanks", "Communications", other), ("Priya Natarajan", "Infrastructure", None)]
    for i, (name, department, kiosk) in enumerate(people):
        person = enrollment.person_create(actor=None, full_name=name, staff_id=f"STAFF-{i}", department=department)
        for day in range(3 if kiosk else 0):   # Maria's history: both kiosks, with and without a mask
            services.checkin_record(person_id=person.pk, kiosk=other if i == 1 and day == 1 else kiosk, score=0.8,
                                    threshold=0.4, masked=i < 2 and day != 1, frames=4, index_version=1,
                                    at=timezone.now() - timedelta(days=day, minutes=i))
    # and a check-in by hand, its reason shown in the row (a long one wraps, nothing breaks mid-word)
    services.checkin_record_manual(person=Person.objects.get(staff_id="STAFF-1"), site="main",
                                   at=timezone.now() - timedelta(days=3), actor=None,
                                   reason="came in by the loading bay: the kiosk there was offline all morning")

    # the summary's eight columns beside the admin's navigation on a laptop too, and the day's lists, where
    # two side by side had 390 px each; at 800 px the day's lists have 446 px beside the navigation (open,
    # as it opens), where the In list's table (544 px) ran 80 px past the page, which scrolled sideways, as
    # the summary's table (1011 px) did
    for width, height in ((390, 844), (1920, 1080), *([(1280, 800)] if page in ("summary", "day") else []),
                          *([(800, 600)] if page in ("day", "summary") else [])):
        driver.set_window_size(width, height)
        state = staff_page(driver, server, page)
        assert state["split"] == [] and state["past"] == [] and not state["sideways"], (width, state)
        assert state["wrapped"] == [] and state["outside"] == [], (width, state)
        # a list's box scrolls (a tab stop, for the keyboard) only where its table is wider than the
        # content beside the navigation; on a desktop the lists wrap, one under the other, instead
        assert all(overflows == stop for _table, overflows, stop in state["boxes"]), (width, state["boxes"])
        assert not any(overflows for _table, overflows, _stop in state["boxes"]) or width == 800, (width, state)
        if page in ("api-token", "pairing"):
            copy_the_value(driver, server, page, width)
        else:
            # every cell drawn; each mask badge beside its row's first line; headings on the desktop only
            assert state["cells"] >= {"day": 3 * 6 + 3, "person": 4 * 6, "summary": 4 * 8}[page], (width, state)
            assert state["beside"] == ([] if page == "summary" else [True, True]), (width, state)   # no badges there
            assert state["headers"] == (width > 400), (width, state)
            if width > 400:   # the figures on the right, under their headings (the days missing were on the left)
                assert all(abs(gap) <= 1 for gap in state["numbers"]), (width, state["numbers"])


def copy_the_value(driver, server, page: str, width: int) -> None:
    """The page's long value shows whole, in its box and on the page (it was a one-line input that
    cut the link to half its length on a phone), and its Copy button puts it on the clipboard."""
    from selenium.webdriver.common.by import By

    value = driver.execute_script(VALUE)
    pattern = (re.escape(server.url) + r"/kiosk/pair/[\w-]{20,}/" if page == "pairing" else r"mkn_[\w-]{30,}")
    assert re.fullmatch(pattern, value["text"]), (width, value)
    assert value["scrollWidth"] <= value["clientWidth"] and value["right"] <= value["page"] + 0.5, (width, value)
    assert value["fontSize"] == "16px" and value["button"], (width, value)
    if page == "pairing":   # the QR code is still there
        assert driver.find_element(By.CSS_SELECTOR, "#pairing-qr svg").is_displayed()
    status = driver.find_element(By.CSS_SELECTOR, ".copy-value-status")
    # the Clipboard API; then, as on a site served over plain HTTP (no navigator.clipboard), execCommand
    for without_the_api in (False, True):
        if without_the_api:
            driver.execute_script("Object.defineProperty(navigator, 'clipboard', {value: undefined});"
                                  "arguments[0].textContent = ''; getSelection().removeAllRanges()", status)
        driver.execute_async_script(WRITE, "something else")
        driver.find_element(By.CSS_SELECTOR, ".copy-value-button").click()
        until(lambda: status.text == "Copied.", 5, "Copied.")
        assert driver.execute_async_script(CLIPBOARD) == value["text"], (width, without_the_api)
        assert driver.execute_script("return getSelection().toString()").strip() == value["text"], width


# an admin list's results: the table's width against its box (Django lets it scroll there); the
# headings shown; each row's cells shown (their text, whether they lie inside the box and the
# page) and whether a tap at the middle of its first link (of its first line, or of its picture)
# reaches it; whether the page scrolls sideways
RESULTS = """
const box = document.querySelector('#changelist-form .results'), page = document.documentElement.clientWidth;
const b = box.getBoundingClientRect(), shown = (e) => e.getClientRects().length > 0;
const inside = (e) => { const r = e.getBoundingClientRect();
  return r.left >= b.left - 0.5 && r.right <= Math.min(b.right, page) + 0.5; };
const rows = [...box.querySelectorAll('tbody tr')].map((tr) => {
  const link = tr.querySelector('a'); link.scrollIntoView({block: 'center'});
  const r = [link, ...link.querySelectorAll('*')].flatMap((e) => [...e.getClientRects()]).find((q) => q.width > 0);
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  const cells = [...tr.children].filter((c) => shown(c) && !c.classList.contains('action-checkbox'));
  return {cells: cells.map((c) => c.textContent.trim()), inside: cells.every(inside),
          reached: link === hit || link.contains(hit)};
});
return {scrollWidth: box.scrollWidth, clientWidth: box.clientWidth, rows,
        headings: [...box.querySelectorAll('thead th')].filter(shown)
          .map((th) => (th.querySelector('.text') || th).textContent.trim()),
        sideways: document.documentElement.scrollWidth > page};
"""

# the list's thumbnails drawn (the table's columns are as wide as they will be)
IMAGES = "return [...document.querySelectorAll('#result_list img')].every((i) => i.complete && i.naturalWidth > 0)"

# what each list shows on a phone, of the columns a desktop shows (list_display_phone)
PHONE_HEADINGS = {
    "recognition/checkin": ["Time", "Person"], "recognition/kiosk": ["", "Name", "Last seen"],
    "enrollment/person": ["", "", "Full name", "Active"], "enrollment/facephoto": ["", "", "Person"],
    "enrollment/trainingrun": ["ID", "State", "Message"], "audit/auditevent": ["At", "Summary"],
}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_admin_lists_fit_a_phone(admin_browser, make_photo):  # noqa: F811
    """On a 375 px phone each of the admin's lists shows the columns that name its rows (a check-in's
    time and person) whole, inside the screen, each row's link a tap away: Django let the tables run
    past the screen in a box that scrolls sideways (check-ins 988 px in 330, photos 1048, training
    runs 1013), so that a row scrolled to its score left its time and name behind. On a desktop every
    column shows, as before."""
    from enrollment.models import TrainingRun

    driver, server = admin_browser
    kiosk, _code = services.kiosk_create(actor=None, name="A kiosk with a long name, at the front door")
    for i, name in enumerate(["Eileen Collins", "Maria Konstantinopoulou-Papadopoulou", "Tom Hanks"]):
        person = enrollment.person_create(actor=None, full_name=name, staff_id=f"STAFF-{i}", department="Engineering")
        make_photo(person)
        services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.4, masked=i == 0, frames=4,
                                index_version=1, at=earlier_today(i))
    TrainingRun.objects.create(state="failed", message="the face models are not installed on the server")

    for width in (375, 1366):
        driver.set_window_size(width, 844)
        for page, phone in PHONE_HEADINGS.items():
            driver.get(server.url + f"/admin/{page}/")
            until(lambda: driver.execute_script(IMAGES), 10, "the thumbnails")
            state = driver.execute_script(RESULTS)
            assert not state["sideways"] and state["rows"], (width, page, state)
            assert all(row["reached"] for row in state["rows"]), (width, page, state)
            if width > 767:
                assert len(state["headings"]) > len(phone), (width, page, state)   # every column
                continue
            assert state["scrollWidth"] <= state["clientWidth"], (width, page, state)
            assert state["headings"] == phone and all(row["inside"] for row in state["rows"]), (width, page, state)
            if page == "recognition/checkin":
                first = state["rows"][0]["cells"]
                assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", first[0]) and first[1] == "Eileen Collins", state
