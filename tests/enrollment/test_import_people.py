"""``import_people``: who the audit log names for it (``--actor``) and the people CSV (``--people-csv``)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from enrollment import services
from enrollment.management.commands import import_people
from enrollment.models import FacePhoto, Person


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command("import_people", *map(str, args), stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


@pytest.fixture
def photos_added(monkeypatch) -> list[dict]:
    """``photo_add`` without the face models: each call recorded, its photo stored as the import's."""
    monkeypatch.setattr(import_people, "models_ready", lambda models_dir, descriptor: True)
    calls: list[dict] = []

    def photo_add(**kwargs):
        calls.append(kwargs)
        return FacePhoto.objects.create(person=kwargs["person"], image=f"faces/x{len(calls)}.jpg",
                                        sha256=str(len(calls)), width=8, height=8, source=FacePhoto.Source.IMPORT)

    monkeypatch.setattr(services, "photo_add", photo_add)
    return calls


def test_actor_names_the_staff_user_in_every_record_of_the_import(tmp_path, enroller, photos_added, settings):
    """Every record of an import said "system": the log could not tell who imported a folder of
    people. ``--actor`` names a staff user in each (the people, their photos, the import, the rebuild
    it asks for); without it, "system", as every other command's records."""
    settings.MASKNET_TASK_RUNNER = "celery"
    (tmp_path / "Jane_Doe").mkdir()
    (tmp_path / "Jane_Doe" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    run(tmp_path, "--actor", "enroller")
    jane = Person.objects.get(staff_id="Jane_Doe")
    assert photos_added[0]["actor"] == enroller
    created = AuditEvent.objects.for_object("enrollment.person", jane.pk).get(action="create")
    imported = AuditEvent.objects.get(action="import")
    rebuild = AuditEvent.objects.get(action="rebuild")
    assert {(e.actor, e.actor_id) for e in (created, imported, rebuild)} == {("enroller", enroller.pk)}
    assert jane.photos.get().source == FacePhoto.Source.IMPORT

    (tmp_path / "Bo_Li").mkdir()
    run(tmp_path, "--no-rebuild")
    bo = Person.objects.get(staff_id="Bo_Li")
    assert AuditEvent.objects.for_object("enrollment.person", bo.pk).get().actor == "system"


@pytest.mark.parametrize("who", ["nobody", "staff", "enroller-inactive", "not-staff"])
def test_actor_must_be_an_active_staff_user_allowed_to_import(tmp_path, roles, plain_staff, who):
    """The log must never name someone for what they could not have done in the admin: an unknown
    username, a user who is not staff, an inactive one or one without the enrolment permissions
    stops the import before anything is done."""
    user = User.objects.create_user("enroller", password="pw", is_staff=who != "not-staff",
                                    is_active=who != "enroller-inactive")
    user.groups.add(roles)
    (tmp_path / "Jane_Doe").mkdir()
    name = {"nobody": "ghost", "staff": plain_staff.username}.get(who, "enroller")
    with pytest.raises(CommandError, match=f"--actor '{name}'") as refused:
        run(tmp_path, "--actor", name, "--no-rebuild")
    if who == "staff":
        assert "lacks enrollment.add_person, enrollment.add_facephoto" in str(refused.value)
        assert str(refused.value).endswith("(the Enrollers group has them)"), refused.value
    assert not Person.objects.exists() and not AuditEvent.objects.exists()


def test_an_enroller_may_not_lift_erasures_and_is_told_who_may(tmp_path, roles):
    """``--include-erased`` lifts an erasure, a superuser's: the refusal said "the Enrollers group has
    them" of a permission the group has not (an operator-commands review)."""
    user = User.objects.create_user("enroller", password="pw", is_staff=True)
    user.groups.add(roles)
    (tmp_path / "Jane_Doe").mkdir()
    with pytest.raises(CommandError) as refused:
        run(tmp_path, "--actor", "enroller", "--no-rebuild", "--include-erased")
    assert str(refused.value).endswith("lacks enrollment.delete_erasedstaffid (superusers have it)"), refused.value
    assert not Person.objects.exists() and not AuditEvent.objects.exists()


def test_an_actor_who_may_not_rebuild_may_import_without_a_rebuild(tmp_path, db):
    """Asking for the rebuild is a change of its own (``rebuild_index`` permission): an actor who
    may add people and photos but not rebuild is refused, unless ``--no-rebuild``."""
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("hr", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_person", "add_facephoto"]))
    (tmp_path / "Jane_Doe").mkdir()
    with pytest.raises(CommandError, match="lacks enrollment.rebuild_index"):
        run(tmp_path, "--actor", "hr")
    run(tmp_path, "--actor", "hr", "--no-rebuild")
    assert AuditEvent.objects.get(action="import").actor == "hr"


def folders(root, *names: str):
    """Person folders under ``root``, one photo-less file each (nothing to embed: no models needed)."""
    for name in names:
        (root / name).mkdir(parents=True)
    return root


def test_a_people_csv_gives_each_folders_person_their_details(tmp_path, db):
    """HR's spreadsheet (staff id, full name, department) gives each folder's person: the import
    took the staff id and name from the folder's name alone. As Excel writes it where the decimal
    mark is a comma: a byte-order mark, ``;`` separators, CRLF, its own headings."""
    root = folders(tmp_path / "photos", "Jane_Doe", "Bo Li", "Zoe\u0308", "Left_Out")
    sheet = root / "staff.csv"   # kept with the folders: not a file "not imported"
    sheet.write_bytes("\ufeffFolder;Staff ID;Full name;Department\r\n"
                      "Jane_Doe;A-100;Jane Doe-Smith;Sales\r\n"
                      "bo li ;B-200;Bo Li;\r\n"
                      "Zo\u00eb;Z-300;Zoë Ångström;R&D\r\n"
                      ";;;\r\n".encode())
    out = run(root, "--people-csv", sheet, "--no-rebuild", "--department", "Unassigned")
    people = {p.staff_id: (p.full_name, p.department) for p in Person.objects.all()}
    # an empty department is --department's; a folder named otherwise (letter case, spaces, a Mac's
    # NFD) is found when it is one folder's
    assert people == {"A-100": ("Jane Doe-Smith", "Sales"), "B-200": ("Bo Li", "Unassigned"),
                      "Z-300": ("Zoë Ångström", "R&D")}, people
    assert "importing 3 people, 0 photos" in out
    assert "1 folders of" in out and "no usable row in the people CSV, not imported: Left_Out" in out, out
    assert "left out" not in out.replace("not imported: Left_Out", "") and "directly in" not in out, out
    event = AuditEvent.objects.get(action="import")
    assert event.summary.endswith("3 people created, 0 photos added, 0 refused; details from a people CSV, "
                                  "0 of its rows left out"), event.summary


@pytest.mark.parametrize("sheet", ["sep=,\nfolder,staff_id,full_name\nJane_Doe,A-100,Jane Doe\n",
                                   "folder\tstaff_id\tfull_name\nJane_Doe\tA-100\tJane Doe\n",
                                   'full_name,folder,staff_id,notes\n"Doe, Jane",Jane_Doe,A-100,x\n',
                                   # Excel for Mac's "CSV (Macintosh)": a carriage return ends each line
                                   "folder,staff_id,full_name\rJane_Doe,A-100,Jane Doe\r",
                                   "sep=;\rfolder;staff_id;full_name\rJane_Doe;A-100;Jane Doe\r"],
                         ids=["excel-sep-line", "tab", "quoted-comma-other-order", "mac-cr", "mac-cr-sep-line"])
def test_a_people_csv_may_be_written_as_spreadsheets_write_it(tmp_path, db, sheet):
    root = folders(tmp_path / "photos", "Jane_Doe")
    (tmp_path / "staff.csv").write_text(sheet, encoding="utf-8")
    out = run(root, "--people-csv", tmp_path / "staff.csv", "--no-rebuild")
    assert Person.objects.get().staff_id == "A-100" and "left out" not in out, out


def test_each_bad_row_of_a_people_csv_is_said_and_the_others_imported(tmp_path, db):
    """A bad row leaves out its own folder, with its line and what is wrong: nothing else is lost."""
    root = folders(tmp_path / "photos", *"ABCDEFGHIJ", "Good", ".Hidden")
    sheet = tmp_path / "staff.csv"
    sheet.write_bytes(b"folder,staff_id,full_name,department\n"
                      b"Good,G-1,Gita Good,Ops\n"             # 2
                      b"Nowhere,N-1,No Folder,\n"            # 3: no such folder
                      b"../photos,N-2,Outside,\n"            # 4: not a folder of DIR
                      b"A,D-1,Ann Twin,\n"                   # 5: one staff id, two rows
                      b"B,d-1,Ben Twin,\n"                   # 6
                      b"C,,Cy No Id,\n"                      # 7: a value missing
                      b"D,D-4\n"                             # 8: a short row
                      b"E,E-5,Doe, Jane,Sales\n"             # 9: a comma inside an unquoted value
                      b"F,F-6,Fran\xe7ois Latin,\n"          # 10: not UTF-8 (Excel's "CSV", cp1252)
                      b"G," + b"X" * 65 + b",Long Id,\n"     # 11: staff id over 64 characters
                      b"H,H-8,Hal,\n"                        # 12: one folder, two rows
                      b"h,H-9,Hal Again,\n"                  # 13
                      b".Hidden,K-1,Kay Hidden,\n")          # 14: a hidden folder (was left out unsaid)
    out = run(root, "--people-csv", sheet, "--no-rebuild", verbosity=2)
    assert Person.objects.get().staff_id == "G-1"
    for said in (f"line 3: no folder 'Nowhere' in {root}", f"line 4: no folder '../photos' in {root}",
                 "line 5: staff id 'D-1' is also on line 6 (none of them is imported)",
                 "line 6: staff id 'd-1' is also on line 5",
                 "line 7: no staff_id", "line 8: no full_name (2 values, where the first line names 4 columns)",
                 "line 9: 5 values, where the first line names 4 columns (a value holding the separator ',' "
                 "needs quotes around it)",
                 "line 10: not UTF-8 text ('F,F-6,Fran\\xe7ois Latin,'): save the file as \"CSV UTF-8\"",
                 "line 11: staff id longer than 64 characters",
                 "line 12: folder 'H' is also on line 13", "line 13: folder 'H' is also on line 12",
                 "line 14: folder '.Hidden' is hidden (its name starts with a dot), and imports leave hidden "
                 "folders out: rename it"):
        assert said in out, (said, out)
    assert "12 rows of the people CSV" in out and "left out (the others are read)" in out
    assert "10 folders of" in out, out
    assert "12 rows of the people CSV were left out, their folders not imported" in out
    # five of them without -v 2
    short = run(root, "--people-csv", sheet, "--no-rebuild")
    assert "line 7:" in short and "line 8:" not in short and "(+7 more; -v 2 lists all)" in short, short


def test_a_people_csv_that_cannot_be_read_stops_before_anything(tmp_path, db, monkeypatch):
    root = folders(tmp_path / "photos", "Jane_Doe")
    sheet = tmp_path / "staff.csv"
    cases = {
        "folder,name\nJane_Doe,Jane Doe\n": "it has no staff_id, full_name (it is 'folder,name')",
        "folder,staff_id,full_name,staff_id\n": "it has staff_id twice",
        "folder,staff_id,full_name\nJane_Doe,A-1,Jane\n".encode("utf-16"): "UTF-16 text",
        "folder,staff_id,full_name\nJane_Doe,A-1," + "J" * 200_000 + "\n": "line 2: field larger than field limit",
    }
    for text, said in cases.items():
        sheet.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(CommandError, match="people CSV") as refused:
            run(root, "--people-csv", sheet, "--no-rebuild")
        assert said in str(refused.value), (said, str(refused.value))
    monkeypatch.setattr(import_people, "PEOPLE_CSV_MAX_BYTES", 1000)
    sheet.write_text("folder,staff_id,full_name\n" + "Jane_Doe,A-1,Jane\n" * 100)
    with pytest.raises(CommandError, match="is 1,826 bytes; at most 1,000 bytes: split it"):
        run(root, "--people-csv", sheet, "--no-rebuild")
    with pytest.raises(CommandError, match="people CSV .*missing.csv not found"):
        run(root, "--people-csv", tmp_path / "missing.csv", "--no-rebuild")
    sheet.write_text("folder,staff_id,full_name\nNowhere,A-1,Jane\n")
    with pytest.raises(CommandError, match="no folder of .* has a usable row in the people CSV"):
        run(root, "--people-csv", sheet, "--no-rebuild")
    assert not Person.objects.exists() and not AuditEvent.objects.exists()


def test_a_people_csv_with_a_people_list_and_limit(tmp_path, db):
    """The list chooses the folders and their order, the CSV their people; ``--limit`` counts the
    folders imported, those without a row not among them."""
    root = folders(tmp_path / "photos", "A", "B", "C", "D")
    (tmp_path / "list.txt").write_text("D\nB\nC\nA\n")
    (tmp_path / "staff.csv").write_text("folder,staff_id,full_name\nA,1,Ann\nC,3,Cy\nD,4,Di\n")
    out = run(root, "--people-csv", tmp_path / "staff.csv", "--people-list", tmp_path / "list.txt",
              "--no-rebuild", limit=2)
    assert set(Person.objects.values_list("staff_id", flat=True)) == {"4", "3"}
    assert "no usable row in the people CSV, not imported: B" in out


def test_a_reimport_with_changed_details_changes_nobody_unless_asked(tmp_path, enroller, roles):
    """Existing people were never updated, and a re-import with HR's new details said nothing of
    them. By default they stay as they are (the admin may have corrected what the spreadsheet still
    says) and the import names them; ``--update-existing`` changes their name and department, each
    change audited as the import's other changes are."""
    jane = services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100", department="Sales")
    bo = services.person_create(actor=None, full_name="Bo Li", staff_id="B-200", department="Ops")
    root = folders(tmp_path / "photos", "Jane_Doe", "Bo_Li")
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name,department\nJane_Doe,a-100,Jane Smith,Marketing\n"
                     "Bo_Li,B-200,Bo Li,\n")
    out = run(root, "--people-csv", sheet, "--no-rebuild")
    jane.refresh_from_db()
    assert (jane.full_name, jane.department) == ("Jane Doe", "Sales")
    assert ("1 people already there have other details in the people CSV, left as they are (--update-existing "
            "changes them): A-100 (full_name, department)") in out, out
    assert "people: 0 created, 2 already there" in out

    out = run(root, "--people-csv", sheet, "--no-rebuild", "--update-existing", "--actor", "enroller")
    jane.refresh_from_db()
    bo.refresh_from_db()
    assert (jane.full_name, jane.department) == ("Jane Smith", "Marketing")
    assert (bo.full_name, bo.department) == ("Bo Li", "Ops")   # an empty department changes nothing
    assert "1 people already there updated from the people CSV: A-100 (full_name, department)" in out, out
    change = AuditEvent.objects.for_object("enrollment.person", jane.pk).get(action="update")
    assert change.actor == "enroller" and change.summary == f"updated person #{jane.pk}: full_name, department"
    assert "1 people updated" in AuditEvent.objects.filter(action="import").first().summary
    assert not AuditEvent.objects.for_object("enrollment.person", bo.pk).filter(action="update").exists()


def test_update_existing_needs_a_people_csv_and_an_actor_who_may_change_people(tmp_path, db):
    from django.contrib.auth.models import Permission

    root = folders(tmp_path / "photos", "Jane_Doe")
    with pytest.raises(CommandError, match="--update-existing takes the new details from a --people-csv"):
        run(root, "--update-existing", "--no-rebuild")
    user = User.objects.create_user("hr", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_person", "add_facephoto"]))
    (tmp_path / "staff.csv").write_text("folder,staff_id,full_name\nJane_Doe,A-1,Jane\n")
    with pytest.raises(CommandError, match="lacks enrollment.change_person"):
        run(root, "--people-csv", tmp_path / "staff.csv", "--update-existing", "--actor", "hr", "--no-rebuild")
    assert not Person.objects.exists()


def test_a_people_csv_gives_notes_and_whether_each_person_is_active(tmp_path, enroller, roles):
    """HR's sheet says who left (``active``) and what to note: the import could set neither. New
    people are created with the row's notes, inactive where it says no; people already there are
    changed only with ``--update-existing``, a deactivation through the service the admin's
    "deactivate" action uses (its audit record, the rebuild that takes them out of the index), and
    the summary and the import's audit record name them."""
    from enrollment.models import TrainingRun

    kept = services.person_create(actor=None, full_name="Kim Kept", staff_id="K-1", notes="desk 4")
    gone = services.person_create(actor=None, full_name="Gil Gone", staff_id="G-1")
    back = services.person_create(actor=None, full_name="Bea Back", staff_id="R-1", active=False)
    root = folders(tmp_path / "photos", "Ann", "Leo", "Kim", "Gil", "Bea")
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name,Notes,Active\n"
                     "Ann,A-1,Ann New,badge 12,Yes\n"
                     "Leo,L-1,Leo Left,,FALSE\n"           # Excel's FALSE
                     "Kim,K-1,Kim Kept,,\n"                # empty: nothing changes
                     "Gil,G-1,Gil Gone,left in May,no\n"
                     "Bea,R-1,Bea Back,,1\n")
    out = run(root, "--people-csv", sheet, "--no-rebuild")
    people = {p.staff_id: (p.notes, p.active) for p in Person.objects.all()}
    assert people == {"A-1": ("badge 12", True), "L-1": ("", False), "K-1": ("desk 4", True),
                      "G-1": ("", True), "R-1": ("", False)}, people
    assert ("1 people created inactive, as the people CSV says (not in the index until they are made active): "
            "L-1") in out, out
    assert ("2 people already there have other details in the people CSV, left as they are (--update-existing "
            "changes them): R-1 (active), G-1 (notes, active)") in out, out   # in the folders' order
    assert not TrainingRun.objects.exists()

    out = run(root, "--people-csv", sheet, "--no-rebuild", "--update-existing", "--actor", "enroller")
    for person in (kept, gone, back):
        person.refresh_from_db()
    assert (kept.notes, kept.active) == ("desk 4", True)
    assert (gone.notes, gone.active) == ("left in May", False)
    assert back.active
    # when each was deactivated, as the admin's and the API's deactivations record it (attendance's past days)
    assert gone.deactivated_at is not None and back.deactivated_at is None
    assert back.inactive_periods.count() == 1 and not gone.inactive_periods.exists()   # back's time away kept
    assert Person.objects.get(staff_id="L-1").deactivated_at is not None   # created inactive
    assert "2 people already there updated from the people CSV: R-1 (active), G-1 (notes, active)" in out, out
    assert ("1 people already there deactivated, as the people CSV says (out of the index once it is rebuilt): "
            "G-1") in out
    assert ("1 people already there reactivated, as the people CSV says (in the index once it is rebuilt): "
            "R-1") in out
    assert "are deactivated: their photos" not in out   # said once, as deactivated by this import
    events = AuditEvent.objects.for_object("enrollment.person", gone.pk)
    assert events.get(action="update").summary == f"updated person #{gone.pk}: notes"
    deactivation = events.get(action="deactivate")
    assert deactivation.actor == "enroller"
    assert deactivation.summary == f"deactivated person #{gone.pk}; import_people: the people CSV says inactive"
    assert AuditEvent.objects.for_object("enrollment.person", back.pk).get(action="update").summary == (
        f"updated person #{back.pk}: active; reactivated")
    assert TrainingRun.objects.exists()   # the deactivation's and reactivation's rebuild, as the admin's
    imported = AuditEvent.objects.filter(action="import").first().summary
    assert "2 people updated (1 deactivated, 1 reactivated)" in imported, imported
    first = AuditEvent.objects.filter(action="import").last().summary   # the first import's
    assert "2 people created, 0 photos added, 0 refused, 1 created inactive;" in first, first

    # without the columns (or with them empty) nothing of it changes, with --update-existing too
    sheet.write_text("folder,staff_id,full_name\nGil,G-1,Gil Gone\n")
    out = run(root, "--people-csv", sheet, "--no-rebuild", "--update-existing")
    gone.refresh_from_db()
    assert (gone.notes, gone.active) == ("left in May", False) and "updated" not in out, out


@pytest.mark.parametrize("yes, no", [("yes", "no"), ("TRUE", "FALSE"), ("1", "0"), ("Y", "N"), (" on ", "off"),
                                     ("Active", "Inactive")])
def test_a_people_csvs_active_column_takes_the_usual_spellings(tmp_path, db, yes, no):
    root = folders(tmp_path / "photos", "Ann", "Bo")
    (tmp_path / "staff.csv").write_text(f"folder;staff_id;full_name;active\nAnn;A-1;Ann;{yes}\nBo;B-1;Bo;{no}\n")
    run(root, "--people-csv", tmp_path / "staff.csv", "--no-rebuild")
    assert dict(Person.objects.values_list("staff_id", "active")) == {"A-1": True, "B-1": False}


def test_a_people_csv_row_whose_active_or_notes_cannot_be_read_is_said_and_left_out(tmp_path, db):
    """As the other bad rows: its line and what is wrong, its folder not imported, the others are."""
    root = folders(tmp_path / "photos", "Ann", "Bo", "Cy")
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name,notes,active\n"
                     "Ann,A-1,Ann,,maybe\n"
                     f"Bo,B-1,Bo,{'n' * 2001},yes\n"
                     "Cy,C-1,Cy,,no\n")
    out = run(root, "--people-csv", sheet, "--no-rebuild")
    assert ("line 2: active 'maybe' is neither yes nor no (1/true/yes/y/on/active or 0/false/no/n/off/inactive, "
            "or empty)") in out, out
    assert "line 3: notes longer than 2000 characters" in out, out
    assert "2 rows of the people CSV were left out" in out
    assert list(Person.objects.values_list("staff_id", "active")) == [("C-1", False)]


def test_an_import_warns_of_a_face_that_also_matches_someone_else_as_the_admin_does(tmp_path, roles, photos_added,
                                                                                   monkeypatch):
    """The admin warns "this face also matches …" of a photo added (a photo filed under the wrong
    person, someone enrolled twice); the import's list of the admin's warnings left this one out, so
    a folder of the wrong person's photos was imported without a word. It says it now, in the
    admin's words, and who only to an actor who may search faces (on record, as the admin's is)."""
    other = services.person_create(actor=None, full_name="Mei Lin", staff_id="ML-1")
    recorded = services.photo_add

    def photo_add(**kwargs):
        photo = recorded(**kwargs)
        photo.lookalike = (other, 0.71) if kwargs["filename"] == "b.jpg" else None
        return photo

    monkeypatch.setattr(services, "photo_add", photo_add)
    for i, path in enumerate(("hr/Jane_Doe/a.jpg", "hr/Jane_Doe/b.jpg", "later/Bo_Li/b.jpg")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"\xff\xd8\xff" + bytes([i]))
    out = run(tmp_path / "hr", "--no-rebuild")
    lines = out.splitlines()
    at = lines.index("1 warnings of photos added (kept; as the admin warns):")
    assert lines[at + 1] == (f"  Jane_Doe: “Jane_Doe/b.jpg”: this face also matches Mei Lin (#{other.pk}, score "
                             "0.71): check-ins could go to either. Check that the photo is of Jane Doe; if not, "
                             "remove it."), out
    searched = AuditEvent.objects.get(action="api_identify")
    assert searched.summary == f"import_people: looks like person #{other.pk} 0.710" and searched.actor == "system"
    # an actor who may not search faces is told only that it matches someone, which is on record too
    # (one bit of a face search), saying whom it was not told
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(*roles.permissions.exclude(codename="recognise_face"))
    out = run(tmp_path / "later", "--no-rebuild", "--actor", "clerk")
    assert ("  Bo_Li: “Bo_Li/b.jpg”: this face also matches another enrolled person: check-ins could go to "
            "either. Check that the photo is of Bo Li; if not, remove it.") in out.splitlines(), out
    told = AuditEvent.objects.filter(action="api_identify").exclude(pk=searched.pk).get()
    assert told.actor == "clerk" and told.summary == (f"import_people: looks like person #{other.pk} 0.710 (told only "
                                                      "that it looks like someone: no face search)")


@pytest.mark.django_db(transaction=True)
def test_a_leaver_deactivated_by_an_import_without_rebuild_leaves_the_index(tmp_path, real_dispatch, settings,
                                                                            make_photo):
    """``--update-existing --no-rebuild`` with HR's sheet saying someone left: the rebuild their
    deactivation queues, which Celery workers run whatever --no-rebuild says, died with the command
    without them, and the leaver stayed recognisable. Found by a helper's review."""
    from enrollment.models import IndexVersion

    settings.MASKNET_TASK_RUNNER = "thread"
    settings.MASKNET_REBUILD_DEBOUNCE_S = 600   # the thread would start it ten minutes on: after the exit
    jane = services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    make_photo(jane)
    services.index_rebuild_now()
    assert IndexVersion.objects.current().load().identities == {str(jane.pk)}
    root = folders(tmp_path / "photos", "Jane_Doe")
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name,active\nJane_Doe,A-100,Jane Doe,no\n")
    out = run(root, "--people-csv", sheet, "--no-rebuild", "--update-existing")
    assert "index rebuilt for the people deactivated (training run #" in out, out
    assert not IndexVersion.objects.current().load().identities
