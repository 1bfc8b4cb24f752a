"""Erasure end to end, looked at as an auditor would: a person enrolled for real (photos uploaded
through the API, the real engine, rebuilt index versions), checked in at a kiosk that keeps
snapshots and, with gallery adaptation on, a photo of their face; searched for by the API; then
erased in the admin while the kiosk's socket stays open. Afterwards every table (every text, JSON
and binary column, sessions decoded), the media, index and temporary folders, the caches and the
process's loaded index are searched for anything derived from them: their id, name and staff id,
their photos' file names, digests and bytes, their snapshots, and vectors close to their templates.
What is left must be what docs/security.md says erasure keeps ("Erasure on request")."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from enrollment import models as enrollment_models
from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion
from recognition import consumers
from recognition.models import CheckIn

from ..erasure_traces import Traces, database_traces, folder_traces
from . import faces
from .conftest import open_kiosk

pytestmark = [pytest.mark.models, pytest.mark.django_db(transaction=True)]

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
