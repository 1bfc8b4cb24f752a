"""The OpenAPI 3 schema generated from the code, the staff documentation page, and a
property-based test (schemathesis) of every GET endpoint against that schema: no 5xx, and
successful answers match the schema.

Kept fast and deterministic: few examples per operation, ``derandomize``, GET only (the writes
are covered by the other tests)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, status_code_conformance
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api import services as api_services

from .helpers import make_world

MAX_EXAMPLES = 10  # per operation; the generate phase only (schemathesis' coverage phase takes ~20 s)


def test_schema_is_openapi_3_with_every_endpoint(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in ["/api/v1/people", "/api/v1/people/{id}", "/api/v1/people/{id}/deactivate", "/api/v1/people/{id}/erase",
                 "/api/v1/people/{id}/export", "/api/v1/people/{person_pk}/photos",
                 "/api/v1/people/{person_pk}/photos/{id}", "/api/v1/checkins",
                 "/api/v1/checkins/csv", "/api/v1/identify", "/api/v1/verify", "/api/v1/index",
                 "/api/v1/index/rebuilds", "/api/v1/index/rebuilds/{id}", "/api/v1/kiosks", "/api/v1/kiosks/{id}",
                 "/api/v1/kiosks/{id}/revoke", "/api/v1/kiosks/{id}/pairing-link"]:
        assert path in paths, path
    assert set(schema["components"]["securitySchemes"]) == {"ApiToken", "StaffSession"}
    upload = schema["paths"]["/api/v1/people/{person_pk}/photos"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    # answers the views give, described: an upload's 413 and 503, a stale If-Match's 412, a kiosk
    # made without a link (no expiry), a photo's date alone for those who may not read check-ins
    assert {"413", "503"} <= set(schema["paths"]["/api/v1/people/{person_pk}/photos"]["post"]["responses"])
    assert "412" in schema["paths"]["/api/v1/people/{id}"]["put"]["responses"]
    assert "412" in schema["paths"]["/api/v1/people/{id}"]["patch"]["responses"]
    components = schema["components"]["schemas"]
    assert components["KioskCreated"]["properties"]["pairing_expires_at"]["nullable"] is True
    # a kiosk's language, answered and asked for, a catalog's code or blank, by an enum of its own name
    for name in ("Kiosk", "KioskCreated", "KioskRequest"):
        assert {"$ref": "#/components/schemas/KioskLanguageEnum"} in components[name]["properties"]["language"]["oneOf"]
    assert components["KioskLanguageEnum"]["enum"] == ["en", "de", "es", "fr", "pt"]
    # a kiosk's change: PATCH (its own component, every field optional) and PUT (the create's); active
    # may be sent now, and every answer still has it (required, as while it was read-only)
    kiosk = schema["paths"]["/api/v1/kiosks/{id}"]
    sent = {method: kiosk[method]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            for method in ("put", "patch")}
    assert sent == {"put": "KioskRequest", "patch": "PatchedKioskRequest"}
    assert {"$ref": "#/components/schemas/KioskLanguageEnum"} in \
        components["PatchedKioskRequest"]["properties"]["language"]["oneOf"]
    assert set(components["PatchedKioskRequest"]["properties"]) == {"name", "location", "site", "language", "active"}
    assert "required" not in components["PatchedKioskRequest"]
    assert kiosk["patch"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Kiosk")
    assert {"400", "403", "404"} <= set(kiosk["patch"]["responses"])
    for name in ("Kiosk", "KioskCreated"):
        assert "active" in components[name]["required"], name
    assert {f["format"] for f in components["Photo"]["properties"]["created_at"]["oneOf"]} == {"date-time", "date"}
    assert components["VerifyAnswer"]["properties"]["score"]["nullable"] is True
    # a change answers an enrol-only caller the id and version alone: both shapes are declared
    answered = schema["paths"]["/api/v1/people/{id}"]["patch"]["responses"]["200"]["content"]["application/json"]
    assert answered["schema"]["$ref"].endswith("/PersonOrVersion")
    assert len(components["PersonOrVersion"]["oneOf"]) == 2
    # the optimistic lock docs/api.md describes is in the schema, not only in prose: the ETag a
    # person's answers carry and the If-Match header a change may send back
    person = schema["paths"]["/api/v1/people/{id}"]
    for method in ("put", "patch"):
        assert {"name": "If-Match", "in": "header"}.items() <= next(
            p for p in person[method]["parameters"] if p["name"] == "If-Match").items()
        assert "ETag" in person[method]["responses"]["200"]["headers"]
    assert "ETag" in person["get"]["responses"]["200"]["headers"]
    assert "ETag" in schema["paths"]["/api/v1/people"]["post"]["responses"]["201"]["headers"]
    assert "ETag" in schema["paths"]["/api/v1/people/{id}/deactivate"]["post"]["responses"]["200"]["headers"]
    # enrol_erased is asked in the request alone, and the request components keep the names generated
    # clients were built with (a create and a change serializer of their own had renamed them)
    body = {method: person[method]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            for method in ("put", "patch")}
    body["post"] = (schema["paths"]["/api/v1/people"]["post"]["requestBody"]["content"]["application/json"]["schema"]
                    ["$ref"].rsplit("/", 1)[1])
    assert body == {"post": "PersonRequest", "put": "PersonRequest", "patch": "PatchedPersonRequest"}
    assert "enrol_erased" in components["PersonRequest"]["properties"]
    assert "enrol_erased" in components["PatchedPersonRequest"]["properties"]
    assert "enrol_erased" not in components["Person"]["properties"]


def test_docs_page_is_for_staff_and_uses_no_cdn(client, db, django_user_model):
    assert client.get("/api/docs/").status_code == 302  # to the admin login
    staff = django_user_model.objects.create_user("docs", password="pw", is_staff=True)
    client.force_login(staff)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html and "cdn" not in html.lower()
    # the init script (which names the schema) is a file of its own, for the Content-Security-Policy
    script = client.get("/api/docs/?script=").content.decode()
    assert "/api/schema/" in script and "cdn" not in script.lower()


def _generated_schema() -> dict:
    """The schema drf-spectacular generates (what ``/api/schema/`` serves), as plain JSON data."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw))


@pytest.fixture
def same_connection():
    """Requests through the WSGI app run inside the test's transaction: like Django's test client,
    do not let them close the connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world_headers(db):
    """Rows of every kind, and a token with every scope."""
    make_world()
    _token, secret = api_services.api_token_create(actor=None, name="schemathesis", scopes=["admin"],
                                                   rate="100000/min")
    return {"Authorization": f"Bearer {secret}"}


schema = schemathesis.openapi.from_dict(_generated_schema())
schema.app = get_wsgi_application()


@schema.include(method="GET").parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.generate])
def test_get_endpoints_against_the_schema(case, world_headers, same_connection):
    case.call_and_validate(headers=world_headers, checks=[not_a_server_error, response_schema_conformance,
                                                          content_type_conformance, status_code_conformance])


def test_the_public_schema_is_built_once_whatever_the_query_string(client, monkeypatch):
    """Open to anyone and generated from the code (0.05-0.1 s of a core): built once per process.
    ``cache_page`` keyed on the whole URL: ``?x=1``, ``?x=2``… each built the schema anew (0.08 s
    of a core) and stored another copy in the cache for 10 minutes, for anyone, without a login.
    Built once per process now; its errors are the API's (JSON, a 406 for an unknown format)."""
    from api.views import SchemaView

    expected = _generated_schema()
    monkeypatch.setattr(SchemaView, "_built", None)
    built = []
    real = SchemaGenerator.get_schema
    monkeypatch.setattr(SchemaGenerator, "get_schema", lambda self, *a, **k: built.append(1) or real(self, *a, **k))
    answers = [client.get(f"/api/schema/?x={i}&version={i}", HTTP_ACCEPT="application/vnd.oai.openapi+json")
               for i in range(4)]
    assert [a.status_code for a in answers] == [200] * 4 and len(built) == 1
    assert answers[3].json() == answers[0].json() == expected
    assert "max-age=600" in answers[0]["Cache-Control"]
    yaml = client.get("/api/schema/")
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi: 3") and len(built) == 1
    xml = client.get("/api/schema/?format=xml")
    assert xml.status_code == 406 and xml.json()["error"] == "not_acceptable" and "no-store" in xml["Cache-Control"]
    post = client.post("/api/schema/")
    assert post.status_code == 405 and post.json()["error"] == "method_not_allowed"


def test_every_error_is_declared_as_json_alone():
    """Errors are JSON whatever the endpoint serves (docs/api.md): the CSV export's and the person
    export's errors were declared as ``text/csv`` and ``application/zip`` too, so a client generated
    from the schema could expect an error body in CSV or ZIP."""
    declared = {(path, method, code): sorted(answer.get("content", {}))
                for path, operations in _generated_schema()["paths"].items()
                for method, operation in operations.items()
                for code, answer in operation["responses"].items() if int(code) >= 400}
    assert {("/api/v1/checkins/csv", "get", "406"), ("/api/v1/people/{id}/export", "get", "409")} <= set(declared)
    assert {key: types for key, types in declared.items() if types != ["application/json"]} == {}


def _json_schema(node: object) -> object:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema says it (``type: [..., "null"]``), for a
    JSON Schema validator (a person's ``deactivated_at`` is null while they are active)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def test_a_change_answers_exactly_one_of_the_shapes_it_declares(client_for):
    """A person's change is declared ``oneOf`` the person or their version (id, updated_at): a whole
    person matched both (the version allowed other members), so every full answer broke the schema
    (schemathesis against a live server: "valid under more than one of the schemas")."""
    from jsonschema import Draft7Validator

    components = _json_schema(_generated_schema()["components"])
    validator = Draft7Validator({"$ref": "#/components/schemas/PersonOrVersion", "components": components})
    whole = client_for("token:enrol+read").post("/api/v1/people", {"full_name": "Ann Bee", "staff_id": "A-100"},
                                                format="json")
    version = client_for("token:enrol").post("/api/v1/people", {"full_name": "Bo Cee", "staff_id": "B-100"},
                                             format="json")
    assert whole.status_code == version.status_code == 201 and set(version.json()) == {"id", "updated_at"}
    for answer in (whole.json(), version.json()):
        assert [e.message for e in validator.iter_errors(answer)] == []


def test_every_throttled_answer_declares_its_retry_after_header(client):
    """The API sends ``Retry-After`` with every 429 (docs/api.md); the schema now says so, so a
    client generated from it can read when to try again."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    throttled = [(path, method, op["responses"]["429"]) for path, ops in schema["paths"].items()
                 for method, op in ops.items() if "429" in op.get("responses", {})]
    assert len(throttled) > 20
    for path, method, answer in throttled:
        assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)


def test_every_member_of_a_person_or_kiosk_answer_is_declared_present(client):
    """A person's department, active and notes, a kiosk's location, site and language, which every
    answer carries, were optional in the schema (a request may leave them out), and generated
    clients typed them so. Found by a helper's review."""
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]
    for name in ("Person", "Kiosk", "KioskCreated"):
        members = {k for k, v in schemas[name]["properties"].items() if not v.get("writeOnly")}
        assert set(schemas[name]["required"]) == members, name
    assert {"department", "active", "notes"} <= set(schemas["Person"]["required"])
    assert "department" not in schemas["PersonRequest"].get("required", [])   # a request may leave it out


def test_the_staff_id_erased_answer_is_declared_as_it_is_sent(client_for):
    """A 409 ``staff_id_erased`` carries ``erased_on`` (the erasure's date), which a sync reads to tell
    it from any other conflict: the ``Error`` component the 409 is declared with lacked it, so a client
    generated from the schema dropped it. Every member of the real answer is declared, with its type."""
    from jsonschema import Draft7Validator, FormatChecker

    schema = _generated_schema()
    declared = {(path, method): operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
                for path, method in (("/api/v1/people", "post"), ("/api/v1/people/{id}", "put"),
                                     ("/api/v1/people/{id}", "patch"))
                for operation in [schema["paths"][path][method]]}
    assert set(declared.values()) == {"#/components/schemas/Error"}, declared
    components = _json_schema(schema["components"])
    # every member named, none left to "anything else goes"
    strict = {**components["schemas"]["Error"], "additionalProperties": False}
    validator = Draft7Validator({**strict, "components": components}, format_checker=FormatChecker())
    admin = client_for("token:admin")
    eileen = admin.post("/api/v1/people", {"full_name": "Eileen Collins", "staff_id": "e-1"}, format="json").json()
    assert admin.post(f"/api/v1/people/{eileen['id']}/erase").status_code == 204
    bo = admin.post("/api/v1/people", {"full_name": "Bo Li", "staff_id": "B-1"}, format="json").json()
    answers = [admin.post("/api/v1/people", {"full_name": "Eileen Collins", "staff_id": "E-1"}, format="json"),
               admin.patch(f"/api/v1/people/{bo['id']}", {"staff_id": "e-1"}, format="json")]
    for answer in answers:
        assert answer.status_code == 409 and answer.json()["error"] == "staff_id_erased", answer.content
        assert "erased_on" in answer.json()
        assert [e.message for e in validator.iter_errors(answer.json())] == []
    assert components["schemas"]["Error"]["properties"]["erased_on"]["format"] == "date"
