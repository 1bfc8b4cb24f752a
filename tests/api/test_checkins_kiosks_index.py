"""Check-ins (filters, pagination, CSV), kiosks (pairing link shown once, change, revoke) and the index
(current version, starting a rebuild, its progress)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from enrollment import services as enrollment
from enrollment.models import TrainingRun
from recognition import services as recognition
from recognition.models import Kiosk

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkins(person):
    """Eileen on three days (masked on the last), another person at another kiosk."""
    front, _ = recognition.kiosk_create(actor=None, name="Front door")
    side, _ = recognition.kiosk_create(actor=None, name="Side door", site="annex")
    other = enrollment.person_create(actor=None, full_name="=HYPERLINK(evil)", staff_id="T-1")
    base = timezone.make_aware(datetime(2026, 11, 2, 9, 0))
    rows = []
    for day in range(3):
        rows.append(recognition.checkin_record(person_id=person.pk, kiosk=front, score=0.8, threshold=0.5,
                                               masked=day == 2, frames=3, index_version=1,
                                               at=base + timedelta(days=day)).checkin)
    rows.append(recognition.checkin_record(person_id=other.pk, kiosk=side, score=0.6, threshold=0.5, masked=False,
                                           frames=3, index_version=1, at=base).checkin)
    return {"person": person, "other": other, "front": front, "side": side, "rows": rows}


def test_checkins_filters_and_pagination(client_for, checkins):
    api = client_for("token:read")
    page = api.get("/api/v1/checkins", {"page_size": 3}).json()
    assert page["count"] == 4 and len(page["results"]) == 3 and page["next"]
    first = page["results"][0]
    assert first["local_date"] == "2026-11-04" and first["masked"] is True and first["kiosk_name"] == "Front door"
    assert first["staff_id"] == "E-1" and first["person_name"] == "Eileen Collins"

    def count(**params) -> int:
        response = api.get("/api/v1/checkins", params)
        assert response.status_code == 200, response.content
        return response.json()["count"]

    assert count(date_from="2026-11-03") == 2
    assert count(date_from="2026-11-02", date_to="2026-11-02") == 2
    assert count(person=checkins["person"].pk) == 3
    assert count(kiosk=checkins["side"].pk) == 1
    assert count(site="annex") == 1
    assert count(masked="true") == 1 and count(masked="false") == 3
    for params, field in [({"date_from": "2026-13-01"}, "date_from"), ({"person": "abc"}, "person"),
                          ({"date_from": "2026-11-05", "date_to": "2026-11-01"}, "date_to"),
                          ({"masked": "sometimes"}, "masked")]:
        response = api.get("/api/v1/checkins", params)
        assert response.status_code == 400 and field in response.json()["fields"], params


def test_checkins_read_on_from_a_cursor_miss_nothing_and_repeat_nothing(client_for, checkins, superuser):
    """An HR tool polling the day's check-ins had only local days, newest first by ``at``: a check-in
    recorded by hand for an earlier time landed among those already read, and one recorded while it
    paged shifted the pages. ``after_id`` answers those recorded after a check-in, in the order
    recorded: page 1 is the next batch, whatever their ``at``."""
    api = client_for("token:read")
    rows = checkins["rows"]
    first = api.get("/api/v1/checkins", {"after_id": 0, "page_size": 2}).json()
    assert [c["id"] for c in first["results"]] == sorted(c.pk for c in rows)[:2] and first["count"] == 4
    cursor = first["results"][-1]["id"]
    # recorded by hand for a time before every check-in read so far, and on another day
    late = recognition.checkin_record_manual(person=checkins["other"], at=rows[0].at - timedelta(hours=1),
                                             site="main", reason="badge at the loading bay", actor=superuser,
                                             now=rows[2].at + timedelta(hours=1))
    seen = []
    while True:
        page = api.get("/api/v1/checkins", {"after_id": cursor, "page_size": 2}).json()
        if not page["results"]:
            break
        seen += [c["id"] for c in page["results"]]
        cursor = page["results"][-1]["id"]
    assert seen == sorted({c.pk for c in rows} - {c["id"] for c in first["results"]}) + [late.pk]
    # with the other filters, and in the CSV (its order stays the time's)
    assert [c["id"] for c in api.get("/api/v1/checkins", {"after_id": rows[0].pk, "person": checkins["other"].pk})
            .json()["results"]] == [rows[3].pk, late.pk]
    table = list(csv.DictReader(io.StringIO(api.get("/api/v1/checkins/csv", {"after_id": rows[2].pk})
                                            .content.decode())))
    assert sorted(int(r["checkin_id"]) for r in table) == [rows[3].pk, late.pk]
    audited = AuditEvent.objects.filter(action="list_export").latest("id")
    assert audited.summary.endswith(f"2 rows: after check-in #{rows[2].pk}")
    # without it, newest first as before
    assert api.get("/api/v1/checkins").json()["results"][0]["id"] == rows[2].pk
    for bad in ("-1", "abc", str(2**63)):
        response = api.get("/api/v1/checkins", {"after_id": bad})
        assert response.status_code == 400 and "after_id" in response.json()["fields"], bad


def test_checkins_csv(client_for, checkins):
    api = client_for("token:read")
    response = api.get("/api/v1/checkins/csv", {"date_to": "2026-11-03"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=\"checkins-")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["time", "date", "staff_id", "name"]
    assert len(rows) == 4 and [r[1] for r in rows[1:]] == ["2026-11-02", "2026-11-02", "2026-11-03"]
    assert "'=HYPERLINK(evil)" in [r[3] for r in rows]  # spreadsheet formulas neutralised
    assert rows[1][7] in ("yes", "no")
    bad = api.get("/api/v1/checkins/csv", {"date_from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"
    as_csv = api.get("/api/v1/checkins/csv", {"date_from": "yesterday"}, HTTP_ACCEPT="text/csv")
    # the error in the API's JSON shape even to a client that asked for CSV
    assert as_csv.status_code == 400 and as_csv["Content-Type"] == "application/json"
    assert as_csv.json()["error"] == "validation_error" and "date_from" in as_csv.json()["fields"]


def test_kiosk_create_shows_the_pairing_link_once_and_revoke(client_for):
    admin = client_for("token:admin")
    response = admin.post("/api/v1/kiosks", {"name": "Lobby", "location": "Ground floor"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["pairing_url"].startswith("http://testserver/kiosk/pair/") and body["pairing_pending"] is True
    code = body["pairing_url"].rstrip("/").rsplit("/", 1)[1]
    assert Kiosk.objects.for_pairing_code(code).pk == body["id"]
    shown = admin.get(f"/api/v1/kiosks/{body['id']}").json()
    assert "pairing_url" not in shown and shown["site"] == "main" and shown["paired"] is False
    assert admin.get("/api/v1/kiosks").json()["count"] == 1
    duplicate = admin.post("/api/v1/kiosks", {"name": "Lobby"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()["fields"]
    assert admin.post("/api/v1/kiosks", {}, format="json").json()["fields"]["name"]

    kiosk, _ = recognition.kiosk_pair(code=code)
    assert kiosk.paired
    revoked = admin.post(f"/api/v1/kiosks/{kiosk.pk}/revoke")
    assert revoked.status_code == 200 and revoked.json()["paired"] is False
    assert Kiosk.objects.for_pairing_code(code) is None
    assert AuditEvent.objects.filter(object_type="recognition.kiosk", action="deactivate").exists()


def test_a_new_pairing_link_replaces_a_lost_one_and_the_device_stays_until_it_is_used(client_for):
    """The way back for a kiosk whose create answer was lost (docs/api.md): the admin's *New pairing
    link* through the API. The earlier unused link stops working; the paired device keeps its token
    until the new link pairs another; an inactive kiosk is refused, its state untouched."""
    admin = client_for("token:admin")
    lost = admin.post("/api/v1/kiosks", {"name": "Lobby"}, format="json").json()
    lost_code = lost["pairing_url"].rstrip("/").rsplit("/", 1)[1]
    response = admin.post(f"/api/v1/kiosks/{lost['id']}/pairing-link")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == lost["id"] and body["pairing_pending"] is True and body["pairing_expires_at"]
    code = body["pairing_url"].rstrip("/").rsplit("/", 1)[1]
    assert code != lost_code and body["pairing_url"].startswith("http://testserver/kiosk/pair/")
    assert Kiosk.objects.for_pairing_code(lost_code) is None
    kiosk, device = recognition.kiosk_pair(code=code)
    assert kiosk.pk == lost["id"] and Kiosk.objects.for_device_token(device).pk == kiosk.pk
    assert "pairing_url" not in admin.get(f"/api/v1/kiosks/{kiosk.pk}").json()

    again = admin.post(f"/api/v1/kiosks/{kiosk.pk}/pairing-link").json()
    assert Kiosk.objects.for_device_token(device).pk == kiosk.pk   # until the new link is used
    recognition.kiosk_pair(code=again["pairing_url"].rstrip("/").rsplit("/", 1)[1])
    assert Kiosk.objects.for_device_token(device) is None
    issued = AuditEvent.objects.for_object("recognition.kiosk", kiosk.pk).filter(
        summary=f"issued a pairing link for kiosk #{kiosk.pk}")
    assert issued.count() == 2 and all(e.actor and e.actor != "system" for e in issued), list(issued.values("actor"))

    assert admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"active": False}, format="json").status_code == 200
    before = Kiosk.objects.filter(pk=kiosk.pk).values().get()
    refused = admin.post(f"/api/v1/kiosks/{kiosk.pk}/pairing-link")
    assert refused.status_code == 409 and refused.json()["error"] == "kiosk_inactive"
    assert "inactive" in refused.json()["detail"]
    assert Kiosk.objects.filter(pk=kiosk.pk).values().get() == before
    assert admin.post("/api/v1/kiosks/999999/pairing-link").status_code == 404


def test_kiosk_create_sets_its_language(client_for, settings):
    """The admin's choice, through the API too: a kiosk made here had the site's default, always. A
    catalog's code, blank (or none) for the site's default; another is refused, named, and makes no kiosk."""
    settings.MASKNET_KIOSK_LANGUAGE = "en"
    admin = client_for("token:admin")
    response = admin.post("/api/v1/kiosks", {"name": "Entrada", "language": "pt"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["language"] == "pt" and body["pairing_url"]
    kiosk = Kiosk.objects.get(pk=body["id"])
    assert kiosk.language == "pt" and kiosk.screen_language == "pt"
    assert admin.get(f"/api/v1/kiosks/{kiosk.pk}").json()["language"] == "pt"
    created = AuditEvent.objects.for_object("recognition.kiosk", kiosk.pk).get(action="create")
    assert "language pt" in created.summary
    # form-encoded as JSON; blank or left out: the site's default, which the kiosk then follows
    plain = admin.post("/api/v1/kiosks", {"name": "Lobby", "language": ""})
    assert plain.status_code == 201 and plain.json()["language"] == ""
    assert admin.post("/api/v1/kiosks", {"name": "Hall"}, format="json").json()["language"] == ""
    assert Kiosk.objects.get(name="Lobby").screen_language == "en"

    for bad in ("xx", "EN", "pt-BR", "en "):
        refused = admin.post("/api/v1/kiosks", {"name": "Side door", "language": bad}, format="json")
        assert refused.status_code == 400, bad
        answer = refused.json()
        assert answer["error"] == "validation_error" and set(answer["fields"]) == {"language"}
        assert "en, de, es, fr, pt" in answer["fields"]["language"][0]
    assert not Kiosk.objects.filter(name="Side door").exists()


def test_a_staff_session_without_pair_kiosk_creates_a_kiosk_without_a_link(client_for, plain_staff):
    """As in the admin: the pairing link only for those who may pair."""
    from django.contrib.auth.models import Permission

    plain_staff.user_permissions.add(Permission.objects.get(codename="add_kiosk"))
    response = client_for("plain_staff").post("/api/v1/kiosks", {"name": "Lobby"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["pairing_url"] is None and not Kiosk.objects.get().pairing_hash


def _paired(name: str = "Front door") -> tuple[Kiosk, str]:
    kiosk, code = recognition.kiosk_create(actor=None, name=name, location="Main entrance")
    return recognition.kiosk_pair(code=code)


def _kiosk_events(kiosk: Kiosk):
    """The kiosk's audit records after it was made and paired."""
    return (AuditEvent.objects.for_object("recognition.kiosk", kiosk.pk).exclude(action="create")
            .exclude(summary__startswith="paired a device").order_by("id"))


def test_kiosk_patch_changes_the_admins_fields_through_its_service(client_for, django_capture_on_commit_callbacks,
                                                                   monkeypatch):
    """An operator scripting a fleet had the admin alone to rename, move or re-language a kiosk. A
    PATCH changes what the admin's change page does, through the same ``kiosk_update``: audited with
    the fields changed (ids only), the open socket told, the device still paired."""
    from enrollment import events

    kiosk, token = _paired()
    told = []
    monkeypatch.setattr(events, "publish", lambda group, message: told.append((group, message["type"])))
    admin = client_for("token:admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"name": "Entrada", "location": "Side entrance",
                                                               "site": "annex", "language": "pt"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in ("id", "name", "location", "site", "language", "active", "paired")} == {
        "id": kiosk.pk, "name": "Entrada", "location": "Side entrance", "site": "annex", "language": "pt",
        "active": True, "paired": True}
    kiosk.refresh_from_db()
    assert (kiosk.name, kiosk.location, kiosk.site, kiosk.language) == ("Entrada", "Side entrance", "annex", "pt")
    assert Kiosk.objects.for_device_token(token) == kiosk       # a change, not a revocation
    assert told == [(kiosk.group_name, recognition.KIOSK_REVOKED)]   # its open socket reads the row again
    [event] = _kiosk_events(kiosk)
    assert event.action == "update" and event.actor.startswith("api:integration-")
    assert event.summary == f"updated kiosk #{kiosk.pk}: name, location, site, language"
    # one field; the same value again is no change and no record
    assert admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"language": ""}, format="json").json()["language"] == ""
    assert admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"language": ""}, format="json").status_code == 200
    assert admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {}, format="json").json()["name"] == "Entrada"
    assert [e.summary for e in _kiosk_events(kiosk)][1:] == [f"updated kiosk #{kiosk.pk}: language"]
    # PUT: the name, and whichever others are sent (those left out keep their values)
    put = admin.put(f"/api/v1/kiosks/{kiosk.pk}", {"name": "Lobby"}, format="json")
    assert put.status_code == 200 and (put.json()["name"], put.json()["site"]) == ("Lobby", "annex")
    assert admin.put(f"/api/v1/kiosks/{kiosk.pk}", {"site": "main"}, format="json").json()["fields"]["name"]


def test_kiosk_patch_cannot_set_its_secrets_pairing_state_or_handshake_count(client_for):
    """Sent, they were dropped without a word (200, nothing of them changed): a client unpairing a
    kiosk with ``"paired": false`` was told it had. Refused now, each named, and nothing changed (the
    location sent with them neither); ``last_seen_at``, which moves while the kiosk is connected, is
    taken whatever it holds."""
    kiosk, token = _paired()
    before = Kiosk.objects.filter(pk=kiosk.pk).values().get()
    sent = {"id": kiosk.pk + 7, "token_hash": "0" * 64, "pairing_hash": "1" * 64, "pairing_expires_at": None,
            "paired": False, "paired_at": None, "pairing_pending": True, "last_seen_at": None,
            "connection_seq": 99, "created_at": "2020-01-01T00:00:00Z", "location": "Hall"}
    admin = client_for("token:admin")
    for method in ("patch", "put"):
        response = getattr(admin, method)(f"/api/v1/kiosks/{kiosk.pk}", {**sent, "name": "Front door"}, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["error"] == "validation_error"
        assert set(response.json()["fields"]) == set(sent) - {"location", "last_seen_at"}
        fields = response.json()["fields"]
        assert fields["token_hash"][0].startswith("Unknown field: a change takes name, location, site, active, "
                                                  "language"), fields
        assert fields["paired"] == ["Read-only: it is true here; leave it out or send it as read (POST "
                                    "/api/v1/kiosks/<id>/revoke unpairs its device and voids an unused link; POST "
                                    "/api/v1/kiosks/<id>/pairing-link makes a new link)."]
        assert fields["id"] == [f"Read-only: it is {kiosk.pk} here; leave it out or send it as read."]
    assert Kiosk.objects.filter(pk=kiosk.pk).values().get() == before
    assert Kiosk.objects.for_device_token(token).pk == kiosk.pk
    assert not _kiosk_events(kiosk).exists()


@pytest.mark.parametrize("sent", [{"paired": False}, {"colour": "red"}, {"loaction": "Hall"},
                                  {"location": "Hall", "token": "x"}])
def test_kiosk_patch_of_a_member_it_does_not_take_is_refused_not_dropped(client_for, sent):
    """``{"paired": false}`` was answered 200, the kiosk as it was: the client believed its device
    unpaired. A misspelt field looked saved the same way. Each is a 400 naming it, nothing changed."""
    kiosk, token = _paired()
    before = Kiosk.objects.filter(pk=kiosk.pk).values().get()
    refused = client_for("token:admin").patch(f"/api/v1/kiosks/{kiosk.pk}", sent, format="json")
    assert refused.status_code == 400, refused.content
    assert set(refused.json()["fields"]) == set(sent) - {"location"}
    assert Kiosk.objects.filter(pk=kiosk.pk).values().get() == before and not _kiosk_events(kiosk).exists()


def test_a_kiosk_read_changed_and_sent_back_whole_is_taken(client_for):
    """A client's GET-modify-PUT sends the answer's read-only members back as read: taken when they
    hold the kiosk's values (JSON or form-encoded, a time written in another offset), and
    ``last_seen_at`` whatever it holds (it moves every few seconds while the kiosk is connected)."""
    kiosk, token = _paired()
    admin = client_for("token:admin")
    url = f"/api/v1/kiosks/{kiosk.pk}"
    read = admin.get(url).json()
    put = admin.put(url, {**read, "location": "Hall", "last_seen_at": "2020-01-01T00:00:00Z"}, format="json")
    assert put.status_code == 200, put.content
    assert put.json()["location"] == "Hall" and put.json()["paired"] is True
    assert Kiosk.objects.for_device_token(token).pk == kiosk.pk
    created = kiosk.created_at.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()
    form = {"id": str(kiosk.pk), "paired": "true", "pairing_pending": "false", "created_at": created,
            "name": "Front door", "location": "Hall 2"}
    patched = admin.patch(url, form)   # form-encoded: every value text
    assert patched.status_code == 200, patched.content
    assert patched.json()["location"] == "Hall 2"
    assert [e.summary for e in _kiosk_events(kiosk)] == [f"updated kiosk #{kiosk.pk}: location"] * 2
    # the kiosk's id sent to another kiosk's URL: a body of another, refused
    other, _ = recognition.kiosk_create(actor=None, name="Side door", with_link=False)
    crossed = admin.put(f"/api/v1/kiosks/{other.pk}", {**read, "name": "Side door"}, format="json")
    assert crossed.status_code == 400 and "id" in crossed.json()["fields"]


@pytest.mark.parametrize("sent, field", [
    ({"language": "xx"}, "language"), ({"language": "EN"}, "language"), ({"name": ""}, "name"),
    ({"name": "   "}, "name"), ({"name": "x" * 101}, "name"), ({"name": "Side door"}, "name"),
    ({"location": "x" * 201}, "location"), ({"site": ""}, "site"), ({"site": "x" * 101}, "site"),
    ({"active": "maybe"}, "active"), ({"name": None}, "name"),
])
def test_kiosk_patch_refuses_what_the_admin_refuses_and_changes_nothing(client_for, sent, field):
    kiosk, _ = _paired()
    recognition.kiosk_create(actor=None, name="Side door", with_link=False)
    before = Kiosk.objects.filter(pk=kiosk.pk).values().get()
    refused = client_for("token:admin").patch(f"/api/v1/kiosks/{kiosk.pk}", sent, format="json")
    assert refused.status_code == 400, refused.content
    answer = refused.json()
    assert answer["error"] == "validation_error" and set(answer["fields"]) == {field}
    if sent.get("language") == "xx":   # as a create's refusal: the codes there are
        assert "en, de, es, fr, pt" in answer["fields"]["language"][0]
    assert Kiosk.objects.filter(pk=kiosk.pk).values().get() == before
    assert not _kiosk_events(kiosk).exists()


def test_kiosk_patch_of_an_unknown_id_is_the_apis_404(client_for):
    kiosk, _ = _paired()
    admin = client_for("token:admin")
    for pk in (kiosk.pk + 1000, "9" * 18, "9" * 19, "abc"):
        missing = admin.patch(f"/api/v1/kiosks/{pk}", {"location": "Hall"}, format="json")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found", pk
    assert not _kiosk_events(kiosk).exists()


def test_kiosk_patch_deactivates_as_the_admin_does(client_for):
    """Unticking *active* in the admin is a revocation: the device unpaired, recorded as a
    deactivation. The API's ``active: false`` is the same; activating again needs a new pairing."""
    kiosk, token = _paired()
    admin = client_for("token:admin")
    off = admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"active": False}, format="json")
    assert off.status_code == 200, off.content
    assert off.json()["active"] is False and off.json()["paired"] is False and off.json()["pairing_pending"] is False
    assert Kiosk.objects.for_device_token(token) is None
    [event] = _kiosk_events(kiosk)
    assert event.action == "deactivate" and "revoked its device" in event.summary and "Front door" not in event.summary
    on = admin.patch(f"/api/v1/kiosks/{kiosk.pk}", {"active": True}, format="json")
    assert on.json()["active"] is True and on.json()["paired"] is False
    assert Kiosk.objects.for_device_token(token) is None
    assert _kiosk_events(kiosk).last().summary.endswith("reactivated")


def test_a_staff_session_changes_kiosks_with_change_kiosk_and_their_state_with_pair_kiosk_too(
        client_for, plain_staff, django_user_model):
    """As the admin's change page: ``change_kiosk`` for the fields, and ``pair_kiosk`` as well for
    ``active`` (deactivating unpairs the device, a revocation); ``active`` sent unchanged is no change."""
    from django.contrib.auth.models import Permission

    kiosk, token = _paired()
    url = f"/api/v1/kiosks/{kiosk.pk}"
    plain_staff.user_permissions.add(Permission.objects.get(codename="view_kiosk"))
    staff = client_for("plain_staff")
    refused = staff.patch(url, {"location": "Hall"}, format="json")
    assert refused.status_code == 403 and "recognition.change_kiosk" in refused.json()["detail"]
    plain_staff.user_permissions.add(Permission.objects.get(codename="change_kiosk"))
    staff.force_login(django_user_model.objects.get(pk=plain_staff.pk))   # permissions are cached per user object
    assert staff.patch(url, {"location": "Hall", "active": True}, format="json").status_code == 200
    for active in (False, "false"):
        refused = staff.patch(url, {"active": active}, format="json")
        assert refused.status_code == 403 and "recognition.pair_kiosk" in refused.json()["detail"]
    assert staff.put(url, {"name": "Front door", "active": False}, format="json").status_code == 403
    kiosk.refresh_from_db()
    assert kiosk.active and kiosk.location == "Hall" and Kiosk.objects.for_device_token(token) == kiosk
    assert [e.action for e in _kiosk_events(kiosk)] == ["update"]
    plain_staff.user_permissions.add(Permission.objects.get(codename="pair_kiosk"))
    staff.force_login(django_user_model.objects.get(pk=plain_staff.pk))
    assert staff.patch(url, {"active": False}, format="json").json()["active"] is False
    assert Kiosk.objects.for_device_token(token) is None


def test_kiosk_create_may_make_an_inactive_kiosk(client_for):
    """``active`` is in the request now (a change sets it): a create takes it as the admin's add
    form does, an inactive kiosk without a pairing link; left out, the kiosk is active (form-encoded too)."""
    admin = client_for("token:admin")
    spare = admin.post("/api/v1/kiosks", {"name": "Spare", "active": False}, format="json").json()
    assert spare["active"] is False and spare["pairing_url"] is None
    assert not Kiosk.objects.get(name="Spare").pairing_hash
    lobby = admin.post("/api/v1/kiosks", {"name": "Lobby"})   # form-encoded, without active
    assert lobby.json()["active"] is True and lobby.json()["pairing_url"]


def test_index_status_rebuild_and_progress(client_for, enqueued, django_capture_on_commit_callbacks):
    api = client_for("token:read+enrol")
    assert api.get("/api/v1/index").json() == {"active": None, "latest_rebuild": None}
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post("/api/v1/index/rebuilds")
    assert started.status_code == 202
    run = started.json()
    assert run["state"] == "queued" and enqueued[-1]["force"] is True
    progress = api.get(f"/api/v1/index/rebuilds/{run['id']}").json()
    assert progress["state"] == "queued" and progress["progress"] == 0
    # a second request joins the queued run: answered as stored (it was the run as read before the join)
    joined = api.post("/api/v1/index/rebuilds").json()
    assert joined["id"] == run["id"] and joined["requests"] == 2 == api.get(
        f"/api/v1/index/rebuilds/{run['id']}").json()["requests"]
    TrainingRun.objects.filter(pk=run["id"]).update(state="running", progress=40, message="embedded 4/10")
    progress = api.get(f"/api/v1/index/rebuilds/{run['id']}").json()
    assert (progress["state"], progress["progress"], progress["message"]) == ("running", 40, "embedded 4/10")
    assert api.get("/api/v1/index").json()["latest_rebuild"]["id"] == run["id"]
    assert api.get("/api/v1/index/rebuilds").json()["count"] == 1
    assert api.get("/api/v1/index/rebuilds/424242").status_code == 404


def test_index_shows_the_active_version(client_for, person, make_fake_index):
    version = make_fake_index(person)
    body = client_for("token:read").get("/api/v1/index").json()
    assert body["active"]["id"] == version.pk and body["active"]["people_count"] == 1
    # what a probe needs now: the engine's for a gallery too small to fit (its recorded 0.4 / 0.5
    # no longer apply), the recorded ones once it is large enough
    from enrollment.recognizer import engine_config
    from recognition.engine.gallery import MIN_FIT_PEOPLE

    cfg = engine_config()
    assert body["active"]["thresholds"] == {"masked": cfg.threshold_masked, "unmasked": cfg.threshold_unmasked}
    type(version).objects.filter(pk=version.pk).update(people_count=MIN_FIT_PEOPLE)
    body = client_for("token:read").get("/api/v1/index").json()
    assert body["active"]["thresholds"] == {"masked": max(0.4, cfg.threshold_masked),
                                            "unmasked": max(0.5, cfg.threshold_unmasked)}
