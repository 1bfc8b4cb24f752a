"""Site-wide URLs."""

import pytest


@pytest.mark.django_db
def test_home_leads_staff_to_attendance_behind_a_login(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[0][0] == "/attendance/"
    assert "login" in response.redirect_chain[-1][0]
