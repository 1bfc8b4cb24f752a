"""Check-ins (filters, pagination, CSV), kiosks (pairing link shown once, revoke) and the index
(current version, starting a rebuild, its progress)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

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
