"""The admin's time picker offers 24-hour times (00:00, 06:00, 12:00, 18:00), as every staff page
writes them, not Django's "Midnight", "6 a.m.", "Noon", "6 p.m." (static/staff/clock24.js, loaded by
templates/admin/change_form.html after DateTimeShortcuts.js on forms with a date and time field).

* Fast (test client): the script comes after DateTimeShortcuts.js where a form has the picker, and
  not where it has none.
* In a real headless Chromium (tests/enrollment/test_admin_browser.py's logged-in browser): the
  clock's choices, and a choice filling in its time, under the site's Content-Security-Policy.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from enrollment import services as enrollment
from tests.enrollment.test_admin_browser import admin_browser  # noqa: F401
from tests.recognition.test_kiosk_e2e import browser_available  # noqa: F401
from tests.test_csp import until

SCRIPT = "/static/staff/clock24.js"


@pytest.mark.django_db
def test_the_24_hour_clock_is_loaded_after_the_picker_only_where_there_is_one(admin_client):
    user = User.objects.get(username="admin")
    person = enrollment.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1")
    for url in (reverse("admin:api_apitoken_add"), reverse("admin:recognition_checkin_add")):
        html = admin_client.get(url).content.decode()
        picker = html.find("/admin/js/admin/DateTimeShortcuts.js")
        assert 0 < picker < html.find(SCRIPT), url
    # (a user's page: its last login and date joined are shown, not typed, since 2026-12-07)
    for url in (reverse("admin:enrollment_person_change", args=[person.pk]), reverse("admin:auth_group_add"),
                reverse("admin:auth_user_change", args=[user.pk])):
        html = admin_client.get(url).content.decode()
        assert "DateTimeShortcuts.js" not in html and SCRIPT not in html, url


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_clock_offers_24_hour_times(admin_browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    driver, server = admin_browser
    driver.get_log("browser")   # what the login said
    driver.get(server.url + reverse("admin:api_apitoken_add"))
    field = driver.find_element(By.NAME, "expires_at_1")
    clock = until(lambda: driver.find_element(By.ID, "clocklink0"), 5, "the picker's clock link")   # expires_at's
    # the icon links named for screen readers, with their input's name (Django's carry an icon alone)
    assert clock.get_attribute("aria-label") == "Choose a Time: Expires at (time of day)"
    assert driver.find_element(By.ID, "calendarlink0").get_attribute("aria-label") == (
        "Choose a Date: Expires at (date)")
    clock.click()
    box = until(lambda: (b := driver.find_element(By.ID, "clockbox0")).is_displayed() and b, 5, "the clock")
    choices = [a.text for a in box.find_elements(By.CSS_SELECTOR, ".timelist a")]
    assert choices == ["Now", "00:00", "06:00", "12:00", "18:00"], choices
    box.find_element(By.LINK_TEXT, "18:00").click()
    assert field.get_attribute("value") == "18:00:00"
    assert not [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
