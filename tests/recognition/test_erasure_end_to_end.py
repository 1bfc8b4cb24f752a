"""Erasure end to end, looked at as an auditor would: a person enrolled for real (photos uploaded
through the API, the real engine, rebuilt index versions), checked in at a kiosk that keeps
snapshots and, with gallery adaptation on, a photo of their face; searched for by the API; then
erased in the admin while the kiosk's socket stays open. Afterwards every table (every text, JSON
and binary column, sessions decoded), the media, index and temporary folders, the caches and the
process's loaded index are searched for anything derived from them: their id, name and staff id,
their photos' file names, digests and bytes, their snapshots, and vectors close to their templates.
What is left must be what docs/security.md says erasure keeps ("Erasure on request")."""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from enrollment import models as enrollment_models
from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion, Person, PhotoTemplates
from recognition import consumers
from recognition.models import CheckIn

from . import faces
from .conftest import open_kiosk

pytestmark = [pytest.mark.models, pytest.mark.django_db(transaction=True)]

# cosine similarity above which a stored vector is taken for one of the person's (their own photos'
# templates score 0.6-1.0 against each other; other people's, below 0.3)
CLOSE = 0.5
# texts of the person shorter than this are not looked for inside binary data, where they occur by
# chance (a staff id "E-1" is three bytes; their name, beside it in the same rows, is looked for)
BINARY_TEXT_MIN = 8


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (any bytes read as floats: overflowing rows count as nothing)."""
    v = np.atleast_2d(np.asarray(v, np.float32)).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.nan_to_num(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))


class Traces:
    """What is known of the person before the erasure, and where it is looked for afterwards."""

    def __init__(self, person: Person) -> None:
        self.pk = person.pk
        self.texts = {person.full_name, person.staff_id}
        self.files: dict[str, bytes] = {}     # photo file name -> bytes
        self.digests: set[str] = set()
        self.snapshots: list[bytes] = []
        self.vectors = np.zeros((0, 0), np.float32)

    def collect(self) -> None:
        """Read everything the site holds of the person now (before the erasure)."""
        for photo in FacePhoto.objects.filter(person_id=self.pk):
            self.files[photo.image.name] = Path(photo.image.path).read_bytes()
            self.digests.add(photo.sha256)
        self.snapshots = [bytes(s) for s in CheckIn.objects.filter(person_id=self.pk, snapshot__isnull=False)
                          .values_list("snapshot", flat=True)]
        vectors = [t.arrays()[0] for t in PhotoTemplates.objects.filter(photo__person_id=self.pk)]
        index = IndexVersion.objects.current().load()
        vectors.append(index.vectors[index.labels == str(self.pk)])
        self.vectors = unit(np.concatenate(vectors))

    def id_pattern(self) -> re.Pattern:
        return re.compile(rf"#{self.pk}(?!\d)")

    def in_text(self, text: str, binary: bool = False) -> list[str]:
        """What of the person ``text`` names. ``binary``: text decoded from binary data (a JPEG, a
        blob, the database file), where the id ("#12") and texts shorter than
        :data:`BINARY_TEXT_MIN` turn up by chance (a JPEG of 100 KB holds "#" and a digit 30 times):
        those are looked for in text only."""
        texts = [t for t in self.texts if not binary or len(t) >= BINARY_TEXT_MIN]
        found = [t for t in texts if t.lower() in text.lower()]
        found += [f"file name {Path(n).stem}" for n in self.files if Path(n).stem in text]
        found += [f"photo digest {d[:12]}" for d in self.digests if d in text]
        if f"faces/{self.pk}/" in text:
            found.append("their media folder")
        if not binary and self.id_pattern().search(text):
            found.append(f"#{self.pk}")
        return found

    def in_bytes(self, data: bytes) -> list[str]:
        found = []
        for name, content in self.files.items():
            middle = content[len(content) // 2:len(content) // 2 + 256]
            if middle and middle in data:
                found.append(f"bytes of photo {Path(name).stem}")
        found += ["bytes of a check-in snapshot" for s in self.snapshots if s[len(s) // 2:len(s) // 2 + 256] in data]
        found += self.close_vectors(data)
        found += self.in_text(data.decode("utf-8", errors="replace"), binary=True)   # text inside binary data too
        return found

    def close_vectors(self, data: bytes | np.ndarray) -> list[str]:
        """Float32 rows of the templates' width (in any blob, at any 4-byte offset) close to theirs."""
        dim = self.vectors.shape[1]
        if isinstance(data, np.ndarray):
            arrays = [np.asarray(data, np.float32).reshape(-1, dim)] if data.size and data.size % dim == 0 else []
        else:
            arrays = []
            for offset in range(0, min(len(data), 4 * dim), 4):
                usable = (len(data) - offset) // (4 * dim) * 4 * dim
                if usable:
                    rows = np.frombuffer(data, np.float32, count=usable // 4, offset=offset).reshape(-1, dim)
                    arrays.append(np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0))
        best = max((float((unit(rows) @ self.vectors.T).max()) for rows in arrays if len(rows)), default=-1.0)
        return [f"a vector {best:.2f} close to their templates"] if best > CLOSE else []


def database_traces(traces: Traces) -> list[tuple[str, str, str]]:
    """``(table, column, what)`` for every value in the database that holds something of the person:
    every column of every table (Django's too), sessions decoded, foreign keys to a person by id."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - the schema's own names
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        what = traces.in_bytes(bytes(value))
                    elif isinstance(value, str):
                        what = traces.in_text(value)
                    elif isinstance(value, (dict, list)):   # JSON columns, as PostgreSQL's driver reads them
                        what = traces.in_text(json.dumps(value))
                    else:
                        what = []
                    found += [(table, column, w) for w in what]
    for session in Session.objects.all():
        found += [("django_session", "session_data (decoded)", w)
                  for w in traces.in_text(json.dumps(session.get_decoded(), default=str))]
    for model in apps.get_models():
        for field in model._meta.fields:
            if field.is_relation and field.related_model is Person:
                if model.objects.filter(**{field.attname: traces.pk}).exists():
                    found.append((model._meta.db_table, field.column, f"a row of person #{traces.pk}"))
    return found


def folder_traces(traces: Traces, folder: Path) -> list[tuple[str, str]]:
    """``(file, what)`` for every file under ``folder`` holding something of the person (an index
    version's arrays are read as arrays: labels and vectors)."""
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        what = traces.in_text(str(path.relative_to(folder)))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                labels = data["labels"].astype(str).tolist()
                if str(traces.pk) in labels:
                    what.append(f"index label {traces.pk}")
                what += traces.close_vectors(data["vectors"])
        else:
            what += traces.in_bytes(path.read_bytes())
        found += [(str(path.relative_to(folder)), w) for w in what]
    return found


# what docs/security.md ("Erasure on request") says erasure keeps, naming only the id: audit
# records (the erase record, the person's earlier administrative records, decision records until
# their retention). Nothing else may name or hold anything of them.
DECLARED_KEPT = {("audit_auditevent", "summary")}


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_erased_person_leaves_nothing_but_what_the_docs_declare(
        engine, astronaut_bgr, registry_photos, person, other_person, paired, superuser, client, settings,
        tmp_path, monkeypatch, no_background_rebuilds):
    settings.MEDIA_ROOT, settings.MASKNET_INDEX_DIR = tmp_path / "media", tmp_path / "index"
    settings.MASKNET_CHECKIN_SNAPSHOTS = True
    settings.MASKNET_GALLERY_ADAPT = True
    settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS = 3
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(temporary)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))   # any temporary file of the site's lands here
    monkeypatch.setattr(consumers, "LOST_AFTER_S", 0.0)
    monkeypatch.setattr(consumers, "LOST_AFTER_INTERVALS", 0.0)
    client.force_login(superuser)
    eileen, tom = person, other_person
    tom_bgr = registry_photos["Tom_Hanks_54745.png"]

    # enrolled through the API's upload (what an integration or the admin sends): her photo and the
    # same photo with a mask; Tom from his; two rebuilds, so that an older version holds her too
    uploads = [(eileen, "eileen.jpg", faces.jpeg(astronaut_bgr, 92)),
               (eileen, "eileen-masked.jpg", faces.jpeg(faces.with_mask(engine, astronaut_bgr, seed=7), 92)),
               (tom, "tom.jpg", faces.jpeg(tom_bgr, 92))]
    for who, name, data in uploads:
        answer = client.post(f"/api/v1/people/{who.pk}/photos",
                             {"image": SimpleUploadedFile(name, data, content_type="image/jpeg")})
        assert answer.status_code == 201, answer.content
    for _ in range(2):
        assert enrollment.index_rebuild(run_id=None).state == "succeeded"
    # a face search naming her (a decision record, kept until its retention)
    answer = client.post("/api/v1/identify", {"image": SimpleUploadedFile("probe.jpg", uploads[0][2])})
    assert answer.status_code == 200 and answer.json()["faces"][0]["person"]["id"] == eileen.pk, answer.content

    m, _ = faces.kiosk_view(engine, astronaut_bgr)
    her_frames = [faces.jpeg(f) for f in faces.frames(astronaut_bgr, m, 24, seed=1)]
    traces = Traces(eileen)
    leftovers: dict[str, object] = {}

    async def scenario() -> None:
        comm = await open_kiosk(paired[1])

        async def show(frames: list[bytes]) -> list[dict]:
            answers = []
            for frame in frames:
                await comm.send_to(bytes_data=frame)
                answers.append(await comm.receive_json_from(timeout=60))
            return answers

        answers = await show(her_frames[:6])
        assert "checked_in" in [a["state"] for a in answers], answers
        # gallery adaptation keeps her face (in the engine's pool, after the welcome); its rebuild
        # makes the newest version, which the open socket loads with its next frame
        await sync_to_async(wait_for)(lambda: FacePhoto.objects.filter(
            person=eileen, source=FacePhoto.Source.CHECKIN).exists())
        assert (await sync_to_async(enrollment.index_rebuild)(run_id=None)).state == "succeeded"
        answers = await show(her_frames[6:12])
        # her welcome stands while she stays in front
        assert answers[-1]["state"] == "checked_in" and answers[-1]["name"] == "Eileen Collins", answers
        await sync_to_async(traces.collect)()
        assert len(traces.files) == 3 and traces.snapshots and len(traces.vectors)
        # the search finds what is there: each kind of copy, before the erasure
        before = {(table, column) for table, column, _ in await sync_to_async(database_traces)(traces)}
        assert {("enrollment_person", "full_name"), ("enrollment_person", "staff_id"),
                ("enrollment_facephoto", "image"), ("enrollment_facephoto", "sha256"),
                ("enrollment_facephoto", "person_id"), ("enrollment_phototemplates", "vectors"),
                ("recognition_checkin", "snapshot")} <= before, before
        for folder, kinds in ((settings.MEDIA_ROOT, ("bytes of photo", "their media folder")),
                              (settings.MASKNET_INDEX_DIR, ("index label", "a vector"))):
            seen = [w for _, w in folder_traces(traces, Path(folder))]
            assert all(any(w.startswith(k) for w in seen) for k in kinds), (folder, seen)

        # erased in the admin while she still stands in front of the open kiosk
        erased = await sync_to_async(client.post)(reverse("admin:enrollment_person_erase", args=[eileen.pk]),
                                                  {"post": "yes"})
        assert erased.status_code == 302
        # the kiosk stops recognising her at once, without a restart: no welcome by name, no check-in
        leftovers["after"] = await show(her_frames[12:])
        await comm.disconnect()

    async_to_sync(scenario)()
    after = leftovers["after"]
    assert not [a for a in after if a.get("name") or a["state"] in ("checked_in", "already")], after
    assert not CheckIn.objects.filter(person_id=eileen.pk).exists()
    # the rebuild the erasure queued, as a worker runs it
    assert enrollment.index_rebuild(run_id=no_background_rebuilds[-1]).state == "succeeded"

    undeclared = [t for t in database_traces(traces) if (t[0], t[1]) not in DECLARED_KEPT]
    assert not undeclared, undeclared
    kept = [t for t in database_traces(traces) if (t[0], t[1]) in DECLARED_KEPT]
    assert all(w == f"#{eileen.pk}" for _, _, w in kept), kept   # the id alone: no name, file or vector
    assert kept, "the erase record itself names the id"
    if connection.vendor == "sqlite":
        # the database file itself: deleted rows' bytes stay in its free space unless overwritten
        raw = Path(connection.settings_dict["NAME"]).read_bytes()
        # (the id, which audit rows keep, is not looked for there: Traces.in_text)
        assert not traces.in_bytes(raw), "in the SQLite file's free space"
    for folder in (settings.MEDIA_ROOT, settings.MASKNET_INDEX_DIR):
        assert not folder_traces(traces, Path(folder)), folder
    assert not (Path(settings.MEDIA_ROOT) / "faces" / str(eileen.pk)).exists()
    assert not list(temporary.rglob("*")), "temporary files left behind"
    # Tom is still there, recognisable
    assert IndexVersion.objects.current().load().identities == {str(tom.pk)}
    # memory: the process's loaded index, the cache and the channel layer's queues
    cached = enrollment_models._index_cached
    assert cached is None or str(eileen.pk) not in cached[1].identities
    store = getattr(cache, "_cache", {})
    assert not [k for k, v in store.items() if traces.in_bytes(bytes(v) if isinstance(v, bytes) else str(v).encode())]
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    queued = [str(m) for q in getattr(layer, "channels", {}).values() for _, m in q]
    assert not [m for m in queued if traces.in_text(m)], queued
    assert django_settings.MEDIA_ROOT == settings.MEDIA_ROOT
