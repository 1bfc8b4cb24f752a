"""An upgrade's ``migrate`` over data a migration refuses stops before it changes anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BEFORE = ("enrollment", "0005_recognise_face_permission")   # a release before 0006-0008

CREATE_PAIR = f"""
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
apps = MigrationExecutor(connection).loader.project_state({BEFORE!r}).apps
Person = apps.get_model("enrollment", "Person")
Person.objects.create(full_name="Ann", staff_id="QA-100")
Person.objects.create(full_name="Bo", staff_id="qa-100")
"""


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "MASKNET_TEST"))}
    env.update(DJANGO_SETTINGS_MODULE="masknet_site.settings.dev", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
               DJANGO_MEDIA_ROOT=str(tmp_path / "media"), MASKNET_INDEX_DIR=str(tmp_path / "index"))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


# the migrations applied (app, name), sorted, printed on the last line: what ``showmigrations`` marks [X]
APPLIED = """
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
print(ascii(sorted(MigrationRecorder(connection).applied_migrations())))
"""


def applied(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory) -> tuple[Path, str]:
    """A database of the release before :data:`BEFORE`'s successors (enrollment up to it, audit up to
    0005), migrated once for this module's tests, and the migrations it holds (:data:`APPLIED`)."""
    folder = tmp_path_factory.mktemp("previous-release")
    made = manage(folder, "shell", "-c", "from django.core.management import call_command\n"
                  f"call_command('migrate', *{BEFORE!r}, verbosity=0)\n"
                  "call_command('migrate', 'audit', '0005', verbosity=0)\n" + APPLIED)
    return folder / "db.sqlite3", applied(made)


def migrate_refused(tmp_path: Path, previous_release: tuple[Path, str], create: str) -> str:
    """A copy of the ``previous_release`` database, with the rows ``create`` makes; then ``migrate``,
    which must refuse in one paragraph and apply nothing: its message."""
    shutil.copyfile(previous_release[0], tmp_path / "db.sqlite3")
    made = manage(tmp_path, "shell", "-c", create)
    assert made.returncode == 0, made.stderr[-2000:]
    refused = manage(tmp_path, "migrate")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "Nothing was migrated" in refused.stderr, refused.stderr[-2000:]
    return refused.stderr


def fix_after_refusal(tmp_path: Path, previous_release: tuple[Path, str], fix: str) -> None:
    """On the refused database: not one migration applied (the ``previous_release``'s and no more);
    ``fix`` run, then ``migrate`` must succeed."""
    assert applied(manage(tmp_path, "shell", "-c", APPLIED + fix)) == previous_release[1]
    done = manage(tmp_path, "migrate")
    assert done.returncode == 0, done.stderr[-2000:]


def test_case_duplicate_staff_ids_stop_migrate_before_its_first_migration(tmp_path, previous_release):
    """0008 refused the pair only after audit 0006-0007 and enrollment 0006-0007 had run: the
    previous release, put back while the pair was fixed, failed on the new NOT NULL column of
    every person it created. The refusal came under a 40-line traceback."""
    refused = migrate_refused(tmp_path, previous_release, CREATE_PAIR)
    assert "'QA-100' (person #1) and 'qa-100' (person #2)" in refused, refused[-2000:]

    fix_after_refusal(tmp_path, previous_release, CREATE_PAIR.split("Person.objects.create")[0]
                      + 'Person.objects.filter(full_name="Bo").update(staff_id="qa-100-b")')


@pytest.mark.django_db
def test_the_previous_releases_insert_of_a_person_still_works_after_migrate():
    """The upgrade runs migrate while the previous release still serves (docs/deployment.md): its
    INSERT of a person, without the column 0007 added, failed on NOT NULL (every new person a 500
    until the restart). 0017's key is NULL for such a person."""
    from django.db import connection
    from django.utils import timezone

    from enrollment.models import Person

    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO enrollment_person (full_name, staff_id, department, active, notes, created_at,"
                       " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                       ["Old Release", "OLD-1", "", True, "", now, now])
    old = Person.objects.get(staff_id="OLD-1")
    assert old.gallery_adaptation is True
    # without 0017's key (its INSERT lacks the column): still found by its staff id in any form,
    # and still its own, until a save of this release gives it its key
    assert old.staff_key is None
    assert Person.objects.with_staff_id("\uff4f\uff4c\uff44-1").get() == old
    assert list(Person.objects.search("old-1")) == [old]
    from django.core.exceptions import ValidationError

    from enrollment import services

    with pytest.raises(ValidationError) as taken:
        services.person_create(actor=None, full_name="Twin", staff_id="old-1")
    assert "staff_id" in taken.value.message_dict
    services.person_update(person=old, actor=None, department="Ops")
    assert Person.objects.get(pk=old.pk).staff_key == "old-1"


@pytest.mark.django_db
def test_the_previous_releases_insert_of_a_photo_still_works_after_migrate(person):
    """The upgrade runs migrate while the previous release still serves (docs/deployment.md): a
    release from before 0004 inserts a photo with the columns it knows, and 0004's NOT NULL
    ``embed_attempts`` had no database default, so every photo added on that node failed with an
    IntegrityError until its restart (seen upgrading the release of 2026-11-29). 0022 gives it one."""
    from django.db import connection
    from django.utils import timezone

    from enrollment.models import FacePhoto

    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO enrollment_facephoto (image, source, sha256, width, height, quality_verdict,"
                       " masked, embedding_state, embedding_error, created_at, person_id)"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       ["faces/1/old.jpg", "upload", "0" * 64, 250, 250, "ok", False, "pending", "",
                        timezone.now(), person.pk])
    old = FacePhoto.objects.get(image="faces/1/old.jpg")
    assert (old.embed_attempts, old.embed_failed_version, old.file_missing) == (0, "", False)


def test_every_column_a_migration_adds_not_null_has_a_database_default():
    """The previous release inserts rows without the columns a release adds (migrate runs while it
    still serves): each column added NOT NULL to an existing table needs a ``db_default``, or that
    release's inserts fail until it restarts (0007's ``gallery_adaptation`` and 0004's
    ``embed_attempts`` did). Nullable columns and new tables need nothing."""
    from django.apps import apps
    from django.db import migrations
    from django.db.migrations.loader import MigrationLoader
    from django.db.models import NOT_PROVIDED

    loader = MigrationLoader(None, ignore_no_migrations=True)
    lacking = []
    for (app, name), migration in sorted(loader.disk_migrations.items()):
        if app not in ("enrollment", "recognition", "audit", "api"):
            continue
        for op in migration.operations:
            if not isinstance(op, migrations.AddField):
                continue
            try:
                field = apps.get_model(app, op.model_name)._meta.get_field(op.name)
            except LookupError:   # removed since
                continue
            if not field.null and not field.many_to_many and field.db_default is NOT_PROVIDED:
                lacking.append(f"{app} {name}: {op.model_name}.{op.name}")
    assert not lacking, lacking


@pytest.mark.django_db
def test_errors_stored_before_paths_were_hidden_are_rewritten_by_the_migration(person, settings):
    """0015 rewrites what earlier releases stored in full (a server path, a database's host and
    user) as the site writes errors now; an error with nothing to hide, and one already rewritten,
    are left as they are, and a second run changes nothing."""
    import importlib

    from django.apps import apps

    from enrollment.models import FacePhoto, TrainingRun

    migration = importlib.import_module("enrollment.migrations.0015_stored_errors_without_server_paths")
    settings.MASKNET_MODELS_DIR = "/srv/masknet models"
    pathy = TrainingRun.objects.create(reason="t", error="ModelsMissing: the models in /srv/masknet models are missing")
    database = TrainingRun.objects.create(
        reason="t", error='OperationalError: connection to server at "10.0.0.5" failed for user "masknet"')
    plain = TrainingRun.objects.create(reason="t", error="RuntimeError: disk on fire")
    photo = FacePhoto.objects.create(person=person, image="faces/1/a.jpg", sha256="a",
                                     embedding_error="PermissionError: [Errno 13] Permission denied: '/var/lib/x.npz'")
    missing = FacePhoto.objects.create(person=person, image="faces/1/b.jpg", sha256="b",
                                       embedding_error="file missing from storage: faces/1/b.jpg")

    migration.rewrite(apps, None)
    for row in (pathy, database, plain, photo, missing):
        row.refresh_from_db()
    assert pathy.error == "ModelsMissing: the models in [server path] are missing (details in the server's log)"
    assert database.error == "OperationalError: the database refused or lost the request (details in the server's log)"
    assert plain.error == "RuntimeError: disk on fire"
    assert photo.embedding_error == ("PermissionError: [Errno 13] Permission denied: [server path]"
                                     " (details in the server's log)")
    assert missing.embedding_error == "file missing from storage: faces/1/b.jpg"

    before = list(TrainingRun.objects.values_list("error", flat=True)) + [photo.embedding_error]
    migration.rewrite(apps, None)
    assert list(TrainingRun.objects.values_list("error", flat=True)) + [
        FacePhoto.objects.get(pk=photo.pk).embedding_error] == before


CREATE_FORMS = f"""
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
apps = MigrationExecutor(connection).loader.project_state({BEFORE!r}).apps
Person = apps.get_model("enrollment", "Person")
Person.objects.create(full_name="Zo\\u00eb", staff_id="ZO\\u00cb-1")
Person.objects.create(full_name="Zoe\\u0308 B", staff_id="ZOE\\u0308-1", department="Lab\\u200b")
Person.objects.create(full_name="Bo", staff_id="B-1")
Person.objects.create(full_name="\\u00a0Bo", staff_id="\\u200bB-1 ")
"""


def test_staff_ids_that_one_unicode_form_would_make_one_stop_migrate_before_its_first_migration(tmp_path,
                                                                                                previous_release):
    """0016 stores names and staff ids NFC without invisible characters; where two people's staff
    ids would then be one ("Zoë" composed and decomposed, an id and the same with a zero-width
    space), it names them and migrates nothing, rather than merging two people."""
    refused = migrate_refused(tmp_path, previous_release, CREATE_FORMS)
    assert "'ZO\\xcb-1' (person #1) and 'ZOE\\u0308-1' (person #2) would be one staff id, 'ZO\u00cb-1'" in refused
    assert "'B-1' (person #3) and '\\u200bB-1 ' (person #4) would be one staff id, 'B-1'" in refused

    fix_after_refusal(tmp_path, previous_release, CREATE_FORMS.split("Person.objects.create")[0]
                      + 'Person.objects.filter(pk=2).update(staff_id="ZOE\\u0308-2")\n'
                      + 'Person.objects.filter(pk=4).update(staff_id="\\u200bB-2 ")')
    rows = manage(tmp_path, "shell", "-c", "from enrollment.models import Person\nprint(ascii(list("
                  "Person.objects.order_by('pk').values_list('full_name', 'staff_id', 'department'))))")
    stored = [("Zo\u00eb", "ZO\u00cb-1", ""), ("Zo\u00eb B", "ZO\u00cb-2", "Lab"), ("Bo", "B-1", ""), ("Bo", "B-2", "")]
    assert rows.stdout.strip().splitlines()[-1] == ascii(stored), rows.stderr[-2000:]


@pytest.mark.django_db
def test_the_migration_stores_names_and_staff_ids_in_one_unicode_form(person):
    """0016 rewrites the rows written before names and staff ids were normalised, leaves a name it
    would empty as it is, and compares staff ids with the database's LOWER, as the unique index
    does: "ZOË-1" and "zoë-1" decomposed are one person's on PostgreSQL, two on SQLite (ASCII only)."""
    import importlib

    from django.apps import apps
    from django.core.management.base import CommandError
    from django.db import connection, transaction

    from enrollment.models import Person

    migration = importlib.import_module("enrollment.migrations.0016_person_text_normalised")
    mac = Person.objects.create(full_name="Zoe\u0308 Adams\u200b", staff_id="\ufeffZOE\u0308-1\u00a0",
                                department="\u00a0Lab")
    invisible = Person.objects.create(full_name="\u200b", staff_id="I-1")
    migration.normalise(apps, None)
    mac.refresh_from_db()
    invisible.refresh_from_db()
    person.refresh_from_db()
    assert (mac.full_name, mac.staff_id, mac.department) == ("Zo\u00eb Adams", "ZO\u00cb-1", "Lab")
    assert invisible.full_name == "\u200b" and person.full_name == "Eileen Collins"

    with transaction.atomic():
        # a row as before 0017's key (Person.save() gives it one: "zo\xeb-1", taken)
        lower = Person.objects.create(full_name="Zoe", staff_id="L-1")
        Person.objects.filter(pk=lower.pk).update(staff_id="zoe\u0308-1", staff_key=None)
        if connection.vendor == "postgresql":
            with pytest.raises(CommandError) as refused:
                migration.normalise(apps, None)
            assert (f"'ZO\\xcb-1' (person #{mac.pk}) and 'zoe\\u0308-1' (person #{lower.pk}) would be one staff id"
                    in str(refused.value))
            assert "Migration enrollment 0016 changed nothing" in str(refused.value)
        else:
            migration.normalise(apps, None)
            assert Person.objects.get(pk=lower.pk).staff_id == "zo\u00eb-1"
        transaction.set_rollback(True)


CREATE_KEYS = f"""
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
apps = MigrationExecutor(connection).loader.project_state({BEFORE!r}).apps
Person = apps.get_model("enrollment", "Person")
Person.objects.create(full_name="Zo\\u00eb", staff_id="ZO\\u00cb-1")
Person.objects.create(full_name="Zo\\u00eb B", staff_id="zo\\u00eb-1")
Person.objects.create(full_name="Jun", staff_id="JUN-1")
Person.objects.create(full_name="Jun B", staff_id="\\uff2a\\uff35\\uff2e-1")
Person.objects.create(full_name="Ann", staff_id="A 100")
Person.objects.create(full_name="Ann B", staff_id="A  100")
Person.objects.create(full_name="Bo", staff_id="B-1")
"""


def test_staff_ids_one_key_would_make_one_stop_migrate_before_its_first_migration(tmp_path, previous_release):
    """0017 compares staff ids by a key (letter case in every script, on SQLite too, full-width
    forms, runs of spaces); where two people's ids would then be one, it names them and migrates
    nothing, never merging two people; renamed, it migrates and gives every person their key."""
    refused = migrate_refused(tmp_path, previous_release, CREATE_KEYS)
    assert "'ZO\\xcb-1' (person #1) and 'zo\\xeb-1' (person #2) would be one staff id, key 'zo\u00eb-1'" in refused
    assert "'JUN-1' (person #3) and '\\uff2a\\uff35\\uff2e-1' (person #4) would be one staff id" in refused
    assert "'A 100' (person #5) and 'A  100' (person #6) would be one staff id, key 'a 100'" in refused
    assert "B-1" not in refused

    fix_after_refusal(tmp_path, previous_release, CREATE_KEYS.split("Person.objects.create")[0]
                      + 'Person.objects.filter(pk=2).update(staff_id="zo\\u00eb-2")\n'
                      + 'Person.objects.filter(pk=4).update(staff_id="\\uff2a\\uff35\\uff2e-2")\n'
                      + 'Person.objects.filter(pk=6).update(staff_id="A  101")')
    rows = manage(tmp_path, "shell", "-c", "from enrollment.models import Person\nprint(ascii(list("
                  "Person.objects.order_by('pk').values_list('staff_id', 'staff_key'))))")
    stored = [("ZO\u00cb-1", "zo\u00eb-1"), ("zo\u00eb-2", "zo\u00eb-2"), ("JUN-1", "jun-1"),
              ("\uff2a\uff35\uff2e-2", "jun-2"), ("A 100", "a 100"), ("A  101", "a 101"), ("B-1", "b-1")]
    assert rows.stdout.strip().splitlines()[-1] == ascii(stored), rows.stderr[-2000:]


@pytest.mark.django_db
def test_the_key_migration_fills_every_key_or_refuses_naming_the_people(person):
    """0017 on this database (SQLite or PostgreSQL): the keys of rows without one filled, the
    staff ids as they were; with two ids of one key (letter case SQLite's LOWER left apart), it
    names them and changes nothing."""
    import importlib

    from django.apps import apps
    from django.core.management.base import CommandError
    from django.db import transaction

    from enrollment.models import Person

    migration = importlib.import_module("enrollment.migrations.0017_person_staff_key")
    zoe = Person.objects.create(full_name="Zoe", staff_id="ZO\u00cb-1")
    wide = Person.objects.create(full_name="Jun", staff_id="\uff2a\uff35\uff2e 1")
    Person.objects.update(staff_key=None)   # as before 0017
    migration.refuse_key_clashes(apps, None)
    migration.fill_keys(apps, None)
    assert dict(Person.objects.values_list("pk", "staff_key")) == {person.pk: "e-1", zoe.pk: "zo\u00eb-1",
                                                                 wide.pk: "jun 1"}
    assert Person.objects.get(pk=wide.pk).staff_id == "\uff2a\uff35\uff2e 1"

    with transaction.atomic():
        Person.objects.update(staff_key=None)
        lower = Person.objects.create(full_name="Zoe B", staff_id="L-1")
        Person.objects.filter(pk=lower.pk).update(staff_id="zo\u00eb-1")
        with pytest.raises(CommandError) as refused:
            migration.refuse_key_clashes(apps, None)
        assert (f"'ZO\\xcb-1' (person #{zoe.pk}) and 'zo\\xeb-1' (person #{lower.pk}) would be one staff id"
                in str(refused.value))
        assert "Migration enrollment 0017 changed nothing" in str(refused.value)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_the_deactivation_date_migration_fills_it_from_the_audit_log(person, monkeypatch):
    """0019 gives each person inactive before deactivation dates were recorded the time of their latest
    deactivation the audit log holds: a ``deactivate`` record, or an older release's ``update`` naming
    ``active``; one whose last change of ``active`` was a reactivation, or with no record, stays NULL
    (unknown: attendance counts them as before), and an active person or one with a date is left alone."""
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from audit.models import AuditEvent
    from enrollment import services
    from enrollment.models import Person

    migration = importlib.import_module("enrollment.migrations.0019_person_deactivated_at")
    now = timezone.now()
    left, old, back, _unknown, dated = (services.person_create(actor=None, full_name=name, staff_id=name)
                                       for name in ("LEFT", "OLD", "BACK", "UNKNOWN", "DATED"))

    def record(action: str, who: Person, summary: str, days_ago: int) -> AuditEvent:
        with monkeypatch.context() as patched:
            patched.setattr(timezone, "now", lambda: now - timedelta(days=days_ago))
            return AuditEvent.objects.create(action=action, object_type="enrollment.person", object_id=str(who.pk),
                                             summary=summary)

    record("deactivate", left, f"deactivated person #{left.pk}", 30)
    record("update", left, f"updated person #{left.pk}: active; reactivated", 20)
    latest = record("deactivate", left, f"deactivated person #{left.pk}; updated person #{left.pk}: active", 10)
    record("update", left, f"updated person #{left.pk}: notes", 5)
    older = record("update", old, f"updated person #{old.pk}: department, active", 40)   # before 2026-12-05
    record("deactivate", back, f"deactivated person #{back.pk}", 9)
    record("update", back, f"updated person #{back.pk}: active; reactivated", 8)
    record("deactivate", person, f"deactivated person #{person.pk}", 3)   # active now (reactivated unrecorded)
    record("deactivate", dated, f"deactivated person #{dated.pk}", 2)
    Person.objects.exclude(pk=person.pk).update(active=False, deactivated_at=None)   # as before 0019
    Person.objects.filter(pk=dated.pk).update(deactivated_at=now)

    migration.fill_deactivated_at(apps, None)
    assert dict(Person.objects.values_list("staff_id", "deactivated_at")) == {
        "LEFT": latest.at, "OLD": older.at, "BACK": None, "UNKNOWN": None, "DATED": now, "E-1": None}


@pytest.mark.django_db
def test_the_inactive_periods_migration_pairs_the_audit_logs_deactivations_and_reactivations(person, monkeypatch):
    """0021 keeps, as a past inactive period, each deactivation the audit log pairs with the next
    reactivation of the person (0019's reading of the records: an older release's ``update`` naming
    ``active`` is a deactivation too); a deactivation again while inactive keeps the first; a
    reactivation after the person's creation record with no deactivation between pairs with their
    creation (created inactive); an unpaired one, the open deactivation of someone inactive now and
    records from before the person's creation (an id used again) give none."""
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from audit.models import AuditEvent
    from enrollment import services
    from enrollment.models import Person, PersonInactivePeriod

    migration = importlib.import_module("enrollment.migrations.0021_personinactiveperiod")
    now = timezone.now()
    left, twice, old, new, lost, reused = (services.person_create(actor=None, full_name=name, staff_id=name)
                                           for name in ("LEFT", "TWICE", "OLD", "NEW", "LOST", "REUSED"))
    PersonInactivePeriod.objects.all().delete()
    Person.objects.update(created_at=now - timedelta(days=90))
    Person.objects.filter(pk=new.pk).update(created_at=now - timedelta(days=50, minutes=1))
    Person.objects.filter(pk=reused.pk).update(created_at=now - timedelta(days=55))

    def record(action: str, who: Person, summary: str, days_ago: int) -> AuditEvent:
        with monkeypatch.context() as patched:
            patched.setattr(timezone, "now", lambda: now - timedelta(days=days_ago))
            return AuditEvent.objects.create(action=action, object_type="enrollment.person", object_id=str(who.pk),
                                             summary=summary)

    def back(who: Person, days_ago: int) -> AuditEvent:
        return record("update", who, f"updated person #{who.pk}: active; reactivated", days_ago)

    left_at = record("deactivate", left, f"deactivated person #{left.pk}", 30)
    left_back = back(left, 20)
    record("deactivate", left, f"deactivated person #{left.pk}; updated person #{left.pk}: active", 10)   # open
    twice_at = record("deactivate", twice, f"deactivated person #{twice.pk}", 40)
    record("deactivate", twice, f"deactivated person #{twice.pk}; again after a restore", 35)
    twice_back = back(twice, 30)
    old_at = record("update", old, f"updated person #{old.pk}: department, active", 40)   # before 2026-12-05
    record("update", old, f"updated person #{old.pk}: notes", 30)
    old_back = back(old, 25)
    record("create", new, f"created person #{new.pk}", 50)
    record("update", new, f"updated person #{new.pk}: notes", 45)
    new_back = back(new, 44)
    back(lost, 10)
    record("deactivate", reused, f"deactivated person #{reused.pk}", 60)   # before REUSED was created
    back(reused, 50)

    migration.fill_periods(apps, None)
    found = {(p.person.staff_id, p.deactivated_at, p.reactivated_at) for p in PersonInactivePeriod.objects.all()}
    assert found == {("LEFT", left_at.at, left_back.at), ("TWICE", twice_at.at, twice_back.at),
                     ("OLD", old_at.at, old_back.at),
                     ("NEW", Person.objects.get(pk=new.pk).created_at, new_back.at)}



@pytest.mark.django_db
def test_the_inactive_periods_migration_reads_an_older_releases_reactivations(monkeypatch):
    """Releases before 2026-12-05 recorded ticking "active" again on the form or in a PATCH as they
    recorded unticking it, "updated person #12: active" (a change of the locked row's ``active``): such a
    record of someone the log has inactive is their reactivation. Read as a deactivation again, it kept
    the period open across the time they were back and in (Bo: counted on none of the days between
    his two absences), or kept none at all (Cy, back since)."""
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from audit.models import AuditEvent
    from enrollment import services
    from enrollment.models import Person, PersonInactivePeriod

    migration = importlib.import_module("enrollment.migrations.0021_personinactiveperiod")
    now = timezone.now()
    bo, cy = (services.person_create(actor=None, full_name=name, staff_id=name) for name in ("BO", "CY"))
    Person.objects.update(created_at=now - timedelta(days=90))

    def record(action: str, who: Person, summary: str, days_ago: int) -> AuditEvent:
        with monkeypatch.context() as patched:
            patched.setattr(timezone, "now", lambda: now - timedelta(days=days_ago))
            return AuditEvent.objects.create(action=action, object_type="enrollment.person", object_id=str(who.pk),
                                             summary=summary)

    bo_off = record("deactivate", bo, f"deactivated person #{bo.pk}", 60)
    bo_on = record("update", bo, f"updated person #{bo.pk}: active", 50)   # the box ticked again, before 2026-12-05
    bo_off_again = record("deactivate", bo, f"deactivated person #{bo.pk}", 30)
    bo_back = record("update", bo, f"updated person #{bo.pk}: active; reactivated", 20)
    cy_off = record("update", cy, f"updated person #{cy.pk}: department, active", 40)   # unticked, then ticked
    cy_on = record("update", cy, f"updated person #{cy.pk}: active", 35)

    migration.fill_periods(apps, None)
    found = {(p.person.staff_id, p.deactivated_at, p.reactivated_at) for p in PersonInactivePeriod.objects.all()}
    assert found == {("BO", bo_off.at, bo_on.at), ("BO", bo_off_again.at, bo_back.at), ("CY", cy_off.at, cy_on.at)}


# the release before's people (the lines before CREATE_KEYS's first person), then these
CREATE_DASHES = CREATE_KEYS.split("Person.objects.create")[0] + """
for name, staff_id in [("Ann", "A-100"), ("Ann B", "A\\u2011100"), ("Deniz", "ID-5"), ("Deniz B", "\\u0130D-5"),
                       ("Em", "A\\u2014100"), ("Bo", "B\\u2212\\u20131")]:
    Person.objects.create(full_name=name, staff_id=staff_id)
"""


def test_staff_ids_that_dashes_read_as_hyphens_would_make_one_stop_migrate_before_its_first_migration(
        tmp_path, previous_release):
    """0020 reads the dashes that look like "-" (what HR's spreadsheets and Word paste) as "-" and a
    dotted capital I as "i"; where two people's ids would then be one, it names them (in Python's
    escapes: else "A-100" and "A\u2011100" read the same) and migrates nothing, after 0017's check of
    the key as it was (which these pass); renamed, it migrates, every key read the new way and every
    staff id as it was typed. An em dash is another id."""
    refused = migrate_refused(tmp_path, previous_release, CREATE_DASHES)
    assert "staff ids are now compared reading the dashes that look like '-' as '-'" in refused, refused[-2000:]
    assert "'A-100' (person #1) and 'A\\u2011100' (person #2) would be one staff id, key 'a-100'" in refused
    assert "'ID-5' (person #3) and '\\u0130D-5' (person #4) would be one staff id, key 'id-5'" in refused
    assert "\\u2014" not in refused and "B\\u2212" not in refused

    fix_after_refusal(tmp_path, previous_release, CREATE_DASHES.split("Person.objects.create")[0]
                      + 'Person.objects.filter(pk=2).update(staff_id="A\\u2011101")\n'
                      + 'Person.objects.filter(pk=4).update(staff_id="\\u0130D-6")')
    rows = manage(tmp_path, "shell", "-c", "from enrollment.models import Person\nprint(ascii(list("
                  "Person.objects.order_by('pk').values_list('staff_id', 'staff_key'))))")
    stored = [("A-100", "a-100"), ("A\u2011101", "a-101"), ("ID-5", "id-5"), ("\u0130D-6", "id-6"),
              ("A\u2014100", "a\u2014100"), ("B\u2212\u20131", "b--1")]
    assert rows.stdout.strip().splitlines()[-1] == ascii(stored), rows.stderr[-2000:]


@pytest.mark.django_db
def test_the_dash_migration_computes_every_key_again_or_refuses_naming_the_people(person):
    """0020 on this database (SQLite or PostgreSQL): the keys 0017 computed (dashes and a dotted
    capital I as typed, or none at all) computed again, the staff ids as they were; reversed, 0017's
    keys again. With two ids of one new key it names them and changes nothing."""
    import importlib

    from django.apps import apps
    from django.core.management.base import CommandError
    from django.db import transaction

    from enrollment.models import Person
    from enrollment.text import staff_id_key_0017

    migration = importlib.import_module("enrollment.migrations.0020_person_staff_key_dashes")
    typed = {"A\u2011100": "a-100", "\u0130D-5": "id-5", "A\u2014100": "a\u2014100", "B-1": "b-1"}
    people = {staff_id: services_create(staff_id) for staff_id in typed}
    for staff_id, pk in people.items():   # as 0017 left them
        Person.objects.filter(pk=pk).update(staff_key=staff_id_key_0017(staff_id))
    Person.objects.filter(pk=people["B-1"]).update(staff_key=None)   # the release before's insert
    migration.refuse_key_clashes(apps, None)
    migration.recompute_keys(apps, None)
    assert dict(Person.objects.values_list("staff_id", "staff_key")) == {**typed, person.staff_id: "e-1"}

    migration.restore_keys(apps, None)
    assert dict(Person.objects.values_list("staff_id", "staff_key")) == {
        **{staff_id: staff_id_key_0017(staff_id) for staff_id in typed}, person.staff_id: "e-1"}
    assert Person.objects.get(pk=people["A\u2011100"]).staff_key == "a\u2010100"

    with transaction.atomic():
        twin = services_create("T-1")
        Person.objects.filter(pk=twin).update(staff_id="a\u2212100", staff_key="a\u2212100")
        with pytest.raises(CommandError) as refused:
            migration.refuse_key_clashes(apps, None)
        nb = people["A\u2011100"]
        assert (f"'A\\u2011100' (person #{nb}) and 'a\\u2212100' (person #{twin}) would be one staff id, key 'a-100'"
                in str(refused.value))
        assert "Migration enrollment 0020 changed nothing" in str(refused.value)
        transaction.set_rollback(True)


def services_create(staff_id: str) -> int:
    """A person of ``staff_id`` created through the services: their id."""
    from enrollment import services

    return services.person_create(actor=None, full_name="Someone", staff_id=staff_id).pk


@pytest.mark.django_db
def test_the_kept_photo_migration_reads_each_ones_check_in_from_its_audit_record(person, monkeypatch):
    """0025 gives each photo gallery adaptation kept before 0024 the check-in its ``photo_add`` audit
    record names, so that deleting that check-in warns and the photo's page links it; a record of
    another person's photo, one older than the photo (an id used before a restore), an uploaded
    photo and one that knows its check-in already are left alone."""
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from audit.models import AuditEvent
    from enrollment.models import FacePhoto

    migration = importlib.import_module("enrollment.migrations.0025_kept_from_checkin_backfill")
    now = timezone.now()

    def photo(source: str, kept: int | None = None, days_ago: int = 10) -> FacePhoto:
        made = FacePhoto.objects.create(person=person, image=f"faces/{person.pk}/x.jpg", source=source,
                                        sha256=f"{FacePhoto.objects.count():064d}", kept_from_checkin=kept)
        FacePhoto.objects.filter(pk=made.pk).update(created_at=now - timedelta(days=days_ago))
        return made

    def record(of: FacePhoto, summary: str, days_ago: int) -> None:
        with monkeypatch.context() as patched:
            patched.setattr(timezone, "now", lambda: now - timedelta(days=days_ago))
            AuditEvent.objects.create(action="photo_add", object_type="enrollment.facephoto", object_id=str(of.pk),
                                      summary=summary)

    kept, moved, reused, known, uploaded = (photo("checkin"), photo("checkin"), photo("checkin", days_ago=5),
                                            photo("checkin", kept=99), photo("upload"))
    record(kept, f"added photo #{kept.pk} (checkin) to person #{person.pk}: gallery adaptation from check-in #456 "
                 "(score 0.612)", 10)
    record(moved, f"added photo #{moved.pk} (checkin) to person #{person.pk + 1}: gallery adaptation from "
                  "check-in #457 (score 0.6)", 10)
    record(reused, f"added photo #{reused.pk} (checkin) to person #{person.pk}: gallery adaptation from "
                   "check-in #458 (score 0.6)", 6)
    record(known, f"added photo #{known.pk} (checkin) to person #{person.pk}: gallery adaptation from "
                  "check-in #459 (score 0.6)", 10)
    record(uploaded, f"added photo #{uploaded.pk} (upload) to person #{person.pk}", 10)

    migration.fill_kept_from_checkin(apps, None)
    assert dict(FacePhoto.objects.values_list("pk", "kept_from_checkin")) == {
        kept.pk: 456, moved.pk: None, reused.pk: None, known.pk: 99, uploaded.pk: None}


@pytest.mark.django_db
def test_the_name_key_migration_fills_everyones_key(person):
    """0026 gives everyone enrolled before it the key of their name, which the searches compare (a
    person without one is found by their name as typed only), leaving their version alone."""
    import importlib

    from django.apps import apps

    from enrollment import services
    from enrollment.models import Person

    migration = importlib.import_module("enrollment.migrations.0026_person_name_key")
    hugo = services.person_create(actor=None, full_name="Hugo Chávez", staff_id="HC-1")
    Person.objects.update(name_key="")   # as 0026 finds them
    versions = dict(Person.objects.values_list("pk", "updated_at"))
    migration.fill_name_keys(apps, None)
    assert Person.objects.get(pk=hugo.pk).name_key == "hugo chavez"
    assert Person.objects.get(pk=person.pk).name_key == person.full_name.casefold()
    assert dict(Person.objects.values_list("pk", "updated_at")) == versions
