"""An id in an admin address or form that is made of digits to ``str.isdigit()`` but not to ``int()``
("²", U+00B2, or any other superscript or circled digit): each answered 500 with Django's
``ValueError`` where a letter got the page's own answer."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from enrollment import services as enrollment

pytestmark = pytest.mark.django_db

SUPERSCRIPT_TWO = "\u00b2"


@pytest.fixture
def su_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize("odd", [SUPERSCRIPT_TWO, "\u2461", "abc"])
def test_an_id_that_is_no_number_gets_the_pages_own_answer(su_client, odd):
    person = enrollment.person_create(actor=None, full_name="Ana Silva", staff_id="A-1")
    # the hand check-in's form, with nobody chosen (as for an unknown id)
    page = su_client.get(reverse("admin:recognition_checkin_add"), {"person": odd})
    assert page.status_code == 200 and page.context["adminform"].form.initial.get("person") is None
    # the check-ins' list filtered by a person that is no id: Django's "?e=1" answer to a bad filter
    listed = su_client.get(reverse("admin:recognition_checkin_changelist"), {"person": odd})
    assert listed.status_code == 302 and listed["Location"].endswith("?e=1")
    # a user's password page: Django's answer to an id that names nobody
    password = su_client.get(f"/admin/auth/user/{odd}/password/")
    assert password.status_code in (302, 404)
    # a person's form with such a photo ticked for removal: the rest of it saved
    form = {"full_name": "Ana Silva", "staff_id": "A-1", "active": "on", "notes": "seen", "remove_photos": [odd]}
    saved = su_client.post(reverse("admin:enrollment_person_change", args=[person.pk]), form)
    assert saved.status_code == 302, saved.content.decode()[:800]
    person.refresh_from_db()
    assert person.notes == "seen"


@pytest.mark.parametrize("changelist", ["recognition_kiosk", "api_apitoken", "auth_user", "enrollment_person"])
def test_an_action_on_a_chosen_row_that_is_no_id_says_so(su_client, changelist):
    """``_selected_action=abc`` (a forged or mangled form) was Django's ValueError, a 500, on the
    kiosk, token and user lists. Found by a helper's review."""
    action = {"recognition_kiosk": "delete_selected", "api_apitoken": "revoke", "auth_user": "delete_selected",
              "enrollment_person": "deactivate"}[changelist]
    for odd in ("abc", SUPERSCRIPT_TWO, "9" * 25):
        answer = su_client.post(reverse(f"admin:{changelist}_changelist"),
                                {"action": action, "_selected_action": [odd]})
        assert answer.status_code == 400 and "The rows chosen were not understood" in answer.content.decode()



def test_a_forged_action_without_its_csrf_token_is_refused_by_the_csrf_check_first(db):
    """The check of the chosen rows comes after the CSRF check: a forged POST gets its 403."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root2", "root2@example.com", "pw"))
    answer = client.post(reverse("admin:recognition_kiosk_changelist"),
                         {"action": "delete_selected", "_selected_action": ["abc"]})
    assert answer.status_code == 403


@pytest.mark.parametrize("value", ["9999-12-31 23:59:59-05:00", "0001-01-01 00:00:00+05:00"])
def test_a_time_with_no_utc_time_in_any_lists_address_gets_the_lists_own_answer(su_client, value):
    """Django lets a list's address filter on any field of its model (``?created_at__gte=…``); a time
    that has no UTC time raised ``OverflowError`` on SQLite, a 500 on the people, photos, kiosks and
    API tokens lists, where the check-ins' and audit log's said "?e=1". Every registered list, every
    date-and-time field of its model. Found by a helper's review of time zones."""
    from django.contrib import admin
    from django.db import models

    su_client.raise_request_exception = False   # a 500 counted, not raised: every list is tried
    failed = []
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for field in model._meta.get_fields():
            if isinstance(field, models.DateTimeField):
                answer = su_client.get(url, {f"{field.name}__gte": value})
                if answer.status_code not in (200, 302):
                    failed.append((url, field.name, answer.status_code))
    assert not failed, failed
