"""Issue 7, scale-out: two Daphne web nodes and two Celery workers sharing Redis and PostgreSQL.

Kiosks on both nodes all see the same newcomer at the same moments (6 s, then 2.5 s of nobody).
Before the newcomer is enrolled every kiosk calls them unknown; the control process then enrols
them (``person_create`` + ``photo_add``, as the admin does), one of the workers rebuilds the index,
and every kiosk on both nodes greets them by name: the new index reached both nodes. One check-in
is recorded; after the day's check-ins are cleared, the next time all kiosks see them at once
exactly one kiosk checks them in again and the others say "already".
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from .conftest import NEWCOMER, STRANGER
from .harness import KioskClient, error_causes, load_frames, log_errors, outcome_runs, print_table, rotation, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.models]

PER_NODE = 3
SHOW_S, GAP_S = 6.0, 2.5


def _greeted(k: KioskClient, since: float, until: float = float("inf")) -> list[str]:
    """The kiosk's greetings of the newcomer (``checked_in`` / ``already``) that began in the window."""
    return [state for state, name, first in outcome_runs(k)
            if name == NEWCOMER and since <= first.at < until and state in ("checked_in", "already")]


def test_an_enrollment_reaches_kiosks_on_both_nodes_and_checks_in_once(healthy):
    c = healthy
    assert len(c.web) == 2 and len(c.workers) == 2
    assert NEWCOMER not in c.control.call("people")
    c.control.call("clear_checkins")
    frames, empty = load_frames(c.info)
    # on a slower machine than the one these timings were set on, faces and gaps last longer (a vote
    # and the end of a presence take that many more seconds) and so may the waits
    slow = c.slowness(STRANGER)
    marks = {n.name: n.mark() for n in [*c.web, *c.workers]}
    runs_before = {r["id"] for r in c.control.call("runs")}
    start = time.monotonic() + 0.5
    tokens = {node.name: c.take_tokens(PER_NODE) for node in c.web}
    ours = set(c.control.call("kiosk_ids", tokens=[t for node_tokens in tokens.values() for t in node_tokens]))
    kiosks = [KioskClient(node.base_url, token, rotation(frames, empty, [NEWCOMER], start, 0, SHOW_S * slow,
                                                         GAP_S * slow),
                          name=f"{node.name}/{i}", seed=i)
              for node in c.web for i, token in enumerate(tokens[node.name])]
    for k in kiosks:
        k.start()
    try:
        # 1. nobody knows them yet, on either node
        wait_until(lambda: all(any(s == "unknown" and f.shown == NEWCOMER for s, _, f in outcome_runs(k))
                               for k in kiosks), 90 * slow, what="every kiosk to call the newcomer unknown")
        t_enrol = time.monotonic()
        person_id = c.control.call("enroll", key=NEWCOMER)
        # 2. a worker rebuilds; the new index reaches every kiosk on both nodes
        wait_until(lambda: all(_greeted(k, t_enrol) for k in kiosks), 180 * slow,
                   what="every kiosk on both nodes to greet the newcomer")
        t_reached = time.monotonic()
        first_checkins = c.control.call("checkins")
        # 3. checked in again at the same moment on both nodes: one check-in
        c.control.call("clear_checkins")
        t_clear = time.monotonic()
        wait_until(lambda: all(_greeted(k, t_clear) for k in kiosks), 60 * slow,
                   what="every kiosk to see the newcomer again after the check-ins were cleared")
    finally:
        for k in kiosks:
            k.stop()
    second_checkins = c.control.call("checkins")
    # check-ins by other tests' kiosks are not this scene's: one CI run under load found Bruno, shown
    # only by the load test before it, checked in after this test had cleared the day's check-ins (a
    # decision of that test's last moments, recorded late); reported, and left out of the assertions
    strays = [ci for ci in first_checkins + second_checkins if ci["kiosk"] not in ours]
    first_checkins = [ci for ci in first_checkins if ci["kiosk"] in ours]
    second_checkins = [ci for ci in second_checkins if ci["kiosk"] in ours]
    runs = [r for r in c.control.call("runs") if r["id"] not in runs_before]
    versions = c.control.call("versions")
    active = next(v for v in versions["versions"] if v["active"])
    built = [r for r in runs if r["state"] == "succeeded" and r["index_version"]]
    by_worker = {w.name: len(re.findall(rf"'run': {built[-1]['id']}, 'state': 'succeeded'", w.log_since(marks[w.name])))
                 for w in c.workers} if built else {}
    first_greetings = [s for k in kiosks for s in _greeted(k, t_enrol, t_clear)]
    second_greetings = [s for k in kiosks for s in _greeted(k, t_clear)]
    errors = [a for k in kiosks for a in k.answers if a.type == "error"]
    server_errors = {n.name: log_errors(n.log_since(marks[n.name])) for n in c.web}
    print_table("scale-out: 2 Daphne + 2 Celery workers, one Redis, one PostgreSQL", [{
        "kiosks": f"{PER_NODE}+{PER_NODE}", "enrol -> every kiosk greets (s)": round(t_reached - t_enrol, 1),
        "rebuilt by": ",".join(n for n, v in by_worker.items() if v) or "?",
        "check-ins 1st/2nd": f"{len(first_checkins)}/{len(second_checkins)}",
        "checked_in greetings 2nd": second_greetings.count("checked_in"),
        "already 2nd": second_greetings.count("already"),
        "errors": len(errors) + sum(map(len, server_errors.values())),
        "reconnects": sum(k.connections - 1 for k in kiosks),
        "other tests' check-ins": ", ".join(f"{ci['person']} at kiosk #{ci['kiosk']} {ci['at']}" for ci in strays)
        or "none"}])

    assert not [k.failure for k in kiosks if k.failure]
    assert all(n.alive() for n in [*c.web, *c.workers])
    assert not any(server_errors.values()), server_errors
    assert not errors, ([(a.code, a.message, a.shown) for a in errors[:10]], error_causes(c, marks))
    # one worker built the version that is now active, and it holds the newcomer
    assert len(built) == 1 and active["id"] == built[0]["index_version"], runs
    assert sorted(by_worker.values()) == [0, 1], by_worker
    assert NEWCOMER in active["identities"] and all(v["loads"] and v["sha_ok"] for v in versions["versions"])
    # kiosks on both nodes greeted them, with the new version; one check-in each time
    assert {k.name.split("/")[0] for k in kiosks} == {n.name for n in c.web}
    assert [ci["person"] for ci in first_checkins] == [NEWCOMER], first_checkins
    assert first_checkins[0]["index_version"] == active["id"], first_checkins
    assert first_greetings.count("checked_in") == 1, first_greetings
    assert [ci["person"] for ci in second_checkins] == [NEWCOMER], second_checkins
    assert second_greetings.count("checked_in") == 1 and second_greetings.count("already") >= len(kiosks) - 1, \
        second_greetings
    assert person_id


def _admin_login(base_url: str, username: str, password: str) -> int:
    """Log in to the admin as a browser does (GET the form for the CSRF token, POST it); the
    status of the POST without following redirects: 302 logged in, 200 refused, 429 locked out."""
    jar = CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    url = f"{base_url}/admin/login/"
    page = opener.open(url, timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password,
                                   "next": "/admin/"}).encode()
    try:
        return opener.open(urllib.request.Request(url, data=body, headers={"Referer": url}), timeout=30).status
    except urllib.error.HTTPError as exc:     # 302 (not followed), 429
        return exc.code


def test_a_login_lockout_on_one_web_node_holds_on_the_other(healthy):
    """Login throttling counts in the shared Redis cache: failures at one node lock the same
    username and address out at the other node too, even with the right password; other users are
    unaffected."""
    c = healthy
    a, b = c.web
    c.control.call("staff_user", username="lockout-admin", password="the-right-one")
    c.control.call("staff_user", username="other-admin", password="another-right-one")
    failures = [_admin_login(a.base_url, "lockout-admin", f"wrong-{i}") for i in range(5)]
    assert failures == [200] * 5, failures
    assert _admin_login(b.base_url, "lockout-admin", "the-right-one") == 429
    assert _admin_login(a.base_url, "lockout-admin", "the-right-one") == 429
    assert _admin_login(b.base_url, "other-admin", "another-right-one") == 302
