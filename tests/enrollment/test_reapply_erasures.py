"""``manage.py reapply_erasures``: after a restore from a backup that predates erasures, the people
the audit log's CSV export says were erased are erased again (docs/deployment.md, Backup and restore)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from api import services as api_services
from api.models import ApiToken
from audit.models import AuditEvent
from enrollment import services
from enrollment.models import FacePhoto, IndexVersion, Person
from enrollment.tasks import rebuild_index_task


def run(*args) -> str:
    out = io.StringIO()
    call_command("reapply_erasures", *[str(a) for a in args], stdout=out, stderr=io.StringIO())
    return out.getvalue()


def rebuild() -> None:
    run_ = services.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(run_.pk, force=True)


def export(client, tmp_path: Path, **filters: str) -> Path:
    """The admin's audit CSV export (as an operator downloads it before restoring), saved to a file."""
    response = client.get(reverse("admin:audit_auditevent_export"), filters)
    assert response.status_code == 200
    path = tmp_path / "audit-erase.csv"
    path.write_bytes(response.content)
    return path


def restore(person: dict, make_photo) -> Person:
    """What restoring a backup taken before the erasures does: the person's row back with its id and
    creation time, a photo with its templates, and an audit log without the erasures (deleted under
    the ORM, which refuses: a restore replaces the table)."""
    restored = Person.objects.create(**person)
    Person.objects.filter(pk=restored.pk).update(created_at=person["created_at"])
    make_photo(restored)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE action = 'erase'")
    return restored


@pytest.fixture
def erased(su_client, superuser, make_photo, tmp_path, django_capture_on_commit_callbacks):
    """Two people erased in the admin's way (one to be restored, one not), a third kept; the export
    of every audit record, taken before the restore; the first one restored."""
    back = services.person_create(actor=None, full_name="Brought Back", staff_id="B1")
    gone = services.person_create(actor=None, full_name="Stays Gone", staff_id="G1")
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    for person in (back, gone, keep):
        make_photo(person)
    saved = {f: getattr(back, f) for f in ("id", "full_name", "staff_id", "department", "active", "created_at")}
    with django_capture_on_commit_callbacks(execute=True):
        for person in (back, gone):
            services.person_erase(person=person, actor=superuser)
    csv_file = export(su_client, tmp_path)   # every record: the create and rebuild records are not erasures
    restored = restore(saved, make_photo)
    rebuild()
    assert str(restored.pk) in IndexVersion.objects.current().load().identities
    return {"back": restored, "gone": gone.pk, "keep": keep, "csv": csv_file}


def test_a_person_brought_back_by_a_restore_is_erased_again_and_recorded(erased, django_capture_on_commit_callbacks):
    back, gone = erased["back"], erased["gone"]
    photo = Path(FacePhoto.objects.get(person=back).image.path)
    assert photo.exists()

    with django_capture_on_commit_callbacks(execute=True):
        out = run(erased["csv"])

    assert f"person #{back.pk} (erased " in out and "by root): erased again" in out, out
    assert f"person #{gone} (erased " in out and "by root): already absent" in out, out
    # and what that leaves to do: no erased staff id keeps HR's next import from enrolling them again
    assert f"people #{gone}, already absent, were erased after the backup: the restored database has no " \
           "erased staff id of theirs; run this again with --erased-ids" in out, out
    rows = erased["csv"].read_text().splitlines()[1:]
    others = sum(",erase,enrollment.person," not in row for row in rows)
    assert others > 0 and len(rows) == others + 2
    assert "2 people erased in" in out and "erased again 1, already absent 1, left alone 0" in out, out
    assert f"; {others} rows that are not erase records ignored" in out, out
    # the same erasure as the admin's: row, photo file, index entry gone; the other person kept
    assert not Person.objects.filter(pk=back.pk).exists() and not photo.exists()
    assert not FacePhoto.objects.filter(person_id=back.pk).exists()
    assert str(back.pk) not in IndexVersion.objects.current().load().identities
    assert Person.objects.filter(pk=erased["keep"].pk).exists()
    # the restored log says again who erased them, when: one record each
    again = AuditEvent.objects.for_object("enrollment.person", back.pk).get(action="erase")
    assert again.summary.startswith(f"erased person #{back.pk}: 1 photo,")
    assert "again after a restore (first erased " in again.summary and "by root)" in again.summary
    recorded = AuditEvent.objects.for_object("enrollment.person", gone).get(action="erase")
    assert "recorded again after a restore" in recorded.summary and "nothing of them was restored" in recorded.summary

    # run twice: nothing more to erase or to record
    again_out = run(erased["csv"])
    assert "erased again 0, already absent 2" in again_out, again_out
    # their erasures are on record now (as for people erased before a backup): nothing said of HR's folder
    assert "were erased after the backup" not in again_out, again_out
    assert AuditEvent.objects.filter(action="erase").count() == 2


def test_a_dry_run_lists_what_it_would_erase_and_changes_nothing(erased):
    back, before = erased["back"], AuditEvent.objects.count()
    out = run(erased["csv"], "--dry-run")
    assert f"person #{back.pk} (erased " in out and "by root): would be erased again" in out, out
    assert f"person #{erased['gone']} (erased " in out and "already absent" in out, out
    assert "would erase again 1, already absent 1" in out, out
    assert Person.objects.filter(pk=back.pk).exists() and FacePhoto.objects.filter(person=back).exists()
    assert str(back.pk) in IndexVersion.objects.current().load().identities
    assert AuditEvent.objects.count() == before


def test_an_id_given_to_someone_enrolled_after_the_erasure_is_left_alone(erased):
    """A restore sets the id sequence back: a person enrolled after it may hold an erased id."""
    back = erased["back"]
    Person.objects.filter(pk=back.pk).update(created_at=AuditEvent.objects.latest("at").at)
    with pytest.raises(CommandError, match=rf"people #{back.pk} were enrolled after their id's erasure"):
        run(erased["csv"])
    assert Person.objects.filter(pk=back.pk).exists() and FacePhoto.objects.filter(person=back).exists()


@pytest.mark.parametrize(("content", "after_the_export"), [
    (b"name,staff_id\nEileen,E-1\n", False),                             # another CSV
    (b"", False),                                                          # empty
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", False),                        # not text
    # the export with a row added: cut short; an erase record without a time, or without an id
    (b"2026-01-01T10:00:00+00:00,root,1,erase\n", True),
    (b"yesterday,root,1,erase,enrollment.person,5,x\n", True),
    (b"2026-01-01T10:00:00+00:00,root,1,erase,enrollment.person,#5,x\n", True),
])
def test_a_file_that_is_not_the_audit_export_is_refused_before_anything_is_erased(erased, tmp_path, content,
                                                                                  after_the_export):
    path = tmp_path / "other.csv"
    path.write_bytes((erased["csv"].read_bytes() if after_the_export else b"") + content)
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=r"is not the audit log's CSV export|nothing was erased|cannot read"):
        run(path)
    assert Person.objects.filter(pk=erased["back"].pk).exists() and AuditEvent.objects.count() == before


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run(tmp_path / "nowhere.csv")


def test_the_erasure_of_a_later_holder_of_the_id_is_recorded_though_an_earlier_holders_is_there(
        su_client, superuser, tmp_path):
    """Two restores: the first set the id sequence back and the id went to someone else, who was
    erased too; the second restore brought back a log that holds the first holder's erasure and
    not the second's. The first holder's record is not the second's: the second is written back."""
    first = services.person_create(actor=None, full_name="First Holder", staff_id="F1")
    services.person_erase(person=first, actor=superuser)
    second = Person.objects.create(pk=first.pk, full_name="Second Holder", staff_id="S1")   # the id again
    services.person_erase(person=second, actor=superuser)
    earlier, later = AuditEvent.objects.for_object("enrollment.person", first.pk).filter(
        action="erase").order_by("at")
    csv_file = export(su_client, tmp_path)
    with connection.cursor() as cursor:   # the second restore: a log from before the second holder
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [later.pk])

    out = run(csv_file)

    assert f"person #{first.pk} (erased " in out and "already absent" in out, out
    records = AuditEvent.objects.for_object("enrollment.person", first.pk).filter(action="erase").order_by("at")
    assert [r.pk for r in records][0] == earlier.pk and len(records) == 2
    assert (f"recorded again after a restore (first erased {timezone.localtime(later.at).isoformat()} by root)"
            in records[1].summary), records[1].summary
    # run twice: the record written back is this erasure's, not written again
    run(csv_file)
    assert AuditEvent.objects.for_object("enrollment.person", first.pk).filter(action="erase").count() == 2


@pytest.fixture
def two_holders(su_client, superuser, tmp_path):
    """One id erased twice: its first holder, then (the id handed out again after a restore) its
    second; the export holds both erase records; then a restore from before both lost them."""
    first = services.person_create(actor=None, full_name="First Holder", staff_id="F1")
    saved = {f: getattr(first, f) for f in ("id", "full_name", "staff_id", "department", "active", "created_at")}
    services.person_erase(person=first, actor=superuser)
    second = Person.objects.create(pk=first.pk, full_name="Second Holder", staff_id="S1")   # the id again
    services.person_erase(person=second, actor=superuser)
    erasures = list(AuditEvent.objects.for_object("enrollment.person", first.pk).filter(action="erase").order_by("at"))
    csv_file = export(su_client, tmp_path)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE action = 'erase'")
    return {"pk": first.pk, "saved": saved, "erasures": erasures, "csv": csv_file}


def _firsts(pk: int) -> list[str]:
    """The first erasures the id's erase records name (``first erased <time> by``), oldest record first."""
    records = AuditEvent.objects.for_object("enrollment.person", pk).filter(action="erase").order_by("at", "id")
    return [r.summary.split("(first erased ")[1].split(" by ")[0] for r in records]


def test_every_erasure_of_an_id_erased_twice_is_written_back(two_holders):
    """Both erasures are lost by the restore: both are recorded again, not only the latest one."""
    pk, (earlier, later) = two_holders["pk"], two_holders["erasures"]
    out = run(two_holders["csv"])
    times = [timezone.localtime(e.at).isoformat() for e in (earlier, later)]
    assert sorted(_firsts(pk)) == sorted(times)
    assert "already absent; also erased " in out and "by root (an earlier holder of the id)" in out, out
    assert "1 people erased in" in out and "already absent 1" in out, out
    # run twice: nothing more is written
    run(two_holders["csv"])
    assert sorted(_firsts(pk)) == sorted(times)


def test_the_first_holder_of_an_id_erased_twice_brought_back_is_erased_again(two_holders, make_photo,
                                                                              django_capture_on_commit_callbacks):
    """The restore brought the first holder back: they are erased again, noting their own erasure
    (not the second holder's), and the second holder's erasure is written back."""
    pk, (earlier, later) = two_holders["pk"], two_holders["erasures"]
    restore(two_holders["saved"], make_photo)
    with django_capture_on_commit_callbacks(execute=True):
        out = run(two_holders["csv"])
    assert f"person #{pk} (erased " in out and "erased again 1" in out, out
    assert not Person.objects.filter(pk=pk).exists() and not FacePhoto.objects.filter(person_id=pk).exists()
    records = AuditEvent.objects.for_object("enrollment.person", pk).filter(action="erase").order_by("at", "id")
    erased_again = [r for r in records if r.summary.startswith(f"erased person #{pk}: 1 photo,")]
    assert len(erased_again) == 1 and f"(first erased {timezone.localtime(earlier.at).isoformat()} by root)" \
        in erased_again[0].summary
    assert sorted(_firsts(pk)) == sorted(timezone.localtime(e.at).isoformat() for e in (earlier, later))
    run(two_holders["csv"])
    assert len(_firsts(pk)) == 2


def test_actor_names_the_user_in_the_erasures_applied_again(erased, enroller, django_capture_on_commit_callbacks):
    """The erase records written again said "system"; ``--actor`` names a staff user allowed to erase
    in the admin (``erase_person``, superusers'): an Enroller may not, and is refused before anything."""
    from django.contrib.auth.models import User

    back = erased["back"]
    with pytest.raises(CommandError, match="--actor 'enroller' may not make .*lacks enrollment.erase_person"):
        run(erased["csv"], "--actor", "enroller")
    assert Person.objects.filter(pk=back.pk).exists() and not AuditEvent.objects.filter(action="erase").exists()

    officer = User.objects.create_superuser("officer", "o@example.com", "pw")
    with django_capture_on_commit_callbacks(execute=True):
        out = run(erased["csv"], "--actor", "officer")
    assert "by root): erased again" in out, out   # the first erasure's actor, as before
    again = AuditEvent.objects.filter(action="erase", object_id__in=[str(back.pk), str(erased["gone"])])
    assert again.count() == 2 and {(e.actor, e.actor_id) for e in again} == {("officer", officer.pk)}


def test_actor_refused_erases_nothing(erased, refused_actor):
    for dry_run in ([], ["--dry-run"]):   # the dry run says what the same command would do: refused too
        with pytest.raises(CommandError, match=f"--actor '{refused_actor}' "):
            run(erased["csv"], "--actor", refused_actor, *dry_run)
    assert Person.objects.filter(pk=erased["back"].pk).exists()
    assert not AuditEvent.objects.filter(action="erase").exists()


def test_an_erasure_again_into_a_full_index_storage_stops_saying_so(erased, storage_full, settings,
                                                                    django_capture_on_commit_callbacks):
    """Erasing rewrites the active index version without the person: with the index folder full,
    ``person_erase`` refuses whole (StorageFull, b23037f), and this command let it escape as a
    traceback. It now stops naming the person left as they were and the storage's sentence; run
    again once there is space, it erases them."""
    back = erased["back"]
    # a token the restore made usable again, revoked since the backup (its record in the export): the
    # revocation needs no room in the index storage and is applied before the command stops
    token, secret = api_services.api_token_create(actor=None, name="hr", scopes=["read"])
    with erased["csv"].open("a", newline="") as file:
        csv.writer(file).writerow([timezone.localtime().isoformat(), "root", "", "deactivate", "api.apitoken",
                                   token.pk, f"revoked API token #{token.pk}"])
    free = storage_full(settings.MASKNET_INDEX_DIR)
    with pytest.raises(CommandError, match=f"person #{back.pk} was not erased again: nothing of them was deleted. "
                                           "The server's storage for the recognition index is full"):
        run(erased["csv"])
    assert Person.objects.filter(pk=back.pk).exists() and FacePhoto.objects.filter(person=back).exists()
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    free()
    with django_capture_on_commit_callbacks(execute=True):
        out = run(erased["csv"])
    assert f"person #{back.pk} " in out and not Person.objects.filter(pk=back.pk).exists()


def test_a_second_restore_keeps_who_first_erased_them_and_when(db, tmp_path):
    """An export taken after an earlier restore holds the erasure as that run wrote it again ("by
    system", at the run's time), its note naming the first one: read as the first one, so that the
    log written back by a second restore still says who erased the person, when (it named the earlier
    run, and the first erasure was lost). Found by a helper's review."""
    from datetime import datetime

    from audit.admin import CSV_COLUMNS
    from enrollment.management.commands.reapply_erasures import export_records

    path = tmp_path / "audit.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["2026-12-07T06:37:17+00:00", "system", "", "erase", "enrollment.person", "6",
                         "erased person #6: 1 photo; again after a restore (first erased "
                         "2026-12-07T06:36:55.123456+00:00 by admin)"])
        writer.writerow(["2026-12-07T06:37:18+00:00", "system", "", "deactivate", "api.apitoken", "3",
                         "revoked API token #3; again after a restore (first revoked "
                         "2026-12-01T09:00:00+00:00 by ops)"])
    erased, _ignored, records, _latest = export_records(path)
    assert erased == {6: [(datetime.fromisoformat("2026-12-07T06:36:55.123456+00:00"), "admin")]}
    (token,) = [r for r in records if r.object_type == "api.apitoken"]
    assert (token.at, token.actor) == (datetime.fromisoformat("2026-12-01T09:00:00+00:00"), "ops")


def test_the_first_erasure_survives_a_long_actor_name_and_is_read_only_where_written(db, tmp_path):
    """The note naming the first erasure came last in a summary cut to 300 characters: a long
    username lost its end, and the first erasure with it. The counts are cut instead; and the note
    is read only where the command writes it (not from text elsewhere in a summary). Found by a
    helper's review of the day's diff."""
    from datetime import datetime

    from audit.admin import CSV_COLUMNS
    from enrollment.management.commands.reapply_erasures import FIRST_DONE, export_records
    from enrollment.services.people import _again

    first = datetime.fromisoformat("2026-11-07T07:26:20.096633+00:00")
    person = services.person_create(actor=None, full_name="Long Name", staff_id="L1")
    services.person_erase(person=person, actor=None, note=_again(first, "jennifer.smith-jones@hr.example.com"))
    summary = AuditEvent.objects.get(action="erase").summary
    assert len(summary) <= 300 and summary.endswith("by jennifer.smith-jones@hr.example.com)")
    path = tmp_path / "audit.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["2026-12-07T06:37:17+00:00", "system", "", "erase", "enrollment.person", str(person.pk),
                         summary])
    assert export_records(path)[0] == {person.pk: [(first, "jennifer.smith-jones@hr.example.com")]}
    assert FIRST_DONE.search("groups: ['x (first revoked 2000-01-01T00:00:00+00:00 by y)'] -> []") is None
    spoof = "ops; again after a restore (first revoked 2000-01-01T00:00:00+00:00 by x), y"
    assert FIRST_DONE.search(f"superuser: True -> False; groups: ['{spoof}'] -> []") is None
    # an API token's service account names itself with spaces
    assert FIRST_DONE.search("revoked API token #3; again after a restore (first revoked "
                             "2026-12-01T09:00:00+00:00 by api:hr sync)").group(4) == "api:hr sync"


def test_erased_staff_ids_taken_before_the_restore_are_given_back(su_client, superuser, make_photo, tmp_path,
                                                                  django_capture_on_commit_callbacks):
    """Someone enrolled after the backup and erased since left no erased staff id in it: after the
    restore the next import of HR's folder enrolled them again, and the command could only name their
    person id, which nobody can act on (nothing else names them). export_audit --erased-ids keeps the
    digests before the restore, reapply_erasures --erased-ids gives them back (and lifts an entry
    lifted since the backup). Found by a helper's review of the restore runbook."""
    from enrollment.models import ErasedStaffId

    early = services.person_create(actor=None, full_name="Lifted Since", staff_id="L1")
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=early, actor=superuser)
    backup = list(ErasedStaffId.objects.values_list("digest", "key_id", "erased_at"))   # what the backup holds
    later = services.person_create(actor=None, full_name="Enrolled After", staff_id="A9")
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=later, actor=superuser)
    services.erased_staff_id_lift(entry=ErasedStaffId.objects.of("L1").get(), actor=superuser)
    audit, ids = tmp_path / "audit.csv", tmp_path / "erased-ids.csv"
    out = io.StringIO()
    call_command("export_audit", str(audit), "--erased-ids", str(ids), stdout=out)
    assert "1 erased staff id written to" in out.getvalue()
    assert ids.read_text().splitlines()[0] == "digest,key_id,erased_at" and (ids.stat().st_mode & 0o077) == 0
    # the restore: the backup's erased staff ids (L1's, not A9's)
    ErasedStaffId.objects.all().delete()
    ErasedStaffId.objects.bulk_create([ErasedStaffId(digest=d, key_id=k, erased_at=at) for d, k, at in backup])
    assert run(audit, "--erased-ids", ids, "--dry-run").count("would add 1 (erased since the backup), would lift 1")
    assert ErasedStaffId.objects.of("L1").exists() and not ErasedStaffId.objects.of("A9").exists()
    said = run(audit, "--erased-ids", ids)
    assert "erased staff ids from" in said and "added 1 (erased since the backup), lifted 1 (lifted since)" in said
    assert "run this again with --erased-ids" not in said
    assert ErasedStaffId.objects.of("A9").exists() and not ErasedStaffId.objects.of("L1").exists()
    assert AuditEvent.objects.filter(object_type="enrollment.erasedstaffid",
                                     summary__startswith="erased staff ids set again after a restore").count() == 1
    # the next import of HR's folder skips A9 again
    assert ErasedStaffId.objects.matching(["A9", "L1"]).keys() == {"A9"}


@pytest.mark.parametrize("content", ["digest,key_id\r\n", "digest,key_id,erased_at\r\nnot-a-digest,ab,2026-01-01\r\n"])
def test_an_erased_ids_file_it_cannot_read_is_refused_before_anything(erased, tmp_path, content):
    ids = tmp_path / "ids.csv"
    ids.write_text(content)
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="erased staff ids file|not a digest"):
        run(erased["csv"], "--erased-ids", ids)
    assert AuditEvent.objects.count() == before and Person.objects.filter(pk=erased["back"].pk).exists()


def test_photo_files_no_restored_row_names_are_deleted_at_once(erased, settings):
    """A photo stored between the backup's database dump and its copy of the media comes back with the
    media and no row; its person erased since, the file stayed until the next daily purge (an hour old
    at least). With the site stopped for the restore no upload is in flight: swept at once. Found by a
    helper's review of the restore runbook."""
    import os
    import time

    stray = Path(settings.MEDIA_ROOT) / "faces" / "999" / "f00.jpg"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"\xff\xd8 a face")
    backed_up = time.time() - 600   # the media copy's time, which the restore's tar -p keeps: before the export
    os.utime(stray, (backed_up, backed_up))
    # a file written after the export: an upload in flight on a site not stopped as the guide says
    flight = Path(settings.MEDIA_ROOT) / "faces" / "998" / "f01.jpg"
    flight.parent.mkdir(parents=True, exist_ok=True)
    flight.write_bytes(b"\xff\xd8 an upload")
    later = time.time() + 60
    os.utime(flight, (later, later))
    assert "photo files no restored photo names: would delete 1" in run(erased["csv"], "--dry-run")
    assert stray.exists()
    assert "photo files no restored photo names: deleted 1" in run(erased["csv"])
    assert not stray.exists() and flight.exists()
    assert Path(FacePhoto.objects.get(person=erased["keep"]).image.path).exists()


def test_erased_ids_lifted_since_are_not_those_this_restore_made(erased, tmp_path):
    """An entry made after the export (the person the restore brought back, erased again by the first
    run, maybe under a rotated key) is not lifted by a second run: running it again changes nothing
    (it lifted the new entry and put back the file's). Found by a helper's review."""
    from enrollment.models import ErasedStaffId

    ids = tmp_path / "ids.csv"
    ids.write_text("digest,key_id,erased_at\r\n")   # taken before the restore: no entry then
    first = run(erased["csv"], "--erased-ids", ids)
    assert "added 0 (erased since the backup)" in first and ErasedStaffId.objects.of("B1").exists()
    again = run(erased["csv"], "--erased-ids", ids)
    assert "added 0 (erased since the backup), lifted 0 (lifted since)" in again, again
    assert ErasedStaffId.objects.of("B1").exists()
