"""``import_people`` and ``rebuild_index``."""

from __future__ import annotations

import io

import cv2
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from enrollment import services
from enrollment.models import FacePhoto, IndexVersion, Person, TrainingRun

from .conftest import jpeg


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


@pytest.fixture
def people_tree(tmp_path, astronaut_bgr, portrait_png, gradient_png):
    root = tmp_path / "people"
    (root / "Eileen_Collins").mkdir(parents=True)
    (root / "Eileen_Collins" / "a.jpg").write_bytes(jpeg(astronaut_bgr))
    (root / "Eileen_Collins" / "b.jpg").write_bytes(jpeg(cv2.flip(astronaut_bgr, 1)))
    (root / "Eileen_Collins" / "notes.txt").write_text("not a photo")
    (root / "Tom_Hanks").mkdir()
    (root / "Tom_Hanks" / "t.png").write_bytes(portrait_png)
    (root / "Nobody").mkdir()
    (root / "Nobody" / "gradient.png").write_bytes(gradient_png)
    return root


@pytest.mark.models
def test_import_people_then_rebuild(db, engine, people_tree):
    out = run("import_people", str(people_tree))
    assert "importing 3 people, 4 photos" in out
    assert "people: 3 created, 0 already there; photos: 3 added, 1 refused" in out
    assert "no_face (1): No face found in the photo." in out and "Nobody/gradient.png" in out
    assert "photos/s" in out and "1 people have no accepted photo yet (they are not in the index): Nobody" in out
    # a file not named as a photo is said, not skipped silently (a folder of HEIC photos imported nobody)
    assert "1 files not imported, not named as JPEG, PNG or WebP" in out and "Eileen_Collins/notes.txt" in out
    assert set(Person.objects.values_list("full_name", flat=True)) == {"Eileen Collins", "Tom Hanks", "Nobody"}
    assert FacePhoto.objects.filter(source="import", embedding_state="embedded").count() == 3
    # the rebuild ran in the foreground (no Celery here) and found every template cached
    assert "people: 2, templates:" in out and "(0 embedded now, 0 failed)" in out
    version = IndexVersion.objects.current()
    assert version.people_count == 2 and version.photo_count == 3
    again = run("import_people", str(people_tree), "--no-rebuild", limit=2)
    # the photos already there are said as such, not as refusals
    assert "people: 0 created, 2 already there; photos: 0 added, 2 already enrolled, 1 refused" in again, again
    assert "duplicate" not in again and "no_face (1)" in again


@pytest.mark.models
def test_an_import_into_a_full_media_storage_stops_saying_so(db, engine, people_tree, storage_full):
    """Each photo after the first that does not fit would fail alike: the import stops there with the
    storage's sentence and the photo it was at, no traceback, what was added kept and on record."""
    from django.conf import settings as django_settings

    from audit.models import AuditEvent

    storage_full(django_settings.MEDIA_ROOT)
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"\.(jpg|png): The photo could not be stored: the server's storage "
                                           r"for photos is full"):
        call_command("import_people", str(people_tree), stdout=io.StringIO(), stderr=err)
    assert "import interrupted after 0 of 4 photos: what was added is kept" in err.getvalue()
    assert not FacePhoto.objects.exists()
    assert AuditEvent.objects.filter(action="import", summary__contains="(interrupted)").count() == 1


@pytest.mark.models
def test_an_import_says_the_admins_warnings_of_the_photos_it_keeps(db, engine, tmp_path, astronaut_bgr):
    """The admin and the API warn of a photo that is the same picture as one the person has (saved
    again in another format) and of a person whose photos all show a mask; the import kept such
    photos without a word. Its summary now says them, per person, in the admin's words."""
    from tests.recognition.faces import with_mask

    from .conftest import png

    root = tmp_path / "people"
    for name in ("Eileen_Collins", "Masked_Eileen", "Tom_Hanks"):
        (root / name).mkdir(parents=True)
    (root / "Eileen_Collins" / "a.jpg").write_bytes(jpeg(astronaut_bgr))
    (root / "Eileen_Collins" / "b.png").write_bytes(png(astronaut_bgr))   # the same picture again
    (root / "Masked_Eileen" / "m.jpg").write_bytes(jpeg(with_mask(engine, astronaut_bgr)))
    (root / "Tom_Hanks" / "t.jpg").write_bytes(jpeg(cv2.flip(astronaut_bgr, 1)))
    out = run("import_people", str(root), "--no-rebuild")
    assert "people: 3 created, 0 already there; photos: 4 added, 0 refused" in out, out
    first = FacePhoto.objects.filter(person__staff_id="Eileen_Collins").order_by("pk").first()
    lines = out.splitlines()
    at = lines.index("2 warnings of photos added (kept; as the admin warns):")
    assert lines[at + 1].startswith(f"  Eileen_Collins: “Eileen_Collins/b.png” is the same picture as photo "
                                    f"#{first.pk} of Eileen Collins, saved again (face score ")
    assert lines[at + 1].endswith("a copy adds nothing to recognition. Remove one of the two and add a different "
                                  "photo.")
    masked = services.photos_masked_only_warning(person=Person.objects.get(staff_id="Masked_Eileen"))
    assert masked.startswith("Every photo of Masked Eileen shows a face mask")
    assert lines[at + 2:] == [f"  Masked_Eileen: {masked}"], out
    # a re-run adds nothing: nothing to warn of
    assert "warnings" not in run("import_people", str(root), "--no-rebuild")


@pytest.mark.parametrize("stored", [True, False], ids=["stopped-after-storing", "stopped-before-storing"])
def test_an_interrupted_import_keeps_what_was_added_and_says_so(db, people_tree, monkeypatch, stored):
    """Ctrl-C (or any failure) half-way: the people and photos added stay, the audit log records
    the interrupted import (a photo stored while it was being embedded counted too: it was not),
    and the operator is told how to go on, in a line, not a traceback. The photo stored when it
    stopped is one of those handled: the notice said "after 1 of 4 photos" with 2 stored."""
    from audit.models import AuditEvent
    from enrollment import services
    from enrollment.management.commands import import_people
    from masknet_site.command_line import Terminated

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    calls = []

    def photo_add(**kwargs):
        calls.append(kwargs["filename"])
        if len(calls) == 2 and not stored:   # stopped before anything of it was stored
            raise KeyboardInterrupt
        photo = FacePhoto.objects.create(person=kwargs["person"], image=f"faces/x{len(calls)}.jpg",
                                         sha256=str(len(calls)), width=8, height=8, source=FacePhoto.Source.IMPORT)
        photo.repeats = (photo, 0.99) if len(calls) == 1 else None   # a warning of the first photo
        if len(calls) == 2:   # stored, and stopped while its templates were made: by SIGTERM, this time
            raise Terminated
        return photo

    monkeypatch.setattr(services, "photo_add", photo_add)
    err, out = io.StringIO(), io.StringIO()
    # said as it was stopped: a job runner's SIGTERM was "interrupted (Ctrl-C)" (an operator-commands review)
    with pytest.raises(CommandError, match=r"^import stopped \(SIGTERM\)$" if stored
                       else r"^import interrupted \(Ctrl-C\)$"):
        call_command("import_people", str(people_tree), stdout=out, stderr=err)
    # the warnings of the photos added before it stopped are said: a re-run finds those photos
    # enrolled and checks them no more (a helper's review found them lost for good)
    assert "1 warnings of photos added before the interruption" in out.getvalue(), out.getvalue()
    assert "is the same picture as photo #" in out.getvalue()
    n = 2 if stored else 1
    assert FacePhoto.objects.count() == n and Person.objects.exists()
    event = AuditEvent.objects.get(action="import")
    assert "interrupted" in event.summary and f"{n} photos added" in event.summary
    assert f"import interrupted after {n} of 4 photos" in err.getvalue(), err.getvalue()
    assert "run it again" in err.getvalue()


def test_an_import_stopped_by_a_full_storage_says_the_warnings_so_far(db, people_tree, monkeypatch):
    """Not only Ctrl-C: an import stopped by a full storage lost its photos' warnings too (a re-run
    checks them no more). Found by a helper's review."""
    from enrollment import services
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    calls = []

    def photo_add(**kwargs):
        calls.append(kwargs["filename"])
        if len(calls) == 2:
            raise services.StorageFull("media")
        photo = FacePhoto.objects.create(person=kwargs["person"], image="faces/x1.jpg", sha256="1", width=8,
                                         height=8, source=FacePhoto.Source.IMPORT)
        photo.repeats = (photo, 0.99)
        return photo

    monkeypatch.setattr(services, "photo_add", photo_add)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_people", str(people_tree), stdout=out, stderr=io.StringIO())
    assert "1 warnings of photos added before the interruption" in out.getvalue(), out.getvalue()


def test_an_import_stopped_by_the_database_still_says_so(db, people_tree, monkeypatch):
    """The audit record of an interrupted import was written before the notice: with the database
    down (often what stopped the import) it raised too, and the operator was told nothing."""
    from django.db import OperationalError

    from enrollment import services
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)

    def down(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(services, "photo_add", down)
    monkeypatch.setattr(import_people, "audit_record", down)
    err = io.StringIO()
    with pytest.raises(OperationalError):
        call_command("import_people", str(people_tree), stdout=io.StringIO(), stderr=err)
    assert "run it again" in err.getvalue() and "could not be recorded in the audit log" in err.getvalue()


def test_an_empty_or_oversized_photo_is_refused_as_what_it_is(settings):
    """An empty file was "not a JPEG, PNG or WebP image"; any oversized upload said "It is 8.0 MiB;
    at most 8.0 MiB" (the callers read the limit and one byte)."""
    from enrollment import services

    assert services.photo_inspect(data=b"").code == "empty"
    settings.MASKNET_MAX_PHOTO_BYTES = 1024
    cut = services.photo_inspect(data=b"\xff\xd8\xff" + b"0" * 1022)
    assert cut.code == "too_large" and "It is more than 1,024 bytes; at most 1,024 bytes." in cut.message, cut.message
    # in MiB: a whole number without a tenth ("at most 8.0 MiB" read as a rounded figure); a size a
    # few bytes over it keeps its tenth, so that it never reads as the limit itself
    settings.MASKNET_MAX_PHOTO_BYTES = 8 * 2**20
    over = services.photo_inspect(data=b"\xff\xd8\xff" + b"0" * (8 * 2**20 + 4000))
    assert "It is 8.0 MiB; at most 8 MiB." in over.message, over.message
    assert services.amount(int(1.5 * 2**20), "bytes") == "1.5 MiB" and services.amount(2**20, "bytes") == "1 MiB"


def test_import_people_refuses_a_missing_folder(db, tmp_path):
    with pytest.raises(CommandError):
        run("import_people", str(tmp_path / "absent"))


def test_import_people_refuses_what_it_cannot_import_faithfully(db, tmp_path):
    """A folder name longer than a staff id (it was cut: two such folders became one person), a
    people list that is not there, and counts below 1 (--limit 0 meant everyone, --max-photos 0
    nothing) are refused before anything is imported."""
    long_a, long_b = "A" * 64 + "_one", "A" * 64 + "_two"
    for name in (long_a, long_b):
        (tmp_path / name).mkdir()
    with pytest.raises(CommandError, match="cannot be staff ids"):
        run("import_people", str(tmp_path), "--no-rebuild")
    with pytest.raises(CommandError, match="not found"):
        run("import_people", str(tmp_path), "--people-list", str(tmp_path / "absent.txt"))
    for option in ("--limit", "--max-photos"):
        with pytest.raises(CommandError):
            run("import_people", str(tmp_path), option, "0")
    with pytest.raises(CommandError, match="at least 1"):
        run("import_people", str(tmp_path), limit=0)
    assert not Person.objects.exists()


def test_a_folder_of_underscores_alone_is_refused_before_anyone_is_imported(db, tmp_path):
    """``_`` would be a staff id with an empty full name: refused up front, not half-way through."""
    for name in ("Ana_Silva", "__"):
        (tmp_path / name).mkdir()
    with pytest.raises(CommandError, match="cannot be staff ids .*'__'"):
        run("import_people", str(tmp_path), "--no-rebuild")
    assert not Person.objects.exists()


@pytest.mark.parametrize("names", [("Bo_C", "bo_c"), ("Ann_B", "Ann_B "), ("ZOE_C", "\uff3a\uff2f\uff25_C"),
                                   ("Ann  B", "Ann B"), ("A-100", "A\u2011100")])
def test_two_folders_that_would_be_one_person_are_refused_before_anyone_is_imported(db, tmp_path, names):
    """Staff ids are unique ignoring letter case, spaces around them and repeated inside, and
    full-width forms: two people's folders were merged into one person, two faces under one
    identity (a full-width name and one with two spaces were taken for two people's)."""
    for name in (*names, "Jane_Doe"):
        (tmp_path / name).mkdir()
    with pytest.raises(CommandError, match="would be one person") as refused:
        run("import_people", str(tmp_path), "--no-rebuild")
    assert all(ascii(n) in str(refused.value) for n in names)
    assert not Person.objects.exists()


def test_a_people_list_of_numeric_staff_ids_keeps_them(tmp_path):
    """People filed by a numeric staff id (``1001/``): a lone number that names a folder is a
    person, not LFW's count line (it was dropped without a word)."""
    from enrollment.management.commands.import_people import person_folders

    for name in ("1001", "1002", "Jane_Doe"):
        (tmp_path / name).mkdir()
    listing = tmp_path / "people.txt"
    listing.write_text("3\n1001\n1002\t2\nJane_Doe\n")
    assert [p.name for p in person_folders(tmp_path, None, listing)] == ["1001", "1002", "Jane_Doe"]


def test_a_folder_name_with_trailing_space_is_found_again(db, tmp_path):
    (tmp_path / "Jane_Doe ").mkdir()
    run("import_people", str(tmp_path), "--no-rebuild")
    run("import_people", str(tmp_path), "--no-rebuild")       # was a ValidationError: duplicate staff id
    assert list(Person.objects.values_list("staff_id", flat=True)) == ["Jane_Doe"]


def test_a_folder_named_on_a_mac_is_the_person_of_that_staff_id(db, tmp_path):
    """A Mac names folders decomposed (NFD: "e" + U+0308): "Zoë_Adams" from there was a second
    person beside the "Zoë_Adams" (composed, NFC) enrolled elsewhere, their staff ids looking the
    same. Folder names are read as staff ids are stored; a zero-width space in one is nothing."""
    zoe = services.person_create(actor=None, full_name="Zo\u00eb Adams", staff_id="Zo\u00eb_Adams")
    (tmp_path / "Zoe\u0308_Adams").mkdir()
    (tmp_path / "Bo\u200b_Lee").mkdir()
    run("import_people", str(tmp_path), "--no-rebuild")
    assert sorted(Person.objects.values_list("staff_id", "full_name")) == [("Bo_Lee", "Bo Lee"),
                                                                          ("Zo\u00eb_Adams", "Zo\u00eb Adams")]
    assert Person.objects.get(staff_id="Zo\u00eb_Adams") == zoe
    # the two forms side by side in one folder would be one person: refused before anything
    (tmp_path / "Zo\u00eb_Adams").mkdir()
    with pytest.raises(CommandError, match="would be one person") as refused:
        run("import_people", str(tmp_path), "--no-rebuild")
    assert "'Zoe\\u0308_Adams'" in str(refused.value) and "'Zo\\xeb_Adams'" in str(refused.value)


@pytest.mark.parametrize("folder", ["A\u2011100", "A\u2010100", "a\u2013100", "A\u2212100"])
def test_a_folder_named_with_a_dash_look_alike_is_the_person_of_that_staff_id(db, tmp_path, folder):
    """HR's spreadsheets and Word put a non-breaking hyphen, an en dash or a minus sign where "-" was
    typed: a folder "A\u2011100" was a second person beside "A-100", their staff ids looking the
    same. Staff ids' keys read those dashes as "-"; an em dash is another id."""
    ann = services.person_create(actor=None, full_name="Ann Bee", staff_id="A-100")
    (tmp_path / folder).mkdir()
    run("import_people", str(tmp_path), "--no-rebuild")
    assert list(Person.objects.all()) == [ann] and Person.objects.get().staff_id == "A-100"
    (tmp_path / "A\u2014100").mkdir()
    run("import_people", str(tmp_path), "--no-rebuild")
    assert sorted(Person.objects.values_list("staff_id", flat=True)) == ["A-100", "A\u2014100"]


def test_a_folder_whose_name_is_an_enrolled_staff_id_written_otherwise_is_that_person(db, tmp_path):
    """"\uff3a\uff2f\uff25-1" (full-width, a Japanese keyboard's) or "zo\xeb-2" where "ZOE-1" and
    "ZO\xcb-2" are enrolled made a second person whose staff id looked the same (the second on
    SQLite only, whose LOWER folds ASCII letters alone); a people CSV's two rows of such ids are
    one staff id twice."""
    wide = services.person_create(actor=None, full_name="Zoe One", staff_id="ZOE-1")
    accented = services.person_create(actor=None, full_name="Zoe Two", staff_id="ZO\u00cb-2")
    root = tmp_path / "photos"
    for name in ("\uff3a\uff2f\uff25-1", "zo\u00eb-2", "A", "B"):
        (root / name).mkdir(parents=True)
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name\nA,X  1,Ann\nB,x 1,Ben\nzo\u00eb-2,zo\u00eb-2,Zoe Two\n",
                     encoding="utf-8")
    out = run("import_people", str(root), "--people-csv", str(sheet), "--no-rebuild", verbosity=2)
    assert "line 2: staff id 'X  1' is also on line 3" in out, out
    assert Person.objects.count() == 2
    run("import_people", str(root), "--no-rebuild")
    assert sorted(Person.objects.values_list("staff_id", flat=True)) == ["A", "B", "ZOE-1", "ZO\u00cb-2"]
    assert Person.objects.get(staff_id="ZOE-1") == wide and Person.objects.get(staff_id="ZO\u00cb-2") == accented


def test_people_list_order_and_limit(tmp_path):
    from enrollment.management.commands.import_people import person_folders

    for name in ("A", "B", "C"):
        (tmp_path / name).mkdir()
    listing = tmp_path / "people.txt"
    listing.write_text("\ufeff3\nC\t1\nA 2\n", encoding="utf-8")   # a BOM, and a space instead of a tab
    assert [p.name for p in person_folders(tmp_path, None, listing)] == ["C", "A"]
    assert [p.name for p in person_folders(tmp_path, 2, None)] == ["A", "B"]
    listing.write_text("C\t1\nZ\t1\n")
    with pytest.raises(CommandError, match="not folders of"):    # a typo is said, not skipped
        person_folders(tmp_path, None, listing)
    # a folder listed twice was imported twice with a people CSV, and was otherwise "two folders
    # that would be one person"; a list naming none (LFW's count line alone) said DIR held none
    listing.write_text("C\nA\t1\nC\t2\n")
    with pytest.raises(CommandError, match=r"names 1 folder again: line 3 repeats line 1: 'C'; name each"):
        person_folders(tmp_path, None, listing)
    for nothing in ("", "5749\n"):
        listing.write_text(nothing)
        with pytest.raises(CommandError, match="names no folder"):
            person_folders(tmp_path, None, listing)
    # a hidden folder is no person's, listed or not (a people CSV's row naming one says so too)
    (tmp_path / ".Hidden").mkdir()
    listing.write_text("C\n.Hidden\n")
    with pytest.raises(CommandError, match=r"names hidden folders .* line 2: '.Hidden'; rename them"):
        person_folders(tmp_path, None, listing)


def linked_tree(tmp_path):
    """``people/Jane_Doe/`` holding ``link.jpg``, and ``people/Linked``: links to a photo and a
    folder outside ``people``. Returns the ``people`` and ``outside`` folders."""
    import os

    root, outside = tmp_path / "people", tmp_path / "outside"
    (root / "Jane_Doe").mkdir(parents=True)
    (outside / "Secret").mkdir(parents=True)
    (outside / "Secret" / "s.jpg").write_bytes(b"\xff\xd8\xff")
    os.symlink(outside / "Secret", root / "Linked")
    os.symlink(outside / "Secret" / "s.jpg", root / "Jane_Doe" / "link.jpg")
    return root, outside


def test_import_people_stays_inside_its_folder(db, tmp_path, monkeypatch):
    """A people list naming ../elsewhere or an absolute path, a linked folder and a linked photo
    (another person's file, or anything the importing user can read) are not imported; a file
    over the size limit is refused without being read."""
    from enrollment.management.commands.import_people import person_folders, person_photos

    root, outside = linked_tree(tmp_path)
    (root / "Jane_Doe" / "sub.jpg").mkdir()
    for line in ("../outside/Secret", str(outside / "Secret"), "Linked"):
        (tmp_path / "list.txt").write_text(line + "\n")
        with pytest.raises(CommandError, match="not folders of"):
            person_folders(root, None, tmp_path / "list.txt")
    assert [p.name for p in person_folders(root, None, None)] == ["Jane_Doe"]
    assert person_photos(root / "Jane_Doe", None) == []
    huge = root / "Jane_Doe" / "huge.jpg"
    with open(huge, "wb") as fh:      # sparse: 3 GB on paper, nothing on disk
        fh.truncate(3 * 2**30)
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    out = run("import_people", str(root), "--no-rebuild")
    assert "too_large (1)" in out and "Jane_Doe/huge.jpg" in out


def test_a_rebuild_interrupted_by_ctrl_c_is_recorded_at_once(person, make_photo, monkeypatch):
    """Left running, the interrupted run blocked every rebuild ("another index rebuild is running")
    until its heartbeat went stale, two minutes later, and the command printed a traceback."""
    from enrollment.services import index as index_services

    make_photo(person)
    real = index_services._thresholds_fit

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_services, "_thresholds_fit", interrupted)
    with pytest.raises(CommandError, match="rebuild interrupted: the previous index stays active"):
        run("rebuild_index", "--wait")
    stopped = TrainingRun.objects.latest("id")
    assert stopped.state == TrainingRun.State.FAILED and "KeyboardInterrupt" in stopped.error
    monkeypatch.setattr(index_services, "_thresholds_fit", real)
    assert "people: 1" in run("rebuild_index", "--wait")     # at once, not two minutes later
    # Ctrl-C while the models load, before the run is claimed: it was left queued, and the next
    # resume (beat, an admin page, a kiosk) started the rebuild the command had said was stopped
    monkeypatch.setattr(index_services, "_engine_warm", interrupted)
    with pytest.raises(CommandError, match="rebuild interrupted"):
        run("rebuild_index", "--wait")
    stopped = TrainingRun.objects.latest("id")
    assert stopped.state == TrainingRun.State.FAILED and stopped.message == "not started", stopped.message
    assert "interrupted (Ctrl-C) before it started" in stopped.error
    # the same for any other failure there (the database's query of photos to embed)
    def failing():
        raise RuntimeError("the database went away")

    monkeypatch.setattr(index_services, "_engine_warm", failing)
    with pytest.raises(RuntimeError):
        index_services.index_rebuild(run_id=None)
    stopped = TrainingRun.objects.latest("id")
    assert (stopped.state, stopped.message) == (TrainingRun.State.FAILED, "not started")
    assert "failed before it started (RuntimeError)" in stopped.error


def test_rebuild_index_wait_waits_for_a_rebuild_already_running_then_rebuilds(person, make_photo, monkeypatch):
    """Upgrading, a kiosk or an admin page asks a worker for the rebuild the moment the release is
    restarted: ``rebuild_index --wait`` then said "another index rebuild is running; retry in 10 s"
    and exited 1, and a script that stops on errors stopped there, though nothing had failed. It now
    waits for that run, saying so, and rebuilds after it; no run of its own is left "not started"."""
    from django.utils import timezone

    from enrollment.management.commands import rebuild_index

    make_photo(person)
    other = TrainingRun.objects.create(state=TrainingRun.State.RUNNING, started_at=timezone.now(),
                                       heartbeat_at=timezone.now(), attempts=1)
    looks = []

    def time_passes(seconds: float) -> None:   # the worker's run ends while the command waits
        looks.append(seconds)
        if len(looks) == 3:
            TrainingRun.objects.filter(pk=other.pk).update(state=TrainingRun.State.SUCCEEDED,
                                                           finished_at=timezone.now())

    monkeypatch.setattr(rebuild_index.time, "sleep", time_passes)
    out = run("rebuild_index", "--wait")
    assert out.count(f"another index rebuild (training run #{other.pk}) is running: waiting for it") == 1
    assert "people: 1, templates: 2, photos: 1" in out and len(looks) == 3
    mine = TrainingRun.objects.exclude(pk=other.pk)
    assert [r.state for r in mine] == [TrainingRun.State.SUCCEEDED]   # none abandoned as "not started"
    assert IndexVersion.objects.current() == mine.get().index_version


def test_rebuild_index_wait_gives_up_on_a_rebuild_that_runs_too_long(person, make_photo, monkeypatch):
    """It waits at most BUSY_WAIT_S, then says which run it waited for and exits 1; the index is
    left as it was, and that run goes on."""
    from django.utils import timezone

    from enrollment.management.commands import rebuild_index

    make_photo(person)
    other = TrainingRun.objects.create(state=TrainingRun.State.RUNNING, started_at=timezone.now(),
                                       heartbeat_at=timezone.now(), attempts=1)
    monkeypatch.setattr(rebuild_index, "BUSY_WAIT_S", 0)
    with pytest.raises(CommandError, match=f"training run #{other.pk} is still running after 0 min"):
        run("rebuild_index", "--wait")
    assert TrainingRun.objects.get(pk=other.pk).state == TrainingRun.State.RUNNING
    assert TrainingRun.objects.count() == 1 and IndexVersion.objects.current() is None


def a_seven_hour_rebuild_runs(monkeypatch) -> list[float]:
    """Another rebuild running, which moves on each hour of ``rebuild_index``'s clock (its sleeps) and
    succeeds after 7 h; the clock then moves 2 s a sleep. Returns the clock (seconds, in a list)."""
    from django.utils import timezone

    from enrollment.management.commands import rebuild_index

    other = TrainingRun.objects.create(state=TrainingRun.State.RUNNING, started_at=timezone.now(),
                                       heartbeat_at=timezone.now(), attempts=1, message="embedded 0/46666 photos")
    clock = [0.0]

    def an_hour_passes(seconds: float) -> None:
        clock[0] += 3600 if clock[0] < 7 * 3600 else 2
        done = int(clock[0] // 3600)
        if done == 7:
            TrainingRun.objects.filter(pk=other.pk).update(state=TrainingRun.State.SUCCEEDED,
                                                           finished_at=timezone.now())
        else:
            TrainingRun.objects.filter(pk=other.pk).update(heartbeat_at=timezone.now(),
                                                           message=f"embedded {done * 7000}/46666 photos")

    monkeypatch.setattr(rebuild_index.time, "sleep", an_hour_passes)
    monkeypatch.setattr(rebuild_index.time, "monotonic", lambda: clock[0])
    return clock


def test_rebuild_index_wait_waits_for_a_long_rebuild_that_moves_on(person, make_photo, monkeypatch):
    """A release's rebuild embedding every photo again took 6 h at 20,000 people, and ``--wait`` gave
    up after 4 h, failing the upgrade script while the run was healthy (a scale review). A run that
    moves on (its progress line changes) is waited for however long it takes."""
    from enrollment.management.commands import rebuild_index

    make_photo(person)
    clock = a_seven_hour_rebuild_runs(monkeypatch)
    out = run("rebuild_index", "--wait")
    assert "people: 1, templates: 2, photos: 1" in out and clock[0] == 7 * 3600 > rebuild_index.BUSY_WAIT_S


def test_rebuild_index_wait_after_a_long_run_waits_again_for_a_worker_claiming_first(person, make_photo, monkeypatch):
    """A 7 h run that moves on is waited for; when it ends, a queued run's worker claims first
    (RebuildBusy at the command's claim): the command waits again. It gave up, the wait's extended
    deadline not passed back (a diff review)."""
    from django.utils import timezone

    from enrollment import services

    make_photo(person)
    a_seven_hour_rebuild_runs(monkeypatch)
    real_now = services.index_rebuild_now
    calls = []

    def worker_claims_first(**kwargs):
        calls.append(1)
        if len(calls) == 1:   # a queued run's worker claimed between the look and this claim
            quick = TrainingRun.objects.create(state=TrainingRun.State.RUNNING, started_at=timezone.now(),
                                               heartbeat_at=timezone.now(), attempts=1)
            try:
                return real_now(**kwargs)
            finally:
                TrainingRun.objects.filter(pk=quick.pk).update(state=TrainingRun.State.SUCCEEDED,
                                                               finished_at=timezone.now())
        return real_now(**kwargs)

    monkeypatch.setattr(services, "index_rebuild_now", worker_claims_first)
    out = run("rebuild_index", "--wait")
    assert "people: 1, templates: 2, photos: 1" in out


def while_the_models_load(monkeypatch, meanwhile) -> None:
    """``meanwhile()`` once, while a rebuild loads its models (after its run is made, before its claim)."""
    from enrollment.services import index as index_services

    real_warm, done = index_services._engine_warm, []

    def warm() -> None:
        real_warm()
        if not done:
            done.append(True)
            meanwhile()

    monkeypatch.setattr(index_services, "_engine_warm", warm)


def test_rebuild_index_wait_whose_run_a_worker_did_meanwhile_prints_that_runs_outcome(person, make_photo, monkeypatch):
    """rebuild_index --wait makes its run H, then loads the models (_engine_warm); a worker claims a
    queued run meanwhile, covers H, finishes, and records H done: H's claim then finds it succeeded,
    index_rebuild returned None, and the command said it was taken over and exited 1 (a diff review).
    That run's outcome is the command's."""
    from enrollment import services

    make_photo(person)
    queued = TrainingRun.objects.create(reason="a change")
    # the worker's message for the queued run, delivered while this command loads the models
    while_the_models_load(monkeypatch, lambda: services.index_rebuild(run_id=queued.pk, force=True))
    out = run("rebuild_index", "--wait")
    assert "people: 1, templates: 2, photos: 1" in out and "index v" in out
    mine = TrainingRun.objects.exclude(pk=queued.pk).get()
    assert mine.state == "succeeded" and mine.stats["done_by"] == queued.pk


def test_rebuild_index_wait_whose_own_run_a_change_joined_and_a_worker_ran(person, make_photo, monkeypatch):
    """A change while the command loads its models joins its run (the newest queued) and hands it to
    a worker, which runs it: the command then found it succeeded and said "taken over", exit 1
    (a review). The run is the command's outcome."""
    from enrollment import services

    def change_and_worker_meanwhile() -> None:
        # an administrator's change while the command loads its models: it joins the newest queued
        # run, the command's own, and hands it to the workers, one of which runs it
        joined = services.index_rebuild_request(actor=None, reason="photo added to person #1")
        assert services.index_rebuild(run_id=joined.pk, force=False).state == "succeeded"

    make_photo(person)
    while_the_models_load(monkeypatch, change_and_worker_meanwhile)
    out = run("rebuild_index", "--wait")
    assert "people: 1, templates: 2, photos: 1" in out
    assert list(TrainingRun.objects.values_list("state", "requests")) == [("succeeded", 2)]


def test_rebuild_index_wait_prints_a_summary(person, make_photo):
    make_photo(person)
    out = run("rebuild_index", "--wait")
    assert "people: 1, templates: 2, photos: 1 (0 embedded now, 0 failed), seconds:" in out
    assert IndexVersion.objects.current().people_count == 1


def test_rebuild_index_here_without_the_models_says_so_in_one_line(person, make_photo, settings, tmp_path):
    """A rebuild in the foreground loads the models first: without them it printed two tracebacks
    before its one line, and its failed run did not say why (an operator-commands review). Nothing is
    started or queued."""
    make_photo(person)
    settings.MASKNET_MODELS_DIR = tmp_path / "no-models"
    with pytest.raises(CommandError, match=r"face models are not installed in .*no-models: run `python manage.py "
                                           r"install_models` first"):
        run("rebuild_index", "--wait")
    assert not TrainingRun.objects.exists() and IndexVersion.objects.current() is None


def test_rebuild_index_queues_for_celery_workers(person, make_photo, settings, enqueued,
                                                 django_capture_on_commit_callbacks):
    settings.MASKNET_TASK_RUNNER = "celery"
    make_photo(person)
    with django_capture_on_commit_callbacks(execute=True):
        out = run("rebuild_index")
    run_row = TrainingRun.objects.get()
    assert f"training run #{run_row.pk}" in out and enqueued[0]["run_id"] == run_row.pk
    assert not IndexVersion.objects.exists()


@pytest.mark.parametrize("wait", [True, False])
def test_rebuild_index_actor_names_the_user_in_the_rebuilds_records(person, make_photo, enroller, settings, wait,
                                                                     enqueued, django_capture_on_commit_callbacks):
    """Every record of a rebuild started by the command said "system"; ``--actor`` names the staff
    user who asked for it (``rebuild_index`` permission, an Enroller's), here and now or queued."""
    from audit.models import AuditEvent

    settings.MASKNET_TASK_RUNNER = "celery"
    make_photo(person)
    with django_capture_on_commit_callbacks(execute=True):
        out = run("rebuild_index", "--actor", "enroller", *(["--wait"] if wait else []))
    assert ("people: 1, templates: 2" in out) if wait else ("index rebuild queued" in out and enqueued)
    records = AuditEvent.objects.filter(action="rebuild")
    assert records.exists() and {(e.actor, e.actor_id) for e in records} == {("enroller", enroller.pk)}
    assert TrainingRun.objects.get().requested_by == enroller

    with django_capture_on_commit_callbacks(execute=True):
        run("rebuild_index", "--wait")
    assert AuditEvent.objects.filter(action="rebuild", actor="system").exists()   # without it, as before


def test_rebuild_index_actor_refused_starts_no_rebuild(person, refused_actor, settings):
    """An unknown, inactive or non-staff user, or one without ``rebuild_index``, stops the command
    before any run is made or queued."""
    from audit.models import AuditEvent

    settings.MASKNET_TASK_RUNNER = "celery"
    with pytest.raises(CommandError, match=f"--actor '{refused_actor}' "):
        run("rebuild_index", "--actor", refused_actor)
    assert not TrainingRun.objects.exists() and not AuditEvent.objects.filter(action="rebuild").exists()


def test_import_people_without_the_models_stops_before_creating_anyone(db, people_tree, monkeypatch):
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: False)
    with pytest.raises(CommandError, match="install_models"):
        run("import_people", str(people_tree))
    assert not Person.objects.exists()


def test_an_import_of_a_folder_without_person_folders_says_so(db, tmp_path, people_tree):
    """A person's own folder given (its photos directly inside), or an empty one: "importing 0
    people" and exit 0, with an audit record of nothing."""
    from audit.models import AuditEvent

    (tmp_path / "empty").mkdir()
    for folder in (people_tree / "Eileen_Collins", tmp_path / "empty"):
        with pytest.raises(CommandError, match="no person folders"):
            call_command("import_people", str(folder), stdout=io.StringIO(), stderr=io.StringIO())
    assert not Person.objects.exists() and not AuditEvent.objects.filter(action="import").exists()


def test_a_refusal_says_what_is_wrong_with_that_photo(db, tmp_path, monkeypatch, settings):
    """``too_large`` said "The file is too large." alone, for a 700 KB photo refused for its
    pixels too, without the limit or what to do: each photo's own reason now follows its name."""
    from enrollment import services
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    settings.MASKNET_MAX_PHOTO_BYTES = 2**20
    (tmp_path / "Jane_Doe").mkdir()
    (tmp_path / "Jane_Doe" / "big.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * (3 * 2**20))
    (tmp_path / "Jane_Doe" / "wide.jpg").write_bytes(b"\xff\xd8\xff")

    def photo_add(**kwargs):
        raise services.PhotoRefused("too_large", message=services.photo_inspect(data=b"x" * (2**20 + 1)).message
                                    .replace("more than 1 MiB", "5000×4000 pixels"))

    monkeypatch.setattr(services, "photo_add", photo_add)
    out = run("import_people", str(tmp_path), "--no-rebuild")
    assert "too_large (2): The file is too large." in out
    assert "Jane_Doe/big.jpg: It is 3.0 MiB; at most 1 MiB." in out, out
    assert "Jane_Doe/wide.jpg: It is 5000×4000 pixels; at most 1 MiB." in out, out


def test_links_and_loose_files_are_said_not_skipped_silently(db, tmp_path):
    """A linked photo or person folder (the import reads neither) and a photo left directly in DIR
    (an export of one file per person) were skipped without a word: "importing 1 people, 0
    photos", and the operator could not tell why the others were missing."""
    root, outside = linked_tree(tmp_path)
    (root / "A-100.jpg").write_bytes(b"\xff\xd8\xff")
    (root / ".DS_Store").write_bytes(b"")
    out = run("import_people", str(root), "--no-rebuild")
    assert "2 symbolic links not imported" in out and "Linked" in out and "Jane_Doe/link.jpg" in out, out
    assert "1 files directly in" in out and "A-100.jpg" in out and ".DS_Store" not in out, out
    # a people list names its folders: what else lies in DIR (the list itself, often) is not said
    (root / "list.txt").write_text("Jane_Doe\n")
    listed = run("import_people", str(root), "--no-rebuild", "--people-list", str(root / "list.txt"))
    assert "directly in" not in listed and "Jane_Doe/link.jpg" in listed and "Linked" not in listed, listed


def test_photos_added_to_a_deactivated_person_are_said_to_stay_out_of_the_index(db, tmp_path, monkeypatch):
    """An existing staff id is reused, deactivated or not: the photos were added to someone left
    out of the index, and the summary did not say so."""
    from enrollment import services
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    services.person_create(actor=None, full_name="Jane Doe", staff_id="jane_doe", active=False)
    (tmp_path / "Jane_Doe").mkdir()
    (tmp_path / "Jane_Doe" / "a.jpg").write_bytes(b"\xff\xd8\xff")

    def photo_add(**kwargs):
        return FacePhoto.objects.create(person=kwargs["person"], image="faces/x.jpg", sha256="1", width=8, height=8,
                                        source=FacePhoto.Source.IMPORT)

    monkeypatch.setattr(services, "photo_add", photo_add)
    out = run("import_people", str(tmp_path), "--no-rebuild")
    assert "1 people already there are deactivated" in out and "jane_doe" in out, out


def test_a_people_list_may_name_folders_with_spaces(tmp_path):
    """A folder named "Jane Doe" is imported without a list, but a list naming it was refused
    ("'Jane' is not a folder"): a line is a name, then perhaps a count. Names that are not folders
    are all said, up to five, with their line numbers."""
    from enrollment.management.commands.import_people import person_folders

    for name in ("Jane Doe", "Bo Li 2", "A", "1001"):
        (tmp_path / name).mkdir()
    listing = tmp_path / "people.txt"
    listing.write_text("4\nJane Doe\t3\nBo Li 2\nA 2\r\n1001\n", encoding="utf-8")
    assert [p.name for p in person_folders(tmp_path, None, listing)] == ["Jane Doe", "Bo Li 2", "A", "1001"]
    listing.write_text("Jane Doe\nA-100;Jane Doe;Sales\n\nZed 1\n")
    with pytest.raises(CommandError, match="2 names of the people list are not folders") as refused:
        person_folders(tmp_path, None, listing)
    assert "line 2: 'A-100;Jane Doe;Sales'" in str(refused.value) and "line 4: 'Zed'" in str(refused.value)


def test_a_photo_enrolled_for_someone_else_says_whose(db, tmp_path, monkeypatch):
    """``enrolled_elsewhere`` said only "already enrolled for another person": with hundreds of
    folders, the operator could not tell which one held the same file. The summary names the other
    person's staff id."""
    import hashlib

    from enrollment import services
    from enrollment.management.commands import import_people

    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    other = services.person_create(actor=None, full_name="Bo Berg", staff_id="B-200")
    data = b"\xff\xd8\xff same file"
    FacePhoto.objects.create(person=other, image="faces/b.jpg", sha256=hashlib.sha256(data).hexdigest(),
                             width=8, height=8)
    (tmp_path / "Jane_Doe").mkdir()
    (tmp_path / "Jane_Doe" / "a.jpg").write_bytes(data)

    def photo_add(**kwargs):
        raise services.PhotoRefused("enrolled_elsewhere")

    monkeypatch.setattr(services, "photo_add", photo_add)
    out = run("import_people", str(tmp_path), "--no-rebuild")
    assert "Jane_Doe/a.jpg: already a photo of B-200" in out, out
    # to an --actor, whoever: the admin's refusal of the same file names nobody (not even to a superuser),
    # where the import named the other person's staff id to any actor allowed to import
    User.objects.create_superuser("root", "root@example.com", "pw")
    out = run("import_people", str(tmp_path), "--no-rebuild", "--actor", "root")
    assert "Jane_Doe/a.jpg: already a photo of another person" in out and "B-200" not in out, out
