"""Hostile photo uploads through the admin's change form (issue 7): every generated file is
refused with a message naming the reason (or a form error for an empty file), never a server
error; nothing is stored; the heap stays bounded.

See :mod:`tests.upload_fuzz` for what is sent. ``decoder``: the product's decoder and checks with
an engine that finds nobody (no models needed); ``models``: the real engine behind them.
"""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from audit.models import AuditEvent
from enrollment.models import FacePhoto
from enrollment.services import REFUSALS
from tests.upload_fuzz import (
    MAX_PHOTO_BYTES,
    HeapWatch,
    Upload,
    media_files,
    must_be_too_large,
    uploads,
    with_fixed_examples,
)

from .test_admin import change_url, person_form

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]

EXAMPLES = 150
SENTENCES = {sentence: code for code, sentence in REFUSALS.items()}


def test_hostile_uploads_are_refused_with_a_message(enroller_client, person, engine_kind, settings,
                                                    isolated_storage, enqueued):
    settings.MASKNET_MAX_PHOTO_BYTES = MAX_PHOTO_BYTES
    url, form = change_url(person), person_form(person)
    seen: dict[str, int] = {}
    audit_rows = AuditEvent.objects.count()

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.function_scoped_fixture])
    @given(uploads())
    @with_fixed_examples
    def one_upload(upload: Upload):
        file = SimpleUploadedFile(upload.name, upload.data, content_type=upload.content_type)
        enroller_client.cookies.pop("messages", None)   # the messages of earlier uploads (never displayed)
        with watch.one():   # a server error would raise here
            response = enroller_client.post(url, {**form, "photos": [file]})
        if response.status_code == 200:   # the form itself refused the file
            errors = response.context["adminform"].form.errors
            assert list(errors) == ["photos"] and not upload.data, (upload, errors)
            seen["form_error"] = seen.get("form_error", 0) + 1
        else:
            assert response.status_code == 302, response.status_code
            errors = [str(m) for m in messages.get_messages(response.wsgi_request) if m.level == messages.ERROR]
            assert len(errors) == 1, errors
            name, _, sentence = errors[0].partition(": refused — ")
            # the sentence of a code, maybe followed by its details (the size limit's numbers)
            codes = [c for known, c in SENTENCES.items() if sentence == known or sentence.startswith(known + " ")]
            assert name and len(codes) == 1, errors
            code = codes[0]
            if must_be_too_large(upload.data):
                assert code == "too_large", (upload, code)
            seen[code] = seen.get(code, 0) + 1
        assert not FacePhoto.objects.exists()
        assert not media_files(isolated_storage / "media")

    with HeapWatch(warm_after=50) as watch:
        one_upload()
    watch.check()
    assert watch.count >= EXAMPLES
    assert AuditEvent.objects.count() == audit_rows and not enqueued
    # an empty file is refused by name like the others (it was the form's error, the whole batch refused)
    # decodable pictures without a face: smaller than a face could be ("too_small") or not
    assert {"file_type", "too_large", "unreadable", "empty"} <= set(seen) and "form_error" not in seen, seen
    assert {"no_face", "too_small"} & set(seen), seen
