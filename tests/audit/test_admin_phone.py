"""The admin's lists on a phone (audit/templatetags/admin_phone.py): which columns each keeps.
How they look in a real browser at 375 px: tests/recognition/test_attendance_browser.py."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def phone_style(client, url: str) -> tuple[list[str], list[str]]:
    """The list page's phone style: the columns it keeps, and those whose cells may wrap."""
    html = client.get(url).content.decode()
    style = re.search(r"<style>@media \(max-width: 767px\) \{ #result_list tr > :not\((.*?)\) \{ display: none; \}"
                      r"(.*?)</style>", html, re.S)
    assert style, html
    return re.findall(r"\.field-(\w+)", style.group(1)), re.findall(r"\.field-(\w+)", style.group(2))


def test_each_list_keeps_columns_it_has():
    """A name that is not a column (a typo, a renamed column) would leave a list on a phone without it."""
    chosen = {type(model_admin).__name__: model_admin for model_admin in admin.site._registry.values()
              if getattr(model_admin, "list_display_phone", None)}
    assert {"CheckInAdmin", "KioskAdmin", "PersonAdmin", "FacePhotoAdmin", "TrainingRunAdmin",
            "AuditEventAdmin"} <= set(chosen)
    for name, model_admin in chosen.items():
        assert set(model_admin.list_display_phone) <= set(model_admin.list_display), name


def test_the_lists_say_what_a_phone_shows(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    # a check-in's time and person; a photo's person (a foreign key, which Django keeps on one line)
    # wraps; a list without a choice keeps its first two columns, the actions' checkbox aside
    assert phone_style(client, "/admin/recognition/checkin/") == (["at", "person_link"], [])
    assert phone_style(client, "/admin/enrollment/facephoto/") == (["thumbnail", "person"], ["person"])
    assert phone_style(client, "/admin/auth/user/") == (["username", "email"], [])
