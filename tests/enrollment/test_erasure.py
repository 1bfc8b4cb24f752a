"""Erasure leaves no file, row or index entry behind; only an audit record with the person's id."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.urls import reverse

from audit.models import AuditEvent
from enrollment import services
from enrollment.models import FacePhoto, IndexVersion, Person, PersonInactivePeriod, PhotoTemplates, TrainingRun
from enrollment.services import index as index_services
from enrollment.services import people as people_services
from enrollment.tasks import rebuild_index_task
from recognition.engine import EngineError
from recognition.engine.gallery import Templates
from recognition.engine.index import Index
from tests.enrollment.conftest import FAKE_DIM, in_thread


def index_files_with(label: str, folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.npz") if label in Index.load(p).identities]


def test_erase_leaves_nothing_but_an_audit_record(make_photo, superuser, settings,
                                                  django_capture_on_commit_callbacks):
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    make_photo(keep)
    photos = [make_photo(gone) for _ in range(3)]
    files = [Path(p.image.path) for p in photos]
    # two index versions contain the person: the active one and an older one
    for _ in range(2):
        run = services.index_rebuild_request(actor=None, reason="test", force=True)
        rebuild_index_task(run.pk, force=True)
    label, pk = str(gone.pk), gone.pk
    index_dir = Path(settings.MASKNET_INDEX_DIR)
    assert len(index_files_with(label, index_dir)) == 2
    # a file no row names: an upload whose transaction rolled back after the file was written
    orphan = Path(settings.MEDIA_ROOT) / "faces" / str(pk) / "rolled-back.jpg"
    orphan.write_bytes(b"\xff\xd8\xff a face")

    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=gone, actor=superuser)

    assert not Person.objects.filter(pk=pk).exists()
    assert not FacePhoto.objects.filter(person_id=pk).exists()
    assert PhotoTemplates.objects.count() == 1  # the other person's
    assert not any(f.exists() for f in files)
    assert not (Path(settings.MEDIA_ROOT) / "faces" / str(pk)).exists()
    assert index_files_with(label, index_dir) == []
    active = IndexVersion.objects.current()
    assert active.load().identities == {str(keep.pk)} and active.people_count == 1
    assert all(v.file.exists() for v in IndexVersion.objects.all())
    event = AuditEvent.objects.get(action="erase")
    assert (event.object_type, event.object_id, event.actor) == ("enrollment.person", str(pk), "root")
    everything = " ".join(AuditEvent.objects.values_list("summary", flat=True))
    assert "Erase Me" not in everything and "ERASED-G1" not in everything


def test_erase_deletes_the_admin_history_of_the_persons_photos_and_check_ins(
        client, superuser, make_photo, django_capture_on_commit_callbacks):
    """Django's admin history of a photo or check-in names the person's id and, for a check-in, its
    time ("check-in #7 of person #12 at …"): erasure deletes those rows, of photos and check-ins
    removed earlier in the admin as well as of those it deletes now, and only those ("person #12"
    is not "person #120" nor "person #112")."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.auth.models import User
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from recognition.models import CheckIn

    def checkin(person: Person, n: int) -> CheckIn:
        return CheckIn.objects.create(person=person, site="main", local_date=timezone.localdate(),
                                      window=f"main|{n}", score=0.9)

    def history(obj, object_repr: str | None = None, model=None) -> LogEntry:
        return LogEntry.objects.create(user=superuser, content_type=ContentType.objects.get_for_model(model or obj),
                                       object_id=str(obj.pk), object_repr=object_repr or str(obj), action_flag=CHANGE)

    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    client.force_login(superuser)
    for obj, admin_name in ((make_photo(gone), "enrollment_facephoto"), (checkin(gone, 1), "recognition_checkin")):
        assert client.post(reverse(f"admin:{admin_name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 302
    removed = set(LogEntry.objects.values_list("object_repr", flat=True))
    assert len(removed) == 2 and all(f" of person #{gone.pk}" in r for r in removed)   # written by the admin
    # the photo and check-in the erasure deletes: rows found by their ids (also with other texts)
    photo, visit = make_photo(gone), checkin(gone, 2)
    for obj, older_text in ((photo, "photo"), (visit, "check-in")):
        history(obj)
        history(obj, older_text)
    decoy = CheckIn(pk=10**6, person_id=gone.pk * 10, at=visit.at)     # "person #120" when gone is #12
    kept = {history(make_photo(keep)).pk, history(checkin(keep, 1)).pk, history(decoy).pk,
            history(decoy, f"check-in #1 of person #1{gone.pk} at 2026-01-01 08:00").pk,
            history(decoy, f"photo #1 of person #{gone.pk}0", model=FacePhoto).pk,
            history(superuser, f"photo #1 of person #{gone.pk}", model=User).pk}   # another kind of object
    assert LogEntry.objects.count() == 2 + 4 + len(kept)

    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=gone, actor=superuser)

    assert set(LogEntry.objects.values_list("pk", flat=True)) == kept
    # and the record says what went (it left out the check-ins and the history)
    summary = AuditEvent.objects.get(action="erase").summary
    # counted as people read it ("1 check-ins" read as a typo in the one record an erasure leaves)
    assert f"erased person #{gone.pk}: 1 photo," in summary and "1 check-in (" in summary, summary
    assert "6 admin history entries" in summary, summary   # the 2 written by the admin and 4 above


def test_erase_rewords_the_rebuild_reasons_that_named_the_person(make_photo, superuser):
    """Index rebuilds' reasons ("photo added to person #12", "person #12 deactivated"), which
    Enrollers read and which are kept for good, told them when an erased person's photos were
    added and when they were deactivated: they now name nobody. Other people's stay, "person #12"
    is not "person #120", and the erasure's own run names nobody either; the audit log keeps the id."""
    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    photo = make_photo(gone)
    make_photo(keep)
    for change in (lambda: services.photo_remove(photo=photo, actor=None),
                   lambda: services.person_deactivate(person=gone, actor=None)):
        change()
        TrainingRun.objects.update(state="succeeded")   # each change its own run, not one joined run
    decoy = TrainingRun.objects.create(reason=f"photo added to person #{gone.pk}0", state="succeeded")
    other = TrainingRun.objects.create(reason=f"photo added to person #{keep.pk}", state="succeeded")
    mine = sorted(TrainingRun.objects.filter(reason__contains=f"person #{gone.pk}")
                  .exclude(pk=decoy.pk).values_list("pk", flat=True))

    services.person_erase(person=gone, actor=superuser)

    reasons = dict(TrainingRun.objects.values_list("pk", "reason"))
    assert [reasons[pk] for pk in mine] == ["photo removed from an erased person", "an erased person deactivated"]
    assert reasons[decoy.pk] == f"photo added to person #{gone.pk}0"
    assert reasons[other.pk] == f"photo added to person #{keep.pk}"
    assert not [r for r in reasons.values() if re.search(rf"#{gone.pk}(?!\d)", r)], reasons
    assert TrainingRun.objects.filter(state="queued").get().reason == "a person erased"
    summary = AuditEvent.objects.get(action="erase").summary
    assert f"erased person #{gone.pk}:" in summary and "2 rebuild reasons no longer naming them" in summary


def test_a_person_erased_meanwhile_is_neither_erased_again_nor_deactivated(make_photo, superuser):
    """An admin action works on the rows it read: someone else erased one of them since. The second
    erasure records nothing (it wrote a second "erased person #N: 0 photos" naming its actor, and
    queued a rebuild); a deactivation of the erased row is no error (it was a 500 half-way through
    the action's list)."""
    person = services.person_create(actor=None, full_name="Ana Silva", staff_id="A1")
    make_photo(person)
    stale_for_erase, stale_for_deactivate = Person.objects.get(pk=person.pk), Person.objects.get(pk=person.pk)
    services.person_erase(person=person, actor=superuser)
    requests_before = sum(TrainingRun.objects.values_list("requests", flat=True))
    services.person_erase(person=stale_for_erase, actor=None)
    services.person_deactivate(person=stale_for_deactivate, actor=None)
    assert AuditEvent.objects.filter(action="erase", object_id=str(person.pk)).count() == 1
    assert not AuditEvent.objects.filter(action="deactivate", object_id=str(person.pk)).exists()
    assert sum(TrainingRun.objects.values_list("requests", flat=True)) == requests_before


def test_erase_deletes_the_persons_inactive_periods(superuser):
    """When someone was away (deactivated, then reactivated) is the person's data: gone with them."""
    keep, gone = (services.person_create(actor=None, full_name=name, staff_id=name) for name in ("KEEP", "GONE"))
    for who in (keep, gone, gone):
        services.person_deactivate(person=who, actor=None)
        services.person_update(person=who, actor=None, active=True)
    assert PersonInactivePeriod.objects.filter(person_id=gone.pk).count() == 2
    services.person_erase(person=gone, actor=superuser)
    assert list(PersonInactivePeriod.objects.values_list("person_id", flat=True)) == [keep.pk]


def test_a_person_deactivated_meanwhile_is_deactivated_once(make_photo):
    person = services.person_create(actor=None, full_name="Bo Lee", staff_id="B1")
    stale = Person.objects.get(pk=person.pk)
    services.person_deactivate(person=person, actor=None)
    services.person_deactivate(person=stale, actor=None)
    assert not Person.objects.get(pk=person.pk).active and not stale.active
    assert AuditEvent.objects.filter(action="deactivate", object_id=str(person.pk)).count() == 1


def test_erase_then_rebuild_still_excludes_the_person(make_photo, django_capture_on_commit_callbacks):
    a = services.person_create(actor=None, full_name="A", staff_id="A")
    b = services.person_create(actor=None, full_name="B", staff_id="B")
    make_photo(a)
    make_photo(b, centre=np.ones(1024))
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=b, actor=None)
    run = services.index_rebuild_request(actor=None, reason="after erase", force=True)
    rebuild_index_task(run.pk, force=True)
    assert IndexVersion.objects.current().load().identities == {str(a.pk)}



def test_the_version_an_erasure_rewrote_and_its_run_say_the_same_in_the_admin(make_photo, superuser, client,
                                                                               django_capture_on_commit_callbacks):
    """An erasure rewrites the active version into a new one that keeps its run (``built_by``) and
    deletes the run's own, so the version's page said "built by training run #N" while that run's
    page showed no index version: both now say the run's version was rewritten by an erasure (the
    person unnamed), each linking to the other."""
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    make_photo(keep)
    make_photo(gone, centre=np.ones(1024))
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(run.pk, force=True)
    built = IndexVersion.objects.current()
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=gone, actor=None)
    rewrite = IndexVersion.objects.current()
    assert rewrite.pk != built.pk and rewrite.built_by_id == run.pk
    assert not IndexVersion.objects.filter(pk=built.pk).exists()
    client.force_login(superuser)
    run_url = reverse("admin:enrollment_trainingrun_change", args=[run.pk])
    version_url = reverse("admin:enrollment_indexversion_change", args=[rewrite.pk])
    said = f"<a href=\"{version_url}\">index v{rewrite.pk} (active)</a>: this run's version, rewritten by an erasure"
    for page in (client.get(run_url), client.get(reverse("admin:enrollment_trainingrun_changelist"))):
        assert said in page.content.decode()
    said = (f'<a href="{run_url}">training run #{run.pk} (succeeded)</a>: '
            f"its version v{built.pk}, rewritten by an erasure")
    for page in (client.get(version_url), client.get(reverse("admin:enrollment_indexversion_changelist"))):
        html = page.content.decode()
        assert said in html and "Erase Me" not in html and "ERASED-G1" not in html
    # a run whose version is its own still shows it, unchanged
    again = services.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(again.pk, force=True)
    latest = IndexVersion.objects.current()
    latest_url = reverse("admin:enrollment_indexversion_change", args=[latest.pk])
    html = client.get(reverse("admin:enrollment_trainingrun_change", args=[again.pk])).content.decode()
    assert f'<a href="{latest_url}">index v{latest.pk} (active)</a></div>' in html
    assert "rewritten" not in client.get(latest_url).content.decode()


def test_erasure_deletes_an_index_file_it_cannot_read(make_photo, monkeypatch, settings,
                                                       django_capture_on_commit_callbacks):
    """An active index file that cannot be read at that moment (a shared volume's hiccup) is deleted
    with its version, not skipped: read again later, as a kept older version, it would still hold
    the erased person."""
    a = services.person_create(actor=None, full_name="A", staff_id="A")
    b = services.person_create(actor=None, full_name="B", staff_id="B")
    make_photo(a)
    make_photo(b, centre=np.ones(1024))
    rebuild_index_task(services.index_rebuild_request(actor=None, reason="first", force=True).pk, force=True)
    active = IndexVersion.objects.current()
    assert str(b.pk) in active.load().identities
    real_load = Index.load.__func__

    def flaky(cls, path, content=None):
        if Path(path).name == active.path:
            raise EngineError("input/output error")
        return real_load(cls, path, content)

    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    kiosks = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("kiosks", kiosks)
    with monkeypatch.context() as patch:
        patch.setattr(Index, "load", classmethod(flaky))
        with django_capture_on_commit_callbacks(execute=True):
            services.person_erase(person=b, actor=None)
    assert not (Path(settings.MASKNET_INDEX_DIR) / active.path).exists()
    assert not IndexVersion.objects.filter(pk=active.pk).exists()
    assert index_files_with(str(b.pk), Path(settings.MASKNET_INDEX_DIR)) == []
    # kiosks of other processes, which may hold a copy they read before, are told to drop it now
    heard = async_to_sync(asyncio.wait_for)(layer.receive(kiosks), timeout=1)
    assert heard == {"type": "index.updated", "version": None, "people": 0, "templates": 0, "outdated": False}
    async_to_sync(layer.flush)()


@pytest.mark.django_db(transaction=True)
def test_erasure_racing_a_rebuilds_switch_still_removes_the_person(make_photo, monkeypatch):
    """A rebuild's switch that read the person as active (its version being written) while the
    erasure runs: the erasure waits for the switch and scrubs the version it made. (On PostgreSQL
    a scrub that only locked inside its own statement missed the new version.)"""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks and per-statement snapshots: PostgreSQL only (SQLite serialises writers)")
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    for person in (keep, gone):
        make_photo(person)
    first = services.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(first.pk, force=True)
    label = str(gone.pk)
    assert label in IndexVersion.objects.current().load().identities

    writing, release = threading.Event(), threading.Event()
    real_save = index_services._index_save

    def slow_save(index, run_id):
        writing.set()              # the switch holds the active version's lock and has read who is active
        assert release.wait(10)
        return real_save(index, run_id)

    monkeypatch.setattr(index_services, "_index_save", slow_save)
    current = IndexVersion.objects.current()
    index, key = current.load(), current.model_version
    run = index_services._run_claim(   # the switch belongs to a claimed run
        run_id=services.index_rebuild_request(actor=None, reason="racing", force=True).pk, force=True)
    errors: list[BaseException] = []

    switch = in_thread(errors, lambda: index_services._index_switch(run=run, index=index, version_key=key,
                                                                    photo_count=2, metrics={},
                                                                    record=lambda version: None))
    erase = in_thread(errors, lambda: services.person_erase(person=gone, actor=None))
    switch.start()
    assert writing.wait(10)
    erase.start()
    time.sleep(0.5)
    assert erase.is_alive(), "the erasure did not wait for the switch"
    release.set()
    switch.join(20)
    erase.join(20)
    assert not errors, errors
    active = IndexVersion.objects.current()
    assert active.load().identities == {str(keep.pk)}
    assert not any(label in v.load().identities for v in IndexVersion.objects.all())


@pytest.mark.django_db(transaction=True)
def test_erasures_at_once_leave_none_of_their_people_in_any_version(make_photo, monkeypatch):
    """Three erasures at once (an integration erasing a list in parallel): B waits on the active
    version A is rewriting; once A commits, C rewrites A's version while B goes on. With a lock on
    the active version's row alone, B had waited on a row A deleted, locked nothing, and its scrub
    missed the version C made, which kept B's person (and was active)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks and per-statement snapshots: PostgreSQL only (SQLite serialises writers)")
    keep, a, b, c = (services.person_create(actor=None, full_name=f"P {n}", staff_id=n) for n in "KABC")
    for person in (keep, a, b, c):
        make_photo(person)
    rebuild_index_task(services.index_rebuild_request(actor=None, reason="test", force=True).pk, force=True)
    a_saving, a_release, b_between, c_saving = (threading.Event() for _ in range(4))
    real_save, real_history = index_services._index_save, people_services._admin_history_delete

    def save(index, run_id):
        who = threading.current_thread().name
        if who == "A":
            a_saving.set()          # A holds what it locked and rewrites the active version
            assert a_release.wait(10)
        elif who == "C":
            c_saving.set()          # C holds what it locked: the version A made
            time.sleep(1.0)
        return real_save(index, run_id)

    def history(*, person_id):
        if threading.current_thread().name == "B":
            b_between.set()         # past its first lock, before its scrub
            c_saving.wait(2.0)      # C gets in here only where B holds no lock that keeps it out
        return real_history(person_id=person_id)

    monkeypatch.setattr(index_services, "_index_save", save)
    monkeypatch.setattr(people_services, "_admin_history_delete", history)
    errors: list[BaseException] = []
    threads = {name: in_thread(errors, lambda p=p: services.person_erase(person=p, actor=None))
               for name, p in (("A", a), ("B", b), ("C", c))}
    for name, thread in threads.items():
        thread.name = name
    threads["A"].start()
    assert a_saving.wait(10)
    threads["B"].start()
    time.sleep(0.3)                 # B waits for A
    a_release.set()
    assert b_between.wait(10)
    threads["C"].start()
    for thread in threads.values():
        thread.join(30)
    assert not errors, errors
    erased = {str(p.pk) for p in (a, b, c)}
    assert IndexVersion.objects.current().load().identities == {str(keep.pk)}
    assert not any(erased & v.load().identities for v in IndexVersion.objects.all())
    for label in erased:
        assert index_files_with(label, Path(django_settings.MASKNET_INDEX_DIR)) == []


@pytest.mark.django_db(transaction=True)
def test_erasure_while_a_template_is_being_stored_erases_the_person(make_photo, monkeypatch):
    """An erasure that arrives while a rebuild stores a photo's templates waits for that store
    (both lock the photo) and deletes its templates too. (It collected the templates first, the
    store's insert then broke the erasure's foreign keys: a 500, the person not erased.)"""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    person = services.person_create(actor=None, full_name="Erase Me", staff_id="ERASED-G1")
    photo = make_photo(person)
    PhotoTemplates.objects.filter(photo=photo).delete()
    storing, release = threading.Event(), threading.Event()
    manager = type(PhotoTemplates.objects)
    real = manager.update_or_create

    def slow(self, *args, **kwargs):
        storing.set()              # the store holds the photo's lock
        assert release.wait(10)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(manager, "update_or_create", slow)
    templates = Templates(np.eye(2, FAKE_DIM, dtype=np.float32), np.array([0, 1], np.int8))
    errors: list[BaseException] = []

    store = in_thread(errors, lambda: index_services._templates_store(photo=photo, templates=templates, version="v"))
    erase = in_thread(errors, lambda: services.person_erase(person=person, actor=None))
    store.start()
    assert storing.wait(10)
    erase.start()
    time.sleep(0.5)
    release.set()
    store.join(20)
    erase.join(20)
    assert not errors, errors
    assert not Person.objects.filter(pk=person.pk).exists() and not PhotoTemplates.objects.exists()


def test_erasing_many_people_rewrites_the_index_once_and_records_each(make_photo, superuser, settings, client,
                                                                     django_capture_on_commit_callbacks,
                                                                     monkeypatch):
    """The admin's erase action erased one person at a time, each rewriting the active index (a 30 MB
    file at 20,000 people) and telling every kiosk to load it again: 100 times for a batch of 100 (a
    scale review). Now they go in one transaction with one rewrite and one announcement, each still
    audited with what of them went, their files deleted, and none of them left in any index file."""
    from enrollment import events

    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    make_photo(keep)
    gone = [services.person_create(actor=None, full_name=f"Erase {i}", staff_id=f"ERASED-{i}") for i in range(4)]
    photos = {p.pk: [make_photo(p) for _ in range(i % 2 + 1)] for i, p in enumerate(gone)}
    for _ in range(2):   # the active version and an older one hold them
        run = services.index_rebuild_request(actor=None, reason="test", force=True)
        rebuild_index_task(run.pk, force=True)
    before = set(IndexVersion.objects.values_list("pk", flat=True))
    told = []
    monkeypatch.setattr(events, "index_updated", lambda version: told.append(version.pk))
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reverse("admin:enrollment_person_changelist"),
                             {"action": "erase_biometric_data", "post": "yes",
                              "_selected_action": [p.pk for p in gone]}, follow=True)
    assert "4 people erased" in answer.content.decode()
    made = IndexVersion.objects.exclude(pk__in=before)
    assert made.count() == 1 and len(told) == 1 and IndexVersion.objects.count() == 1   # the older one deleted
    assert made.get().load().identities == {str(keep.pk)}
    assert not any(index_files_with(str(p.pk), Path(settings.MASKNET_INDEX_DIR)) for p in gone)
    assert list(Person.objects.values_list("pk", flat=True)) == [keep.pk]
    for p in gone:
        record = AuditEvent.objects.get(action="erase", object_id=str(p.pk))
        assert record.actor == superuser.username
        assert record.summary.startswith(f"erased person #{p.pk}: {len(photos[p.pk])} photo")
        assert "2 index versions rewritten or deleted" in record.summary
        assert not any(Path(ph.image.path).exists() for ph in photos[p.pk])
    assert TrainingRun.objects.filter(state="queued").count() == 1   # one rebuild asked for them all
