"""Index rebuilds: the task called directly, cached templates, atomic switch, failures, kiosks."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import events, recognizer, services
from enrollment.models import FacePhoto, IndexVersion, Person, TrainingRun
from enrollment.recognizer import N_MASKED_TEMPLATES
from enrollment.services import index as index_services
from enrollment.tasks import rebuild_index_task
from recognition.engine import EngineConfig, EngineError
from recognition.engine.gallery import AGGREGATE_MARGIN, MIN_FIT_PEOPLE
from recognition.engine.index import Index
from tests.enrollment.conftest import FAKE_DIM, in_thread, jpeg


@pytest.fixture
def layer():
    """The in-memory channel layer, emptied before and after."""
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


def listen(layer, group: str) -> str:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def drain(layer, channel: str) -> list[dict]:
    """Every message waiting on ``channel``."""

    async def receive_all() -> list[dict]:
        out = []
        while True:
            try:
                out.append(await asyncio.wait_for(layer.receive(channel), timeout=0.05))
            except TimeoutError:
                return out

    return async_to_sync(receive_all)()


def people_with_photos(make_photo, n_people=3, n_photos=2) -> list[Person]:
    people = []
    for i in range(n_people):
        p = services.person_create(actor=None, full_name=f"Person {i}", staff_id=f"P{i}")
        for _ in range(n_photos):
            make_photo(p)
        people.append(p)
    return people


def rebuild_now() -> TrainingRun:
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    result = rebuild_index_task(run.pk, force=True)  # the task, called directly
    run.refresh_from_db()
    assert result is not None and result["run"] == run.pk
    return run


def test_task_builds_and_activates_an_index(make_photo, layer):
    kiosk = listen(layer, "kiosks")
    people = people_with_photos(make_photo)
    run = rebuild_now()
    assert run.state == "succeeded" and run.progress == 100 and run.finished_at
    version = IndexVersion.objects.active().get()
    assert run.index_version == version and version.built_by == run
    # two photos each: one quality-weighted mean template per kind and person, with the margin
    assert (version.people_count, version.photo_count, version.template_count) == (3, 6, 6)
    index = version.load()
    assert index.identities == {str(p.pk) for p in people}
    assert sorted(index.kinds.tolist()) == [0, 0, 0, 1, 1, 1]
    assert index.margins is not None and ((index.margins > 0) & (index.margins <= AGGREGATE_MARGIN)).all()
    assert version.file.is_file() and version.file.parent == Path(version.file.parent)
    assert version.metrics["thresholds"]["unmasked"] >= 0.42
    assert AuditEvent.objects.filter(action="rebuild", object_id=str(run.pk)).exists()
    messages = drain(layer, kiosk)
    assert {"type": "index.updated", "version": version.pk, "people": 3, "templates": 6, "outdated": False} in messages


def test_progress_is_published_to_admin_pages(make_photo, layer):
    admin_page = listen(layer, "training")
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = rebuild_now()
    messages = drain(layer, admin_page)
    states = [m["run"]["state"] for m in messages if m["type"] == "training.progress"]
    assert states[0] == "running" and states[-1] == "succeeded"
    assert all(m["run"]["id"] == run.pk for m in messages if m["type"] == "training.progress")


def test_a_queued_rebuild_is_published_to_admin_pages_at_once(db, layer, django_capture_on_commit_callbacks):
    """A rebuild queued by a change in another tab, or by another administrator, reached an open
    page only as "running", once the debounce (MASKNET_REBUILD_DEBOUNCE_S) had passed; the new queued
    run is published when the change commits. A request joining it publishes nothing more (nothing
    the page shows changed), and nothing is published for a change rolled back."""
    admin_page = listen(layer, "training")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.index_rebuild_request(actor=None, reason="photo added")
    messages = drain(layer, admin_page)
    assert [m["type"] for m in messages] == ["training.progress"]
    assert messages[0]["run"] == events.run_payload(run) and messages[0]["run"]["state"] == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.index_rebuild_request(actor=None, reason="photo added").pk == run.pk
    assert drain(layer, admin_page) == []

    TrainingRun.objects.filter(pk=run.pk).update(state=TrainingRun.State.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            services.index_rebuild_request(actor=None, reason="photo added")
            raise RuntimeError("the change failed")
    assert drain(layer, admin_page) == []


def test_inactive_people_are_left_out(make_photo):
    a, b = people_with_photos(make_photo, n_people=2, n_photos=1)
    services.person_deactivate(person=b, actor=None)
    rebuild_now()
    assert IndexVersion.objects.current().load().identities == {str(a.pk)}


def test_a_template_that_is_not_a_unit_vector_is_left_out_not_activated(make_photo):
    """A degenerate embedding (NaN, or all zeros) would make every kiosk refuse the new index; the
    rebuild leaves that template out and activates the rest."""
    from enrollment.models import PhotoTemplates

    a, b = people_with_photos(make_photo, n_people=2, n_photos=1)
    row = PhotoTemplates.objects.get(photo__person=b)
    vectors = np.frombuffer(bytes(row.vectors), np.float32).reshape(row.count, row.dim).copy()
    vectors[0] = np.nan
    PhotoTemplates.objects.filter(pk=row.pk).update(vectors=vectors.tobytes())
    run = rebuild_now()
    assert run.state == "succeeded", run.error
    index = IndexVersion.objects.current().load()       # loads: every template is a unit vector
    assert len(index) == 2 * (1 + N_MASKED_TEMPLATES) - 1 and index.identities == {str(a.pk), str(b.pk)}
    with pytest.raises(EngineError, match="not finite unit vectors"):
        broken = Index(FAKE_DIM)
        broken.add("x", np.full((1, FAKE_DIM), np.nan, np.float32))
        broken.save(Path(django_settings.MASKNET_INDEX_DIR) / "broken.npz")


def test_cached_templates_are_reused_and_versions_switch(make_photo):
    people_with_photos(make_photo, n_people=2)
    first = rebuild_now()
    second = rebuild_now()
    assert second.stats["embedded_new"] == 0
    assert IndexVersion.objects.active().count() == 1
    assert IndexVersion.objects.current() == second.index_version != first.index_version
    assert first.index_version.file.is_file()  # kept for rollback (MASKNET_INDEX_KEEP)


def test_versions_read_before_a_photo_was_removed_are_not_kept(make_photo, settings,
                                                               django_capture_on_commit_callbacks):
    """A removed photo's templates live on in the versions built from it (in its person's mean):
    the switch after the removal deletes them, however many MASKNET_INDEX_KEEP would keep."""
    settings.MASKNET_INDEX_KEEP = 2
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=2)
    before = [rebuild_now().index_version for _ in range(2)]
    services.photo_remove(photo=person.photos.first(), actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        after = rebuild_now().index_version
    assert list(IndexVersion.objects.all()) == [after] and after.photo_count == 1
    assert not any(v.file.exists() for v in before)
    with django_capture_on_commit_callbacks(execute=True):
        later = rebuild_now().index_version      # nothing removed since: kept again
    assert set(IndexVersion.objects.all()) == {after, later}


def test_old_versions_are_pruned(make_photo, settings):
    settings.MASKNET_INDEX_KEEP = 1
    people_with_photos(make_photo, n_people=1, n_photos=1)
    runs = [rebuild_now() for _ in range(4)]
    # files of pruned versions go after commit; inside the test transaction the rows are gone already
    assert IndexVersion.objects.count() == 2
    assert IndexVersion.objects.current() == runs[-1].index_version


def test_each_pruned_version_is_on_record(make_photo, settings):
    """The audit log promises every change: index versions (everyone's templates, a fallback for
    an operator) were deleted by the switch without a record, beyond MASKNET_INDEX_KEEP or for
    holding a removed photo's templates."""
    settings.MASKNET_INDEX_KEEP = 1
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=2)
    runs = [rebuild_now() for _ in range(3)]
    deleted = AuditEvent.objects.filter(action="delete", object_type="enrollment.indexversion")
    (first,) = deleted
    assert (first.actor, first.object_id) == ("system", str(runs[0].index_version_id))
    assert first.summary == (f"deleted index version #{runs[0].index_version_id} at the switch of run "
                             f"#{runs[2].pk}: older than the 1 inactive version kept (MASKNET_INDEX_KEEP)")
    services.photo_remove(photo=person.photos.first(), actor=None)
    last = rebuild_now()
    assert list(IndexVersion.objects.all()) == [last.index_version]
    removed = deleted.get(object_id=str(runs[2].index_version_id))
    assert removed.summary.endswith(": read before a photo was removed (it holds the photo's templates)")
    assert deleted.all().count() == 3   # every version but the last one, each once


def test_files_left_by_killed_rebuilds_are_deleted_once_an_hour_old(make_photo, settings,
                                                                    django_capture_on_commit_callbacks):
    people_with_photos(make_photo, n_people=1, n_photos=1)
    folder = Path(settings.MASKNET_INDEX_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    # a process killed while writing (Index.save's temporary file) or before its row was committed
    old_tmp, new_tmp, orphan = folder / "tmpkilled1.tmp", folder / "tmpwriting.tmp", folder / "index-000099-dead.npz"
    for f in (old_tmp, new_tmp, orphan):
        f.write_bytes(b"half-written")
    for f in (old_tmp, orphan):
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    with django_capture_on_commit_callbacks(execute=True):
        run = rebuild_now()
    assert not old_tmp.exists() and not orphan.exists()
    assert new_tmp.exists() and run.index_version.file.is_file()   # may still be being written: kept
    new_tmp.unlink()


@pytest.mark.django_db(transaction=True)  # the switch really commits: its callbacks run inside it
def test_an_old_file_that_cannot_be_deleted_does_not_take_the_new_version_down(make_photo):
    """Old files are deleted when the switch commits; one that cannot be (here a folder named like a
    temporary file) is left and logged, and the version just activated keeps its file."""
    people_with_photos(make_photo, n_people=2, n_photos=1)
    stuck = Path(django_settings.MASKNET_INDEX_DIR) / "stuck.tmp"
    stuck.mkdir(parents=True)
    os.utime(stuck, (time.time() - 7200, time.time() - 7200))
    run = rebuild_now()
    assert run.state == "succeeded", run.error
    assert IndexVersion.objects.current().file.exists() and stuck.is_dir()


@pytest.mark.parametrize("where", ["assemble", "save", "record"])
def test_a_failed_rebuild_leaves_the_previous_version_serving(make_photo, monkeypatch, where):
    """"record": the run's success record fails after the switch was made; the switch, in the same
    transaction, goes back with it (it committed alone: an active index whose run said it failed)."""
    people_with_photos(make_photo, n_people=2)
    good = rebuild_now().index_version
    before = good.file.read_bytes()
    files_before = set(Path(good.file.parent).iterdir())
    person = Person.objects.first()
    make_photo(person)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    if where == "assemble":
        monkeypatch.setattr(index_services, "_index_assemble", boom)
    elif where == "save":
        monkeypatch.setattr(Index, "save", boom)
    else:
        audit = index_services.audit_record
        monkeypatch.setattr(index_services, "audit_record",
                            lambda **kw: boom() if " active: " in kw.get("summary", "") else audit(**kw))
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    with pytest.raises(RuntimeError):
        rebuild_index_task(run.pk, force=True)
    run.refresh_from_db()
    assert run.state == "failed" and "disk on fire" in run.error
    failed = AuditEvent.objects.get(action="rebuild", object_id=str(run.pk), summary__contains="failed")
    assert "RuntimeError" in failed.summary and "disk on fire" not in failed.summary
    assert IndexVersion.objects.current() == good and IndexVersion.objects.count() == 1
    assert good.file.read_bytes() == before and set(Path(good.file.parent).iterdir()) == files_before
    # and it can be re-run once the cause is gone
    monkeypatch.undo()
    again = rebuild_now()
    assert again.state == "succeeded" and IndexVersion.objects.current() == again.index_version


@pytest.mark.parametrize("cause", ["index folder", "models"])
def test_a_failed_rebuild_tells_staff_no_server_paths_the_log_keeps_them(make_photo, monkeypatch, caplog, settings,
                                                                          cause):
    """The run's ``error`` is read by Enrollers (the admin's status bar and runs list, the progress
    socket) and by read-scope API tokens: it said "PermissionError: [Errno 13] Permission denied:
    '/srv/masknet/var/index/index-...npz'" or "ModelsMissing: the models in /opt/... are missing".
    It says what failed without the server's paths; the worker's log keeps the whole error."""
    from api.serializers import TrainingRunSerializer
    from enrollment.events import run_payload
    from recognition.engine.errors import ModelsMissing

    people_with_photos(make_photo, n_people=2)
    if cause == "index folder":
        secret = str(Path(django_settings.MASKNET_INDEX_DIR) / "index-000001-abcdef.npz")

        def fail(*args, **kwargs):
            raise PermissionError(13, "Permission denied", secret)

        monkeypatch.setattr(Index, "save", fail)
    else:
        secret = str(Path(django_settings.MASKNET_MODELS_DIR) / "masknet releases" / "7")
        settings.MASKNET_MODELS_DIR = secret   # a folder with a space in its name: not cut at the space
        FacePhoto.objects.update(embedding_state="pending")
        from enrollment.models import PhotoTemplates
        PhotoTemplates.objects.all().delete()

        def fail():
            raise ModelsMissing(f"the models in {secret} are missing or were installed by another release; "
                                "run `python manage.py install_models`")

        monkeypatch.setattr(recognizer, "get_engine", fail)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    with caplog.at_level("WARNING", logger="enrollment"), pytest.raises((PermissionError, ModelsMissing)):
        rebuild_index_task(run.pk, force=True)
    run.refresh_from_db()
    assert run.state == "failed"
    expected = {"index folder": "PermissionError: [Errno 13] Permission denied: [server path]",
                "models": "ModelsMissing: the models in [server path] are missing"}[cause]
    assert run.error.startswith(expected) and "server's log" in run.error, run.error
    for shown in (run.error, run_payload(run)["error"], TrainingRunSerializer(run).data["error"]):
        assert secret not in shown and "releases" not in shown and str(django_settings.MASKNET_INDEX_DIR) not in shown
    assert secret in caplog.text   # the operator still finds which file


def test_a_killed_run_is_taken_over(make_photo):
    people_with_photos(make_photo, n_people=1, n_photos=1)
    killed = TrainingRun.objects.create(state="running", started_at=timezone.now() - timedelta(minutes=10),
                                        heartbeat_at=timezone.now() - timedelta(minutes=9))
    run = rebuild_now()
    killed.refresh_from_db()
    assert run.state == "succeeded" and killed.state == "failed" and "interrupted" in killed.message
    # naming the run that did its work (a helper's review: an admin's rebuild read as failed)
    assert killed.message == f"interrupted: taken over by run #{run.pk}" and f"run #{run.pk}" in killed.error
    assert AuditEvent.objects.filter(action="rebuild", object_id=str(killed.pk),
                                     summary__contains="interrupted").exists()


def test_a_copy_of_a_running_run_waits_then_takes_it_over_once_it_stops_beating(make_photo, settings):
    """The task of a worker that died is delivered again (reject_on_worker_lost, the broker's
    visibility timeout), maybe while the run's heartbeat still looks fresh: that copy must wait,
    not be dropped as a duplicate, and take the run over once the heartbeat is stale."""
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(state="running", started_at=now, heartbeat_at=now, attempts=1)
    with pytest.raises(services.RebuildBusy) as busy:
        services.index_rebuild(run_id=run.pk, force=True)
    assert busy.value.run_id == run.pk and 1 <= busy.value.retry_after <= settings.MASKNET_REBUILD_STALE_S + 1
    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=now - timedelta(seconds=settings.MASKNET_REBUILD_STALE_S + 1))
    again = services.index_rebuild(run_id=run.pk, force=True)
    assert again.pk == run.pk and again.state == "succeeded" and again.attempts == 2
    assert IndexVersion.objects.current() == again.index_version


def test_a_run_taken_over_while_it_stalled_stops_without_switching(make_photo, monkeypatch):
    """A worker that stalled past MASKNET_REBUILD_STALE_S and was taken over (attempts moved on)
    stops at its next heartbeat: it neither switches an index nor records the run failed."""
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    real = index_services._index_assemble

    def taken_over_meanwhile(**kwargs):
        TrainingRun.objects.filter(pk=run.pk).update(attempts=2, heartbeat_at=timezone.now())
        return real(**kwargs)

    monkeypatch.setattr(index_services, "_index_assemble", taken_over_meanwhile)
    assert services.index_rebuild(run_id=run.pk, force=True) is None
    run.refresh_from_db()
    assert run.state == "running" and run.attempts == 2 and not IndexVersion.objects.exists()


def test_a_taken_over_run_is_neither_failed_nor_reported_by_the_stalled_copy(make_photo, monkeypatch):
    """The stalled copy's own failure does not fail the new owner's run, and ``rebuild_index --wait``
    whose run was taken over says so instead of crashing on a missing summary."""
    from django.core.management import CommandError, call_command

    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    claimed = index_services._run_claim(run_id=run.pk, force=True)
    TrainingRun.objects.filter(pk=run.pk).update(attempts=claimed.attempts + 1)     # taken over
    index_services._run_fail(claimed, RuntimeError("the stalled copy's error"))
    run.refresh_from_db()
    assert run.state == "running" and not run.error
    monkeypatch.setattr(index_services, "index_rebuild", lambda **kwargs: None)
    from enrollment.management.commands import rebuild_index

    # the run is running with a fresh heartbeat: the command would wait for it (to its staleness, 2 min)
    monkeypatch.setattr(rebuild_index, "_wait_for_other_rebuilds", lambda stdout, deadline: deadline)
    with pytest.raises(CommandError, match="taken over"):
        call_command("rebuild_index", "--wait")


def test_a_retry_finds_its_run_succeeded_meanwhile_and_does_nothing(make_photo):
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = rebuild_now()
    assert services.index_rebuild(run_id=run.pk, force=True, new_if_finished=True) is None
    assert TrainingRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_does_not_wait_on_a_run_held_elsewhere(make_photo):
    """A queued run held by another transaction (an admin save joining it) makes a claim answer
    "busy" at once: waiting there held up the running rebuild's heartbeat until it looked dead."""
    import threading

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    held, mine = (TrainingRun.objects.create(reason=r) for r in ("held", "mine"))
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            list(TrainingRun.objects.select_for_update().filter(pk=held.pk))
            locked.set()
            release.wait(10)

    holder = in_thread([], hold)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(services.RebuildBusy) as busy:
            index_services._run_claim(run_id=mine.pk, force=True)
        assert time.monotonic() - started < 2 and busy.value.locked
        # a rebuild started by hand (rebuild_index --wait, demo) waits the moment out instead of failing
        threading.Timer(1.5, release.set).start()
        run = services.index_rebuild_now(patience_s=10)
        assert run.state == "succeeded"
    finally:
        release.set()
        holder.join(10)


def test_a_run_whose_worker_stopped_three_times_is_not_taken_over_again(make_photo, settings, layer,
                                                                        django_capture_on_commit_callbacks):
    admin_page = listen(layer, "training")
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    stale = timezone.now() - timedelta(seconds=settings.MASKNET_REBUILD_STALE_S + 1)
    TrainingRun.objects.filter(pk=run.pk).update(state="running", started_at=stale, heartbeat_at=stale,
                                                 attempts=services.MAX_ATTEMPTS)
    drain(layer, admin_page)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.index_rebuild(run_id=run.pk, force=True) is None
    run.refresh_from_db()
    assert run.state == "failed" and "stopped 3 times" in run.error and not IndexVersion.objects.exists()
    # an admin page that showed it running hears that it ended
    told = [m["run"] for m in drain(layer, admin_page) if m["type"] == "training.progress"]
    assert [(r["id"], r["state"]) for r in told] == [(run.pk, "failed")]
    assert services.index_rebuild().state == "succeeded"       # a new run is not held back by it


def test_an_outdated_index_request_from_an_older_node_changes_nothing(make_photo):
    """During a rolling upgrade a kiosk node still running the earlier version finds the new index
    "outdated" and asks for a rebuild: a worker for which it is current does nothing (another
    version would make that node ask again, forever). A change folded into that run is built."""
    people_with_photos(make_photo)
    first = rebuild_now()
    asked = services.index_rebuild_request(actor=None, reason=services.OUTDATED_REASON, force=True)
    services.index_rebuild(run_id=asked.pk, force=True)
    asked.refresh_from_db()
    assert asked.state == "succeeded" and "nothing to do" in asked.message
    assert AuditEvent.objects.filter(action="rebuild", object_id=str(asked.pk),
                                     summary__contains="nothing to do").exists()
    assert IndexVersion.objects.current() == first.index_version
    joined = services.index_rebuild_request(actor=None, reason=services.OUTDATED_REASON)
    services.index_rebuild_request(actor=None, reason="photo added")      # joins the queued run
    services.index_rebuild(run_id=joined.pk, force=True)
    joined.refresh_from_db()
    assert joined.state == "succeeded" and IndexVersion.objects.current() == joined.index_version != first.index_version


def test_an_upgrade_request_taken_by_a_worker_not_yet_upgraded_is_asked_again(make_photo, monkeypatch):
    """The new web node asks once for the outdated index; a worker still on the earlier version takes
    the run, finds the index current for itself ("nothing to do"), and nothing asked again: kiosks
    said "updating" for good. A minute after such a run the node asks again."""
    from datetime import timedelta

    from enrollment import recognizer

    people_with_photos(make_photo)
    first = rebuild_now()
    old = first.index_version.model_version
    monkeypatch.setattr(recognizer, "template_version", lambda **kw: "the-new-version")   # the new node
    asked = services.index_refresh_if_outdated()
    assert asked is not None and services.index_refresh_if_outdated() is None     # asked once
    monkeypatch.setattr(recognizer, "template_version", lambda **kw: old)           # the old worker
    services.index_rebuild(run_id=asked.pk, force=True)
    asked.refresh_from_db()
    assert asked.state == "succeeded" and "nothing to do" in asked.message and asked.index_version is None
    monkeypatch.setattr(recognizer, "template_version", lambda **kw: "the-new-version")
    assert services.index_refresh_if_outdated() is None          # not at once: at most once a minute
    TrainingRun.objects.filter(pk=asked.pk).update(finished_at=timezone.now() - timedelta(minutes=2))
    again = services.index_refresh_if_outdated()
    assert again is not None and again.pk != asked.pk and again.reason == services.OUTDATED_REASON
    # a few times only: a node still on the earlier release sees the new index as outdated too, and
    # would otherwise ask every minute for as long as it runs
    for _ in range(services.OUTDATED_ASKS):
        run = services.index_refresh_if_outdated() or TrainingRun.objects.latest("id")
        TrainingRun.objects.filter(pk=run.pk).update(state="succeeded", index_version=None,
                                                   finished_at=timezone.now() - timedelta(minutes=2))
    assert services.index_refresh_if_outdated() is None


def test_a_live_run_makes_others_wait(make_photo):
    people_with_photos(make_photo, n_people=1, n_photos=1)
    TrainingRun.objects.create(state="running", started_at=timezone.now(), heartbeat_at=timezone.now())
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    with pytest.raises(services.RebuildBusy):
        services.index_rebuild(run_id=run.pk, force=True)
    run.refresh_from_db()
    assert run.state == "queued"


def test_a_database_blip_before_the_claim_retries_the_same_run(make_photo, monkeypatch):
    """The retry after a lost connection takes up the run it carried while that one is still queued
    (a new run each time left the first one queued for good)."""
    from django.db import OperationalError

    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    real, calls = index_services._engine_warm, []

    def blip():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("connection refused")
        return real()

    monkeypatch.setattr(index_services, "_engine_warm", blip)
    assert rebuild_index_task.apply(args=(run.pk,), kwargs={"force": True}).state == "SUCCESS"
    run.refresh_from_db()
    assert run.state == "succeeded" and TrainingRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the threads' connections see the runs
def test_two_claims_at_once_start_one_rebuild(make_photo, monkeypatch):
    """Two queued runs claimed at the same moment by two workers: one starts, the other is told
    another rebuild runs (each used to lock only its own run, and both started)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    runs = [TrainingRun.objects.create(reason=f"r{i}") for i in range(2)]
    real_save = TrainingRun.save

    def slow_save(self, *args, **kwargs):
        if kwargs.get("update_fields") and "heartbeat_at" in kwargs["update_fields"]:
            time.sleep(0.5)          # a claim between its check and its write
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(TrainingRun, "save", slow_save)
    outcomes: list[object] = []

    def claim(run):
        try:
            outcomes.append(index_services._run_claim(run_id=run.pk, force=True))
        except services.RebuildBusy as exc:
            outcomes.append(exc)

    threads = [in_thread(outcomes, lambda r=r: claim(r)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(type(o).__name__ for o in outcomes) == ["RebuildBusy", "TrainingRun"], outcomes
    assert TrainingRun.objects.running().count() == 1


def test_rebuild_index_wait_while_another_runs_leaves_no_queued_run(make_photo, monkeypatch):
    """``rebuild_index --wait`` refused because another rebuild runs: its own run is recorded as not
    started, not left queued forever. (It waits for a run it sees running before it makes its own,
    so this is the race of a worker's claim between its look and its claim, at the end of its wait.)"""
    from django.core.management import CommandError, call_command

    from enrollment.management.commands import rebuild_index

    monkeypatch.setattr(rebuild_index, "_wait_for_other_rebuilds", lambda stdout, deadline: deadline)
    monkeypatch.setattr(rebuild_index, "BUSY_WAIT_S", 0)
    other = TrainingRun.objects.create(reason="elsewhere", state=TrainingRun.State.RUNNING,
                                       started_at=timezone.now(), heartbeat_at=timezone.now())
    with pytest.raises(CommandError, match="another index rebuild is running"):
        call_command("rebuild_index", "--wait")
    assert not TrainingRun.objects.queued().exists()
    mine = TrainingRun.objects.exclude(pk=other.pk).get()
    assert mine.state == "failed" and mine.message == "not started"
    # recorded as every run's outcome is, in the audit log too
    assert AuditEvent.objects.filter(action="rebuild", object_id=str(mine.pk), summary__contains="not started").exists()


def test_a_queued_run_waits_for_a_long_rebuild_however_many_retries_it_takes(monkeypatch):
    """A message that finds another rebuild running retries until that one ends (a full re-embed
    runs for minutes, longer than any fixed number of 10 s retries): the run it carries must not be
    left queued for good. A database that stays away still ends the task after DB_RETRIES."""
    from django.db import OperationalError

    from enrollment import tasks

    def once(exc: Exception):
        """The service raising ``exc`` on its first call only (apply() runs a retry at once)."""
        calls = []

        def service(**kwargs):
            calls.append(kwargs)
            if len(calls) == 1:
                raise exc
            return None
        return service

    monkeypatch.setattr(services, "index_rebuild", once(services.RebuildBusy(7)))
    assert rebuild_index_task.apply(args=(7,), kwargs={"force": False}, retries=500).state == "SUCCESS"

    # the database's retries are counted apart from the waits: a blip after a long wait is retried
    monkeypatch.setattr(services, "index_rebuild", once(OperationalError("connection refused")))
    assert rebuild_index_task.apply(args=(7,), retries=500).state == "SUCCESS"
    monkeypatch.setattr(services, "index_rebuild", once(OperationalError("connection refused")))
    assert rebuild_index_task.apply(args=(7,), kwargs={"db_retries": tasks.DB_RETRIES - 1}).state == "SUCCESS"
    monkeypatch.setattr(services, "index_rebuild", once(OperationalError("connection refused")))
    late = rebuild_index_task.apply(args=(7,), kwargs={"db_retries": tasks.DB_RETRIES})
    assert late.state == "FAILURE" and isinstance(late.result, OperationalError)


def test_a_rebuild_started_by_hand_is_audited_with_who_started_it(make_photo, superuser):
    """``rebuild_index --wait`` and the foreground path start a run without a request: the audit
    log still says who started it, besides the finished run's row."""
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = services.index_rebuild(run_id=None, actor=superuser)
    rows = AuditEvent.objects.filter(action="rebuild", object_id=str(run.pk), actor="root")
    assert run.state == "succeeded" and rows.filter(summary__startswith="rebuild started by hand").exists()
    assert rows.count() == 2


def test_duplicate_messages_do_nothing(make_photo):
    people_with_photos(make_photo, n_people=1, n_photos=1)
    run = rebuild_now()
    assert rebuild_index_task(run.pk, force=True) is None
    assert IndexVersion.objects.count() == 1


def test_changes_that_join_a_queued_run_while_a_command_rebuilds_reach_the_index(make_photo, monkeypatch):
    """A change queues run A (debounced); ``rebuild_index`` starts run B (a higher id) meanwhile; a
    person enrolled and a photo removed while B runs join A, which starts after B finished: A's
    index, read later, becomes the active one (it was dropped as "older" by id, losing both)."""
    alice, carol = people_with_photos(make_photo, n_people=2, n_photos=1)
    carols_photo = make_photo(carol)
    queued = services.index_rebuild_request(actor=None, reason="a change")
    real_fit, meanwhile = index_services._thresholds_fit, {}

    def change_meanwhile(index, *args):
        if not meanwhile:
            bob = services.person_create(actor=None, full_name="Bob", staff_id="B")
            make_photo(bob)
            services.photo_remove(actor=None, photo=carols_photo)
            meanwhile["bob"] = bob
            meanwhile["joined"] = services.index_rebuild_request(actor=None, reason="Bob enrolled")
        return real_fit(index, *args)

    monkeypatch.setattr(index_services, "_thresholds_fit", change_meanwhile)
    command = services.index_rebuild_now()
    assert command.pk > queued.pk and meanwhile["joined"] == queued
    assert str(meanwhile["bob"].pk) not in IndexVersion.objects.current().load().identities
    later = services.index_rebuild(run_id=queued.pk, force=True)
    active = IndexVersion.objects.current()
    assert later.state == "succeeded" and active == later.index_version and active.built_by == queued
    assert active.load().identities == {str(alice.pk), str(carol.pk), str(meanwhile["bob"].pk)}
    assert active.photo_count == 3


def test_people_erased_during_a_rebuild_do_not_come_back(make_photo, monkeypatch):
    keep, gone = people_with_photos(make_photo, n_people=2, n_photos=1)
    real = index_services._thresholds_fit

    def erase_meanwhile(index, *args):
        Person.objects.filter(pk=gone.pk).delete()  # as a concurrent erasure would
        return real(index, *args)

    monkeypatch.setattr(index_services, "_thresholds_fit", erase_meanwhile)
    rebuild_now()
    assert IndexVersion.objects.current().load().identities == {str(keep.pk)}


def test_a_photo_that_cannot_be_embedded_does_not_fail_the_run(make_photo, monkeypatch):
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    broken = FacePhoto.objects.create(person=person, image="faces/missing.jpg", sha256="x")

    class NoEngine:
        def decode(self, data):
            raise AssertionError("the file is missing: never decoded")

    monkeypatch.setattr(recognizer, "get_engine", lambda: NoEngine())
    run = rebuild_now()
    broken.refresh_from_db()
    assert run.state == "succeeded" and run.stats["embed_failed"] == 1
    assert broken.embedding_state == "failed" and broken.file_missing
    assert broken.embedding_error == "file missing from storage: faces/missing.jpg"


class WorkerKilled(BaseException):
    """Stands in for a worker taken down mid-photo (the kernel's OOM killer, a crash in native code):
    nothing in the worker gets to handle it."""


def test_a_photo_that_takes_its_worker_down_twice_is_left_out(make_photo, monkeypatch, settings):
    """Every run would stop on such a photo and no enrolment would reach the index again: after
    PHOTO_MAX_ATTEMPTS unfinished embeddings the photo is marked failed and the run goes on."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    (person,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    poison = FacePhoto.objects.create(person=person, sha256="poison",
                                      image=default_storage.save("faces/poison.jpg", ContentFile(b"\xff\xd8\xff")))

    class Dies:
        def decode(self, data):
            raise WorkerKilled

        analyze = decode

    monkeypatch.setattr(recognizer, "get_engine", lambda: Dies())
    stale = timedelta(seconds=settings.MASKNET_REBUILD_STALE_S + 1)
    for attempt in range(1, services.PHOTO_MAX_ATTEMPTS + 1):
        with pytest.raises(WorkerKilled):
            services.index_rebuild()
        poison.refresh_from_db()
        assert poison.embed_attempts == attempt and poison.embedding_state == "pending"
        # the dead worker's run stops beating: the next one takes over
        TrainingRun.objects.filter(state="running").update(heartbeat_at=timezone.now() - stale)
    run = services.index_rebuild()
    poison.refresh_from_db()
    assert run.state == "succeeded" and run.stats["embed_failed"] == 1
    assert poison.embedding_state == "failed" and "stopped 2 times" in poison.embedding_error
    assert IndexVersion.objects.current().load().identities == {str(person.pk)}
    # left out by this recognizer's later runs, not marked failed again by each
    again = services.index_rebuild()
    assert (again.stats["embed_failed"], again.stats["embed_left_out"]) == (0, 1)


def test_a_finished_embedding_clears_its_attempts(make_photo, monkeypatch):
    """A worker that stopped once for another reason (a restart) does not count against the photo
    once an embedding of it finishes, failed or not."""
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    broken = FacePhoto.objects.create(person=person, image="faces/missing.jpg", sha256="x", embed_attempts=1)
    rebuild_now()
    broken.refresh_from_db()
    assert broken.embedding_state == "failed" and broken.embed_attempts == 0
    assert broken.embedding_error == "file missing from storage: faces/missing.jpg" and broken.file_missing


def test_the_models_load_before_the_run_is_claimed(make_photo, monkeypatch):
    """Loading the models can outlast MASKNET_REBUILD_STALE_S on a busy machine, and a run silent that
    long is taken over by another worker (the scale-out test saw both workers build one run): the
    engine is loaded while the run is still queued, before its heartbeat starts."""
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    FacePhoto.objects.create(person=person, image="faces/missing.jpg", sha256="x")  # needs embedding
    states = []

    class NoEngine:
        def decode(self, data):
            raise AssertionError("the file is missing: never decoded")

    def load():
        states.append(TrainingRun.objects.order_by("-id").values_list("state", flat=True).first())
        return NoEngine()

    monkeypatch.setattr(recognizer, "get_engine", load)
    run = rebuild_now()
    assert run.state == "succeeded"
    assert states and states[0] == TrainingRun.State.QUEUED, states


@pytest.mark.models
def test_real_photos_end_to_end(db, engine, astronaut_jpeg, portrait_png, astronaut_bgr):
    from recognition.engine.gallery import identify

    eileen = services.person_create(actor=None, full_name="Eileen", staff_id="A1")
    tom = services.person_create(actor=None, full_name="Tom", staff_id="A2")
    services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    run = rebuild_now()
    assert run.stats["embedded_new"] == 2 and run.stats["embed_failed"] == 0
    index = IndexVersion.objects.current().load()
    probe = engine.analyze(np.ascontiguousarray(astronaut_bgr[:, ::-1]))[0]  # mirrored: another "shot"
    decision = identify(engine, probe, index)
    assert decision.label == str(eileen.pk) and decision.accepted
    assert rebuild_now().stats["embedded_new"] == 0
    assert FacePhoto.objects.filter(embedding_state="embedded").count() == 2


@pytest.mark.models
def test_a_photo_erased_while_it_is_embedded_does_not_fail_the_rebuild(db, engine, astronaut_jpeg, portrait_png,
                                                                      monkeypatch):
    """Templates are computed outside any transaction and stored only if the photo is still there:
    an erasure while a face is being embedded costs that photo, not the run."""
    from enrollment import recognizer

    eileen = services.person_create(actor=None, full_name="Eileen", staff_id="A1")
    tom = services.person_create(actor=None, full_name="Tom", staff_id="A2")
    services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    real = recognizer.face_templates

    def erase_meanwhile(engine, face, *, seed):
        if Person.objects.filter(pk=tom.pk).exists() and FacePhoto.objects.filter(pk=seed, person=tom).exists():
            services.person_erase(person=tom, actor=None)
        return real(engine, face, seed=seed)

    monkeypatch.setattr(recognizer, "face_templates", erase_meanwhile)
    run = rebuild_now()
    assert run.state == "succeeded", run.error
    assert IndexVersion.objects.current().load().identities == {str(eileen.pk)}


@pytest.mark.models
def test_an_empty_gallery_gives_an_empty_index(db, engine):
    run = rebuild_now()
    version = IndexVersion.objects.current()
    assert run.state == "succeeded" and version.template_count == 0 and len(version.load()) == 0
    assert version.dim == engine.dim


def test_a_person_with_several_photos_is_matched_on_their_quality_weighted_mean(make_photo):
    (single,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    rng = np.random.default_rng(11)
    several = services.person_create(actor=None, full_name="Multi Photo", staff_id="M1")
    centre = rng.normal(size=FAKE_DIM)
    good, poor = make_photo(several, centre=centre), make_photo(several, centre=centre)
    FacePhoto.objects.filter(pk=poor.pk).update(quality_score=0.1)
    rebuild_now()
    index = IndexVersion.objects.current().load()
    mine = index.labels == str(several.pk)
    assert sorted(index.kinds[mine].tolist()) == [0, 1]
    assert ((index.margins[mine] > 0) & (index.margins[mine] <= AGGREGATE_MARGIN)).all()
    assert np.allclose(index.margins[index.labels == str(single.pk)], 0.0)  # one photo: as it is
    # the mean leans towards the better photo
    vecs = {p.pk: np.frombuffer(bytes(p.templates.get().vectors), np.float32).reshape(-1, FAKE_DIM)
            for p in (good, poor)}
    mean = index.vectors[mine & (index.kinds == 0)][0]
    assert mean @ vecs[good.pk][0] > mean @ vecs[poor.pk][0]
    # a probe equal to that mean scores 1 - margin: the margin applies at search time
    margin = float(index.margins[mine & (index.kinds == 0)][0])
    assert index.search(mean, k=1)[0].score == pytest.approx(1.0 - margin, abs=1e-5)


def test_site_thresholds_are_fitted_on_single_photos_against_the_index():
    """Means of several photos are closer to each other than a probe is to them: the fit scores
    each photo's own templates (what a probe looks like) against the index, less its margins."""
    n = MIN_FIT_PEOPLE
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(128, 128)))[0][:n]         # n orthonormal "people"
    index = Index(128)
    for i in range(n):
        index.add(str(i), basis[i][None], kinds=[0], margins=[0.02])
    probes = Index(128)
    for i in range(n):                                               # photos of i that look like i+1
        lookalike = 0.9 * basis[(i + 1) % n] + np.sqrt(1 - 0.81) * basis[i]
        probes.add(str(i), np.repeat(lookalike[None], 4, axis=0), kinds=[0] * 4)
    fitted = index_services._thresholds_fit(index, probes)
    assert fitted["source"] == "site" and fitted["unmasked"] == pytest.approx(0.9 - 0.02, abs=1e-3)
    alone = index_services._thresholds_fit(index)       # the means alone are far apart: the engine's threshold holds
    assert alone["source"] == "site" and alone["unmasked"] == recognizer.engine_config().threshold_unmasked
    small = Index(128)
    for i in range(3):
        small.add(str(i), basis[i][None], kinds=[0], margins=[0.02])
    assert index_services._thresholds_fit(small, probes)["source"] == "engine"     # 3 people: too few to fit


def test_site_thresholds_never_go_below_the_offset_engine_thresholds(settings):
    """``MASKNET_THRESHOLD_OFFSET`` moves the floor of the fit and is recorded with it."""
    settings.MASKNET_THRESHOLD_OFFSET = -0.02
    index = Index(8)
    index.add("1", np.eye(8)[:1], kinds=[0])
    fitted = index_services._thresholds_fit(index)
    cfg = EngineConfig.for_descriptor(settings.MASKNET_DESCRIPTOR)
    assert fitted["source"] == "engine" and fitted["offset"] == -0.02
    assert fitted["unmasked"] == pytest.approx(cfg.threshold_unmasked - 0.02)
    assert fitted["masked"] == pytest.approx(cfg.threshold_masked - 0.02)


@pytest.mark.parametrize("people", [MIN_FIT_PEOPLE - 81, MIN_FIT_PEOPLE])
def test_a_small_gallerys_threshold_recorded_by_an_earlier_release_no_longer_applies(people):
    """Releases before 2026-12-04 fitted galleries of any size: an index of 19 people built then,
    with one person enrolled twice, recorded 0.6336 and kept refusing an enrolled face at 0.6303
    after the upgrade, until somebody rebuilt it. Below MIN_FIT_PEOPLE the engine's thresholds apply
    whatever was recorded; from it on, the recorded fit does."""
    from enrollment.models import IndexVersion
    from recognition.engine.gallery import site_threshold

    recorded = {"unmasked": 0.6336, "masked": 0.523, "source": "site", "impostor_pairs": 900,
                "fitted": {"unmasked": 0.6336, "masked": 0.523}}
    version = IndexVersion(path="x.npz", sha256="0" * 64, people_count=people, metrics={"thresholds": recorded})
    site = version.site_thresholds()
    cfg = EngineConfig.for_descriptor("sface")
    needed = site_threshold(cfg.threshold_unmasked, site, "unmasked")
    assert needed == (0.6336 if people >= MIN_FIT_PEOPLE else cfg.threshold_unmasked)


def test_an_index_file_that_no_longer_matches_its_digest_is_refused(make_photo):
    """A version's file replaced by another valid index (restored from elsewhere, tampered with:
    labels swapped here) is refused when loaded, not served."""
    from enrollment.models import index_cache_clear
    from recognition.engine.errors import EngineError
    from recognition.engine.index import Index

    people_with_photos(make_photo, n_people=2, n_photos=1)
    version = rebuild_now().index_version
    index = Index.load(version.file)
    index.labels = index.labels[::-1].copy()
    index.save(version.file)
    index_cache_clear()
    with pytest.raises(EngineError, match="digest"):
        version.load()


def test_the_loaded_index_stays_cached_for_the_version_announced(make_photo):
    """Every kiosk socket of a process hears ``index.updated``: one that hears it after another
    socket loaded the new version keeps that copy; any other version is dropped."""
    from enrollment.models import index_cache_clear

    people_with_photos(make_photo, n_people=2, n_photos=1)
    version = rebuild_now().index_version
    loaded = version.load()
    assert version.load() is loaded
    index_cache_clear(keep=version.pk)
    assert version.load() is loaded
    index_cache_clear(keep=version.pk + 1)
    assert version.load() is not loaded


def test_a_loaded_index_no_load_asks_for_leaves_memory(make_photo):
    """A process without kiosk sockets (a web node that answered an API identify) hears no
    ``index.updated``: the version it loaded, maybe with a person erased since, stayed cached until
    its next identify, for good if none came. Unused for ``INDEX_IDLE_S`` it goes (a thread of the
    process looks); a copy loads keep asking for stays."""
    import time

    import enrollment.models as em

    people_with_photos(make_photo, n_people=2, n_photos=1)
    em.index_cache_clear()
    old = rebuild_now().index_version
    loaded = old.load()
    assert em._index_reaper is not None and em._index_reaper.is_alive()
    assert rebuild_now().index_version.pk != old.pk    # replaced: nothing tells this process's cache
    assert em._index_cached[1] is loaded
    assert not em.index_cache_expire(now=time.monotonic() + em.INDEX_IDLE_S / 2)
    assert old.load() is loaded
    assert em.index_cache_expire(now=time.monotonic() + em.INDEX_IDLE_S + 1)
    assert em._index_cached is None
    assert not em.index_cache_expire(now=time.monotonic() + 10 * em.INDEX_IDLE_S)   # nothing left


def test_an_idle_index_a_kiosk_socket_still_holds_is_not_read_again(make_photo):
    """The idle expiry forgets the process's reference, not the copy kiosk sockets hold (they load
    only on ``index.updated``, so a process serving kiosks all day asks for it no more): a socket
    connecting after it (a new kiosk, a reconnect) read the file into a second copy beside theirs,
    one more per idle spell, each the whole gallery. The copy still held is the one answered; one
    no longer held leaves memory, and a clear (an erasure) forgets it too."""
    import gc
    import time
    import weakref

    import enrollment.models as em

    people_with_photos(make_photo, n_people=2, n_photos=1)
    em.index_cache_clear()
    version = rebuild_now().index_version
    held = version.load()   # a kiosk socket's
    assert em.index_cache_expire(now=time.monotonic() + em.INDEX_IDLE_S + 1)
    assert em._index_cached is None
    assert version.load() is held   # the socket connecting now shares it
    assert em.index_cache_expire(now=time.monotonic() + em.INDEX_IDLE_S + 1)
    em.index_cache_clear()
    assert version.load() is not held   # a clear drops it for good
    assert em.index_cache_expire(now=time.monotonic() + em.INDEX_IDLE_S + 1)
    gone = weakref.ref(held)
    del held
    gc.collect()
    assert gone() is None   # nobody holds it: freed, as before


def test_loads_of_one_version_at_one_moment_read_it_once_and_answer_one_copy(make_photo, monkeypatch):
    """Kiosk sockets loading the index at one moment (on connecting, on index.updated) each read the
    file into a copy of their own and kept it until the next version: up to MASKNET_KIOSK_WORKERS
    copies of 30 MB at 20,000 people (a memory review). A load of a version being read waits for that
    read and answers the same copy; a failed read fails them all alike."""
    import enrollment.models as em

    people_with_photos(make_photo, n_people=2, n_photos=1)
    version = rebuild_now().index_version
    em.index_cache_clear()
    real_load = Index.load.__func__
    reads = []

    def slow_load(cls, *args, **kwargs):
        reads.append(1)
        time.sleep(0.3)   # the others arrive while this one reads
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Index, "load", classmethod(slow_load))
    together = threading.Barrier(4)
    loaded, errors = [], []

    def run_together(target) -> None:
        threads = [threading.Thread(target=target) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

    def load() -> None:
        together.wait(5)
        try:
            loaded.append(version.load())
        except EngineError as exc:
            errors.append(exc)

    run_together(load)
    assert len(reads) == 1 and len(loaded) == 4 and all(index is loaded[0] for index in loaded)
    assert not em._index_pending
    # a damaged file: every load at that moment is told, none waits for good
    em.index_cache_clear()
    reads.clear()
    Path(version.file).write_bytes(b"damaged")
    loaded.clear()
    together.reset()
    run_together(load)
    assert len(errors) == 4 and not loaded and not em._index_pending


def test_a_load_after_a_clear_reads_anew_and_a_failed_read_frees_its_bytes(tmp_path, monkeypatch):
    """Two holes a review found in loads sharing one read: a load begun after an erasure's clear
    joined the read begun before it, and answered that copy (the erased person's templates) though
    the file was deleted meanwhile; and a failed read's bytes stayed alive in a reference cycle
    (its exception's traceback) until the garbage collector ran, 30 MB at 20,000 people."""
    import gc
    import hashlib

    import enrollment.models as em

    index = Index(8)
    for i in range(3):
        index.add(str(i), np.random.default_rng(i).random((2, 8)).astype(np.float32))
    path = tmp_path / "v1.npz"
    index.save(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    em.index_cache_clear()
    real_load = Index.load.__func__

    def slow_load(cls, *args, **kwargs):
        time.sleep(0.3)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Index, "load", classmethod(slow_load))
    out: dict = {}

    def load(name: str) -> None:
        try:
            out[name] = em._load_index(1, str(path), sha)
        except EngineError as exc:
            out[name] = exc

    before = threading.Thread(target=load, args=("before",))
    before.start()
    time.sleep(0.05)
    em.index_cache_clear()   # the erasure's, once it committed: its file deleted
    path.unlink()
    after = threading.Thread(target=load, args=("after",))
    after.start()
    before.join(5)
    after.join(5)
    assert isinstance(out["before"], Index) and isinstance(out["after"], EngineError)
    assert em._index_cached is None and not em._index_pending
    # a failed read (a digest that does not match): its bytes go with the exception, no collection needed
    monkeypatch.setattr(Index, "load", classmethod(real_load))
    index.save(path)
    alive = [0]
    real_read = Path.read_bytes

    class Bytes(bytes):
        def __del__(self) -> None:
            alive[0] -= 1

    def read_bytes(self):
        alive[0] += 1
        return Bytes(real_read(self))

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(EngineError):
            em._load_index(3, str(path), "0" * 64)
        assert alive[0] == 0
    finally:
        gc.enable()


def test_a_version_being_read_when_the_cache_is_cleared_is_not_cached(make_photo, monkeypatch):
    """``index.updated`` heard while a socket (or the API) was reading the replaced version, maybe
    with an erased person's templates: that read's copy answers its caller but stays out of the
    process's cache (it stayed there until some later load)."""
    import enrollment.models as em

    people_with_photos(make_photo, n_people=2, n_photos=1)
    em.index_cache_clear()
    old = rebuild_now().index_version
    new = rebuild_now().index_version
    real_load = Index.load.__func__
    reading, go = threading.Event(), threading.Event()

    def slow_load(cls, *args, **kwargs):
        reading.set()
        assert go.wait(5)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Index, "load", classmethod(slow_load))
    loads = []

    def load_while_cleared(version: IndexVersion) -> None:
        """``version`` read in a thread while ``index.updated`` announces ``new``."""
        reading.clear()
        go.clear()
        reader = threading.Thread(target=lambda: loads.append(version.load()))
        reader.start()
        assert reading.wait(5)
        em.index_cache_clear(keep=new.pk)
        go.set()
        reader.join(5)

    load_while_cleared(old)
    assert len(loads) == 1 and em._index_cached is None
    # the version announced, being read when its announcement comes (every socket of the process
    # hears it): cached all the same, or each socket would read the file again
    load_while_cleared(new)
    assert em._index_cached is not None and em._index_cached[0][0] == new.pk and em._index_cached[1] is loads[-1]
    monkeypatch.setattr(Index, "load", classmethod(real_load))
    assert new.load() is loads[-1]   # later loads take the cached copy


def test_a_replaced_index_leaves_memory_before_the_next_version_is_read(make_photo, monkeypatch):
    """A process still holding a replaced version (an erasure's: no kiosk socket there heard
    ``index.updated``) drops it as soon as it loads the active one: not only once that file is read,
    and also when it cannot be (it stayed cached for good)."""
    import gc
    import weakref

    from enrollment.models import index_cache_clear

    people_with_photos(make_photo, n_people=2, n_photos=1)
    index_cache_clear()
    old = rebuild_now().index_version
    held = weakref.ref(old.load())
    new = rebuild_now().index_version
    assert new.pk != old.pk
    real_load = Index.load.__func__
    in_memory_while_reading = []

    def load(cls, path, content=None):
        gc.collect()
        in_memory_while_reading.append(held() is not None)
        return real_load(cls, path, content)

    with monkeypatch.context() as patch:
        patch.setattr(Index, "load", classmethod(load))
        new.load()
    assert in_memory_while_reading == [False]

    held = weakref.ref(old.load())        # the old version again, then a damaged file of the new one
    new.file.write_bytes(b"damaged")
    with pytest.raises(EngineError, match="digest"):
        new.load()
    gc.collect()
    assert held() is None, "the replaced version stayed in memory"


@pytest.mark.models
def test_a_photo_whose_templates_fail_in_a_computation_is_left_out_not_the_rebuild(db, engine, astronaut_jpeg,
                                                                                   portrait_png, monkeypatch):
    """An error of OpenCV or numpy on one photo (the mask renderer) marks that photo failed; the
    rebuild goes on (it stopped every run, and every later one, before)."""
    import cv2

    from enrollment import recognizer

    eileen = services.person_create(actor=None, full_name="Eileen", staff_id="A1")
    tom = services.person_create(actor=None, full_name="Tom", staff_id="A2")
    bad = services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    real = recognizer.face_templates

    def fails_on_one(engine, face, *, seed):
        if seed == bad.pk:
            raise cv2.error("the renderer failed on this photo")
        return real(engine, face, seed=seed)

    monkeypatch.setattr(recognizer, "face_templates", fails_on_one)
    run = rebuild_now()
    assert run.state == "succeeded" and run.stats["embed_failed"] == 1, run.error
    bad.refresh_from_db()
    assert bad.embedding_state == "failed" and "renderer failed" in bad.embedding_error
    assert IndexVersion.objects.current().load().identities == {str(tom.pk)}


def test_a_command_run_that_a_change_joined_is_not_failed_when_the_command_gives_up(db):
    """rebuild_index (or import_people, demo) gives up while another rebuild runs: its run is
    recorded failed, unless a change joined it meanwhile, whose own message must still start it."""
    alone = services.index_rebuild_request(actor=None, reason="command", force=True)
    services.index_rebuild_abandon(run_id=alone.pk, reason="busy")
    alone.refresh_from_db()
    assert alone.state == "failed" and alone.error == "busy"
    joined = services.index_rebuild_request(actor=None, reason="command", force=True)
    services.index_rebuild_request(actor=None, reason="photo added to person #1")   # joins it
    services.index_rebuild_abandon(run_id=joined.pk, reason="busy")
    joined.refresh_from_db()
    assert joined.state == "queued" and joined.requests == 2


@pytest.mark.models
def test_a_face_already_enrolled_as_someone_else_is_pointed_out(db, engine, astronaut_jpeg, portrait_png,
                                                                 astronaut_bgr):
    """A re-encoded or mirrored copy of Eileen's photo filed under another person is not a duplicate
    file, but the same face: its check-ins could go to either, so the add names the other person."""
    eileen = services.person_create(actor=None, full_name="Eileen", staff_id="A1")
    tom = services.person_create(actor=None, full_name="Tom", staff_id="A2")
    services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    rebuild_now()
    copy = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), quality=85)   # mirrored, re-encoded
    twin = services.person_create(actor=None, full_name="Eileen Test", staff_id="A3")
    other, score = services.photo_add(person=twin, data=copy, actor=None).lookalike
    assert other == eileen and score > 0.9
    own = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), quality=80)
    assert services.photo_add(person=eileen, data=own, actor=None).lookalike is None   # her own: fine


@pytest.mark.models
def test_the_admin_names_a_look_alike_only_to_staff_who_may_search_faces(db, client, enroller, plain_staff, engine,
                                                                         astronaut_jpeg, portrait_png, astronaut_bgr):
    """Naming who else a face matches is a face search (``recognise_face``, a permission of its own
    for that reason): staff who may only add photos are told that it matches someone, not whom, and
    a named answer is on record as the API's is (the admin named anyone to anyone, unrecorded), the
    unnamed one too."""
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    eileen = services.person_create(actor=None, full_name="Eileen", staff_id="A1")
    tom = services.person_create(actor=None, full_name="Tom", staff_id="A2")
    services.photo_add(person=eileen, data=astronaut_jpeg, actor=None)
    services.photo_add(person=tom, data=portrait_png, actor=None)
    rebuild_now()
    twin = services.person_create(actor=None, full_name="Eileen Test", staff_id="A3")
    plain_staff.user_permissions.add(*Permission.objects.filter(codename__in=("view_person", "add_facephoto")))
    url = reverse("admin:enrollment_person_capture_save", args=[twin.pk])
    for user, quality in ((plain_staff, 85), (enroller, 86)):
        client.force_login(user)
        copy = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), quality=quality)   # another file, her face
        answer = client.post(url, {"photos": [SimpleUploadedFile("c.jpg", copy, "image/jpeg")]}).json()
        # the second copy also repeats the first one of the twin (the same picture saved again)
        (warning,) = [w for w in answer["warnings"] if "same picture" not in w]
        searches = AuditEvent.objects.filter(action=AuditEvent.Action.API_IDENTIFY, actor=user)
        if user is plain_staff:
            assert "matches another enrolled person" in warning and "Eileen (" not in warning, warning
            # one bit of a face search, on record as such since 2026-12-07, saying they were not told whom
            (event,) = searches
            assert event.summary.endswith("(told only that it looks like someone: no face search)"), event.summary
        else:
            assert f"matches Eileen (#{eileen.pk}, score" in warning, warning
            (event,) = searches
            assert event.summary.startswith(f"admin webcam capture: looks like person #{eileen.pk} ")
    # the person page's upload is on record as one
    from .test_admin import change_url, person_form

    upload = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), quality=88)
    client.post(change_url(twin), {**person_form(twin), "photos": [SimpleUploadedFile("u.jpg", upload, "image/jpeg")]})
    uploads = AuditEvent.objects.filter(action=AuditEvent.Action.API_IDENTIFY, actor=enroller,
                                        summary__startswith=f"admin photo upload: looks like person #{eileen.pk} ")
    assert uploads.count() == 1


def photo_to_embed(make_photo, monkeypatch, face_templates) -> tuple[Person, FacePhoto]:
    """A person with one embedded photo and a new one to embed, through an engine stand-in whose
    templates are ``face_templates(engine, face, seed)`` (what the test has the embedding give)."""
    from enrollment.models import PhotoTemplates

    (person,) = people_with_photos(make_photo, n_people=1, n_photos=1)
    new = make_photo(person)
    PhotoTemplates.objects.filter(photo=new).delete()   # to be embedded by the next run
    monkeypatch.setattr(recognizer, "get_engine",
                        lambda: type("E", (), {"decode": lambda self, d: d, "analyze": lambda self, i: [object()]})())
    monkeypatch.setattr(recognizer, "face_near", lambda faces, box: faces[0])
    monkeypatch.setattr(recognizer, "face_templates", face_templates)
    return person, new


@pytest.mark.parametrize("cause", ["no memory", "the photo's own"])
def test_opencv_out_of_memory_is_tried_again_other_opencv_errors_are_the_photos(make_photo, monkeypatch, cause):
    """OpenCV out of memory (the machine's state at the time) marked the photo failed for the
    recognizer version for good, as a failure of the photo's own is."""
    import cv2

    def fail(engine, face, seed):
        exc = cv2.error("Failed to allocate 1024 bytes" if cause == "no memory" else "inv_scale_x > 0")
        exc.code = cv2.Error.StsNoMem if cause == "no memory" else cv2.Error.StsAssert
        raise exc

    _, new = photo_to_embed(make_photo, monkeypatch, fail)
    services.index_rebuild()
    new.refresh_from_db()
    assert new.embedding_state == FacePhoto.Embedding.FAILED
    assert new.embed_failed_version == ("" if cause == "no memory" else recognizer.template_version())


def test_a_photo_is_not_left_out_for_database_errors_while_it_was_embedded(make_photo, monkeypatch):
    """A photo is left out after its worker died twice while embedding it: a database error (or a
    stop asked for) while its templates were stored is not a death, and two of them left it out for
    good, its person no longer recognised."""
    from django.db import OperationalError

    from recognition.engine.gallery import Templates

    _, new = photo_to_embed(make_photo, monkeypatch, lambda engine, face, seed: Templates(
        np.eye(2, FAKE_DIM, dtype=np.float32), np.array([0, 1], np.int8)))
    real_store, blips = index_services._templates_store, {"left": 2}

    def flaky_store(**kwargs):
        if blips["left"]:
            blips["left"] -= 1
            raise OperationalError("database is locked")
        return real_store(**kwargs)

    monkeypatch.setattr(index_services, "_templates_store", flaky_store)
    for _ in range(2):
        with pytest.raises(OperationalError):
            services.index_rebuild()
    assert services.index_rebuild().state == "succeeded"
    new.refresh_from_db()
    assert (new.embedding_state, new.embed_attempts) == (FacePhoto.Embedding.EMBEDDED, 0), new.embedding_error


def _tried(monkeypatch) -> list[int]:
    """The ids of the photos the rebuilds go on to embed, in order."""
    tried, real = [], index_services._photo_embed

    def spy(*, photo, engine, version):
        tried.append(photo.pk)
        return real(photo=photo, engine=engine, version=version)

    monkeypatch.setattr(index_services, "_photo_embed", spy)
    return tried


def test_a_photo_without_a_face_is_left_out_of_this_recognizers_later_rebuilds(make_photo, monkeypatch):
    """A failure of the photo's own fails again at every rebuild of the same recognizer: it was
    analysed again by each, and counted among "new photos to embed". Left out until another
    recognizer version, which may find the face, tries it again."""
    from recognition.engine import NoFaceFound

    def no_face(engine, face, seed):
        raise NoFaceFound("no face found")

    _, bad = photo_to_embed(make_photo, monkeypatch, no_face)
    tried, lines = _tried(monkeypatch), []
    first = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
    assert tried == [bad.pk] and first.stats["embed_failed"] == 1 and "1 new photo to embed" in lines
    assert "1 photo left out (not embeddable)" in first.message
    lines.clear()
    second = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
    assert tried == [bad.pk], "analysed again"
    assert "0 new photos to embed; 1 left out (failed for this recognizer)" in lines, lines
    assert (second.stats["embed_failed"], second.stats["embed_left_out"]) == (0, 1)
    assert "1 photo left out (not embeddable)" in second.message
    bad.refresh_from_db()
    assert bad.embedding_state == "failed" and "no face found" in bad.embedding_error
    monkeypatch.setattr(recognizer, "template_version", lambda **kwargs: "another recognizer")
    services.index_rebuild()
    assert tried.count(bad.pk) == 2


def test_a_photo_left_out_is_tried_again_by_the_next_rebuild_when_asked(make_photo, monkeypatch):
    """"Try again at the next rebuild" (photos_embed_again): a photo this recognizer's rebuilds
    left out is tried by the next one, as one that failed before, and embedded once its cause is
    gone (here the face found this time); a rebuild was queued for it."""
    from recognition.engine import NoFaceFound
    from recognition.engine.gallery import Templates

    found = {"face": False}

    def templates(engine, face, seed):
        if not found["face"]:
            raise NoFaceFound("no face found")
        return Templates(np.eye(2, FAKE_DIM, dtype=np.float32), np.array([0, 1], np.int8))

    _, photo = photo_to_embed(make_photo, monkeypatch, templates)
    tried = _tried(monkeypatch)
    services.index_rebuild()
    services.index_rebuild()
    assert tried == [photo.pk], "left out by the second"
    found["face"] = True
    done, queued = services.photos_embed_again(photos=FacePhoto.objects.filter(pk=photo.pk), actor=None)
    assert done == 1 and queued.state == TrainingRun.State.QUEUED
    lines = []
    run = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
    assert tried == [photo.pk, photo.pk] and "1 photo that failed before to embed" in lines, lines
    assert (run.stats["embedded_new"], run.stats["embed_retried"], run.stats["embed_left_out"]) == (1, 1, 0)
    photo.refresh_from_db()
    assert (photo.embedding_state, photo.embed_failed_version) == ("embedded", "")


def test_a_photo_failed_before_the_version_was_recorded_is_tried_once_more_and_then_left_out(make_photo,
                                                                                              monkeypatch):
    """Photos failed before migration 0011 have no ``embed_failed_version``: the next rebuild tries
    each once more (as one that failed before, not a new one) and records the outcome, so the
    rebuilds after it leave out a photo that fails again for a cause of its own."""
    from recognition.engine import NoFaceFound

    def no_face(engine, face, seed):
        raise NoFaceFound("no face found")

    _, old = photo_to_embed(make_photo, monkeypatch, no_face)
    FacePhoto.objects.filter(pk=old.pk).update(embedding_state=FacePhoto.Embedding.FAILED,
                                               embedding_error="NoFaceFound: no face found", embed_failed_version="")
    tried, lines = _tried(monkeypatch), []
    first = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
    assert tried == [old.pk] and "1 photo that failed before to embed" in lines, lines
    assert (first.stats["embed_retried"], first.stats["embed_failed"]) == (1, 1)
    old.refresh_from_db()
    assert (old.embedding_state, old.embed_failed_version) == ("failed", recognizer.template_version())
    second = services.index_rebuild()
    assert tried == [old.pk] and second.stats["embed_left_out"] == 1, "tried again"


def test_a_photo_whose_file_is_missing_is_said_so_and_tried_again_until_it_is_back(make_photo, monkeypatch):
    """A file gone from storage was counted "to try again (unreadable)" by every rebuild, as a file
    that could not be read this time was: the run and the photo say it is missing. Rebuilds still
    try it (a volume not mounted, a restore under way), as one that failed before, not a new one."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from recognition.engine.gallery import Templates

    _, photo = photo_to_embed(make_photo, monkeypatch, lambda engine, face, seed: Templates(
        np.eye(2, FAKE_DIM, dtype=np.float32), np.array([0, 1], np.int8)))
    name = photo.image.name
    with default_storage.open(name, "rb") as fh:
        data = fh.read()
    default_storage.delete(name)
    missing_line = "0 new photos to embed; 1 photo whose file was missing from storage (tried again)"
    lines: list[str] = []
    for first in (True, False):   # every rebuild: the same words, never "left out"
        lines.clear()
        run = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
        # its start line: not "1 photo that failed before to embed", as if it would be analysed
        assert lines[0] == ("1 new photo to embed" if first else missing_line), lines
        assert (run.stats["embed_failed"], run.stats["embed_file_missing"]) == (1, 1)
        assert "1 photo file missing from storage (restore or remove)" in run.message, run.message
        assert "left out" not in run.message and "to try again" not in run.message, run.message
        photo.refresh_from_db()
        assert (photo.embedding_state, photo.file_missing, photo.embed_failed_version) == ("failed", True, "")
        assert photo.embedding_error == f"file missing from storage: {name}"
    assert default_storage.save(name, ContentFile(data)) == name   # back
    lines.clear()
    run = services.index_rebuild(on_progress=lambda pct, line: lines.append(line))
    assert lines[0] == missing_line, lines   # as last seen: this run finds it back
    assert (run.stats["embedded_new"], run.stats["embed_retried"], run.stats["embed_left_out"]) == (1, 1, 0)
    photo.refresh_from_db()
    assert (photo.embedding_state, photo.embed_failed_version, photo.file_missing) == ("embedded", "", False)


def test_a_photo_whose_file_could_not_be_read_is_tried_again_not_called_missing(make_photo, monkeypatch):
    """A file storage has but could not read this time (here a folder in its place: IsADirectoryError)
    is to be tried again, not "missing"; nor is a photo whose embedding met a FileNotFoundError of
    another file (the engine's own, e.g. a mask template) after its own was read."""
    from django.core.files.storage import default_storage

    def no_masks(engine, face, seed):
        raise FileNotFoundError("no masks.cfg in /srv/masks")

    person, photo = photo_to_embed(make_photo, monkeypatch, no_masks)
    other = make_photo(person)
    FacePhoto.objects.filter(pk=other.pk).update(embedding_state="pending")
    other.templates.all().delete()
    default_storage.delete(other.image.name)
    os.mkdir(default_storage.path(other.image.name))
    run = services.index_rebuild()
    assert (run.stats["embed_failed"], run.stats["embed_file_missing"]) == (2, 0)
    assert "2 photos to try again (unreadable)" in run.message and "missing" not in run.message, run.message
    for p, error in ((photo, "FileNotFoundError: no masks.cfg"), (other, "IsADirectoryError")):
        p.refresh_from_db()
        assert (p.embedding_state, p.file_missing, p.embed_failed_version) == ("failed", False, ""), error
        assert p.embedding_error.startswith(error), p.embedding_error


def test_a_photos_embedding_error_names_no_server_path(make_photo, monkeypatch, caplog):
    """A photo's ``embedding_error`` is shown on its admin page and put in the person's export (given
    to the person): an unreadable file's absolute path on the server (the media folder's) is left
    out there and logged, by photo and person id, for the operator."""
    from django.core.files.storage import default_storage

    person, photo = photo_to_embed(make_photo, monkeypatch, None)
    secret = default_storage.path(photo.image.name)

    def unreadable(engine, face, seed):
        raise PermissionError(13, "Permission denied", secret)

    monkeypatch.setattr(recognizer, "face_templates", unreadable)
    with caplog.at_level("WARNING", logger="enrollment"):
        services.index_rebuild()
    photo.refresh_from_db()
    assert photo.embedding_state == "failed" and photo.embed_failed_version == ""   # tried again, as before
    assert photo.embedding_error.startswith("PermissionError: [Errno 13] Permission denied: [server path]"), \
        photo.embedding_error
    assert secret not in photo.embedding_error and str(django_settings.MEDIA_ROOT) not in photo.embedding_error
    assert f"photo #{photo.pk} of person #{person.pk}" in caplog.text and secret in caplog.text


def test_errors_shown_keep_relative_names_and_leave_out_database_text():
    from django.db import OperationalError

    from enrollment.services.common import error_shown

    assert error_shown(RuntimeError("disk on fire")) == "RuntimeError: disk on fire"
    kept = "3/4 photos, unmasked / masked, (recognition/engine/assets/sface_gain-v1.npz), faces/12/a.jpg"
    assert error_shown(ValueError(kept)) == f"ValueError: {kept}"
    assert error_shown(OSError("no masks.cfg in /srv/masks")).startswith("OSError: no masks.cfg in [server path]")
    shown = error_shown(OperationalError('connection to server at "10.0.0.5" failed for user "masknet"'))
    assert "10.0.0.5" not in shown and "masknet" not in shown and shown.startswith("OperationalError: ")


def test_the_start_line_says_which_photos_are_new():
    line = index_services._to_embed_line
    assert line(new=0, again=0, missing=0, left_out=0) == "0 new photos to embed"
    assert line(new=2, again=1, missing=0, left_out=0) == "2 new photos and 1 that failed before to embed"
    assert line(new=0, again=2, missing=0, left_out=3) == ("2 photos that failed before to embed; "
                                                           "3 left out (failed for this recognizer)")
    # files missing from storage apart from the photos that failed before for another cause
    assert line(new=1, again=1, missing=2, left_out=3) == (
        "1 new photo and 1 that failed before to embed; 2 photos whose file was missing from storage "
        "(tried again); 3 left out (failed for this recognizer)")


def test_a_run_that_never_started_is_announced_to_the_admin_pages(db, layer, django_capture_on_commit_callbacks):
    """``rebuild_index --wait`` gives up on its run (another rebuild held the slot): the pages that
    show it queued hear that it failed (they do not poll)."""
    run = TrainingRun.objects.create(reason="started by hand")
    channel = listen(layer, "training")
    with django_capture_on_commit_callbacks(execute=True):
        services.index_rebuild_abandon(run_id=run.pk, reason="another index rebuild is running")
    heard = [m["run"] for m in drain(layer, channel) if m.get("type") == "training.progress"]
    assert [(r["id"], r["state"]) for r in heard] == [(run.pk, "failed")]


def test_an_erasure_deletes_index_files_no_version_names_whatever_their_age(make_photo, settings,
                                                                            django_capture_on_commit_callbacks):
    """A switch killed before its commit leaves a file holding everyone; the sweeps wait an hour
    before deleting such a file (it may be a rebuild's, not yet committed), but an erasure holds the
    writers' turn, so none can be: it deletes them all at once (the person stayed on disk up to a day)."""
    keep, gone = people_with_photos(make_photo, n_people=2, n_photos=1)
    rebuild_now()
    folder = Path(settings.MASKNET_INDEX_DIR)
    orphan = folder / "index-000042-killed.npz"
    Index.load(IndexVersion.objects.current().file).save(orphan)
    os.utime(orphan, (time.time() - 600, time.time() - 600))   # ten minutes old
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=gone, actor=None)
    assert not orphan.exists()
    files = sorted(folder.glob("index-*.npz"))
    assert [f.name for f in files] == [IndexVersion.objects.current().path]
    assert Index.load(files[0]).identities == {str(keep.pk)}


def test_a_version_read_before_a_photo_removal_is_deleted_whatever_the_clocks(make_photo, monkeypatch, settings,
                                                                             django_capture_on_commit_callbacks):
    """Versions read before a photo was removed hold its templates and are not kept as rollback
    copies. That was told by comparing the run's start (a worker's clock) with the removal's audit
    time (a web node's): a web node 2 s behind kept the version. The run the removal asks for now
    marks every version built before it."""
    settings.MASKNET_INDEX_KEEP = 2
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=2)
    victim = person.photos.order_by("id").first()
    real_fit, state = index_services._thresholds_fit, {}

    def remove_after_the_read(*args, **kwargs):
        if not state:   # while the run has read both photos: removed on a web node whose clock is behind
            state["done"] = True
            real_now = timezone.now
            monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(seconds=2))
            services.photo_remove(photo=victim, actor=None)
            monkeypatch.setattr(timezone, "now", real_now)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(index_services, "_thresholds_fit", remove_after_the_read)
    with django_capture_on_commit_callbacks(execute=True):
        stale = rebuild_now().index_version
    monkeypatch.setattr(index_services, "_thresholds_fit", real_fit)
    assert stale.photo_count == 2
    with django_capture_on_commit_callbacks(execute=True):
        after = rebuild_now()   # the removal's rebuild
    assert after.drops_older and after.index_version.photo_count == 1
    assert not IndexVersion.objects.filter(pk=stale.pk).exists()


def test_templates_that_are_not_finite_vectors_are_never_cached(make_photo, monkeypatch):
    """An index holding a NaN or zero row is refused when written: cached, such templates made
    every later rebuild fail. The photo is marked failed and the rebuild goes on without it."""
    from enrollment.models import PhotoTemplates
    from recognition.engine.gallery import Templates

    broken = np.full((2, FAKE_DIM), np.nan, np.float32)
    person, bad = photo_to_embed(make_photo, monkeypatch,
                                 lambda engine, face, seed: Templates(broken, np.array([0, 1], np.int8)))
    run = services.index_rebuild()
    bad.refresh_from_db()
    assert run.state == "succeeded" and bad.embedding_state == "failed" and "finite" in bad.embedding_error
    assert not PhotoTemplates.objects.filter(photo=bad).exists()
    assert IndexVersion.objects.current().load().identities == {str(person.pk)}


def test_a_photo_that_raises_every_time_is_still_left_out(make_photo, monkeypatch):
    """Only the database's errors and a stop asked for leave the attempt uncounted: a photo whose
    embedding raises anything else every time (an error in native code, a time limit) is left out
    after PHOTO_MAX_ATTEMPTS runs, not a stop for every later rebuild."""
    def raises(engine, face, seed):
        raise IndexError("out of range in the renderer")

    _, poison = photo_to_embed(make_photo, monkeypatch, raises)
    stale = timedelta(seconds=django_settings.MASKNET_REBUILD_STALE_S + 1)
    outcomes = []
    for _ in range(services.PHOTO_MAX_ATTEMPTS + 1):
        try:
            outcomes.append(services.index_rebuild().state)
        except IndexError:
            outcomes.append("raised")
            TrainingRun.objects.filter(state="running").update(heartbeat_at=timezone.now() - stale)
    poison.refresh_from_db()
    assert outcomes == ["raised"] * services.PHOTO_MAX_ATTEMPTS + ["succeeded"], outcomes
    assert poison.embedding_state == "failed"


def test_a_forced_run_that_read_a_photo_before_its_removal_committed_keeps_no_copy(make_photo, settings,
                                                                                   django_capture_on_commit_callbacks):
    """A forced rebuild made while a removal was not yet committed did not join the removal's run:
    it read the photo and switched first, its run newer than the removal's. The removal's own run,
    at its switch, keeps no other version."""
    settings.MASKNET_INDEX_KEEP = 2
    (person,) = people_with_photos(make_photo, n_people=1, n_photos=2)
    victim = person.photos.order_by("id").first()
    with django_capture_on_commit_callbacks(execute=True):
        rebuild_now()
    # the removal's run, made in its transaction; the forced run, made beside it, reads both photos
    removal_run = TrainingRun.objects.create(reason="photo removed", drops_older=True)
    # not committed yet, so not seen by the forced run's claim (which does the work of the queued
    # runs it sees): kept out of its sight by another state for the while
    TrainingRun.objects.filter(pk=removal_run.pk).update(state="failed")
    forced = services.index_rebuild(run_id=TrainingRun.objects.create(reason="forced").pk, force=True)
    TrainingRun.objects.filter(pk=removal_run.pk).update(state="queued")
    assert forced.pk > removal_run.pk and forced.index_version.photo_count == 2
    # it was claimed between the removal's audit record and its commit (or on a clock ahead): the
    # time rule sees it started after the removal
    TrainingRun.objects.filter(pk=forced.pk).update(started_at=timezone.now() + timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        services.photo_remove(photo=victim, actor=None)   # commits now, joins its queued run
        done = services.index_rebuild(run_id=removal_run.pk, force=True)
    assert done.pk == removal_run.pk and done.index_version.photo_count == 1
    assert not IndexVersion.objects.filter(pk=forced.index_version.pk).exists()
    assert list(IndexVersion.objects.values_list("pk", flat=True)) == [done.index_version.pk]


def test_a_photo_removed_while_a_rebuild_embeds_does_not_make_a_failure_unreadable(make_photo, monkeypatch):
    """'to try again (unreadable)' was a difference of two counts of the failed photos: one removed
    (or its person deactivated) while the run embedded moved it, and a photo without a face was
    called unreadable."""
    from enrollment.models import PhotoTemplates
    from recognition.engine import NoFaceFound

    def no_face(engine, face, seed):
        raise NoFaceFound("no face found")

    person, bad = photo_to_embed(make_photo, monkeypatch, no_face)
    services.index_rebuild()
    new = make_photo(person)
    PhotoTemplates.objects.filter(photo=new).delete()
    real = index_services._photo_embed

    def embed_while_the_old_one_is_removed(*, photo, engine, version):
        FacePhoto.objects.filter(pk=bad.pk).delete()
        return real(photo=photo, engine=engine, version=version)

    monkeypatch.setattr(index_services, "_photo_embed", embed_while_the_old_one_is_removed)
    run = services.index_rebuild()
    assert run.stats["embed_failed"] == 1
    assert "1 photo left out (not embeddable)" in run.message and "to try again" not in run.message, run.message


def test_a_run_taken_over_counts_what_its_stopped_attempt_embedded_and_removals_apart(make_photo, monkeypatch,
                                                                                        settings):
    """A helper killed a worker at "embedded 13/29": the attempt that took the run over said "16 photos
    embedded" (its own), and erasing a person while a run embedded their photos counted those as
    failures. The run counts every attempt's photos now (as written with its progress), and photos
    removed while it ran apart from failures."""
    from django.core.files.storage import default_storage

    from enrollment.models import PhotoTemplates
    from recognition.engine.gallery import Templates

    person, first = photo_to_embed(make_photo, monkeypatch, lambda engine, face, seed: Templates(
        np.eye(2, FAKE_DIM, dtype=np.float32), np.array([0, 1], np.int8)))
    second, gone = make_photo(person), make_photo(person)
    PhotoTemplates.objects.filter(photo__in=[second, gone]).delete()
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    # the first attempt embedded 3 photos (no longer pending) before its worker was killed
    stale = timezone.now() - timedelta(seconds=settings.MASKNET_REBUILD_STALE_S + 5)
    TrainingRun.objects.filter(pk=run.pk).update(state="running", started_at=stale, heartbeat_at=stale, attempts=1,
                                                 stats={index_services.EMBEDDED_SO_FAR: 3})
    real = index_services._photo_read

    def erased_meanwhile(photo):
        if photo.pk == gone.pk:   # an erasure took the row and the file while the run embedded
            FacePhoto.objects.filter(pk=gone.pk).delete()
            default_storage.delete(gone.image.name)
        return real(photo)

    monkeypatch.setattr(index_services, "_photo_read", erased_meanwhile)
    done = services.index_rebuild(run_id=run.pk, force=True)
    assert done.state == "succeeded" and done.attempts == 2, done.error
    assert (done.stats["embedded_new"], done.stats["embed_failed"], done.stats["embed_removed"]) == (5, 0, 1)
    assert "5 photos embedded" in done.message and "1 photo removed while it ran" in done.message, done.message
    assert index_services.EMBEDDED_SO_FAR not in done.stats
    assert sorted(PhotoTemplates.objects.filter(photo__person=person).values_list("photo_id", flat=True)) == sorted(
        p.pk for p in FacePhoto.objects.filter(person=person))


def test_a_run_does_the_work_of_the_runs_queued_before_its_claim(make_photo, layer,
                                                                 django_capture_on_commit_callbacks):
    """Two changes at one moment (two admins; PostgreSQL's read committed) each found no queued run
    and queued one, and a run started by hand left the queued one for later: two whole rebuilds, two
    index versions, every kiosk's votes reset twice (a review's race, 4 of 5 tries). The run claimed
    first now does the others' work: they are recorded done by it, with its index version, and their
    own messages find nothing to do. Their photo removal's mark goes with the work."""
    people_with_photos(make_photo, n_people=2, n_photos=1)
    first = TrainingRun.objects.create(reason="change 1")
    second = TrainingRun.objects.create(reason="change 2", drops_older=True)
    channel = listen(layer, events.TRAINING_GROUP)
    with django_capture_on_commit_callbacks(execute=True):
        done = services.index_rebuild(run_id=first.pk, force=True)
    second.refresh_from_db()
    assert done.state == "succeeded" and second.state == "succeeded"
    assert second.index_version == done.index_version and IndexVersion.objects.count() == 1
    assert second.message.startswith(f"done by run #{first.pk}") and not second.drops_older
    assert TrainingRun.objects.get(pk=first.pk).drops_older
    assert AuditEvent.objects.filter(action="rebuild", object_id=str(second.pk), summary__contains="done by").exists()
    told = [m for m in drain(layer, channel) if m.get("run", {}).get("id") == second.pk]
    assert told and told[-1]["run"]["state"] == "succeeded"
    assert rebuild_index_task(second.pk) is None and IndexVersion.objects.count() == 1


def test_a_queued_run_a_change_joins_after_the_claim_still_runs(make_photo, monkeypatch):
    """A change that joins a covered run once the covering run has read may be missing from its
    index: that run is left queued, and runs."""
    people_with_photos(make_photo, n_people=1, n_photos=1)
    first = TrainingRun.objects.create(reason="change 1")
    second = TrainingRun.objects.create(reason="change 2")
    real_fit = index_services._thresholds_fit

    def join_meanwhile(index, *args):
        assert services.index_rebuild_request(actor=None, reason="later change") == second
        return real_fit(index, *args)

    monkeypatch.setattr(index_services, "_thresholds_fit", join_meanwhile)
    services.index_rebuild(run_id=first.pk, force=True)
    second.refresh_from_db()
    assert second.state == "queued" and second.requests == 2
    monkeypatch.setattr(index_services, "_thresholds_fit", real_fit)
    assert services.index_rebuild(run_id=second.pk, force=True).state == "succeeded"
    assert IndexVersion.objects.count() == 2
