"""Downloads of lists of people's data are on record: the check-ins admin's CSV, the attendance
pages' CSVs, the API's check-ins CSV and the audit log's own CSV each leave one ``list_export``
record (who, which list by its filters, how many rows; never a name or staff id), once per
download however many pieces it streams in, and none for a download refused."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api import services as api_services
from audit.admin import CSV_COLUMNS
from audit.models import AuditEvent
from audit.services import audit_decisions_purge, audit_record
from enrollment import services as enrollment
from masknet_site import csv_export
from recognition import services as recognition

pytestmark = pytest.mark.django_db

NAME, STAFF_ID = "Eileen Collins", "E-1"
LIST_EXPORT = AuditEvent.Action.LIST_EXPORT


class Site:
    """A superuser's browser and an API token's client, one person with check-ins on 12 days."""

    def __init__(self) -> None:
        self.su = User.objects.create_superuser("root", "root@example.com", "pw")
        self.client = Client()
        self.client.force_login(self.su)
        self.person = enrollment.person_create(actor=None, full_name=NAME, staff_id=STAFF_ID, department="Flight")
        self.other = enrollment.person_create(actor=None, full_name="Tom Hanks", staff_id="T-1")
        self.kiosk = recognition.kiosk_create(actor=None, name="Front door", site="main")[0]
        now = timezone.now()
        for day in range(12):
            recognition.checkin_record(person_id=self.person.pk, kiosk=self.kiosk, score=0.7, threshold=0.5,
                                       masked=day % 2 == 0, frames=3, index_version=None, at=now - timedelta(days=day))
        recognition.checkin_record(person_id=self.other.pk, kiosk=self.kiosk, score=0.7, threshold=0.5,
                                   masked=False, frames=3, index_version=None, at=now)
        self.token, secret = api_services.api_token_create(actor=None, name="hr-system", scopes=["read"])
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.fixture
def site(db) -> Site:
    return Site()


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=since, action=LIST_EXPORT).order_by("pk"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def csv_rows(response) -> tuple[list[bytes], list[list[str]]]:
    """The pieces a download streamed, and its CSV rows (the header first)."""
    pieces = list(response.streaming_content)
    return pieces, list(csv.reader(io.StringIO(b"".join(pieces).decode())))


def download(client, path: str, query: dict | None = None) -> bytes:
    """A CSV download read to its end, as a browser or script reads it."""
    response = client.get(path, query or {})
    assert response.status_code == 200, response.content[:300]
    return b"".join(response.streaming_content)


# name -> (who asks: "client" or "api", URL, query, object type)
EXPORTS = {
    "admin check-ins": ("client", lambda s: reverse("admin:recognition_checkin_export"), {}, "recognition.checkin"),
    "audit log": ("client", lambda s: reverse("admin:audit_auditevent_export"), {}, "audit.auditevent"),
    "attendance export": ("client", lambda s: reverse("attendance-export"), {}, "recognition.checkin"),
    "attendance day": ("client", lambda s: reverse("attendance-day"), {"format": "csv"}, "recognition.checkin"),
    "attendance person": ("client", lambda s: reverse("attendance-person", args=[s.person.pk]), {"format": "csv"},
                          "recognition.checkin"),
    "attendance summary": ("client", lambda s: reverse("attendance-summary"), {"format": "csv"},
                           "recognition.checkin"),
    "API check-ins": ("api", lambda s: "/api/v1/checkins/csv", {}, "recognition.checkin"),
}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_a_streamed_download_is_one_record_with_its_row_count(site, name, monkeypatch):
    """However many pieces the CSV streams in (one per row here), one record: by the staff user
    or the token's service account, saying as many rows as the file has."""
    monkeypatch.setattr(csv_export, "CHUNK_BYTES", 1)
    who, url, query, object_type = EXPORTS[name]
    before = last_id()
    response = getattr(site, who).get(url(site), query)
    assert response.status_code == 200 and response.streaming
    pieces, rows = csv_rows(response)
    assert len(pieces) == len(rows) - 1 > 1   # streamed row by row (the header with the first)
    [event] = new_events(before)
    actor = api_services.api_token_username(site.token.name) if who == "api" else "root"
    assert (event.actor, event.object_type, event.object_id) == (actor, object_type, "")
    assert re.search(rf" as CSV, {len(rows) - 1} rows: ", event.summary), (event.summary, len(rows))
    assert NAME not in event.summary and STAFF_ID not in event.summary.split()


def test_the_summaries_say_which_list_by_ids_never_by_name(site):
    """Filters as words, a person by id (which their subject-access export finds), a search said
    to be there but not what it was (it may be a name), the audit list's actor as a user id."""
    before = last_id()
    download(site.client, reverse("admin:recognition_checkin_export"),
             {"q": NAME, "person__id__exact": site.person.pk, "masked__exact": "1", "o": "1"})
    download(site.client, reverse("attendance-export"), {"person": site.person.pk, "date_from": "2026-01-01",
                                                         "masked": "no", "site": "main"})
    download(site.api, "/api/v1/checkins/csv", {"kiosk": site.kiosk.pk, "date_to": "2099-12-31", "masked": "true"})
    download(site.client, reverse("attendance-day"), {"format": "csv", "site": "main",
                                                      "date": timezone.localdate().isoformat()})
    download(site.client, reverse("admin:audit_auditevent_export"), {"actor": "root", "q": STAFF_ID})
    pk, day = site.person.pk, timezone.localdate().isoformat()
    assert [e.summary for e in new_events(before)] == [
        f"downloaded check-ins (admin) as CSV, 6 rows: masked__exact=1; person #{pk}; a search (its text not recorded)",
        f"downloaded check-ins (attendance export) as CSV, 6 rows: date_from=2026-01-01; person #{pk}; site=main; "
        "masked=no",
        f"downloaded check-ins (API) as CSV, 6 rows: date_to=2099-12-31; kiosk #{site.kiosk.pk}; masked=yes",
        f"downloaded the attendance of {day} as CSV, 2 rows: site=main",
        f"downloaded the audit log (admin) as CSV, 0 rows: actor user #{site.su.pk}; a search (its text not recorded)",
    ]


def test_every_way_of_naming_the_person_is_audited_by_id_and_free_text_is_not_repeated(site):
    """``?person=2`` (Django's admin takes it) was audited "person=2", which a person's data export,
    finding their records by "person #2", left out of their audit.csv; ``?reason__icontains=Alex``
    wrote the text typed into the log. Found by a helper's review."""
    before, pk = last_id(), site.person.pk
    for query in ({"person": pk}, {"person_id": pk}, {"person__id__in": f"{pk}"}):
        download(site.client, reverse("admin:recognition_checkin_export"), query)
    download(site.client, reverse("admin:audit_auditevent_export"), {"summary__icontains": NAME})
    said = [e.summary.split(" rows: ", 1)[1] for e in new_events(before)]
    assert said == [f"person #{pk}"] * 3 + ["a filter on summary (its text not recorded)"], said


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_a_download_another_sites_page_started_is_refused_and_recorded_nowhere(site, name, caplog):
    """A staff session's cookie goes with a top-level GET that a link on another site starts
    (``SameSite=Lax``): the browser says so (``Sec-Fetch-Site: cross-site``) and nothing is handed
    out or put on record (403, a sentence saying where to open it). The site's own pages
    (``same-origin``), a typed or bookmarked address (``none``), a sibling host (``same-site``) and
    a request without the header (a script, an older browser) download as before; an API token is
    no cookie a link can carry, so its request is never refused."""
    who, url, query, _ = EXPORTS[name]
    session = APIClient() if who == "api" else Client()
    session.force_login(site.su)   # the API takes a staff session too
    before = last_id()
    refused = session.get(url(site), query, HTTP_SEC_FETCH_SITE="cross-site",
                          HTTP_REFERER="https://evil.example/page")
    assert refused.status_code == 403 and not refused.streaming
    assert "another site" in refused.content.decode() and NAME not in refused.content.decode()
    assert new_events(before) == []
    if who != "api":
        assert any("another site" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    for fetch_site in ("same-origin", "none", "same-site", None):
        headers = {"HTTP_SEC_FETCH_SITE": fetch_site} if fetch_site else {}
        assert len(download_with(session, url(site), query, headers).splitlines()) > 1, fetch_site
    assert len(new_events(before)) == 4
    if who == "api":   # the token's request, whatever the header says
        assert len(download_with(site.api, url(site), query, {"HTTP_SEC_FETCH_SITE": "cross-site"}).splitlines()) > 1


def test_a_page_of_the_api_list_another_sites_page_started_is_refused_as_the_csv_is(site, caplog):
    """A page of the API's JSON list is on record as a CSV is (a ``list_export`` each page), so a
    link on another site could put records there through a staff session's cookie as well: refused
    as the CSV is, with the API's error body, before the filters are read (not a 400), logged as a
    warning, nothing recorded. The site's own pages (Swagger UI's requests are ``same-origin``) and
    a token's requests are served."""
    session = APIClient()
    session.force_login(site.su)
    before = last_id()
    for path, query in (("/api/v1/checkins", {}), ("/api/v1/checkins", {"date_from": "not a day"}),
                        ("/api/v1/checkins/csv", {"date_from": "not a day"})):
        refused = session.get(path, query, HTTP_SEC_FETCH_SITE="cross-site")
        assert refused.status_code == 403, (path, query, refused.content[:200])
        assert refused.json() == {"error": "permission_denied", "detail": csv_export.CROSS_SITE_REFUSED}
    assert new_events(before) == []
    warned = [r for r in caplog.records if "another site" in r.getMessage() and r.levelname == "WARNING"]
    assert len(warned) == 3
    assert session.get("/api/v1/checkins", HTTP_SEC_FETCH_SITE="same-origin").status_code == 200
    assert site.api.get("/api/v1/checkins", HTTP_SEC_FETCH_SITE="cross-site").status_code == 200
    assert len(new_events(before)) == 2


def download_with(client, path: str, query: dict, headers: dict) -> bytes:
    """:func:`download` with request headers."""
    response = client.get(path, query, **headers)
    assert response.status_code == 200, response.content[:300]
    return b"".join(response.streaming_content)


def test_refused_downloads_record_nothing(site):
    """A 400 (filters it cannot read), 403 (no permission, a token without the scope), 406 (a
    format the API cannot give) or a redirect to the login page: nothing handed out, nothing
    recorded."""
    staff = User.objects.create_user("clerk", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_person"))
    clerk = Client()
    clerk.force_login(staff)
    enrol_token = api_services.api_token_create(actor=None, name="enrol-only", scopes=["enrol"])[1]
    enroller = APIClient()
    enroller.credentials(HTTP_AUTHORIZATION=f"Bearer {enrol_token}")
    before = last_id()
    refusals = [
        (clerk.get(reverse("admin:recognition_checkin_export")), 403),
        (clerk.get(reverse("admin:audit_auditevent_export")), 403),
        (clerk.get(reverse("attendance-export")), 403),
        (clerk.get(reverse("attendance-day"), {"format": "csv"}), 403),
        (clerk.get(reverse("attendance-person", args=[site.person.pk]), {"format": "csv"}), 403),
        (clerk.get(reverse("attendance-summary"), {"format": "csv"}), 403),
        (Client().get(reverse("attendance-summary"), {"format": "csv"}), 302),
        (site.client.get(reverse("attendance-summary"), {"format": "csv", "date_from": "2026-03-02",
                                                         "date_to": "2026-03-01"}), 400),
        (Client().get(reverse("attendance-export")), 302),
        (Client().get(reverse("admin:recognition_checkin_export")), 302),
        (site.client.get(reverse("admin:recognition_checkin_export"), {"at__gte": "notadate"}), 400),
        (site.client.get(reverse("admin:audit_auditevent_export"), {"at__year": "9999", "at__month": "12"}), 400),
        (site.client.get(reverse("attendance-export"), {"date_from": "yesterday"}), 400),
        (site.client.get(reverse("attendance-day"), {"format": "csv", "date": "2026-13-01"}), 400),
        (site.api.get("/api/v1/checkins/csv", {"date_from": "2026-03-02", "date_to": "2026-03-01"}), 400),
        (site.api.get("/api/v1/checkins/csv", HTTP_ACCEPT="application/xml"), 406),
        (site.api.get("/api/v1/checkins/csv", {"format": "xml"}), 406),
        (enroller.get("/api/v1/checkins/csv"), 403),
        (APIClient().get("/api/v1/checkins/csv"), 401),
    ]
    assert [r.status_code for r, _ in refusals] == [code for _, code in refusals]
    assert new_events(before) == []


def test_a_head_request_records_nothing(site):
    """HEAD answers a download's headers, no body: no list was handed out."""
    before = last_id()
    for response in (site.client.head(reverse("admin:recognition_checkin_export")),
                     site.client.head(reverse("admin:audit_auditevent_export")),
                     site.client.head(reverse("attendance-day"), {"format": "csv"}),
                     site.client.head(reverse("attendance-summary"), {"format": "csv"}),
                     site.api.head("/api/v1/checkins/csv")):
        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert new_events(before) == []


def test_the_audit_logs_csv_leaves_out_its_own_record(site):
    """The record of an audit-log download is made before the file is read: not in that file (its
    row count would be one short), in the next."""
    first = site.client.get(reverse("admin:audit_auditevent_export"), {"action__exact": LIST_EXPORT})
    assert csv_rows(first)[1] == [list(CSV_COLUMNS)]   # the header alone
    second = csv_rows(site.client.get(reverse("admin:audit_auditevent_export"), {"action__exact": LIST_EXPORT}))[1]
    assert [row[3] for row in second[1:]] == [LIST_EXPORT]
    assert second[1][6] == "downloaded the audit log (admin) as CSV, 0 rows: action__exact=list_export"
    assert AuditEvent.objects.filter(action=LIST_EXPORT).count() == 2


def test_the_audit_admin_filters_by_the_new_action(site):
    download(site.client, reverse("attendance-export"))
    page = site.client.get(reverse("admin:audit_auditevent_changelist"))
    assert page.status_code == 200
    assert re.search(r'<a href="\?action__exact=list_export"[^>]*>list export</a>', page.content.decode())
    listed = site.client.get(reverse("admin:audit_auditevent_changelist"), {"action__exact": LIST_EXPORT})
    assert listed.context["cl"].result_count == 1


def test_list_exports_are_kept_as_changes_are(site):
    """Accountability records, as administrative changes: the retention purge that deletes
    decisions and logins past ``MASKNET_RETENTION_DECISION_DAYS`` leaves them."""
    download(site.client, reverse("attendance-export"))
    audit_record(actor=None, action=AuditEvent.Action.LOGIN, object_type="auth.user", summary="login")
    audit_decisions_purge(older_than_days=30, now=timezone.now() + timedelta(days=400))
    assert AuditEvent.objects.filter(action=LIST_EXPORT).count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()


def test_a_persons_access_request_shows_who_downloaded_their_check_ins(site):
    """A download of one person's check-ins names them by id: their subject-access export's
    audit.csv lists it (who and when), as it lists the other records that concern them."""
    download(site.client, reverse("attendance-person", args=[site.person.pk]), {"format": "csv"})
    download(site.client, reverse("attendance-export"), {"person": site.other.pk})   # someone else's
    archive = zipfile.ZipFile(io.BytesIO(enrollment.person_export(person=site.person, actor=site.su)))
    audit = list(csv.DictReader(io.StringIO(archive.read("audit.csv").decode())))
    exports = [row for row in audit if row["action"] == LIST_EXPORT]
    assert [(row["actor"], row["summary"]) for row in exports] == [
        (f"user #{site.su.pk}",
         f"downloaded a person's check-ins (attendance page) as CSV, 12 rows: person #{site.person.pk}")]


def test_each_page_of_the_apis_json_check_ins_is_on_record(site):
    """The API's JSON list hands out what its CSV does, 500 a page at most: each page read is a
    ``list_export`` too, with the page and its size as served (the default 50, the cap of 500), the
    filters and the rows on it; a page refused (a page size that is no whole number from 1)
    (invalid filters, past the end, no scope) or a HEAD records nothing."""
    before = last_id()
    pk = site.person.pk
    pages = [site.api.get("/api/v1/checkins", {"person": pk, "page_size": 5}),
             site.api.get("/api/v1/checkins", {"person": pk, "page_size": 5, "page": 3}),
             site.api.get("/api/v1/checkins", {"page": 1}),
             site.api.get("/api/v1/checkins", {"page_size": 100000, "masked": "true"})]
    assert [r.status_code for r in pages] == [200] * 4
    assert [len(r.json()["results"]) for r in pages] == [5, 2, 13, 6]
    events = new_events(before)
    assert [(e.actor, e.object_type) for e in events] == [(api_services.api_token_username(site.token.name),
                                                           "recognition.checkin")] * 4
    assert [e.summary for e in events] == [
        f"downloaded check-ins (API), page 1 of 5 a page as JSON, 5 rows: person #{pk}",
        f"downloaded check-ins (API), page 3 of 5 a page as JSON, 2 rows: person #{pk}",
        "downloaded check-ins (API), page 1 of 50 a page as JSON, 13 rows: no filters",
        "downloaded check-ins (API), page 1 of 500 a page as JSON, 6 rows: masked=yes",
    ]
    # its subject-access export names who read their check-ins, as for a CSV
    archive = zipfile.ZipFile(io.BytesIO(enrollment.person_export(person=site.person, actor=site.su)))
    audit = list(csv.DictReader(io.StringIO(archive.read("audit.csv").decode())))
    assert len([row for row in audit if row["action"] == LIST_EXPORT]) == 2
    before = last_id()
    refused = [(site.api.get("/api/v1/checkins", {"date_from": "2026-03-02", "date_to": "2026-03-01"}), 400),
               (site.api.get("/api/v1/checkins", {"page": 99}), 400),
               (site.api.get("/api/v1/checkins", {"page_size": "all"}), 400),
               (site.api.get("/api/v1/checkins", {"page_size": 0}), 400),
               (site.api.get("/api/v1/checkins", {"page_size": -1}), 400),
               (site.api.get("/api/v1/checkins", {"person": "x"}), 400),
               (APIClient().get("/api/v1/checkins"), 401),
               (site.api.head("/api/v1/checkins"), 200)]
    assert [r.status_code for r, _ in refused] == [code for _, code in refused]
    assert new_events(before) == []
