"""Erased staff ids: a person erased at their request is not enrolled again by the next
``import_people`` of HR's folder, which still holds their photos (or their people CSV row); the
site keeps their staff id as a keyed digest alone, until it is lifted."""

from __future__ import annotations

import hashlib

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import services
from enrollment.models import ErasedStaffId, Person, secret_fingerprint, staff_id_digest
from enrollment.text import staff_id_key

from . import test_import_people
from .test_import_people import folders, run

photos_added = test_import_people.photos_added   # the import's fixture: photo_add recorded, no models


def with_photo(root, *names: str):
    """Person folders under ``root``, one photo each (``photos_added`` records what is added)."""
    folders(root, *names)
    for name in names:
        (root / name / "a.jpg").write_bytes(b"\xff\xd8\xff" + name.encode())
    return root


def erase(staff_id: str, actor=None) -> ErasedStaffId:
    """Erase the person of ``staff_id``; the entry their erasure kept."""
    person = Person.objects.with_staff_id(staff_id).get()
    assert services.person_erase(person=person, actor=actor)
    return ErasedStaffId.objects.get()


def test_an_erased_persons_folder_is_not_imported_again(tmp_path, superuser, photos_added):
    """The erasure's whole point was lost at the next import of HR's folder: the person came back,
    photos and all. Their folder is now skipped, said by its staff id with the erasure's date, and
    counted in the summary and the import's audit record; other folders are imported as before."""
    root = with_photo(tmp_path / "hr", "Jane_Doe", "Bo_Li")
    run(root, "--no-rebuild")
    assert len(photos_added) == 2
    entry = erase("Jane_Doe", actor=superuser)

    (root / "Cy_Ng").mkdir()   # someone new since
    out = run(root, "--no-rebuild")

    said = f"Jane_Doe: erased on {entry.erased_on} at the person's request; not imported (--include-erased re-enrols)"
    assert said in out.splitlines(), out
    assert "importing 2 people, 1 photos" in out   # Bo_Li's photo and Cy_Ng, not Jane's
    assert "people: 1 created, 1 already there, 1 not imported (erased at their request)" in out, out
    assert not Person.objects.with_staff_id("Jane_Doe").exists()
    assert set(Person.objects.values_list("staff_id", flat=True)) == {"Bo_Li", "Cy_Ng"}
    assert [c["person"].staff_id for c in photos_added[2:]] == ["Bo_Li"]   # Jane's photo never read
    imported = AuditEvent.objects.filter(action="import").first()
    assert "1 folders of people erased at their request skipped" in imported.summary, imported.summary
    assert "Jane" not in imported.summary
    assert ErasedStaffId.objects.get() == entry   # still there: the next import skips them again
    assert "not imported (--include-erased re-enrols)" in run(root, "--no-rebuild")


def test_limit_counts_the_people_imported_not_the_erased_folders_skipped(tmp_path, db, photos_added):
    """``--limit N`` ("import only the first N people") counted the erased people's folders it
    skipped: with two of them first, ``--limit 2`` imported nobody. It reads past them; with
    ``--include-erased`` they are imported, and count. The same with a people list and a people CSV."""
    root = with_photo(tmp_path / "hr", "A_1", "B_2", "C_3", "D_4", "E_5")
    for staff_id in ("A_1", "B_2"):
        services.person_create(actor=None, full_name=staff_id, staff_id=staff_id)
        assert services.person_erase(person=Person.objects.with_staff_id(staff_id).get(), actor=None)
    out = run(root, "--no-rebuild", "--limit", 2)
    assert "importing 2 people, 2 photos" in out and out.count("not imported (--include-erased re-enrols)") == 2, out
    assert "people: 2 created, 0 already there, 2 not imported (erased at their request)" in out, out
    assert sorted(Person.objects.values_list("staff_id", flat=True)) == ["C_3", "D_4"]
    # a people list's order: the erased folder between two others is read past, E_5 is the second
    listed = tmp_path / "people.txt"
    listed.write_text("D_4\nB_2\nE_5\nC_3\n")
    out = run(root, "--no-rebuild", "--limit", 2, "--people-list", listed)
    assert "people: 1 created, 1 already there, 1 not imported" in out and "C_3" not in out, out
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name\nA_1,A_1,A\nB_2,B_2,B\nC_3,C_3,C\n")
    out = run(root, "--no-rebuild", "--limit", 1, "--people-csv", sheet)
    assert "people: 0 created, 1 already there, 2 not imported" in out, out
    out = run(root, "--no-rebuild", "--limit", 1, "--include-erased")
    assert "people: 1 created (1 of them erased at their request before, enrolled again)" in out, out
    assert Person.objects.with_staff_id("A_1").exists() and not Person.objects.with_staff_id("B_2").exists()


def test_limit_does_not_count_a_folder_whose_person_is_erased_during_the_import(tmp_path, db, photos_added,
                                                                               monkeypatch):
    """A person erased by an administrator while the import ran (their folder not yet reached) is
    skipped when their folder comes, as one erased before; that folder used up a place of
    ``--limit``, which the summary says it does not take: ``--limit 2`` imported one person. The next
    folder is read in its stead, past any folder of a person erased before."""
    root = with_photo(tmp_path / "hr", "A_1", "B_2", "C_3", "D_4", "E_5")
    (root / "D_4" / "link.jpg").symlink_to(root / "A_1" / "a.jpg")   # said as not followed, as any folder's
    services.person_create(actor=None, full_name="C", staff_id="C_3")
    assert services.person_erase(person=Person.objects.get(staff_id="C_3"), actor=None)
    recorded = services.photo_add

    def photo_add(**kwargs):   # while A_1's photo is added, B_2 is enrolled elsewhere and erased
        if kwargs["person"].staff_id == "A_1":
            b = services.person_create(actor=None, full_name="B", staff_id="B_2")
            assert services.person_erase(person=b, actor=None)
        return recorded(**kwargs)

    monkeypatch.setattr(services, "photo_add", photo_add)
    out = run(root, "--no-rebuild", "--limit", 2)
    assert "importing 2 people, 2 photos" in out, out   # A_1 and B_2, as it stood
    assert out.count("not imported (--include-erased re-enrols)") == 2, out   # B_2 as it came, then C_3
    assert "people: 2 created, 0 already there, 2 not imported (erased at their request)" in out, out
    assert sorted(Person.objects.values_list("staff_id", flat=True)) == ["A_1", "D_4"]
    assert [c["person"].staff_id for c in photos_added] == ["A_1", "D_4"]
    # the folder read in B_2's stead is listed as the others are: its links not followed (they went
    # unsaid, where its files not named as photos were listed)
    assert "1 symbolic links not imported" in out and "D_4/link.jpg" in out, out
    imported = AuditEvent.objects.get(action="import")
    assert "2 people created, 2 photos added" in imported.summary, imported.summary


def test_a_people_csv_row_of_an_erased_person_is_not_imported_again(tmp_path, db, photos_added):
    """With HR's spreadsheet the staff id is the row's, whatever the folder is called; compared as
    staff ids are (letter case, full-width forms)."""
    root = with_photo(tmp_path / "hr", "Jane_Doe", "Bo_Li")
    sheet = tmp_path / "staff.csv"
    sheet.write_text("folder,staff_id,full_name\nJane_Doe,A-100,Jane Doe\nBo_Li,B-200,Bo Li\n")
    run(root, "--people-csv", sheet, "--no-rebuild")
    entry = erase("A-100")
    sheet.write_text("folder,staff_id,full_name\nJane_Doe,ａ-100,Jane Doe\nBo_Li,B-200,Bo Li\n", encoding="utf-8")
    out = run(root, "--people-csv", sheet, "--no-rebuild")
    assert f"ａ-100: erased on {entry.erased_on} at the person's request; not imported" in out, out
    assert list(Person.objects.values_list("staff_id", flat=True)) == ["B-200"]


@pytest.mark.parametrize("erased, folder", [("ZOE-1", "zoe-1"), ("ZOE-1", "ＺＯＥ-1"), ("Zoë_Ångström", "ZOË_ÅNGSTRÖM"),
                                            ("A 100", "a\u00a0 100"), ("A-100", "A\u2011100"), ("A\u2013100", "a-100"),
                                            ("ID-5", "\u0130D-5")],
                         ids=["case", "full-width", "accents-case", "spaces", "dash", "dash-erased", "dotted-i"])
def test_staff_ids_that_fold_to_one_key_match(tmp_path, db, photos_added, erased, folder):
    """The digest is of the staff id's key (``Person.staff_key``): a folder named in another letter
    case or width, or with a dash look-alike, is the erased person's staff id, as it would be their folder."""
    services.person_create(actor=None, full_name="Zoe", staff_id=erased)
    erase(erased)
    root = with_photo(tmp_path / "hr", folder)
    out = run(root, "--no-rebuild")
    assert "at the person's request; not imported" in out, out
    assert not Person.objects.exists()


def test_include_erased_enrols_them_again_and_lifts_their_erased_staff_id(tmp_path, superuser, enroller,
                                                                          photos_added):
    """The person asked to be enrolled again: ``--include-erased`` enrols them, audited as such, and
    lifts the entry (their folder is imported by later runs without it). Lifting is the reverse of
    part of an erasure: an ``--actor`` needs the permission to delete erased staff ids, which the
    Enrollers do not hold."""
    root = with_photo(tmp_path / "hr", "Jane_Doe")
    run(root, "--no-rebuild")
    entry = erase("Jane_Doe")
    with pytest.raises(CommandError, match="lacks enrollment.delete_erasedstaffid"):
        run(root, "--no-rebuild", "--include-erased", "--actor", "enroller")
    assert not Person.objects.exists() and ErasedStaffId.objects.exists()

    out = run(root, "--no-rebuild", "--include-erased", "--actor", "root")
    assert (f"Jane_Doe: erased on {entry.erased_on} at the person's request; enrolled again (--include-erased; "
            "its erased staff id lifted)") in out.splitlines(), out
    assert "people: 1 created (1 of them erased at their request before, enrolled again), 0 already there" in out
    jane = Person.objects.get(staff_id="Jane_Doe")
    assert photos_added[-1]["person"] == jane
    assert not ErasedStaffId.objects.exists()
    created = AuditEvent.objects.for_object("enrollment.person", jane.pk).get(action="create")
    assert created.summary == (f"created person #{jane.pk}; enrolled again after an erasure on {entry.erased_on} "
                               f"(erased staff id #{entry.pk} lifted)")
    lifted = AuditEvent.objects.for_object("enrollment.erasedstaffid", entry.pk).get()
    assert (lifted.action, lifted.actor) == ("delete", "root")
    assert lifted.summary.endswith(f"on enrolling person #{jane.pk} again")
    imported = AuditEvent.objects.filter(action="import").first()
    assert "1 people erased at their request enrolled again (--include-erased)" in imported.summary
    assert "request" not in run(root, "--no-rebuild")   # lifted: nothing more to say


def test_include_erased_enrols_nobody_else(tmp_path, db, photos_added):
    """``--include-erased`` changes only what happens to erased people's folders."""
    root = with_photo(tmp_path / "hr", "Bo_Li")
    out = run(root, "--no-rebuild", "--include-erased")
    assert "request" not in out and Person.objects.get().staff_id == "Bo_Li"
    assert not AuditEvent.objects.filter(action="delete").exists()


def test_the_digest_keeps_nothing_of_the_staff_id_in_clear(db, settings):
    """What erasure keeps: 64 hex digits of an HMAC-SHA256 under a key derived from ``SECRET_KEY``
    (not a plain hash, which anyone could compute for every guessable staff id), the secret key's
    fingerprint and the time. No name, no staff id, no person id."""
    person = services.person_create(actor=None, full_name="Ada Lovelace", staff_id="ADA-1815", department="R&D",
                                     notes="analytical engine")
    erase("ADA-1815")
    row = ErasedStaffId.objects.values().get()
    assert set(row) == {"id", "digest", "key_id", "erased_at"}
    assert len(row["digest"]) == 64 and int(row["digest"], 16) >= 0
    stored = " ".join(str(v) for v in row.values()).casefold()
    for clear in ("ADA-1815", staff_id_key("ADA-1815"), "1815", "Ada", "Lovelace", "R&D", f"#{person.pk}"):
        assert clear.casefold() not in stored, clear
    key = staff_id_key("ADA-1815")
    assert row["digest"] not in {hashlib.sha256(key.encode()).hexdigest(), hashlib.sha256(b"ADA-1815").hexdigest()}
    assert row["digest"] == staff_id_digest("ada-1815")
    settings.SECRET_KEY = "another-site-key"
    assert staff_id_digest("ADA-1815") != row["digest"]   # keyed: another key, another digest
    assert row["key_id"] != secret_fingerprint()


def test_a_rotated_secret_key_is_said_and_a_fallback_keeps_the_suppression(tmp_path, db, settings, photos_added):
    """The digest cannot be made again under a new ``SECRET_KEY`` (the staff id is gone): a rotated
    key no longer matches, which the import says (how many, and what to do); the old key given in
    ``DJANGO_SECRET_KEY_FALLBACKS`` matches again."""
    root = with_photo(tmp_path / "hr", "Jane_Doe")
    run(root, "--no-rebuild")
    old = settings.SECRET_KEY
    erase("Jane_Doe")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-key", [old]
    out = run(root, "--no-rebuild")
    assert "not imported" in out and "secret key" not in out and not Person.objects.exists()
    settings.SECRET_KEY_FALLBACKS = []
    out = run(root, "--no-rebuild")
    assert ("1 erased staff ids were kept under a secret key this site no longer has (DJANGO_SECRET_KEY changed): "
            "they no longer stop the import of those people") in out, out
    assert Person.objects.get().staff_id == "Jane_Doe"


def test_creating_an_erased_staff_id_is_refused_unless_asked(db, superuser):
    """The service every front end creates people through refuses an erased person's staff id
    (any form of it) until told they are to be enrolled again; then the entry is lifted."""
    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    entry = erase("A-100")
    with pytest.raises(services.StaffIdErased, match=f"a-100: erased on {entry.erased_on} at the person's request"):
        services.person_create(actor=superuser, full_name="Jane Doe", staff_id="a-100")
    assert not Person.objects.exists() and ErasedStaffId.objects.exists()
    services.person_create(actor=None, full_name="Someone Else", staff_id="A-101")   # another id: as before
    jane = services.person_create(actor=superuser, full_name="Jane Doe", staff_id="a-100", enrol_erased=True)
    assert not ErasedStaffId.objects.exists()
    assert AuditEvent.objects.for_object("enrollment.erasedstaffid", entry.pk).get().actor == "root"
    # erased again: one entry, of the latest erasure
    services.person_erase(person=jane, actor=None)
    assert ErasedStaffId.objects.count() == 1 and ErasedStaffId.objects.get().pk != entry.pk
    erasure = AuditEvent.objects.for_object("enrollment.person", jane.pk).get(action="erase")
    assert "; staff id kept as a keyed digest" in erasure.summary and "a-100" not in erasure.summary.casefold()


def test_changing_a_persons_staff_id_to_an_erased_one_is_refused_unless_asked(db, superuser):
    """A person created under a new id and then given the erased person's (the admin's change form,
    a PUT or PATCH) undid the erasure without a word, where creating them with it was refused. The
    change is refused as the creation is, until told; then the entry is lifted, audited."""
    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    entry = erase("A-100")
    bo = services.person_create(actor=None, full_name="Bo Li", staff_id="B-200")
    with pytest.raises(services.StaffIdErased, match=f"a-100: erased on {entry.erased_on} at the person's request"):
        services.person_update(person=bo, actor=superuser, staff_id="a-100", department="Ops")
    bo.refresh_from_db()
    assert (bo.staff_id, bo.department) == ("B-200", "") and ErasedStaffId.objects.get() == entry
    services.person_update(person=bo, actor=None, full_name="Bo Lee")   # other changes: as before

    services.person_update(person=bo, actor=superuser, staff_id="ａ-100", enrol_erased=True)
    bo.refresh_from_db()
    assert bo.staff_id == "ａ-100" and not ErasedStaffId.objects.exists()
    changed = AuditEvent.objects.for_object("enrollment.person", bo.pk).filter(action="update").first()
    assert changed.summary == (f"updated person #{bo.pk}: staff_id; staff id of a person erased on "
                               f"{entry.erased_on} (erased staff id #{entry.pk} lifted)"), changed.summary
    lifted = AuditEvent.objects.for_object("enrollment.erasedstaffid", entry.pk).get()
    assert lifted.actor == "root" and lifted.summary.endswith(f"on giving person #{bo.pk} that staff id")


def test_a_person_keeps_their_own_staff_id_written_otherwise_whatever_an_entry_says(db):
    """A staff id someone holds is theirs: writing it in another letter case or width is no change
    of identity (an entry of it, from an erasure of an earlier holder, is neither asked about nor lifted)."""
    bo = services.person_create(actor=None, full_name="Bo Li", staff_id="B-200")
    kept = ErasedStaffId.objects.create(digest=staff_id_digest("b-200"), key_id=secret_fingerprint(),
                                        erased_at=timezone.now())
    services.person_update(person=bo, actor=None, staff_id="b-200")
    bo.refresh_from_db()
    assert bo.staff_id == "b-200" and ErasedStaffId.objects.get() == kept


# ------------------------------------------------------------------------------------------------
# the admin: adding a person asks; the erased staff ids are listed (date only) and lifted by deleting


def test_the_admin_add_form_asks_before_enrolling_an_erased_staff_id_again(client, superuser, enroller):
    """Adding a person in the admin is one person at a time, on purpose: the form does not skip
    them as an import does, it refuses the staff id with the erasure's date until staff who may lift
    erased staff ids tick "Enrol again although erased"; an Enroller is told whom to ask."""
    from django.urls import reverse

    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    entry = erase("A-100")
    add = reverse("admin:enrollment_person_add")
    jane = {"full_name": "Jane Doe", "staff_id": "a-100", "active": "on"}

    client.force_login(enroller)
    form = client.post(add, jane).context["adminform"].form
    said = " ".join(form.errors["staff_id"])
    assert f"a-100 was erased on {entry.erased_on} at the person's request" in said and "a superuser" in said
    assert "enrol_erased" not in form.fields
    client.post(add, {**jane, "enrol_erased": "on"})   # not theirs to tick
    assert not Person.objects.exists() and ErasedStaffId.objects.exists()
    assert client.get(reverse("admin:enrollment_erasedstaffid_changelist")).status_code == 403

    client.force_login(superuser)
    assert "Enrol again although erased" not in client.get(add).content.decode()   # not on every add form
    refused = client.post(add, jane)
    assert "tick “Enrol again although erased”" in " ".join(refused.context["adminform"].form.errors["staff_id"])
    assert "Enrol again although erased" in refused.content.decode()   # the box, now that it applies
    assert not Person.objects.exists()
    made = client.post(add, {**jane, "enrol_erased": "on"}, follow=True)
    person = Person.objects.get()
    assert person.staff_id == "a-100" and not ErasedStaffId.objects.exists()
    assert "enrolled again, its erased staff id lifted" in made.content.decode()
    assert AuditEvent.objects.for_object("enrollment.erasedstaffid", entry.pk).get().actor == "root"
    other = client.post(add, {"full_name": "Bo Li", "staff_id": "B-200", "active": "on"})
    assert other.status_code == 302   # anyone else: as before


def test_the_admin_change_form_asks_before_giving_a_person_an_erased_staff_id(client, superuser, enroller):
    """The change form asks as the add form does: the staff id refused with the erasure's date, the
    box "Enrol again although erased" for staff who may lift erased staff ids once it applies, an
    Enroller told whom to ask; the person's other fields and own staff id are saved as before."""
    from django.urls import reverse

    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    entry = erase("A-100")
    bo = services.person_create(actor=None, full_name="Bo Li", staff_id="B-200")
    change = reverse("admin:enrollment_person_change", args=[bo.pk])

    def form(**fields) -> dict:
        bo.refresh_from_db()
        return {"full_name": bo.full_name, "staff_id": bo.staff_id, "department": "", "notes": "", "active": "on",
                "seen": bo.updated_at.isoformat(), **fields}

    client.force_login(enroller)
    refused = client.post(change, form(staff_id="a-100")).context["adminform"].form
    said = " ".join(refused.errors["staff_id"])
    assert f"a-100 was erased on {entry.erased_on} at the person's request" in said and "a superuser" in said
    assert "enrol_erased" not in refused.fields
    client.post(change, form(staff_id="a-100", enrol_erased="on"))   # not theirs to tick
    bo.refresh_from_db()
    assert bo.staff_id == "B-200" and ErasedStaffId.objects.exists()
    assert client.post(change, form(full_name="Bo Lee", staff_id="b-200")).status_code == 302   # their own id
    bo.refresh_from_db()
    assert (bo.full_name, bo.staff_id) == ("Bo Lee", "b-200")

    client.force_login(superuser)
    assert "Enrol again although erased" not in client.get(change).content.decode()
    refused = client.post(change, form(staff_id="a-100"))
    assert "tick “Enrol again although erased”" in " ".join(refused.context["adminform"].form.errors["staff_id"])
    assert "Enrol again although erased" in refused.content.decode()   # the box, now that it applies
    bo.refresh_from_db()
    assert bo.staff_id == "b-200" and ErasedStaffId.objects.exists()
    saved = client.post(change, form(staff_id="a-100", enrol_erased="on"), follow=True)
    bo.refresh_from_db()
    assert bo.staff_id == "a-100" and not ErasedStaffId.objects.exists()
    # as stored: a message begun with it showed "A-100" (the admin capitalises a message's first letter)
    assert (f"Staff id “a-100” had been erased on {entry.erased_on} at the person&#x27;s request: given to this "
            "person, its erased staff id lifted.") in saved.content.decode()
    assert AuditEvent.objects.for_object("enrollment.erasedstaffid", entry.pk).get().actor == "root"


@pytest.mark.parametrize("page", ["add", "change"])
def test_an_erasure_between_the_admin_forms_check_and_its_save_is_answered_as_the_form_would(
        client, superuser, monkeypatch, page):
    """The form checks the staff id typed against the erased ones in its clean; an erasure of the
    person holding it committed after that check and before the save made the service refuse the
    save (StaffIdErased), which the admin did not catch: a 500. The race is provoked by erasing
    Jane, who holds the staff id, from inside the form's clean, after the form's own check: the page
    is now the form again, the staff id refused as it would have been had the erasure come first, and
    nothing is saved. (Here the erasure runs in the request's own transaction and is undone with its
    rollback; in production another request commits it.)"""
    from django.urls import reverse

    from enrollment.admin import PersonForm

    jane = services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    bo = services.person_create(actor=None, full_name="Bo Li", staff_id="B-200")
    if page == "add":
        url, data = reverse("admin:enrollment_person_add"), {"full_name": "Ann Lee", "staff_id": "a-100",
                                                             "active": "on"}
    else:
        url = reverse("admin:enrollment_person_change", args=[bo.pk])
        data = {"full_name": "Bo Li", "staff_id": "a-100", "department": "", "notes": "", "active": "on",
                "seen": bo.updated_at.isoformat()}
    checked, erasures = PersonForm.clean, []

    def clean_then_erase(form):
        data = checked(form)   # the form's own check: Jane holds A-100, so it is nobody's erased id yet
        if not erasures:
            assert services.person_erase(person=Person.objects.get(pk=jane.pk), actor=None)
            erasures.append(ErasedStaffId.objects.get())
        return data

    monkeypatch.setattr(PersonForm, "clean", clean_then_erase)
    client.force_login(superuser)
    events = AuditEvent.objects.count()
    answer = client.post(url, data)   # the admin's 500 before: StaffIdErased out of save_model

    assert answer.status_code == 200 and len(erasures) == 1
    said = " ".join(answer.context["adminform"].form.errors["staff_id"])
    assert f"a-100 was erased on {erasures[0].erased_on} at the person's request" in said
    assert "tick “Enrol again although erased”" in said and "Enrol again although erased" in answer.content.decode()
    bo.refresh_from_db()
    assert bo.staff_id == "B-200" and not Person.objects.filter(full_name="Ann Lee").exists()
    assert AuditEvent.objects.count() == events   # nothing saved, nothing recorded


def test_the_admin_lists_erased_staff_ids_by_date_and_lifts_one_when_deleted(su_client, superuser, settings):
    """Superusers see when each erasure was (never the digest), find one by typing its staff id, and
    delete it to lift it, audited; the next import then enrols that staff id."""
    from django.urls import reverse

    for staff_id in ("A-100", "B-200"):
        services.person_create(actor=None, full_name="Someone", staff_id=staff_id)
        services.person_erase(person=Person.objects.get(staff_id=staff_id), actor=None)
    jane = ErasedStaffId.objects.of("A-100").get()
    changelist = reverse("admin:enrollment_erasedstaffid_changelist")
    page = su_client.get(changelist).content.decode()
    assert jane.erased_on in page and "current" in page
    assert not any(e.digest in page or e.digest[:12] in page for e in ErasedStaffId.objects.all())
    found = su_client.get(changelist, {"q": "ａ-100"}).context["cl"].result_list
    assert list(found) == [jane]
    assert not su_client.get(changelist, {"q": jane.digest}).context["cl"].result_list   # not by the digest
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated", [old]
    assert "a previous key (DJANGO_SECRET_KEY_FALLBACKS): matched" in su_client.get(changelist).content.decode()
    settings.SECRET_KEY_FALLBACKS = []
    su_client.force_login(superuser)   # the session was signed with the old key
    assert "a key this site no longer has: matches no staff id" in su_client.get(changelist).content.decode()
    settings.SECRET_KEY = old
    su_client.force_login(superuser)

    delete = reverse("admin:enrollment_erasedstaffid_delete", args=[jane.pk])
    assert su_client.post(delete, {"post": "yes"}).status_code == 302
    assert list(ErasedStaffId.objects.values_list("pk", flat=True)) != [jane.pk]
    assert not ErasedStaffId.objects.of("A-100").exists() and ErasedStaffId.objects.of("B-200").exists()
    lifted = AuditEvent.objects.for_object("enrollment.erasedstaffid", jane.pk).get()
    assert (lifted.action, lifted.actor) == ("delete", "root") and lifted.summary.endswith("; in the admin")
    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")   # no longer refused


def test_the_subject_access_export_and_the_privacy_page_say_what_erasure_keeps(db, superuser, client):
    """A person deciding whether to ask for erasure reads what it leaves: the export's README and the
    public privacy page say that the staff id is kept coded, why, and until when."""
    import io
    import zipfile

    person = services.person_create(actor=None, full_name="Ann Bee", staff_id="A-1")
    with zipfile.ZipFile(io.BytesIO(services.person_export(person=person, actor=superuser))) as archive:
        readme = " ".join(archive.read("README.txt").decode().split())
    assert "keeps their staff id as a keyed digest alone" in readme
    assert "does not enrol them again, and only until they ask to be enrolled again" in readme
    page = " ".join(client.get("/privacy/").content.decode().split())
    assert "keeps your staff id in a coded form" in page and "until you ask to be enrolled again" in page


def test_an_erasure_kept_before_dashes_were_read_as_hyphens_still_matches_its_staff_id(tmp_path, db, settings,
                                                                                         photos_added):
    """Entries kept before enrollment 0020 hold the digest of the key as it was then ("A\u2011100"'s
    of "a\u2010100", not "a-100"), which cannot be made again: every check also tries that key,
    under the site's secret key and its fallbacks, so the folder of an erased "A\u2011100" is still
    skipped and the admin and the API still ask. Written with a plain "-", the id was another key
    then: its entry cannot tell (docs/security.md). Erased again, the entry is of the key now."""
    from django.utils.crypto import salted_hmac

    from enrollment.models import ERASED_STAFF_ID_SALT
    from enrollment.text import staff_id_key_0017

    old_secret = settings.SECRET_KEY

    def kept_before(staff_id: str) -> ErasedStaffId:
        digest = salted_hmac(ERASED_STAFF_ID_SALT, staff_id_key_0017(staff_id), secret=old_secret,
                             algorithm="sha256").hexdigest()
        return ErasedStaffId.objects.create(digest=digest, key_id=secret_fingerprint(old_secret),
                                            erased_at=timezone.now())

    entry, turkish = kept_before("A\u2011100"), kept_before("\u0130D-5")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-key", [old_secret]
    for typed in ("A\u2011100", "a\u2010100"):   # NFKC made the one the other then: one key
        with pytest.raises(services.StaffIdErased):
            services.person_create(actor=None, full_name="Ann Bee", staff_id=typed)
    assert list(ErasedStaffId.objects.of("A\u2011100")) == [entry]
    assert ErasedStaffId.objects.matching(["\u0130D-5", "A-100"]) == {"\u0130D-5": turkish}

    root = with_photo(tmp_path / "hr", "A\u2011100", "\u0130D-5")
    out = run(root, "--no-rebuild")
    assert out.count("at the person's request; not imported") == 2, out
    assert not Person.objects.exists() and not photos_added

    # enrolled again on purpose: the entry found by its former key is lifted; erased again, the
    # entry is of the key now, and matches the id written with a plain "-" too
    ann = services.person_create(actor=None, full_name="Ann Bee", staff_id="A\u2011100", enrol_erased=True)
    assert not ErasedStaffId.objects.filter(pk=entry.pk).exists()
    assert services.person_erase(person=ann, actor=None)
    assert ErasedStaffId.objects.matching(["A-100"])["A-100"].digest == staff_id_digest("A-100")


def test_lifting_an_erased_staff_id_deletes_the_entry_given_alone(db, settings, superuser):
    """``erased_staff_id_lift`` said it deleted the staff id's entries under every secret key; it
    deletes the one given (an entry holds a digest, not the id, so its others cannot be found from
    it; the admin lifts the row it lists), and says so now. An erasure leaves one entry of an id:
    the earlier ones, under a previous key too, are replaced."""
    services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100")
    old_secret = settings.SECRET_KEY
    before = erase("A-100")
    assert before.key_id == secret_fingerprint(old_secret)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-key", [old_secret]
    # two entries of one id (a row made by hand here): the one given goes, the other stays
    now = ErasedStaffId.objects.create(digest=staff_id_digest("A-100"), key_id=secret_fingerprint(),
                                       erased_at=timezone.now())
    assert services.erased_staff_id_lift(entry=now, actor=superuser, note="test") == now.pk
    assert list(ErasedStaffId.objects.of("a-100")) == [before]
    assert ErasedStaffId.objects.matching(["A-100"]) == {"A-100": before}
    assert AuditEvent.objects.filter(object_type="enrollment.erasedstaffid").count() == 1
    assert services.erased_staff_id_lift(entry=now, actor=superuser) == now.pk   # lifted already: no record
    assert AuditEvent.objects.filter(object_type="enrollment.erasedstaffid").count() == 1
    # erased again under the key now: the entry under the previous key is replaced, one entry left
    jane = services.person_create(actor=None, full_name="Jane Doe", staff_id="A-100", enrol_erased=True)
    assert not ErasedStaffId.objects.exists()
    ErasedStaffId.objects.create(digest=staff_id_digest("A-100", old_secret), key_id=secret_fingerprint(old_secret),
                                 erased_at=timezone.now())
    assert services.person_erase(person=jane, actor=None)
    [left] = ErasedStaffId.objects.all()
    assert left.key_id == secret_fingerprint() and left.digest == staff_id_digest("A-100")
