"""The reliability tests' control process: an administrator's node of the test cluster.

Run as ``python -m tests.reliability.control`` with the cluster's environment (PostgreSQL,
Redis, shared media and index folders). It reads one JSON request a line on stdin
(``{"op": "enroll", ...}``) and answers each with one line ``@@ {"ok": true, "result": ...}`` on
stdout; everything else it prints goes to stderr (its log). Every write goes through the
product's services (``enrollment.services``, ``recognition.services``), exactly as the admin
or a management command would do it: with ``REDIS_URL`` set, rebuilds are queued for the
cluster's Celery workers after commit.

The test people are the faces of ``bench/frames.py`` (skimage's astronaut and the photos in the
``insightface`` wheel), under fixed first names so that a kiosk's greeting names the face shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

# first name -> face in bench/frames.face_crops, numbered left to right (t1#4, the man at the top
# right, is left out: his pose fails the quality gate; t1#3 is not used)
FACES = {"Alice": "astronaut#0", "Bruno": "Tom_Hanks_54745#0", "Chen": "t1#0", "Dana": "t1#2",
         "Emil": "t1#1", "Fay": "t1#5"}
FRAMES_PER_FACE = 3


class Unavailable(Exception):
    """The test faces cannot be made here (a skip, not a failure)."""


class Control:
    """The operations; state kept between requests (the face crops)."""

    def __init__(self) -> None:
        self.crops: dict = {}

    # ------------------------------------------------------------------ set-up

    def op_migrate(self) -> None:
        """Create the schema."""
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)

    def op_setup(self, *, frames_dir: str, enrolled: list[str], kiosks: int) -> dict:
        """Make the frames (files under ``frames_dir``), enrol ``enrolled`` (one photo each), build
        the first index here and pair ``kiosks`` kiosks."""
        import cv2
        import numpy as np
        from frames import face_crops, jpeg, make_frames, source_photos

        from enrollment import services
        from enrollment.recognizer import get_engine

        engine = get_engine()
        found = dict(face_crops(engine, source_photos(), limit=40))
        missing = [k for k, src in FACES.items() if src not in found]
        if missing:
            raise Unavailable(f"test faces not available ({', '.join(missing)}): pip could not fetch the insightface "
                              "wheel's photos?")
        self.crops = {k: found[src] for k, src in FACES.items()}
        out = Path(frames_dir)
        out.mkdir(parents=True, exist_ok=True)
        frames: dict[str, list[str]] = {}
        for name, frame in make_frames(list(self.crops.items()), per_crop=FRAMES_PER_FACE, seed=3):
            key, j = name.split("/")
            path = out / f"{key}-{j}.jpg"
            path.write_bytes(jpeg(frame))
            frames.setdefault(key, []).append(str(path))
        rng = np.random.default_rng(7)
        empty = np.full((480, 640, 3), 128, np.uint8) + rng.integers(0, 12, (480, 640, 3), dtype=np.uint8)
        empty = cv2.GaussianBlur(empty, (0, 0), 3)
        (out / "empty.jpg").write_bytes(jpeg(empty))
        for key in enrolled:
            self._enroll(key, schedule_rebuild=False)
        services.index_rebuild()
        return {"frames": frames, "empty": str(out / "empty.jpg"), "tokens": self.op_kiosks(n=kiosks),
                "people": self.op_people()}

    def op_kiosks(self, *, n: int, site: str = "main") -> list[str]:
        """Create and pair ``n`` kiosks; their device tokens."""
        from recognition import services
        from recognition.models import Kiosk

        start = Kiosk.objects.count()
        tokens = []
        for i in range(n):
            kiosk, code = services.kiosk_create(actor=None, name=f"Reliability kiosk {start + i}", site=site)
            tokens.append(services.kiosk_pair(code=code)[1])
        return tokens

    def op_kiosk_ids(self, *, tokens: list[str]) -> list[int]:
        """The ids of the kiosks paired with ``tokens`` (check-ins name their kiosk by id)."""
        from recognition.models import Kiosk

        return [Kiosk.objects.for_device_token(token).pk for token in tokens]

    # ------------------------------------------------------------------ enrollment

    def _enroll(self, key: str, schedule_rebuild: bool) -> int:
        from frames import jpeg

        from enrollment import services

        person = services.person_create(actor=None, full_name=f"{key} Reliability", staff_id=f"REL-{key}")
        services.photo_add(person=person, data=jpeg(self.crops[key], 92), actor=None, filename=f"{key}.jpg",
                           schedule_rebuild=schedule_rebuild)
        return person.pk

    def op_enroll(self, *, key: str) -> int:
        """Enrol a new person with one photo, as the admin does: a rebuild is queued after commit
        (for the Celery workers). Returns the person's id."""
        return self._enroll(key, schedule_rebuild=True)

    def op_add_photos(self, *, keys: list[str], per_person: int, seed: int = 1) -> list[int]:
        """Add ``per_person`` varied photos (scale, exposure, mirror) of each enrolled ``key``
        without queuing a rebuild: their templates are not computed yet, so the next rebuild has
        real work to do. Returns the photo ids."""
        import cv2
        import numpy as np
        from frames import jpeg

        from enrollment import services
        from enrollment.models import Person

        rng = np.random.default_rng(seed)
        ids = []
        for key in keys:
            person = Person.objects.get(staff_id=f"REL-{key}")
            crop = self.crops[key]
            added = 0
            while added < per_person:
                s = float(rng.uniform(0.7, 1.3))
                img = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
                img = cv2.convertScaleAbs(img, alpha=float(rng.uniform(0.8, 1.2)), beta=float(rng.uniform(-20, 20)))
                if rng.random() < 0.5:
                    img = img[:, ::-1]
                try:
                    photo = services.photo_add(person=person, data=jpeg(np.ascontiguousarray(img), 90), actor=None,
                                               schedule_rebuild=False)
                except services.PhotoRefused:
                    continue
                ids.append(photo.pk)
                added += 1
        return ids

    def op_remove_photos(self, *, ids: list[int]) -> None:
        """Remove photos (each queues a debounced rebuild, as in the admin)."""
        from enrollment import services
        from enrollment.models import FacePhoto

        for photo in FacePhoto.objects.filter(pk__in=ids):
            services.photo_remove(photo=photo, actor=None)

    def op_rebuild_request(self, *, force: bool = True) -> int:
        """Ask for a rebuild (the admin's button); returns the run's id."""
        from enrollment import services

        return services.index_rebuild_request(actor=None, reason="reliability test", force=force).pk

    def op_staff_user(self, *, username: str, password: str) -> int:
        """A staff user who may log in to the admin (the login-throttling test)."""
        from django.contrib.auth.models import User

        user = User.objects.create_user(username, password=password, is_staff=True)
        return user.pk

    # ------------------------------------------------------------------ reads

    def op_people(self) -> dict:
        """``{first name: {"id", "active", "photos"}}`` of the enrolled test people."""
        from django.db.models import Count

        from enrollment.models import Person

        return {p.full_name.split()[0]: {"id": p.pk, "active": p.active, "photos": p.n}
                for p in Person.objects.annotate(n=Count("photos"))}

    def op_runs(self) -> list[dict]:
        """Every training run, oldest first."""
        from enrollment.models import TrainingRun

        return [{"id": r.pk, "state": r.state, "progress": r.progress, "attempts": r.attempts, "message": r.message,
                 "error": r.error[:500], "index_version": r.index_version_id, "stats": r.stats,
                 "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
                 "finished_at": r.finished_at.isoformat() if r.finished_at else None}
                for r in TrainingRun.objects.order_by("id")]

    def op_versions(self) -> dict:
        """Every index version, each loaded from its file and checked against its recorded sha256,
        and the files of the index folder (``leftovers``: files no version refers to)."""
        from django.conf import settings

        from enrollment.models import IndexVersion, Person
        from recognition.engine import EngineError
        from recognition.engine.index import Index

        names = {str(p.pk): p.full_name.split()[0] for p in Person.objects.all()}
        versions = []
        for v in IndexVersion.objects.order_by("id"):
            row = {"id": v.pk, "active": v.is_active, "path": v.path, "built_by": v.built_by_id,
                   "created_at": v.created_at.isoformat(), "people": v.people_count, "loads": False,
                   "sha_ok": False, "identities": [], "error": ""}
            try:
                data = v.file.read_bytes()
                row["sha_ok"] = hashlib.sha256(data).hexdigest() == v.sha256
                index = Index.load(v.file)
                row["loads"] = len(index) == v.template_count
                row["identities"] = sorted(names.get(label, label) for label in index.identities)
            except (OSError, EngineError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            versions.append(row)
        folder = Path(settings.MASKNET_INDEX_DIR)
        known = {v["path"] for v in versions}
        files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return {"versions": versions, "files": files, "leftovers": [f for f in files if f not in known]}

    def op_checkins(self) -> list[dict]:
        """Every check-in: who (first name), which kiosk, when."""
        from recognition.models import CheckIn

        return [{"id": c.pk, "person": c.person.full_name.split()[0], "kiosk": c.kiosk_id, "at": c.at.isoformat(),
                 "index_version": c.index_version}
                for c in CheckIn.objects.select_related("person").order_by("id")]

    def op_clear_checkins(self) -> int:
        """Delete every check-in (so that the same people can check in again today)."""
        from recognition.models import CheckIn

        return CheckIn.objects.all().delete()[0]


def main() -> None:
    """Serve requests until stdin closes or ``{"op": "quit"}``."""
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr  # stray prints go to the log, never into the replies
    import django

    django.setup()
    from django.db import close_old_connections

    control = Control()
    reply_to.write("@@ " + json.dumps({"ok": True, "result": "ready"}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        close_old_connections()
        try:
            reply = {"ok": True, "result": getattr(control, f"op_{op}")(**request)}
        except Unavailable as exc:
            reply = {"ok": False, "skip": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        reply_to.write("@@ " + json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
