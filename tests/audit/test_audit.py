"""The audit log: append-only rows, a read-only admin (filters, CSV export), role changes logged."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_record

CHANGELIST = reverse("admin:audit_auditevent_changelist")


@pytest.fixture
def events(db):
    admin = User.objects.create_superuser("boss", "b@example.com", "pw")
    audit_record(actor=admin, action="create", object_type="enrollment.person", object_id=1,
                 summary="created person #1")
    audit_record(actor=None, action="rebuild", object_type="enrollment.trainingrun", object_id=7,
                 summary="=HYPERLINK(\"x\")")
    return admin


def test_rows_cannot_be_changed_or_deleted(events):
    event = AuditEvent.objects.first()
    event.summary = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(summary="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 2


def test_actor_is_copied_not_referenced(events):
    events.delete()  # deleting the user must not touch the log
    event = AuditEvent.objects.get(action="create")
    assert event.actor == "boss" and event.actor_id is not None
    assert AuditEvent.objects.get(action="rebuild").actor == "system"


def test_admin_lists_and_filters_but_never_edits(client, events):
    client.force_login(events)
    assert client.get(CHANGELIST).status_code == 200
    filtered = client.get(CHANGELIST, {"action__exact": "rebuild"}).content.decode()
    assert "enrollment.trainingrun" in filtered and "created person #1" not in filtered
    event = AuditEvent.objects.get(action="create")
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    page = client.get(change)
    assert page.status_code == 200 and b'type="submit"' not in page.content.split(b'id="content"')[1]
    assert client.post(change, {"summary": "rewritten"}).status_code == 403
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).summary == "created person #1"


def test_an_event_is_named_in_local_time(client, events, settings):
    """Its name (the admin's page title and breadcrumbs) shows ``TIME_ZONE``'s time, as the change
    list does, not UTC's."""
    settings.TIME_ZONE = "Pacific/Kiritimati"      # UTC+14 all year: another day and hour than UTC
    event = AuditEvent(at=datetime(2026, 3, 2, 23, 30, 5, tzinfo=UTC), actor="boss", action="create",
                       object_type="enrollment.person", object_id="1")
    assert str(event) == "2026-03-03 13:30:05 boss create enrollment.person#1"
    assert str(AuditEvent(action="create", object_type="x", object_id="1")).startswith("(unsaved) system ")
    stored = AuditEvent.objects.get(action="create")
    local = f"{timezone.localtime(stored.at):%Y-%m-%d %H:%M:%S}"
    assert local != f"{stored.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" and str(stored).startswith(local)
    client.force_login(events)
    page = client.get(reverse("admin:audit_auditevent_change", args=[stored.pk]))
    assert local in page.content.decode()


def test_csv_export_respects_filters_and_defuses_formulas(client, events):
    client.force_login(events)
    response = client.get(reverse("admin:audit_auditevent_export"), {"action__exact": "rebuild"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["at", "actor", "actor_id", "action", "object_type", "object_id", "summary"]
    assert len(rows) == 2 and rows[1][3] == "rebuild" and rows[1][6].startswith("'=")


def test_the_audit_export_writes_the_sites_time_as_the_list_shows_it(client, events, settings):
    """Its rows and name were UTC's while the list (and the check-in exports) show TIME_ZONE's:
    exported just after local midnight, "today's" rows were dated the day before."""
    settings.TIME_ZONE = "Pacific/Kiritimati"   # UTC+14
    client.force_login(events)
    response = client.get(reverse("admin:audit_auditevent_export"))
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][0].endswith("+14:00"), rows[1]
    local = timezone.localtime()
    assert f"audit-{local:%Y%m%d}" in response["Content-Disposition"]


def test_the_log_and_the_users_are_found_by_a_username_typed_in_either_unicode_form(client, events):
    """Django stores usernames NFKC (composed): "zoë" typed decomposed (a Mac's paste) in the audit
    log's or the users list's search found none of that user's rows."""
    zoe = User.objects.create_user("zo\u00eb", password="pw", is_staff=True)
    audit_record(actor=zoe, action="update", object_type="enrollment.person", object_id=1, summary="updated person #1")
    client.force_login(events)
    for query in ("zo\u00eb", "zoe\u0308"):
        shown = client.get(CHANGELIST, {"q": query}).context["cl"].result_list
        assert {e.actor for e in shown} == {"zo\u00eb"}, ascii(query)
        users = client.get(reverse("admin:auth_user_changelist"), {"q": query}).context["cl"].result_list
        assert list(users) == [zoe], ascii(query)


def test_enrollers_cannot_see_the_log(client, db):
    from enrollment.roles import enrollers_group_ensure

    user = User.objects.create_user("e", password="pw", is_staff=True)
    user.groups.add(enrollers_group_ensure())
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 403
    assert "audit" not in client.get(reverse("admin:index")).content.decode().lower().split("<body")[1]


def test_role_changes_are_logged(client, events):
    from enrollment.roles import enrollers_group_ensure

    group = enrollers_group_ensure()
    user = User.objects.create_user("newbie", password="pw")
    client.force_login(events)
    url = reverse("admin:auth_user_change", args=[user.pk])
    data = {"username": "newbie", "is_active": "on", "is_staff": "on", "groups": [group.pk],
            "date_joined_0": "2025-01-01", "date_joined_1": "00:00:00", "initial-date_joined_0": "2025-01-01",
            "initial-date_joined_1": "00:00:00"}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="role_change", object_id=str(user.pk))
    assert "staff: False -> True" in event.summary and "Enrollers" in event.summary and event.actor == "boss"
    group_url = reverse("admin:auth_group_change", args=[group.pk])
    perms = list(group.permissions.values_list("pk", flat=True))[:-1]
    assert client.post(group_url, {"name": group.name, "permissions": perms}).status_code == 302
    assert AuditEvent.objects.filter(action="role_change", object_type="auth.group").exists()


def test_a_users_last_login_and_date_joined_are_shown_not_typed(client, events, settings):
    """Django's user form let them be typed over: 01/02/2026 was read month first (2 January), and
    9999-12-31 23:59 in a zone behind UTC answered 500, or on PostgreSQL stored a date past year 9999
    that the user list then answered 500 for. They are records: shown read-only. Found by a helper's
    review of time zones."""
    settings.TIME_ZONE = "America/New_York"
    user = User.objects.create_user("newbie", password="pw")
    joined = user.date_joined
    client.force_login(events)
    url = reverse("admin:auth_user_change", args=[user.pk])
    assert 'name="date_joined_0"' not in client.get(url).content.decode()
    data = {"username": "newbie", "is_active": "on", "date_joined_0": "9999-12-31", "date_joined_1": "23:59",
            "last_login_0": "01/02/2026", "last_login_1": "10:00"}
    assert client.post(url, data).status_code == 302
    user.refresh_from_db()
    assert user.date_joined == joined and user.last_login is None
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_other_user_changes_and_passwords_set_by_an_admin_are_logged(client, events):
    """Renaming a user (which fields, never the values), an administrator setting another user's
    password, and renaming a group are audited, not only role changes."""
    from django.contrib.auth.models import Group

    user = User.objects.create_user("newbie", password="pw")
    client.force_login(events)
    joined = {"date_joined_0": f"{user.date_joined:%Y-%m-%d}", "date_joined_1": f"{user.date_joined:%H:%M:%S}"}
    data = {"username": "renamed", "email": "n@example.com", "is_active": "on", **joined,
            **{f"initial-{k}": v for k, v in joined.items()}}
    assert client.post(reverse("admin:auth_user_change", args=[user.pk]), data).status_code == 302
    event = AuditEvent.objects.get(action="update", object_type="auth.user", object_id=str(user.pk))
    assert "username" in event.summary and "email" in event.summary and "renamed" not in event.summary
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = client.post(url, {"password1": "A-new-passw0rd!", "password2": "A-new-passw0rd!",
                                 "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    passwords = AuditEvent.objects.filter(action="update", object_id=str(user.pk), summary__contains="password")
    assert [e.summary for e in passwords] == [f"set the password of user #{user.pk}"]
    # "Disabled" chosen but "Change password" pressed: Django refuses ("Conflicting form data
    # submitted") with a redirect too, and saves nothing: nothing is recorded
    refused = client.post(url, {"password1": "", "password2": "", "usable_password": "false"})
    assert refused.status_code == 302 and passwords.count() == 1
    disabled = client.post(url, {"usable_password": "false", "unset-password": "1"})
    assert disabled.status_code == 302 and not User.objects.get(pk=user.pk).has_usable_password()
    assert passwords.order_by("-id").first().summary == f"disabled password login for user #{user.pk}"
    group = Group.objects.create(name="Door staff")
    assert client.post(reverse("admin:auth_group_change", args=[group.pk]),
                       {"name": "Reception", "permissions": []}).status_code == 302
    assert AuditEvent.objects.get(object_type="auth.group", object_id=str(group.pk)).summary.endswith("renamed")


def test_a_user_changing_their_own_password_is_logged(client, db):
    """The admin's "change password" link: a stolen session that changed its user's password left
    no record (only passwords set by an administrator or a command were audited)."""
    user = User.objects.create_user("door", password="Old-passw0rd!", is_staff=True)
    client.force_login(user)
    response = client.post(reverse("admin:password_change"), {
        "old_password": "Old-passw0rd!", "new_password1": "A-new-passw0rd!", "new_password2": "A-new-passw0rd!"})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="update", object_type="auth.user", object_id=str(user.pk))
    assert "own password" in event.summary and event.actor == "door" and "passw0rd" not in event.summary
    # a refused form changes nothing and records nothing
    client.post(reverse("admin:password_change"), {
        "old_password": "wrong", "new_password1": "B-new-passw0rd!", "new_password2": "B-new-passw0rd!"})
    assert AuditEvent.objects.filter(action="update", object_type="auth.user").count() == 1


@pytest.mark.django_db(transaction=True)
def test_deleting_selected_users_is_undone_when_its_record_cannot_be_written(client, monkeypatch):
    """Django's "delete selected" runs outside a transaction: the users went and their records,
    written after, could fail to, leaving a deletion nobody can see in the log."""
    from audit import admin as audit_admin

    boss = User.objects.create_superuser("boss", "b@example.com", "pw")
    doomed = [User.objects.create_user(f"u{i}", password="pw") for i in range(2)]
    client.force_login(boss)

    def broken(**kwargs):
        raise RuntimeError("the audit table is full")

    monkeypatch.setattr(audit_admin, "audit_record", broken)
    client.raise_request_exception = False
    response = client.post(reverse("admin:auth_user_changelist"), {
        "action": "delete_selected", "_selected_action": [u.pk for u in doomed], "post": "yes"})
    assert response.status_code == 500
    assert User.objects.filter(pk__in=[u.pk for u in doomed]).count() == 2
    from django.contrib.admin.models import DELETION, LogEntry

    assert not LogEntry.objects.filter(action_flag=DELETION).exists()   # nor Django's history of it
    monkeypatch.undo()
    client.post(reverse("admin:auth_user_changelist"), {
        "action": "delete_selected", "_selected_action": [u.pk for u in doomed], "post": "yes"})
    assert not User.objects.filter(pk__in=[u.pk for u in doomed]).exists()
    assert sorted(AuditEvent.objects.filter(action="delete", object_type="auth.user")
                  .values_list("object_id", flat=True)) == sorted(str(u.pk) for u in doomed)


def test_an_existing_rows_id_cannot_be_reused_to_rewrite_it(events):
    """A new instance given an existing row's id is an INSERT (refused by the key), never an UPDATE;
    Django's internal manager and upserts are append-only too."""
    from django.db import IntegrityError, transaction

    event = AuditEvent.objects.get(action="create")
    forged = AuditEvent(pk=event.pk, at=event.at, actor="x", action="create", object_type="enrollment.person",
                        object_id="1", summary="forged")
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    assert AuditEvent.objects.get(pk=event.pk).summary == "created person #1"
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([forged], update_conflicts=True, unique_fields=["id"],
                                       update_fields=["summary"])
    assert AuditEvent.objects.count() == 2


def test_createsuperuser_and_changepassword_are_audited(db, monkeypatch):
    """The management commands that make or change logins leave the same trail as the admin's pages."""
    from django.core.management import call_command, get_commands

    assert get_commands()["createsuperuser"] == get_commands()["changepassword"] == "audit"
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Rather-long-pass-42")
    call_command("createsuperuser", username="root", email="root@example.com", interactive=False, verbosity=0)
    root = User.objects.get(username="root")
    events = list(AuditEvent.objects.filter(object_type="auth.user", object_id=str(root.pk)).order_by("id"))
    assert [(e.action, e.actor) for e in events] == [("create", "system"), ("role_change", "system")]
    assert "createsuperuser" in events[0].summary
    assert "staff: None -> True" in events[1].summary and "superuser: None -> True" in events[1].summary

    monkeypatch.setattr("getpass.getpass", lambda prompt="": "Another-long-pass-43")
    call_command("changepassword", "root", stdout=io.StringIO())
    root.refresh_from_db()
    assert root.check_password("Another-long-pass-43")
    last = AuditEvent.objects.filter(object_id=str(root.pk)).latest("id")
    assert last.action == "update"
    assert last.summary == f"set the password of user #{root.pk} with manage.py changepassword"
    assert "Another" not in "".join(AuditEvent.objects.values_list("summary", flat=True))


def test_createsuperuser_and_changepassword_actor_names_the_user(db, monkeypatch):
    """Their records said "system"; ``--actor`` names a staff user allowed to make the change in the
    admin: add users and give them roles (``add_user``, ``change_user``), set a password
    (``change_user``). A user allowed to change users but not add them may set a password only."""
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.core.management.base import CommandError

    admin = User.objects.create_user("useradmin", password="pw", is_staff=True)
    admin.user_permissions.set(Permission.objects.filter(codename="change_user"))
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Rather-long-pass-42")
    with pytest.raises(CommandError, match="--actor 'useradmin' may not make the user created: the user lacks "
                                           "auth.add_user"):
        call_command("createsuperuser", "--actor", "useradmin", username="root", email="r@example.com",
                     interactive=False, verbosity=0)
    assert not User.objects.filter(username="root").exists() and not AuditEvent.objects.exists()
    admin.user_permissions.add(Permission.objects.get(codename="add_user"))
    call_command("createsuperuser", "--actor", "useradmin", username="root", email="r@example.com",
                 interactive=False, verbosity=0)
    root = User.objects.get(username="root")
    assert [(e.action, e.actor, e.actor_id) for e in AuditEvent.objects.for_object("auth.user", root.pk)
            .order_by("id")] == [("create", "useradmin", admin.pk), ("role_change", "useradmin", admin.pk)]

    monkeypatch.setattr("getpass.getpass", lambda prompt="": "Another-long-pass-43")
    admin.user_permissions.set(Permission.objects.filter(codename="change_user"))
    call_command("changepassword", "root", "--actor", "useradmin", stdout=io.StringIO())
    last = AuditEvent.objects.for_object("auth.user", root.pk).latest("id")
    assert (last.summary, last.actor) == (f"set the password of user #{root.pk} with manage.py changepassword",
                                         "useradmin")
    assert User.objects.get(pk=root.pk).check_password("Another-long-pass-43")


def test_createsuperuser_and_changepassword_actor_refused_changes_nothing(refused_actor, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    root = User.objects.create_user("root", password="Old-long-pass-41", is_staff=True)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Rather-long-pass-42")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "Another-long-pass-43")
    with pytest.raises(CommandError, match=f"--actor '{refused_actor}' "):
        call_command("createsuperuser", "--actor", refused_actor, username="boss", email="b@example.com",
                     interactive=False, verbosity=0)
    with pytest.raises(CommandError, match=f"--actor '{refused_actor}' "):
        call_command("changepassword", "root", "--actor", refused_actor, stdout=io.StringIO())
    assert not User.objects.filter(username="boss").exists() and not AuditEvent.objects.exists()
    assert User.objects.get(pk=root.pk).check_password("Old-long-pass-41")


@pytest.mark.django_db(transaction=True)
def test_a_stale_user_form_that_undoes_a_role_change_is_logged_as_one(client):
    """Administrator A takes superuser away from U; B's form, read before, saves a name change and
    with it superuser back. B's "roles before" were read before A committed: the log said "changed
    user: first_name" while U was superuser again. Read locked, in the form's transaction, they are
    A's, and B's save is a role change."""
    import threading
    import time

    from django.db import connection, connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    boss = User.objects.create_superuser("boss", "b@example.com", "pw")
    target = User.objects.create_superuser("u", "u@example.com", "pw")
    joined = {"date_joined_0": f"{target.date_joined:%Y-%m-%d}", "date_joined_1": f"{target.date_joined:%H:%M:%S}"}
    stale_form = {"username": "u", "first_name": "Una", "email": "u@example.com", "is_active": "on",
                  "is_staff": "on", "is_superuser": "on", **joined, **{f"initial-{k}": v for k, v in joined.items()}}
    revoking, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def revoke():   # administrator A, holding the row until B's save has begun
        try:
            with transaction.atomic():
                User.objects.select_for_update().filter(pk=target.pk).update(is_superuser=False)
                audit_record(actor=boss, action="role_change", obj=target, summary="superuser: True -> False")
                revoking.set()
                time.sleep(1.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()
            connections.close_all()

    a = threading.Thread(target=revoke)
    a.start()
    assert revoking.wait(10)
    client.force_login(boss)
    response = client.post(reverse("admin:auth_user_change", args=[target.pk]), stale_form)
    a.join(10)
    assert not errors and response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.is_superuser   # B's form put it back: the log must say so
    summaries = list(AuditEvent.objects.filter(action="role_change", object_id=str(target.pk))
                     .values_list("summary", flat=True))
    assert any("superuser: False -> True" in s for s in summaries), summaries


def test_a_user_or_group_deleted_twice_is_recorded_once(rf, events):
    """Two administrators deleting the same user (or group) from pages opened before: the second
    delete found nothing to delete and still recorded "deleted user #N"."""
    from django.contrib import admin as django_admin
    from django.contrib.auth.models import Group

    from audit.admin import AuditedGroupAdmin, AuditedUserAdmin

    request = rf.post("/")
    request.user = events
    for model, model_admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
        row = User.objects.create_user("leaver") if model is User else Group.objects.create(name="Leavers")
        first, second = model.objects.get(pk=row.pk), model.objects.get(pk=row.pk)   # two stale pages
        for copy in (first, second):
            model_admin(model, django_admin.site).delete_model(request, copy)
        kind = model._meta.label_lower
        assert AuditEvent.objects.filter(object_type=kind, object_id=str(row.pk),
                                         summary__startswith="deleted").count() == 1, kind


@pytest.mark.parametrize("how", ["delete page", "delete selected"])
def test_members_of_a_deleted_group_have_their_role_change_recorded(client, events, how):
    """Deleting a group takes it from its members: recorded on the group alone ("deleted group
    #N"), a member's own record showed no change of their groups."""
    from django.contrib.auth.models import Group

    group, other = Group.objects.create(name="Door staff"), Group.objects.create(name="Reception")
    member, both, outsider = (User.objects.create_user(name) for name in ("member", "both", "outsider"))
    member.groups.add(group)
    both.groups.add(group, other)
    outsider.groups.add(other)
    client.force_login(events)
    if how == "delete page":
        response = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    else:
        response = client.post(reverse("admin:auth_group_changelist"),
                               {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"})
    assert response.status_code == 302 and not Group.objects.filter(pk=group.pk).exists()
    changes = {e.object_id: e for e in AuditEvent.objects.filter(action="role_change", object_type="auth.user")}
    assert set(changes) == {str(member.pk), str(both.pk)}
    assert changes[str(member.pk)].summary == f"groups: ['Door staff'] -> [] (group #{group.pk} deleted)"
    assert changes[str(both.pk)].summary == (f"groups: ['Door staff', 'Reception'] -> ['Reception'] "
                                             f"(group #{group.pk} deleted)")
    assert {e.actor for e in changes.values()} == {"boss"}
    assert AuditEvent.objects.filter(object_type="auth.group", summary=f"deleted group #{group.pk}").count() == 1
