"""Hostile photo uploads to the API (issue 7): every generated file gets a clear 4xx with an error
code (a refusal reason for photos), never a 5xx; nothing is stored; the heap stays bounded.

See :mod:`tests.upload_fuzz` for what is sent. ``decoder``: the product's decoder and checks with
an engine that finds nobody (no models needed); ``models``: the real engine behind them.
"""

from __future__ import annotations

import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from audit.models import AuditEvent
from enrollment.models import FacePhoto, TrainingRun
from tests.upload_fuzz import (
    MAX_PHOTO_BYTES,
    REFUSAL_CODES,
    HeapWatch,
    Upload,
    media_files,
    must_be_too_large,
    uploads,
    with_fixed_examples,
)

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]

EXAMPLES = 150
VALIDATION_ERRORS = {"validation_error"}   # DRF's own checks (empty file, no file name)


@pytest.fixture
def api(make_token):
    from rest_framework.test import APIClient

    client = APIClient()
    # a generous rate of its own: the fuzz sends hundreds of requests in seconds
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['read', 'enrol'], rate='100000/min')}")
    return client


def test_hostile_uploads_are_refused_with_a_reason(api, person, engine_kind, settings, isolated_storage, caplog):
    settings.MASKNET_MAX_PHOTO_BYTES = MAX_PHOTO_BYTES
    settings.MASKNET_API_RECOGNISE_RATE = "100000/min"   # each upload counts there too (a face search's bucket)
    # Django logs every 4xx as a warning whose record holds the request; pytest keeps the records
    # for its report, which would count as heap growth here (a 5xx would still be logged, and fail)
    caplog.set_level(logging.ERROR, logger="django.request")
    url = f"/api/v1/people/{person.pk}/photos"
    seen: dict[str, int] = {}
    audit_rows = AuditEvent.objects.count()

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.function_scoped_fixture])
    @given(uploads())
    @with_fixed_examples
    def one_upload(upload: Upload):
        file = SimpleUploadedFile(upload.name, upload.data, content_type=upload.content_type)
        with watch.one():
            response = api.post(url, {"image": file}, format="multipart")
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
        body = response.json()
        assert body["error"] and body["detail"], body
        if response.status_code == 422:
            assert body["error"] == "photo_refused" and body["reason"] in REFUSAL_CODES, body
            if must_be_too_large(upload.data):
                assert body["reason"] == "too_large", body
            seen[body["reason"]] = seen.get(body["reason"], 0) + 1
        else:
            assert response.status_code == 400 and body["error"] in VALIDATION_ERRORS and "image" in body["fields"]
            assert not upload.data, (upload, body)   # DRF's "the submitted file is empty"
            seen[body["error"]] = seen.get(body["error"], 0) + 1
        assert not FacePhoto.objects.exists()
        assert not media_files(isolated_storage / "media")

    with HeapWatch(warm_after=50) as watch:
        one_upload()
    watch.check()
    assert watch.count >= EXAMPLES
    # nothing was stored, audited or queued for any of them
    assert AuditEvent.objects.count() == audit_rows and not TrainingRun.objects.exists()
    # every way of refusing a file was exercised
    assert {"file_type", "too_large", "unreadable", "validation_error"} <= set(seen), seen
    assert {"no_face", "too_small"} & set(seen), seen   # decodable pictures without a face
