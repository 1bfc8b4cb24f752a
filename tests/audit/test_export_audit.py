"""``manage.py export_audit``: the audit log's CSV from the command line, the same file as the admin's
*Export CSV*, so that a restore's export can be taken with the site stopped (docs/deployment.md,
Backup and restore): taken from the admin while the site ran, an erasure made between the export and
the stop was missing from it, and the restore brought that person back for good."""

from __future__ import annotations

import io
import os
import stat
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from audit.admin import CSV_COLUMNS
from audit.models import AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_writes_the_admins_file_readable_by_its_user_alone(admin_client, admin_user, tmp_path):
    audit_record(actor=admin_user, action="erase", object_type="enrollment.person", object_id=7,
                 summary="erased person #7: 1 photo, =HYPERLINK(x)")
    before = AuditEvent.objects.count()
    path = tmp_path / "backup" / "audit.csv"
    out = run(str(path), "--actor", admin_user.username)
    assert out.strip() == f"{before} audit records written to {path}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [record] = AuditEvent.objects.filter(action="list_export", summary__contains="export_audit")
    assert record.actor == admin_user.username and f"as CSV, {before} rows: no filters" in record.summary
    written = path.read_text(encoding="utf-8").splitlines()
    assert len(written) == before + 1 and not any("export_audit" in line for line in written)   # not itself
    assert any("1 photo, '=HYPERLINK(x)" in line for line in written)   # formulas neutralised
    # the admin's file, oldest first, less the command's own record (the admin leaves out its own)
    admin_file = admin_client.get(reverse("admin:audit_auditevent_export"), {"o": "0"}).content.decode()
    assert [line for line in admin_file.splitlines() if "export_audit" not in line] == written


def test_reapply_erasures_reads_it(admin_user, tmp_path):
    audit_record(actor=admin_user, action="erase", object_type="enrollment.person", object_id=41,
                 summary="erased person #41: 1 photo")
    path = tmp_path / "audit.csv"
    run(str(path))
    out = io.StringIO()
    call_command("reapply_erasures", str(path), "--dry-run", stdout=out, stderr=io.StringIO())
    assert "person #41 (erased " in out.getvalue() and "already absent" in out.getvalue(), out.getvalue()


def test_since_a_day_and_what_it_refuses(tmp_path):
    audit_record(actor=None, action="create", object_type="enrollment.person", object_id=2, summary="today's")
    path = tmp_path / "since.csv"
    run(str(path), "--since", timezone.localdate().isoformat())
    assert ",today's" in path.read_text()
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert run(str(path), "--since", tomorrow, "--force").startswith("0 audit records written")
    assert path.read_text().splitlines() == [",".join(CSV_COLUMNS)]
    assert AuditEvent.objects.filter(summary__endswith=f"0 rows: from {tomorrow}").exists()
    with pytest.raises(CommandError, match="not a day"):
        run(str(path), "--since", "yesterday")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CommandError, match="cannot write"):   # a folder that is a file
        run(str(tmp_path / "a-file" / "x.csv"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_since_the_calendars_first_day_is_every_record_in_a_zone_ahead_of_utc(tmp_path, settings):
    """Its midnight has no UTC time there: SQLite's driver raised OverflowError as a traceback, where
    the earliest day means "everything". Found by a helper's review."""
    settings.TIME_ZONE = "Europe/Berlin"
    audit_record(actor=None, action="create", object_type="enrollment.person", object_id=2, summary="today's")
    path = tmp_path / "all.csv"
    run(str(path), "--since", "0001-01-01")
    assert ",today's" in path.read_text()


def test_a_day_it_cannot_read_on_the_command_line_is_one_line_not_a_traceback(tmp_path, capsys):
    """The refusal was raised while argparse read the options, outside Django's handling of a
    ``CommandError``: 38 lines of traceback for a mistyped month."""
    from audit.management.commands.export_audit import Command

    with pytest.raises(SystemExit) as stopped:
        Command().run_from_argv(["manage.py", "export_audit", str(tmp_path / "a.csv"), "--since", "2024-13-01"])
    assert stopped.value.code == 2
    said = capsys.readouterr().err
    assert "argument --since: '2024-13-01': not a day (YYYY-MM-DD)" in said and "Traceback" not in said
    assert not (tmp_path / "a.csv").exists()


def test_its_record_counts_the_rows_written_whatever_commits_meanwhile(tmp_path, monkeypatch):
    """PostgreSQL hands out ids when a row is inserted, not when it commits: a record of a transaction
    still open when the export counted, with an id below the last one counted, is read by the file's
    query once it commits. The export's record said the count taken before (one row fewer than the
    file); it now counts the rows it writes."""
    from audit.management.commands import export_audit

    for i in range(3):
        audit_record(actor=None, action="create", object_type="enrollment.person", object_id=i, summary=f"#{i}")
    # ids of transactions still open, well above the sequence's next (PostgreSQL's does not follow explicit ids)
    taken = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() + 100
    AuditEvent.objects.create(pk=taken + 1, action="create", object_type="enrollment.person", object_id=9,
                              summary="committed first")
    rows = export_audit.audit_csv_rows

    def committing_meanwhile(queryset):
        AuditEvent.objects.create(pk=taken, action="erase", object_type="enrollment.person", object_id=8,
                                  summary="committed after the count")
        return rows(queryset)

    monkeypatch.setattr(export_audit, "audit_csv_rows", committing_meanwhile)
    path = tmp_path / "audit.csv"
    out = run(str(path))
    written = len(path.read_text(encoding="utf-8").splitlines()) - 1
    assert written == 5 and ",committed after the count" in path.read_text(encoding="utf-8")
    assert out.startswith(f"{written} audit records written")
    [record] = AuditEvent.objects.filter(action="list_export", summary__contains="export_audit")
    assert f"as CSV, {written} rows: no filters" in record.summary, record.summary


def test_a_username_the_formula_guard_marked_reads_back_as_it_is(tmp_path, django_user_model):
    """A username may begin with "-", "+" or "@" (Django's validator allows them), which the export's
    guard against spreadsheet formulas writes as "'-ops"; ``reapply_erasures`` said, and wrote in the
    records it makes again, "by '-ops". No username holds a "'": it reads "-ops"."""
    ops = django_user_model.objects.create_user("-ops", is_staff=True, is_superuser=True)
    audit_record(actor=ops, action="erase", object_type="enrollment.person", object_id=41,
                 summary="erased person #41: 1 photo")
    path = tmp_path / "audit.csv"
    run(str(path))
    assert ",'-ops," in path.read_text()   # the file as a spreadsheet must get it
    out = io.StringIO()
    call_command("reapply_erasures", str(path), stdout=out, stderr=io.StringIO())
    assert "by -ops): already absent" in out.getvalue(), out.getvalue()


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    """The restore runbook's block, run again from the top after a failed step, replaced the export
    holding every erasure since the backup with one of the emptied database (the guide says not to,
    and an export without records is refused; one of the restored database is not). An existing file
    (or erased ids file) is now refused before anything is read, and replaced only with --force."""
    audit_record(actor=None, action="erase", object_type="enrollment.person", object_id=7, summary="erased #7")
    path, ids = tmp_path / "audit.csv", tmp_path / "erased-ids.csv"
    run(str(path), "--erased-ids", str(ids))
    kept, kept_ids = path.read_text(), ids.read_text()
    before = AuditEvent.objects.count()
    for args in ([str(path)], [str(tmp_path / "other.csv"), "--erased-ids", str(ids)]):
        with pytest.raises(CommandError, match="exists: kept .*--force"):
            run(*args)
    assert path.read_text() == kept and ids.read_text() == kept_ids and not (tmp_path / "other.csv").exists()
    assert AuditEvent.objects.count() == before   # nothing recorded for an export not made
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    run(str(path), "--erased-ids", str(ids), "--since", tomorrow, "--force")
    assert "erased #7" in kept and path.read_text().splitlines() == [",".join(CSV_COLUMNS)]


def test_the_export_and_the_erased_ids_are_never_one_file(tmp_path, monkeypatch):
    """``export_audit FILE --erased-ids FILE`` (a typo, ``./x`` beside ``/abs/x``) wrote the export, then
    replaced it with the erased ids: the only record of the erasures since the backup was gone before
    the restore dropped the database. Found by the change's review."""
    monkeypatch.chdir(tmp_path)
    before = AuditEvent.objects.count()
    for args in (["audit.csv", "--erased-ids", str(tmp_path / "audit.csv")],
                 ["audit.csv", "--erased-ids", "./audit.csv", "--force"]):
        with pytest.raises(CommandError, match="name the same file"):
            run(*args)
    assert not (tmp_path / "audit.csv").exists() and AuditEvent.objects.count() == before


def test_a_home_folder_written_as_tilde_is_the_users(tmp_path, monkeypatch):
    """The shell leaves ``~`` as it is after ``=`` (``--erased-ids=~/erased.txt``): the file went to
    a folder named ``~`` under the current one, where the restore's next step did not find it."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    run("~/audit.csv", "--erased-ids=~/erased.txt")
    assert (home / "audit.csv").is_file() and (home / "erased.txt").is_file()
    assert not (cwd / "~").exists()
    with pytest.raises(CommandError, match="nosuchuser_xyz"):   # no such home: said, not a traceback
        run("~nosuchuser_xyz/audit.csv")
