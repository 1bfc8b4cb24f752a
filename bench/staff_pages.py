"""How the staff pages and the API's lists behave on a large site: each admin page, attendance page,
CSV export and API list fetched through Django's test client, with its status, time and SQL queries.

The world (``--seed``, seeded random, no face engine): ``--people`` people (5 % inactive, 3 % with a
past inactive period) with two photos each (small real JPEG files in ``--media``, with cached
template rows), 20 kiosks over 3 sites, ``--checkins`` check-ins over the year before ``--until``,
``--audit`` audit events over that year (kiosk decisions, logins, list exports, changes), a few
training runs and index versions; a superuser, an Enroller and an API token. Written with
``bulk_create`` into the database ``DATABASE_URL`` names (a PostgreSQL database of one's own: its
tables are flushed by ``--seed``), under the test settings. Without ``--seed`` the world already
there is measured (seed once, then measure before and after a change).

Each page is fetched ``--rounds`` times after a first fetch (which warms caches and counts the
queries); the table gives the median and the best. ``--before FILE...`` puts the best times and queries
of earlier runs' JSON beside the best times of this one; with ``--after FILE...`` too it measures
nothing and compares those files (on a shared machine, several runs of each, best of all).

Usage: ``DATABASE_URL=postgres://.../masknet_scale python bench/staff_pages.py --seed --media /tmp/m``
(``--replace`` to seed again a database an earlier seed filled: ``--seed`` refuses one that is not empty)
then ``python bench/staff_pages.py --media /tmp/m [--rounds 3] [--before bench/results/x.json]``;
writes ``bench/results/staff_pages.json`` (``--out`` to name another). A timing, not a test: nothing
fails because the machine is slow.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from provenance import provenance, results_path, write_json  # noqa: E402

SITES = ("main", "east", "north")
DEPARTMENTS = ("Sales", "Ops", "R&D", "Care", "Finance", "Legal", "IT", "HR", "Logistics", "Kitchen", "")
PASSWORD = "bench-password"


def setup_django(media: Path) -> None:
    """The test settings on ``DATABASE_URL``, photos under ``media``, the database migrated."""
    if not os.environ.get("DATABASE_URL"):
        sys.exit("DATABASE_URL: name a database of your own (its tables are flushed by --seed)")
    os.environ.update({"DJANGO_SETTINGS_MODULE": "masknet_site.settings.test", "LOG_LEVEL": "ERROR",
                       "MASKNET_TEST_MEDIA_ROOT": str(media), "MASKNET_TEST_INDEX_DIR": str(media / "index"),
                       "MASKNET_API_TOKEN_RATE": "100000/min", "MASKNET_API_USER_RATE": "100000/min"})
    os.environ.pop("REDIS_URL", None)
    media.mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _jpeg(rng: random.Random) -> bytes:
    """A small real JPEG (64x64, a random colour and a lighter oval)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), tuple(rng.randrange(40, 120) for _ in range(3)))
    ImageDraw.Draw(image).ellipse((16, 10, 48, 54), fill=tuple(rng.randrange(150, 230) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


class _Stamped:
    """Within it, ``auto_now_add`` fields of ``models`` keep the values given (a year of history)."""

    def __init__(self, *models) -> None:
        self.fields = [f for m in models for f in m._meta.concrete_fields if getattr(f, "auto_now_add", False)]

    def __enter__(self) -> None:
        for f in self.fields:
            f.auto_now_add = False

    def __exit__(self, *exc) -> None:
        for f in self.fields:
            f.auto_now_add = True


def seed(args: argparse.Namespace, media: Path) -> dict:
    """The world of the module docstring; returns what was made."""
    import numpy as np
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone

    from api.services import api_token_create
    from audit.models import AuditEvent
    from enrollment import recognizer
    from enrollment.models import FacePhoto, IndexVersion, Person, PersonInactivePeriod, PhotoTemplates, TrainingRun
    from enrollment.roles import enrollers_group_ensure
    from enrollment.text import staff_id_key
    from recognition.models import CheckIn, Kiosk

    held = {name: model.objects.count() for name, model in (("people", Person), ("audit records", AuditEvent),
                                                          ("staff users", User))}
    if any(held.values()) and not args.replace:
        # a real site's database named by mistake: flush would delete its people and its audit log
        sys.exit(f"the database DATABASE_URL names is not empty ({', '.join(f'{n} {k}' for k, n in held.items())}); "
                 "--seed flushes every table: give --replace if it is a bench database of your own")
    call_command("flush", verbosity=0, interactive=False)
    rng = random.Random(args.random_seed)
    until = args.until
    first = until - timedelta(days=364)
    aware = timezone.make_aware

    def moment(day: date, hour: float) -> datetime:
        return aware(datetime.combine(day, datetime.min.time()) + timedelta(hours=hour))

    superuser = User.objects.create_superuser("bench", "bench@example.com", PASSWORD)
    enroller = User.objects.create_user("enroller", "enroller@example.com", PASSWORD, is_staff=True)
    enroller.groups.add(enrollers_group_ensure())
    _token, secret = api_token_create(actor=superuser, name="bench", scopes=["read"])

    kiosks = Kiosk.objects.bulk_create(
        [Kiosk(name=f"Kiosk {i:02d}", location=f"Entrance {i}", site=SITES[i % 3]) for i in range(20)])
    with _Stamped(Person, FacePhoto, PhotoTemplates, TrainingRun, IndexVersion, AuditEvent):
        people = []
        for i in range(args.people):
            created = moment(first - timedelta(days=rng.randrange(30, 900)), 9)
            p = Person(full_name=f"{rng.choice('ABCDEFGHJKLMNPRSTW')}{rng.choice('aeiou')}name Person{i:05d}",
                       staff_id=f"S-{i:05d}", department=rng.choice(DEPARTMENTS), notes="",
                       created_at=created, updated_at=created + timedelta(days=rng.randrange(0, 400)))
            p.staff_key = staff_id_key(p.staff_id)
            if i % 20 == 7:
                p.active, p.deactivated_at = False, moment(first + timedelta(days=rng.randrange(300)), 17)
            people.append(p)
        Person.objects.bulk_create(people, batch_size=1000)
        periods = [PersonInactivePeriod(person=p, deactivated_at=moment(first + timedelta(days=d), 17),
                                        reactivated_at=moment(first + timedelta(days=d + rng.randrange(3, 30)), 8))
                   for p in people if p.active and rng.random() < 0.03 for d in [rng.randrange(300)]]
        PersonInactivePeriod.objects.bulk_create(periods)

        jpegs = [_jpeg(rng) for _ in range(16)]
        photos = []
        for p in people:
            folder = media / "faces" / str(p.pk)
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(args.photos):
                data = jpegs[rng.randrange(len(jpegs))]
                (folder / f"seed{n}.jpg").write_bytes(data)
                photos.append(FacePhoto(person=p, image=f"faces/{p.pk}/seed{n}.jpg", source="upload",
                                        sha256=hashlib.sha256(data + bytes([n]) + str(p.pk).encode()).hexdigest(),
                                        width=64, height=64, box=[16, 10, 48, 54], quality_score=0.8,
                                        quality_verdict="ok", masked=n == 1, masked_prob=0.9 if n == 1 else 0.05,
                                        embedding_state="embedded", created_at=p.created_at, added_by=superuser))
        FacePhoto.objects.bulk_create(photos, batch_size=2000)
        version = recognizer.template_version()
        vectors = np.zeros((3, 128), np.float32).tobytes()
        PhotoTemplates.objects.bulk_create(
            [PhotoTemplates(photo=ph, template_version=version, dim=128, count=3, vectors=vectors,
                            kinds=bytes([0, 1, 2]), created_at=ph.created_at) for ph in photos], batch_size=2000)

        runs = TrainingRun.objects.bulk_create(
            [TrainingRun(state="succeeded", progress=100, message="done", reason="photos added", requests=1 + i % 4,
                         created_at=moment(first + timedelta(days=7 * i), 10),
                         requested_at=moment(first + timedelta(days=7 * i), 10),
                         started_at=moment(first + timedelta(days=7 * i), 10.01),
                         finished_at=moment(first + timedelta(days=7 * i), 10.1), attempts=1) for i in range(50)])
        versions = IndexVersion.objects.bulk_create(
            [IndexVersion(path=f"index-seed-{i}.npz", sha256="0" * 64, people_count=args.people,
                          photo_count=len(photos), template_count=3 * len(photos), dim=128, model_version=version,
                          metrics={"thresholds": {"unmasked": 0.4, "masked": 0.35, "source": "engine"}},
                          is_active=i == 4, built_by=runs[-5 + i], created_at=runs[-5 + i].finished_at)
             for i in range(5)])
        for run, v in zip(runs[-5:], versions, strict=True):
            TrainingRun.objects.filter(pk=run.pk).update(index_version=v)

        # check-ins: each day a share of those present, one per person per site-day
        active_ids = [p.pk for p in people if p.active]
        days = [first + timedelta(days=d) for d in range(365)]
        weight = sum(1 if day.weekday() < 5 else 0.1 for day in days)   # a tenth come in on a weekend day
        per_day = max(1, round(args.checkins / weight))
        checkins = []
        for day in days:
            n = per_day if day.weekday() < 5 else per_day // 10
            for pid in rng.sample(active_ids, min(n, len(active_ids))):
                kiosk = kiosks[rng.randrange(20)]
                manual = rng.random() < 0.01
                checkins.append(CheckIn(person_id=pid, kiosk=None if manual else kiosk, site=kiosk.site,
                                        at=moment(day, 7 + rng.random() * 3), local_date=day,
                                        window=f"{kiosk.site}|{day}", score=None if manual else 0.7,
                                        threshold=None if manual else 0.4, masked=rng.random() < 0.3, frames=4,
                                        index_version=versions[4].pk,
                                        source="manual" if manual else "kiosk",
                                        recorded_by=superuser if manual else None,
                                        reason="kiosk offline" if manual else ""))
        CheckIn.objects.bulk_create(checkins, batch_size=5000)
        n_checkins = len(checkins)
        del checkins

        # audit events: mostly kiosk decisions, then logins, list exports and changes
        kinds = [("checkin_accepted", "recognition.kiosk", 70), ("checkin_unknown", "recognition.kiosk", 12),
                 ("checkin_quality", "recognition.kiosk", 8), ("login", "auth.user", 3),
                 ("list_export", "recognition.checkin", 2), ("update", "enrollment.person", 3),
                 ("photo_add", "enrollment.person", 1), ("rebuild", "enrollment.trainingrun", 1)]
        weights = [k[2] for k in kinds]
        batch = []
        step = 365 * 86400 / args.audit
        start = moment(first, 0)
        for i in range(args.audit):
            action, object_type, _w = rng.choices(kinds, weights)[0]
            system = object_type == "recognition.kiosk"
            batch.append(AuditEvent(at=start + timedelta(seconds=i * step), actor="" if system else "bench",
                                    actor_id=None if system else superuser.pk, action=action,
                                    object_type=object_type, object_id=str(rng.randrange(1, 21) if system else
                                                                           rng.randrange(1, args.people)),
                                    summary=f"{action.replace('_', ' ')} at kiosk #{rng.randrange(1, 21)}; "
                                            f"score 0.{rng.randrange(100, 999)}"))
            if len(batch) == 10000:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:   # the planner's statistics, as autovacuum would leave them
            cursor.execute("VACUUM ANALYZE")
    (media / "token.txt").write_text(secret)
    return {"people": args.people, "inactive": Person.objects.filter(active=False).count(),
            "inactive_periods": len(periods), "photos": len(photos), "kiosks": 20, "checkins": n_checkins,
            "audit": args.audit, "training_runs": len(runs), "index_versions": len(versions)}


def pages(media: Path) -> list[tuple[str, str, str, dict]]:
    """``(name, who, url, params)`` of every page measured: who is ``super``, ``enroller`` or ``token``."""
    from django.urls import reverse

    from enrollment.models import Person
    from recognition.models import CheckIn

    person = Person.objects.filter(active=True).order_by("pk")[len(SITES)]
    checked = CheckIn.objects.order_by("-id").values_list("person_id", flat=True).first()
    last_day = CheckIn.objects.order_by("-local_date").values_list("local_date", flat=True).first()
    month_first = last_day.replace(day=1)
    year_first = last_day - timedelta(days=364)
    middle_id = CheckIn.objects.order_by("id").values_list("id", flat=True)[CheckIn.objects.count() // 2]
    a = "admin:"
    people = reverse(f"{a}enrollment_person_changelist")
    photos = reverse(f"{a}enrollment_facephoto_changelist")
    checkins = reverse(f"{a}recognition_checkin_changelist")
    audit = reverse(f"{a}audit_auditevent_changelist")
    n_people = Person.objects.count()
    found: list[tuple[str, str, str, dict]] = [
        ("admin index", "super", reverse(f"{a}index"), {}),
        ("admin index", "enroller", reverse(f"{a}index"), {}),
        ("people", "super", people, {}),
        ("people", "enroller", people, {}),
        ("people, searched", "super", people, {"q": "Person0123"}),
        ("people, searched 'name'", "super", people, {"q": "name"}),
        ("people, inactive", "super", people, {"active__exact": "0"}),
        ("people, photos < 3", "super", people, {"photos": "lt3"}),
        ("people, department", "super", people, {"department": "Sales"}),
        ("people, last page", "super", people, {"p": str((n_people - 1) // 50 + 1)}),
    ]
    for column, label in ((2, "full name"), (3, "staff id"), (4, "department"), (5, "active"), (6, "photos"),
                          (7, "updated at")):
        found.append((f"people, by {label} desc", "super", people, {"o": f"-{column}"}))
    found += [
        ("person change page", "super", reverse(f"{a}enrollment_person_change", args=[person.pk]), {}),
        ("person change page", "enroller", reverse(f"{a}enrollment_person_change", args=[person.pk]), {}),
        ("photos", "super", photos, {}),
        ("photos", "enroller", photos, {}),
        ("photos, searched", "super", photos, {"q": "Person0123"}),
        ("photos, masked", "super", photos, {"masked__exact": "1"}),
        ("photos, last page", "super", photos, {"p": str((2 * n_people - 1) // 100 + 1)}),
        ("photo change page", "super", reverse(f"{a}enrollment_facephoto_change",
                                               args=[person.photos.values_list("pk", flat=True).first()]), {}),
        ("check-ins", "super", checkins, {}),
        ("check-ins, a year", "super", checkins, {"at__year": str(last_day.year)}),
        ("check-ins, a month", "super", checkins, {"at__year": str(last_day.year), "at__month": str(last_day.month)}),
        ("check-ins, a day", "super", checkins, {"at__year": str(last_day.year), "at__month": str(last_day.month),
                                                  "at__day": str(last_day.day)}),
        ("check-ins, past 7 days", "super", checkins, {"at__gte": str(last_day - timedelta(days=6))}),
        ("check-ins, site", "super", checkins, {"site": "east"}),
        ("check-ins, kiosk", "super", checkins, {"kiosk__id__exact": "3"}),
        ("check-ins, masked", "super", checkins, {"masked__exact": "1"}),
        ("check-ins, searched", "super", checkins, {"q": "Person0123"}),
        ("check-ins, page 100", "super", checkins, {"p": "100"}),
        ("check-in change page", "super", reverse(f"{a}recognition_checkin_change",
                                                  args=[CheckIn.objects.values_list("pk", flat=True).first()]), {}),
        ("audit log", "super", audit, {}),
        ("audit log, action", "super", audit, {"action__exact": "login"}),
        ("audit log, object type", "super", audit, {"object_type": "enrollment.person"}),
        ("audit log, actor", "super", audit, {"actor": "bench"}),
        ("audit log, searched", "super", audit, {"q": "kiosk #7"}),
        ("audit log, a month", "super", audit, {"at__year": str(last_day.year), "at__month": str(last_day.month)}),
        ("audit log, page 1000", "super", audit, {"p": "1000"}),
    ]
    for column, label in ((2, "person"), (3, "kiosk"), (4, "site"), (5, "source"), (6, "mask"), (7, "score"),
                          (8, "frames"), (9, "index version")):
        found.append((f"check-ins, by {label} desc", "super", checkins, {"o": f"-{column}"}))
    for column, label in ((2, "actor"), (3, "action"), (4, "object type"), (5, "object id"), (6, "summary")):
        found.append((f"audit log, by {label} desc", "super", audit, {"o": f"-{column}"}))
    found += [
        ("kiosks", "super", reverse(f"{a}recognition_kiosk_changelist"), {}),
        ("training runs", "super", reverse(f"{a}enrollment_trainingrun_changelist"), {}),
        ("training runs", "enroller", reverse(f"{a}enrollment_trainingrun_changelist"), {}),
        ("index versions", "super", reverse(f"{a}enrollment_indexversion_changelist"), {}),
        ("users", "super", reverse(f"{a}auth_user_changelist"), {}),
        ("attendance day", "super", reverse("attendance-day"), {"date": str(last_day)}),
        ("attendance person", "super", reverse("attendance-person", args=[checked]), {}),
        ("attendance summary, month", "super", reverse("attendance-summary"),
         {"date_from": str(month_first), "date_to": str(last_day)}),
        ("attendance summary, year", "super", reverse("attendance-summary"),
         {"date_from": str(year_first), "date_to": str(last_day)}),
        ("CSV: attendance export, month", "super", reverse("attendance-export"),
         {"date_from": str(month_first), "date_to": str(last_day)}),
        ("CSV: attendance day", "super", reverse("attendance-day"), {"date": str(last_day), "format": "csv"}),
        ("CSV: summary, month", "super", reverse("attendance-summary"),
         {"date_from": str(month_first), "date_to": str(last_day), "format": "csv"}),
        ("CSV: check-ins admin, a month", "super", reverse(f"{a}recognition_checkin_export"),
         {"at__year": str(last_day.year), "at__month": str(last_day.month)}),
        ("CSV: audit admin, a month", "super", reverse(f"{a}audit_auditevent_export"),
         {"at__year": str(last_day.year), "at__month": str(last_day.month)}),
        ("API people", "token", "/api/v1/people", {}),
        ("API people, 500", "token", "/api/v1/people", {"page_size": "500"}),
        ("API people, last page of 500", "token", "/api/v1/people", {"page_size": "500",
                                                                     "page": str((n_people - 1) // 500 + 1)}),
        ("API people, search", "token", "/api/v1/people", {"search": "Person0123"}),
        ("API person's photos", "token", f"/api/v1/people/{person.pk}/photos", {}),
        ("API check-ins", "token", "/api/v1/checkins", {}),
        ("API check-ins, 500", "token", "/api/v1/checkins", {"page_size": "500"}),
        ("API check-ins, 500 after_id", "token", "/api/v1/checkins", {"page_size": "500", "after_id": str(middle_id)}),
        ("API check-ins, 500 page 300", "token", "/api/v1/checkins", {"page_size": "500", "page": "300"}),
        ("API check-ins, a month of 500", "token", "/api/v1/checkins",
         {"page_size": "500", "date_from": str(month_first), "date_to": str(last_day)}),
        ("API check-ins CSV, a month", "token", "/api/v1/checkins/csv",
         {"date_from": str(month_first), "date_to": str(last_day)}),
        ("API kiosks", "token", "/api/v1/kiosks", {}),
        ("API rebuilds", "token", "/api/v1/index/rebuilds", {}),
        ("API index", "token", "/api/v1/index", {}),
    ]
    return found


def fetch(client, url: str, params: dict, headers: dict) -> tuple[int, int, float, int]:
    """``(status, queries, seconds, bytes)`` of one GET (a streamed body read to its end)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        response = client.get(url, params, headers=headers)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seconds = time.perf_counter() - t0
    return response.status_code, len(queries), seconds, len(body)


def measure(rounds: int, media: Path, only: str | None) -> dict:
    """Each page once to warm it and count its queries, then ``rounds`` times: median and best ms."""
    from django.test import Client

    clients = {"super": Client(), "enroller": Client(), "token": Client()}
    clients["super"].login(username="bench", password=PASSWORD)
    clients["enroller"].login(username="enroller", password=PASSWORD)
    token = {"Authorization": f"Bearer {(media / 'token.txt').read_text().strip()}"}
    rows = {}
    for name, who, url, params in pages(media):
        key = f"{name} ({who})"
        if only and only.lower() not in key.lower():
            continue
        headers = token if who == "token" else {}
        status, queries, _s, size = fetch(clients[who], url, params, headers)
        times = [fetch(clients[who], url, params, headers)[2] for _ in range(rounds)]
        rows[key] = {"url": url, "params": params, "status": status, "queries": queries, "bytes": size,
                     "median_ms": round(1000 * statistics.median(times), 1), "best_ms": round(1000 * min(times), 1)}
        print(f"  {key}: {status}, {rows[key]['median_ms']} ms, {queries} queries", file=sys.stderr, flush=True)
    return rows


def best_of(files: list[Path]) -> dict:
    """The pages of several runs' JSON files as one: each page's best time over them all (the least
    disturbed by other jobs on a shared machine), its status, queries and size from the last file."""
    merged: dict = {}
    for path in files:
        for key, r in json.loads(path.read_text())["pages"].items():
            best = min(r["best_ms"], merged.get(key, r)["best_ms"])
            merged[key] = {**r, "best_ms": best}
    return merged


def table(rows: dict, before: dict | None) -> str:
    """The markdown table of ``rows`` (and of ``before``'s pages beside them: best times)."""
    if before:
        lines = ["| page (who) | status | before: best ms | queries | after: best ms | queries |",
                 "|---|---|---|---|---|---|"]
        for key, r in rows.items():
            b = before.get(key, {})
            lines.append(f"| {key} | {b.get('status', '')} → {r['status']} | {b.get('best_ms', '')} | "
                         f"{b.get('queries', '')} | {r['best_ms']} | {r['queries']} |")
    else:
        lines = ["| page (who) | status | median ms | best ms | queries | KB |", "|---|---|---|---|---|---|"]
        lines += [f"| {key} | {r['status']} | {r['median_ms']} | {r['best_ms']} | {r['queries']} | "
                  f"{r['bytes'] // 1024} |" for key, r in rows.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, required=True, help="a scratch folder for the photos (and the token)")
    parser.add_argument("--seed", action="store_true", help="flush the database and build the world first")
    parser.add_argument("--replace", action="store_true",
                        help="with --seed: flush a database that already holds people, staff or audit records "
                             "(an earlier seed's; without it --seed refuses a database that is not empty)")
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--photos", type=int, default=2, help="photos a person")
    parser.add_argument("--checkins", type=int, default=300_000, help="about this many, over a year")
    parser.add_argument("--audit", type=int, default=500_000)
    parser.add_argument("--until", type=date.fromisoformat, default=date.today() - timedelta(days=1),
                        help="the last day of check-ins")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="only the pages whose name contains this")
    parser.add_argument("--before", type=Path, nargs="+", help="earlier runs' JSON, their best times shown beside")
    parser.add_argument("--after", type=Path, nargs="+",
                        help="with --before: measure nothing, compare these runs' JSON (best times) with them")
    parser.add_argument("--out", help="results name (default staff_pages)", default="staff_pages")
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    if args.before and args.after:
        print(table(best_of(args.after), best_of(args.before)))
        return
    started = time.time()
    setup_django(args.media)
    from django.db import connection
    from frames import machine

    world = None
    if args.seed:
        t0 = time.perf_counter()
        world = seed(args, args.media)
        world["build_s"] = round(time.perf_counter() - t0, 1)
        print("seeded:", world, file=sys.stderr)
    load_before = os.getloadavg()[0]
    rows = measure(args.rounds, args.media, args.only)
    before = best_of(args.before) if args.before else None
    doc = {"args": {k: str(v) for k, v in vars(args).items()}, "database": connection.vendor, "world": world,
           "machine": machine(), "load_avg_start": round(load_before, 2), "provenance": provenance(),
           "when": datetime.now().astimezone().isoformat(timespec="minutes"), "pages": rows,
           "seconds": round(time.time() - started, 1)}
    print(f"{connection.vendor}; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(table(rows, before))
    print("wrote", write_json(results_path(args.out), doc, newline=True))


if __name__ == "__main__":
    main()
