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
