"""What every API answer carries, whatever the endpoint: never cached (personal data), errors in
the API's JSON shape (a server error and a too deeply nested body included), and identify/verify
counted in their own, smaller bucket."""

from __future__ import annotations

import pytest

from enrollment import services as enrollment

pytestmark = pytest.mark.django_db

GETS = ["/api/v1/people", "/api/v1/people/{person}", "/api/v1/people/{person}/photos", "/api/v1/checkins",
        "/api/v1/checkins/csv", "/api/v1/kiosks", "/api/v1/index", "/api/v1/index/rebuilds", "/api/v1/nothing",
        "/api/v1/people/999999"]


@pytest.mark.parametrize("url", GETS)
def test_no_answer_may_be_stored_by_a_browser_or_proxy(client_for, person, url):
    response = client_for("superuser").get(url.format(person=person.pk))
    assert response.status_code in (200, 404)
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_a_new_kiosks_pairing_link_is_not_cached(client_for):
    response = client_for("token:admin").post("/api/v1/kiosks", {"name": "Door"}, format="json")
    assert response.status_code == 201 and response.json()["pairing_url"]
    assert "no-store" in response["Cache-Control"]


def test_a_server_error_is_json_and_logged(client_for, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(enrollment, "person_create", broken)
    api = client_for("token:enrol")
    api.raise_request_exception = False
    with caplog.at_level("ERROR", logger="django.request"):
        response = api.post("/api/v1/people", {"full_name": "A", "staff_id": "A"}, format="json")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json()["error"] == "server_error" and "fire" not in response.json()["detail"]
    assert "no-store" in response["Cache-Control"]
    assert any(r.exc_info and "fire" in str(r.exc_info[1]) for r in caplog.records)


def test_a_too_deeply_nested_body_is_a_400_not_a_crash(client_for):
    body = '{"full_name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client_for("token:enrol").generic("POST", "/api/v1/people", body,
                                                 content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_a_query_refused_before_the_api_is_a_validation_error_with_its_fields(client_for):
    """A NUL in a query parameter (or too many parameters) is refused by the site's middleware,
    before the API's views: its ``validation_error`` had no ``fields``, which every other one has
    (docs/api.md), so a client reading ``fields`` found nothing to show."""
    api = client_for("token:read")
    nul = api.get("/api/v1/checkins?site=a%00b&person=1&masked=%00")
    assert nul.status_code == 400 and nul.json()["error"] == "validation_error"
    assert set(nul.json()["fields"]) == {"site", "masked"}
    assert nul.json()["fields"]["site"] == ["Null characters are not allowed."]
    assert api.get("/api/v1/people?a%00=1").json()["fields"] == {"non_field_errors": ["Null characters are not "
                                                                                      "allowed."]}
    many = api.get("/api/v1/people?" + "&".join(f"p{i}=1" for i in range(1100)))
    assert many.status_code == 400 and many.json()["fields"] == {"non_field_errors": ["Too many query parameters."]}


def test_a_misspelt_query_parameter_is_refused_not_ignored(client_for, person):
    """A filter whose name is misspelt was ignored, so the answer held every row: ``date_form=`` on
    the check-ins' CSV exported every day's check-ins as one day's. Each endpoint now refuses the
    query parameters it does not read, naming them and the ones it takes, before it audits a read."""
    from audit.models import AuditEvent

    api = client_for("token:read")
    typo = api.get("/api/v1/checkins/csv", {"date_form": "2026-01-01", "person": person.pk})
    assert typo.status_code == 400 and typo.json()["error"] == "validation_error"
    assert list(typo.json()["fields"]) == ["date_form"]
    assert "date_from" in typo.json()["fields"]["date_form"][0]
    assert "page" not in typo.json()["fields"]["date_form"][0]   # the CSV is not paginated
    assert api.get("/api/v1/checkins/csv", {"page": 2}).status_code == 400
    assert not AuditEvent.objects.filter(action="list_export").exists()
    assert api.get("/api/v1/checkins/csv", {"date_from": "2026-01-01", "format": "csv"}).status_code == 200
    assert api.get("/api/v1/checkins", {"date_from": "2026-01-01", "page": 1, "page_size": 5}).status_code == 200
    assert api.get("/api/v1/people", {"serach": "Eileen"}).json()["fields"] == {
        "serach": ["Unknown query parameter: this endpoint takes active, after_id, department, format, page, "
                   "page_size, search, staff_id."]}
    assert api.get("/api/v1/people", {"search": "Eileen", "page_size": 2}).json()["count"] == 1
    # endpoints without filters take none; a detail no page either
    assert api.get(f"/api/v1/people/{person.pk}", {"search": "x"}).status_code == 400
    assert api.get("/api/v1/index", {"verbose": "1"}).json()["fields"] == {
        "verbose": ["Unknown query parameter: this endpoint takes no query parameters besides format."]}
    assert api.get("/api/v1/kiosks", {"page": 1}).status_code == 200
    # many named at most ten times, and authentication still answers first
    many = api.get("/api/v1/kiosks?" + "&".join(f"x{i}=1" for i in range(30)))
    assert many.status_code == 400 and len(many.json()["fields"]) == 10
    assert client_for("anonymous").get("/api/v1/people", {"serach": "x"}).status_code == 401


def test_a_filter_given_empty_or_twice_is_refused(client_for, person):
    """`?person=` (a script's unset variable) was read as no filter, and the CSV held every person's
    check-ins; `?staff_id=` listed everyone where HR sync expects one row at most; a filter given
    twice was read as its last value. Found by a helper's review."""
    from audit.models import AuditEvent

    api = client_for("token:read")
    empty = api.get("/api/v1/checkins/csv?person=&date_from=2026-01-01")
    assert empty.status_code == 400 and empty.json()["fields"] == {
        "person": ["Empty: leave the parameter out to filter nothing by it, or give a value."]}
    assert not AuditEvent.objects.filter(action="list_export").exists()
    assert api.get("/api/v1/people?staff_id=").status_code == 400
    assert api.get("/api/v1/people?staff_id=%20").status_code == 400
    assert api.get("/api/v1/checkins?after_id=").status_code == 400
    twice = api.get(f"/api/v1/checkins?person={person.pk}&person=999")
    assert twice.status_code == 400 and twice.json()["fields"] == {
        "person": ["Given more than once: give it once (a filter takes one value)."]}
    assert api.get("/api/v1/people?page=1&page=2").status_code == 400
    # given once, with a value: as before
    assert api.get(f"/api/v1/checkins?person={person.pk}").status_code == 200
    assert api.get("/api/v1/people", {"staff_id": person.staff_id}).json()["count"] == 1


def test_identify_and_verify_have_their_own_smaller_bucket(client_for, person, settings):
    settings.MASKNET_API_RECOGNISE_RATE = "2/min"
    api = client_for("token:recognise+read")
    codes = [api.post("/api/v1/identify", {}, format="multipart").status_code for _ in range(3)]
    assert codes == [400, 400, 429]          # refused as invalid, but counted: each may run the networks
    verify = api.post("/api/v1/verify", {}, format="multipart")
    assert verify.status_code == 429 and int(verify["Retry-After"]) > 0
    assert api.get("/api/v1/index").status_code == 200   # other calls are not held back


def test_simultaneous_calls_cannot_pass_the_recognise_limit_together(settings, redis_url):
    """Requests that arrive together are counted one by one, in the cache every web node shares
    (DRF's own count read the history and wrote it back: 39 of 40 simultaneous calls passed a
    5/min limit on Redis)."""
    import threading
    from types import SimpleNamespace

    from api.throttling import RecogniseRateThrottle

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": "masknet"}}
    settings.MASKNET_API_RECOGNISE_RATE = "5/min"
    request = SimpleNamespace(auth=None, user=SimpleNamespace(is_authenticated=True, pk=41))
    start, allowed = threading.Barrier(40), []

    def call():
        start.wait()
        allowed.append(RecogniseRateThrottle().allow_request(request, None))

    threads = [threading.Thread(target=call) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 5
