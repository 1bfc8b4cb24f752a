"""Issue 7, faults: a Celery worker SIGKILLed mid-rebuild, Redis stopped and started again, the
database cut off, Daphne restarted, each while kiosks are connected. Nobody touches the kiosks:
they reconnect the way ``static/kiosk/kiosk.js`` does (see ``harness.KioskClient``).

The cluster runs with ``MASKNET_KIOSK_RECHECK_S=2`` (sockets read the database often),
``MASKNET_REBUILD_STALE_S=20`` and ``MASKNET_TASK_REDELIVERY_S=20`` (a killed worker's rebuild is
taken over within a test's patience rather than after the production defaults of 2 and 10 minutes).
"""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import CLUSTER_SETTINGS
from .harness import (
    KioskClient,
    error_causes,
    load_frames,
    log_errors,
    outcome_runs,
    print_table,
    rotation,
    showing,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.models]


def _greeted(k: KioskClient, person: str, since: float) -> list[str]:
    """Greetings of ``person`` (``checked_in`` / ``already``) whose vote ended after ``since``."""
    return [state for state, name, first in outcome_runs(k)
            if name == person and first.at >= since and state in ("checked_in", "already")]


def _start(kiosks: list[KioskClient]) -> list[KioskClient]:
    for k in kiosks:
        k.start()
    return kiosks


def _stop(kiosks: list[KioskClient]) -> None:
    for k in kiosks:
        k.stop()


def _checkins_of(c, person: str) -> list[dict]:
    return [ci for ci in c.control.call("checkins") if ci["person"] == person]


def _checked_in_and_greeted(c, kiosks: list[KioskClient], person: str, since: float) -> list[dict] | None:
    """``person``'s check-ins once the database holds one and every kiosk greeted them after
    ``since``. Both: a greeting decided just before check-ins were cleared may arrive after
    ``since`` (then no row exists yet), and a row is not yet every kiosk's greeting."""
    if not all(_greeted(k, person, since) for k in kiosks):
        return None
    return _checkins_of(c, person) or None


# How long after a new index version becomes active a kiosk may still record a check-in made with
# the old one: a socket drops its index when ``index.updated`` arrives (or at its next recheck,
# every MASKNET_KIOSK_RECHECK_S=2 s, should the broadcast be lost), and a frame already being
# analysed finishes with the gallery it began with. Check-ins are cleared only after this, so
# that the next one shows which version the kiosks serve once they have had the chance to switch.
SWITCH_SETTLE_S = float(CLUSTER_SETTINGS["MASKNET_KIOSK_RECHECK_S"]) + 2.0


def _versions_at(c) -> str:
    """When each index version was created (for an assertion's message)."""
    return ", ".join(f"v{v['id']} {v['created_at']}" for v in c.control.call("versions")["versions"])


# ----------------------------------------------------------------------------------------------
# a. a Celery worker killed in the middle of a rebuild


def test_a_worker_killed_mid_rebuild_leaves_the_index_serving_and_the_run_is_recovered(healthy):
    c = healthy
    frames, empty = load_frames(c.info)
    people = c.control.call("people")
    enrolled = sorted(k for k, p in people.items() if p["active"] and p["photos"])
    before = c.control.call("versions")
    active_before = next(v["id"] for v in before["versions"] if v["active"])
    runs_before = {r["id"] for r in c.control.call("runs")}
    web_marks = {n.name: n.mark() for n in c.web}
    c.control.call("clear_checkins")
    start = time.monotonic()
    kiosks = _start([KioskClient(node.base_url, token, rotation(frames, empty, ["Dana"], start, 0, 4.0, 2.5),
                                 name=f"{node.name}/kill") for node in c.web for token in c.take_tokens(1)])
    try:
        # real work for the rebuild: photos whose templates nobody computed yet
        added = c.control.call("add_photos", keys=enrolled, per_person=5)
        # one worker takes the rebuild: the other is stopped until the kill (then both run again)
        victim, other = c.workers
        other.stop()
        marks = {w.name: w.mark() for w in c.workers}
        run_id = c.control.call("rebuild_request", force=True)

        def embedding() -> dict | None:
            run = next(r for r in c.control.call("runs") if r["id"] == run_id)
            assert run["state"] in ("queued", "running"), run
            return run if run["state"] == "running" and run["progress"] >= 10 else None

        running = wait_until(embedding, 120, 0.3, "the rebuild to be embedding photos")
        assert "enrollment.rebuild_index[" in victim.log_since(marks[victim.name])
        starts = victim.starts
        killed_pids = victim.kill()
        t_kill = time.monotonic()
        other.start(wait=False)

        # the previous version stays active and keeps serving the kiosks
        during = c.control.call("versions")
        assert next(v["id"] for v in during["versions"] if v["active"]) == active_before
        c.control.call("clear_checkins")
        t_clear = time.monotonic()
        served_by_old = wait_until(lambda: _checked_in_and_greeted(c, kiosks, "Dana", t_clear), 60,
                                   what="the kiosks to greet Dana with the old index")

        # the supervisor starts a new worker process; the killed run's task is delivered again
        # (to it or to the other worker) and the run is recovered
        wait_until(lambda: victim.starts > starts and victim.alive(), 30, what="the supervisor to restart the worker")

        def recovered() -> list[dict] | None:
            runs = [r for r in c.control.call("runs") if r["id"] >= run_id]
            done = [r for r in runs if r["state"] == "succeeded" and r["index_version"]]
            return runs if done and all(r["state"] in ("succeeded", "failed") for r in runs) else None

        runs = wait_until(recovered, 240, 1.0, "the killed rebuild to be recovered")
        t_recovered = time.monotonic()
        after = c.control.call("versions")
        active_after = next(v for v in after["versions"] if v["active"])

        # the kiosks load the new version by themselves
        time.sleep(SWITCH_SETTLE_S)
        c.control.call("clear_checkins")
        t_clear2 = time.monotonic()
        served_by_new = wait_until(lambda: _checked_in_and_greeted(c, kiosks, "Dana", t_clear2), 60,
                                   what="the kiosks to greet Dana with the new index")
    finally:
        _stop(kiosks)
    killed_run = next(r for r in runs if r["id"] == run_id)
    succeeded_in = [w.name for w in c.workers
                    if f"'run': {active_after['built_by']}, 'state': 'succeeded'" in w.log_since(marks[w.name])]
    errors = [a for k in kiosks for a in k.answers if a.type == "error"]
    server_errors = {n.name: log_errors(n.log_since(web_marks[n.name])) for n in c.web}
    print_table("fault: Celery worker SIGKILLed mid-rebuild", [{
        "photos to embed": len(added), "killed at progress %": running["progress"],
        "killed": f"{victim.name} pids {killed_pids}",
        "killed run": f"#{run_id} {killed_run['state']} attempts={killed_run['attempts']}",
        "new runs": len([r for r in runs if r["id"] > run_id]),
        "kill -> new version active (s)": round(t_recovered - t_kill, 1),
        "active version": f"v{active_before} -> v{active_after['id']}", "completed by": ",".join(succeeded_in),
        "kiosk errors": len(errors)}])

    assert not runs_before & {r["id"] for r in runs}
    # the killed run was either retried to success or recorded as failed (and a later one succeeded)
    assert (killed_run["state"] == "succeeded" and killed_run["attempts"] >= 2) or (
        killed_run["state"] == "failed" and "interrupted" in killed_run["message"]), killed_run
    assert active_after["id"] != active_before and active_after["built_by"] >= run_id
    assert set(enrolled) <= set(active_after["identities"])
    assert succeeded_in and not {w.pid for w in c.workers} & set(killed_pids)
    # no half-written index: every version's file loads and matches its recorded digest; no stray files
    assert all(v["loads"] and v["sha_ok"] for v in after["versions"]), after["versions"]
    assert not after["leftovers"], after["leftovers"]
    # the kiosks were served by the old version during the outage, by the new one after it
    assert [ci["index_version"] for ci in served_by_old] == [active_before], served_by_old
    assert [ci["index_version"] for ci in served_by_new] == [active_after["id"]], (served_by_new, _versions_at(c))
    # an error answer's cause is in the web node's warnings (database or index file: their text)
    causes = error_causes(c, web_marks)
    assert not errors and not any(server_errors.values()), (errors[:5], server_errors, causes)


# ----------------------------------------------------------------------------------------------
# b. Redis stopped, then started again (empty), while kiosks are connected


def test_kiosks_and_workers_resume_by_themselves_after_redis_restarts(healthy):
    """Redis stopped (it comes back empty) with kiosks connected: a check-in needs only the database,
    so the open sockets stay open and a kiosk opened meanwhile opens too, and every kiosk checks
    Bruno in while Redis is down (before, every open socket was closed with 1011 within seconds and
    new ones were refused until Redis came back). After it: check-ins again, and a rebuild reaches
    every kiosk."""
    c = healthy
    frames, empty = load_frames(c.info)
    c.control.call("clear_checkins")
    web_starts = [n.starts for n in c.web]
    tracebacks_before = sum(len(n.tracebacks()) for n in c.web)
    start = time.monotonic()
    kiosks = _start([KioskClient(node.base_url, token, rotation(frames, empty, ["Bruno"], start, 0, 4.0, 2.5),
                                 name=f"{node.name}/redis-{i}", seed=i)
                     for node in c.web for i, token in enumerate(c.take_tokens(2))])
    late: list[KioskClient] = []
    try:
        wait_until(lambda: all(len(k.results_since(start)) >= 3 for k in kiosks), 60, what="the kiosks to answer")
        t_down = time.monotonic()
        c.redis.stop()
        c.control.call("clear_checkins")
        t_clear0 = time.monotonic()
        late = _start([KioskClient(node.base_url, token, rotation(frames, empty, ["Bruno"], start, 0, 4.0, 2.5),
                                   name=f"{node.name}/redis-late", seed=9)
                       for node in c.web for token in c.take_tokens(1)])
        during = wait_until(lambda: _checked_in_and_greeted(c, kiosks + late, "Bruno", t_clear0), 60,
                            what="every kiosk, also those opened meanwhile, to greet Bruno while Redis is down")
        t_up = time.monotonic()
        c.redis.start()
        every = kiosks + late
        c.control.call("clear_checkins")
        t_clear = time.monotonic()
        first = wait_until(lambda: _checked_in_and_greeted(c, every, "Bruno", t_clear), 120,
                           what="every kiosk to greet Bruno after Redis came back")
        t_resumed = time.monotonic()
        # the workers resumed too, and an index update still reaches every kiosk
        run_id = c.control.call("rebuild_request", force=True)
        run = wait_until(lambda: next((r for r in c.control.call("runs") if r["id"] == run_id
                                       and r["state"] in ("succeeded", "failed")), None), 120, 1.0,
                         "a rebuild after the Redis restart")
        time.sleep(SWITCH_SETTLE_S)
        c.control.call("clear_checkins")
        t_clear2 = time.monotonic()
        second = wait_until(lambda: _checked_in_and_greeted(c, every, "Bruno", t_clear2), 60,
                            what="every kiosk to greet Bruno with the rebuilt index")
    finally:
        _stop(kiosks + late)
        if c.redis.proc is None:   # failed during the outage: the next test needs Redis
            c.redis.start()
    every = kiosks + late
    errors = [a for k in every for a in k.answers if a.type == "error"]
    dropped = sum(1 for k in every for cl in k.closes if t_down <= cl.at <= t_resumed)
    worker_exits = [(w.name, code, tail) for w in c.workers for at, code, tail in w.exits if at >= t_down]
    print_table("fault: Redis stopped, then started again empty, with kiosks connected", [{
        "kiosks": f"{len(kiosks)}+{len(late)} opened while it was down", "Redis down (s)": round(t_up - t_down, 1),
        "sockets dropped": dropped, "refused handshakes": sum(k.connect_failures for k in every),
        "check-ins while down": len(during),
        "back -> all kiosks greet (s)": round(t_resumed - t_up, 1),
        "check-ins after": len(first), "rebuild after": run["state"],
        "errors": sorted({a.code for a in errors}),
        "daphne tracebacks": sum(len(n.tracebacks()) for n in c.web) - tracebacks_before,
        "workers restarted by the supervisor": len(worker_exits)}])
    for name, code, tail in worker_exits:   # kombu can crash a worker that holds a task when Redis goes away
        print(f"{name} exited with {code}: ...{tail[-600:]}")

    assert not [k.failure for k in every if k.failure] and not [k.stopped for k in every if k.stopped]
    assert all(n.alive() for n in c.web) and web_starts == [n.starts for n in c.web]   # Daphne never died
    assert not [a for a in errors if a.code == "internal"], errors
    # the kiosks kept working while Redis was down: no socket closed, none refused, one check-in
    assert not dropped and not any(k.connect_failures for k in every), [(k.name, k.closes) for k in every]
    assert [ci["person"] for ci in during] == ["Bruno"], during
    assert [ci["person"] for ci in first] == ["Bruno"], first
    assert run["state"] == "succeeded", run
    assert [ci["index_version"] for ci in second] == [run["index_version"]], (second, _versions_at(c))


# ----------------------------------------------------------------------------------------------
# c. the database unreachable for a while


def test_database_outage_is_answered_unavailable_and_service_resumes(healthy):
    c = healthy
    frames, empty = load_frames(c.info)
    c.control.call("clear_checkins")
    marks = {n.name: n.mark() for n in c.web}
    who: list[str | None] = [None]
    kiosks = _start([KioskClient(node.base_url, token, showing(frames, empty, lambda: who[0]),
                                 name=f"{node.name}/db-{i}", seed=i)
                     for node in c.web for i, token in enumerate(c.take_tokens(2))])
    late: list[KioskClient] = []
    try:
        start = time.monotonic()
        wait_until(lambda: all(len(k.results_since(start)) >= 2 for k in kiosks), 60, what="the kiosks to answer")
        # cut: every web node loses PostgreSQL; Chen walks up to every kiosk
        c.proxy.cut()
        t_cut = time.monotonic()
        who[0] = "Chen"
        late = _start([KioskClient(node.base_url, token, showing(frames, empty, lambda: who[0]),
                                   name=f"{node.name}/db-late", seed=9)
                       for node in c.web for token in c.take_tokens(1)])
        wait_until(lambda: all(k.errors("unavailable") for k in kiosks + late), 30,
                   what="every kiosk to be told 'unavailable'")
        time.sleep(3.0)
        during = _checkins_of(c, "Chen")          # the control process reaches PostgreSQL directly
        c.proxy.restore()
        t_restore = time.monotonic()
        wait_until(lambda: _checked_in_and_greeted(c, kiosks + late, "Chen", t_restore), 90,
                   what="every kiosk, including those opened during the outage, to greet Chen")
        t_resumed = time.monotonic()
    finally:
        _stop(kiosks + late)
    after = _checkins_of(c, "Chen")
    every = kiosks + late
    unavailable = [a for k in every for a in k.errors("unavailable")]
    internal = [a for k in every for a in k.errors("internal")]
    late_closes = [cl.code for k in late for cl in k.closes if cl.at < t_restore]
    greetings = [s for k in every for s in _greeted(k, "Chen", t_restore)]
    server_errors = {n.name: log_errors(n.log_since(marks[n.name])) for n in c.web}
    print_table("fault: PostgreSQL cut off from both web nodes", [{
        "kiosks": f"{len(kiosks)}+{len(late)} opened during the cut",
        "cut (s)": round(t_restore - t_cut, 1), "'unavailable' answers": len(unavailable),
        "late sockets closed with": sorted(set(late_closes), key=str),   # None: closed without a code
        "late reconnects during cut": sum(1 for k in late for cl in k.closes if cl.at < t_restore),
        "restore -> all greet (s)": round(t_resumed - t_restore, 1),
        "check-ins during/after": f"{len(during)}/{len(after)}",
        "greetings after": f"{greetings.count('checked_in')} checked_in, {greetings.count('already')} already",
        "internal errors": len(internal), "log errors": sum(map(len, server_errors.values()))}])

    assert all(n.alive() for n in c.web)
    assert not internal, internal[:5]
    assert not [k.failure for k in every if k.failure] and not [k.stopped for k in every if k.stopped]
    assert all(k.errors("unavailable") for k in every)
    # opened while the database was down: told "unavailable", then closed as "try again later"
    # (4013), never as a server error (1011) or a refusal (4401/4403)
    assert late_closes and not set(late_closes) & {None, 1006, 1011, 4401, 4403}, late_closes
    assert not during and [ci["person"] for ci in after] == ["Chen"], (during, after)
    assert greetings.count("checked_in") == 1, greetings
    assert not any(server_errors.values()), server_errors


# ----------------------------------------------------------------------------------------------
# d. Daphne restarted


def test_kiosks_reconnect_by_themselves_after_daphne_restarts(healthy):
    c = healthy
    node = c.web[1]
    frames, empty = load_frames(c.info)
    c.control.call("clear_checkins")
    start = time.monotonic()
    kiosks = _start([KioskClient(node.base_url, token, rotation(frames, empty, ["Alice"], start, 0, 4.0, 2.5),
                                 name=f"{node.name}/restart-{i}", seed=i)
                     for i, token in enumerate(c.take_tokens(3))])
    try:
        wait_until(lambda: all(len(k.results_since(start)) >= 3 for k in kiosks), 60, what="the kiosks to answer")
        t_down = time.monotonic()
        node.restart()
        t_up = time.monotonic()
        mark = node.mark()
        c.control.call("clear_checkins")
        t_clear = time.monotonic()
        wait_until(lambda: _checked_in_and_greeted(c, kiosks, "Alice", t_clear), 120,
                   what="every kiosk to greet Alice after Daphne came back")
        t_resumed = time.monotonic()
    finally:
        _stop(kiosks)
    after = _checkins_of(c, "Alice")
    greetings = [s for k in kiosks for s in _greeted(k, "Alice", t_clear)]
    errors = [a for k in kiosks for a in k.answers if a.type == "error"]
    print_table("fault: Daphne terminated and started again on the same port", [{
        "kiosks": len(kiosks), "Daphne down (s)": round(t_up - t_down, 1),
        "reconnect attempts": sum(k.connect_failures for k in kiosks),
        "longest backoff (s)": round(max((d for k in kiosks for d in k.backoffs), default=0), 1),
        "up -> all greet (s)": round(t_resumed - t_up, 1), "check-ins after": len(after),
        "errors": len(errors)}])

    assert node.alive() and not log_errors(node.log_since(mark))
    assert not [k.failure for k in kiosks if k.failure] and not [k.stopped for k in kiosks if k.stopped]
    assert all(k.connections >= 2 for k in kiosks)
    assert not errors, errors[:5]
    assert [ci["person"] for ci in after] == ["Alice"] and greetings.count("checked_in") == 1, (after, greetings)
    assert threading.active_count() < 200
