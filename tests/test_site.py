"""Site-wide URLs."""

import pytest


@pytest.mark.django_db
def test_home_leads_staff_to_attendance_behind_a_login(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[0][0] == "/attendance/"
    assert "login" in response.redirect_chain[-1][0]


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    """A model change without its migration would pass every test here (pytest-django builds the
    test database from the migrations) and fail on a real deployment's ``migrate``."""
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
