"""``python manage.py demo``: demo data, only when asked. Creates (or refreshes) a demo
administrator with a new random password, a demo kiosk with a fresh one-time pairing link, a few
people (one of them enrolled with a public-domain test photo when the models are installed) and a
few weeks of sample check-ins, then prints where to go."""

from __future__ import annotations

import random
import secrets
from datetime import datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, audit_user_saves
from enrollment import services as enrollment
from enrollment.models import Person
from recognition import services
from recognition.models import CheckIn, Kiosk

from ._common import checked_base_url

DEMO_USER = "demo"
DEMO_KIOSK = "Demo kiosk"
MAX_HISTORY_DAYS = 366   # a year of sample days at most (a huge number overflowed the date)
# (staff id, name, department); the first is enrolled with skimage's astronaut photo (Eileen Collins)
DEMO_PEOPLE = [
    ("DEMO-1", "Eileen Collins", "Flight"),
    ("DEMO-2", "Alex Morgan", "Engineering"),
    ("DEMO-3", "Priya Natarajan", "Operations"),
    ("DEMO-4", "Samuel Okafor", "Engineering"),
    ("DEMO-5", "Mei Lin", "Reception"),
    ("DEMO-6", "Jonas Berg", "Finance"),
]


def demo_photo() -> Path | None:
    """The enrolled demo person's photo as a file an operator can open and show a kiosk's camera:
    scikit-image's own copy of its astronaut photo (the demo said "skimage.data.astronaut", which
    names no file), or ``None`` where there is none."""
    try:
        from skimage import data
    except ImportError:
        return None
    path = Path(data.__file__).resolve().parent / "astronaut.png"
    return path if path.is_file() else None


class Command(BaseCommand):
    help = "Create demo data (admin login, kiosk, people, sample check-ins) and print the URLs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="default: %(default)s")
        parser.add_argument("--history-days", type=int, default=21,
                            help=f"days of sample check-ins (default 21, at most {MAX_HISTORY_DAYS})")
        parser.add_argument("--no-enroll", action="store_true", help="do not enrol the demo photo")
        parser.add_argument("--force", action="store_true",
                            help="also under the production settings (a staging site)")

    def handle(self, *args, base_url: str, history_days: int, no_enroll: bool, force: bool = False,
               **options) -> None:
        # fake people and check-ins, and a superuser "demo" with a printed password: never on a
        # production site by mistake
        if settings.SETTINGS_MODULE.endswith(".prod") and not force:
            raise CommandError("these are the production settings: demo data (fake people and check-ins, a "
                               "superuser 'demo' with a printed password) is refused; --force for a staging site")
        if not 0 <= history_days <= MAX_HISTORY_DAYS:
            raise CommandError(f"--history-days must be between 0 and {MAX_HISTORY_DAYS}")
        base = checked_base_url(base_url)
        people = self._people()
        enrolled = False if no_enroll else self._enroll(people[0])
        code = self._kiosk_link()   # first: the history's check-ins need the kiosk active
        self._history(people, history_days)
        # last, right before it is printed: a step above that fails must not leave the demo admin
        # with a new password nobody was told
        password = secrets.token_urlsafe(9)
        with audit_user_saves(command="demo", change="set the password and roles"):
            self._admin(password)
        out = self.stdout.write
        out("")
        out(self.style.SUCCESS("MaskNet demo data is ready."))
        out(f"  Admin:       {base}/admin/   user: {DEMO_USER}   password: {password}")
        out(f"  Attendance:  {base}/attendance/")
        out(f"  Kiosk:       open {base}{services.pairing_path(code)} once on the kiosk device (one-time link),")
        out(f"               then it shows {base}/kiosk/")
        if enrolled:
            photo = demo_photo()
            out("  Try it:      show the kiosk's camera Eileen Collins's photo (on a phone, another screen or paper),")
            out("               with or without a mask drawn on it: "
                + (str(photo) if photo else "scikit-image's astronaut photo (skimage.data.astronaut)"))
        out("")

    def _admin(self, password: str) -> None:
        users = get_user_model()
        user = users.objects.filter(username=DEMO_USER).first()
        if user is None:
            users.objects.create_superuser(DEMO_USER, "demo@example.com", password)
        else:
            user.set_password(password)
            user.is_active = user.is_staff = user.is_superuser = True
            user.save()

    def _people(self) -> list[Person]:
        people = []
        for staff_id, name, department in DEMO_PEOPLE:
            person = Person.objects.filter(staff_id=staff_id).first()
            if person is None:
                # demo people are made up: one erased while trying the admin is made again, not refused
                person = enrollment.person_create(actor=None, full_name=name, staff_id=staff_id,
                                                  department=department, enrol_erased=True)
            people.append(person)
        return people

    def _enroll(self, person: Person) -> bool:
        if person.photos.exists():
            return True
        try:
            import cv2
            from skimage import data
        except ImportError:
            self.stderr.write("scikit-image is not installed: the demo person is not enrolled")
            return False
        from django.conf import settings

        from recognition.engine.install import models_ready

        if not models_ready(settings.MASKNET_MODELS_DIR, settings.MASKNET_DESCRIPTOR):
            self.stderr.write("models are not installed (manage.py install_models): the demo person is not enrolled")
            return False
        ok, buf = cv2.imencode(".jpg", data.astronaut()[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        self.stdout.write("Enrolling the demo photo and building the index (loads the models)...")
        try:
            enrollment.photo_add(person=person, data=buf.tobytes(), actor=None, filename="astronaut.jpg",
                                 schedule_rebuild=False)
        except enrollment.PhotoRefused as exc:
            # a traceback stopped `make run DEMO=1` with the people made and no login printed: the
            # same picture enrolled for someone else by an import, a MASKNET_MAX_PIXELS below it
            self.stderr.write(f"the demo photo was refused, the demo person is not enrolled: {exc}")
            return False
        enrollment.index_rebuild_now()
        return True

    def _history(self, people: list[Person], days: int) -> None:
        """Sample check-ins on past weekdays (not today, so that the kiosk can check people in),
        recorded as one audited import: no kiosk decided them, so none is audited as its decision
        (the audit log's check-in decisions stay the kiosks' own). The people are dated as created
        at the start of the first of those days: the attendance pages count a person missing only
        from the day they were added, so people created just now made every past day "0 missing"."""
        if days <= 0 or CheckIn.objects.filter(person__in=people).exists():
            return
        kiosk = Kiosk.objects.filter(name=DEMO_KIOSK).first() or services.kiosk_create(
            actor=None, name=DEMO_KIOSK, location="Reception")[0]
        rng = random.Random(7)
        today = timezone.localdate()
        rows = []
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            if day.weekday() >= 5:
                continue
            for person in people:
                if rng.random() < 0.15:
                    continue  # away that day
                minute = rng.randint(7 * 60 + 30, 9 * 60 + 45)
                at = timezone.make_aware(datetime.combine(day, time(minute // 60, minute % 60)))
                window, local_date = services.cooldown_window(site=kiosk.site, at=at)
                rows.append(CheckIn(person=person, kiosk=kiosk, site=kiosk.site, at=at, local_date=local_date,
                                    window=window, score=round(rng.uniform(0.55, 0.9), 3), threshold=None,
                                    masked=rng.random() < 0.4, frames=4, index_version=None))
        if not rows:   # a day or two back, all of it a weekend
            return
        first = timezone.make_aware(datetime.combine(today - timedelta(days=days), time(0)))
        with transaction.atomic():
            CheckIn.objects.bulk_create(rows)
            Person.objects.filter(pk__in=[p.pk for p in people], created_at__gt=first).update(created_at=first)
            audit_record(actor=None, action=AuditEvent.Action.IMPORT, obj=kiosk,
                         summary=f"demo: {len(rows)} sample check-ins over the last {days} days recorded "
                                 "(made up by manage.py demo, not decisions of the kiosk); the demo people "
                                 f"dated as added on {first:%Y-%m-%d}")

    def _kiosk_link(self) -> str:
        kiosk = Kiosk.objects.filter(name=DEMO_KIOSK).first()
        if kiosk is None:
            return services.kiosk_create(actor=None, name=DEMO_KIOSK, location="Reception")[1]
        if not kiosk.active:  # deactivated since the last demo: the demo needs it working
            services.kiosk_update(kiosk=kiosk, actor=None, active=True)
        return services.kiosk_pairing_issue(kiosk=kiosk, actor=None)
