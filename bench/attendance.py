"""How long the attendance pages take for a site of a few thousand people: the summary of a month
(``/attendance/summary/``, its page and its CSV, and :func:`recognition.attendance.attendance_summary`
alone), and for comparison the day page of the month's last day with its 30-day chart.

The world (:func:`build_world`, seeded): ``--people`` people enrolled long before the month, most of
them in on most working days (now and then on a weekend day) at one of two sites, some masked, a few
recorded by hand; a few deactivated in the middle of the month (some in on days after), a few enrolled
during it, a few created and deactivated the same day, a few inactive with no date. Written with
``bulk_create`` into a new SQLite file (or the ``DATABASE_URL`` given, a PostgreSQL database of one's
own: its tables are flushed), under the test settings, in ``--time-zone`` (Europe/Berlin: local days
are not UTC's).

Each page is fetched ``--rounds`` times through Django's test client (a superuser); the table gives
the median and the best, the queries of one fetch, and a SHA-256 of what the page says (the summary's
HTML from its content to the table's end, the CSV's bytes): run it before and after a change to the
summary and compare the digests (the same world, the same figures). ``--profile`` prints cProfile's
top functions of one summary page.

Usage: ``python bench/attendance.py [--people 2000] [--month 2026-11] [--rounds 5] [--profile]``;
writes ``bench/results/attendance.json`` (``attendance-postgresql.json`` on PostgreSQL). A timing, not a
test: nothing fails because the machine is slow.
"""

from __future__ import annotations

import argparse
import calendar
import cProfile
import hashlib
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from provenance import provenance, results_path, write_json  # noqa: E402


def setup_django(tmp: Path, time_zone: str) -> None:
    """The test settings on a new SQLite file in ``tmp``, or on ``DATABASE_URL`` when set."""
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'attendance.sqlite3'}")
    os.environ.update({"DJANGO_SETTINGS_MODULE": "masknet_site.settings.test", "TIME_ZONE": time_zone,
                       "LOG_LEVEL": "WARNING", "MASKNET_TEST_MEDIA_ROOT": str(tmp / "media"),
                       "MASKNET_TEST_INDEX_DIR": str(tmp / "index")})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)


def build_world(n_people: int, first: date, last: date, seed: int = 0) -> dict:
    """The people and check-ins of the module docstring; returns what was made."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from enrollment.models import Person
    from enrollment.text import staff_id_key
    from recognition.models import CheckIn

    rng = random.Random(seed)
    aware = timezone.make_aware
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    long_ago = aware(datetime.combine(first - timedelta(days=90), datetime.min.time()))
    people, created = [], {}   # created_at is auto_now_add: the days wanted, set after the insert
    for i in range(n_people):
        p = Person(full_name=f"Person {i:05d} {rng.choice('ABCDEFGH')}", staff_id=f"S-{i:05d}",
                   department=rng.choice(["Sales", "Ops", "R&D", "Care", ""]), active=True)
        p.staff_key = staff_id_key(p.staff_id)
        kind = i % 100
        mid = days[rng.randrange(5, len(days) - 5)]
        made = long_ago
        if kind < 2:     # deactivated mid-month, in the morning
            p.active, p.deactivated_at = False, aware(datetime.combine(mid, datetime.min.time()) + timedelta(hours=7))
        elif kind < 4:   # enrolled mid-month, in the afternoon
            made = aware(datetime.combine(mid, datetime.min.time()) + timedelta(hours=15))
        elif kind == 4:  # created and deactivated the same day
            made = aware(datetime.combine(mid, datetime.min.time()) + timedelta(hours=9))
            p.active, p.deactivated_at = False, made + timedelta(hours=2)
        elif kind == 5 and i % 200 == 5:   # inactive since before the date was recorded
            p.active = False
        people.append(p)
        created.setdefault(made, []).append(p.staff_id)
    Person.objects.bulk_create(people, batch_size=500)
    for when, staff_ids in created.items():
        for i in range(0, len(staff_ids), 500):
            Person.objects.filter(staff_id__in=staff_ids[i:i + 500]).update(created_at=when)
    checkins = []
    for p in Person.objects.all():
        if rng.random() < 0.08:          # never in this month
            continue
        gone = p.deactivated_at
        for day in days:
            start = aware(datetime.combine(day, datetime.min.time()))
            if start + timedelta(days=1) <= p.created_at:
                continue
            if gone and start > gone and rng.random() < 0.9:   # mostly not in once deactivated
                continue
            if rng.random() > (0.9 if day.weekday() < 5 else 0.05):
                continue
            for n, site in enumerate(rng.sample(["main", "east"], rng.choice([1, 1, 1, 2]))):
                at = max(start + timedelta(hours=7, minutes=rng.randrange(180) + 300 * n), p.created_at)
                manual = rng.random() < 0.02
                checkins.append(CheckIn(person_id=p.pk, site=site, at=at, local_date=day, window=f"{site}|{day}",
                                        masked=rng.random() < 0.3, frames=4, score=None if manual else 0.8,
                                        threshold=None if manual else 0.4,
                                        source=CheckIn.Source.MANUAL if manual else CheckIn.Source.KIOSK))
    CheckIn.objects.bulk_create(checkins, batch_size=2000)
    User.objects.create_superuser("bench", "bench@example.com", "bench-password")
    return {"people": n_people, "inactive": Person.objects.filter(active=False).count(),
            "checkins": len(checkins)}


def content(html: bytes) -> bytes:
    """What the summary page says: from its content to the end of its table (no nonce, no token)."""
    start, end = html.index(b'<div id="content-main">'), html.rfind(b"</table>")
    return html[start:end if end > start else len(html)]


def fetch(client, url: str, params: dict) -> tuple[bytes, int, float]:
    """``(body, queries, seconds)`` of one GET (a streamed body read to its end)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        response = client.get(url, params)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seconds = time.perf_counter() - t0
    assert response.status_code == 200, (url, response.status_code)
    return body, len(queries), seconds


def measure(rounds: int, first: date, last: date, profile: bool) -> dict:
    """Each page ``rounds`` times, interleaved: median and best seconds, queries, digest."""
    from django.test import Client
    from django.urls import reverse

    from recognition.attendance import attendance_summary

    client = Client()
    client.login(username="bench", password="bench-password")
    period = {"date_from": first.isoformat(), "date_to": last.isoformat()}
    pages = {"summary page": (reverse("attendance-summary"), period, content),
             "summary page, site main": (reverse("attendance-summary"), {**period, "site": "main"}, content),
             "summary CSV": (reverse("attendance-summary"), {**period, "format": "csv"}, lambda b: b),
             "summary CSV, site main": (reverse("attendance-summary"), {**period, "format": "csv", "site": "main"},
                                        lambda b: b),
             "day page + 30-day chart": (reverse("attendance-day"), {"date": last.isoformat()}, None)}
    times: dict[str, list[float]] = {name: [] for name in [*pages, "attendance_summary()"]}
    found: dict[str, dict] = {}
    for name, (url, params, said) in pages.items():   # a first fetch: warm caches, the digest
        body, queries, _s = fetch(client, url, params)
        found[name] = {"queries": queries, "bytes": len(body),
                       "sha256": hashlib.sha256(said(body)).hexdigest() if said else None}
    for _ in range(rounds):
        for name, (url, params, _said) in pages.items():
            times[name].append(fetch(client, url, params)[2])
        t0 = time.perf_counter()
        rows = attendance_summary(first, last)
        times["attendance_summary()"].append(time.perf_counter() - t0)
    found["attendance_summary()"] = {"queries": 2, "rows": len(rows)}
    if profile:
        url, params, _said = pages["summary page"]
        profiler = cProfile.Profile()
        profiler.enable()
        fetch(client, url, params)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {name: {**found[name], "median_ms": round(1000 * statistics.median(t), 1),
                   "best_ms": round(1000 * min(t), 1)} for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--month", default="2026-11", help="YYYY-MM, a month before today")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--time-zone", default="Europe/Berlin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile one summary page")
    args = parser.parse_args()
    year, month = (int(x) for x in args.month.split("-"))
    first, last = date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="masknet-bench-attendance-") as tmp:
        setup_django(Path(tmp), args.time_zone)
        from django.db import connection
        from frames import machine

        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        world = build_world(args.people, first, last, args.seed)
        world["build_s"] = round(time.perf_counter() - t0, 1)
        rows = measure(args.rounds, first, last, args.profile)
        vendor = connection.vendor
    doc = {"args": vars(args), "database": vendor, "world": world, "machine": machine(),
           "load_avg_start": round(load_before, 2), "provenance": provenance(), "pages": rows,
           "seconds": round(time.time() - started, 1)}
    print(f"{vendor}, {world['people']} people ({world['inactive']} inactive), {world['checkins']} check-ins, "
          f"{first} to {last}; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print("| page | median ms | best ms | queries | digest |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median_ms']} | {r['best_ms']} | {r['queries']} | {(r.get('sha256') or '')[:12]} |")
    suffix = "" if vendor == "sqlite" else f"-{vendor}"
    print("wrote", write_json(results_path(f"attendance{suffix}"), doc, newline=True))


if __name__ == "__main__":
    main()
