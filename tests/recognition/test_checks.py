"""masknet.W002: TIME_ZONE changed after check-ins were recorded (their stored days move)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from enrollment import services as enrollment
from recognition import services
from recognition.checks import time_zone_unchanged

pytestmark = pytest.mark.django_db


@pytest.fixture
def late_checkin(settings):
    """A check-in at 23:30 UTC, recorded with TIME_ZONE UTC."""
    settings.TIME_ZONE = "UTC"
    person = enrollment.person_create(actor=None, full_name="Eileen Collins", staff_id="E-1")
    kiosk, _code = services.kiosk_create(actor=None, name="Front door")
    at = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    with timezone.override("UTC"):
        services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.5, masked=False,
                                frames=3, index_version=1, at=at)


def test_the_same_time_zone_passes(late_checkin):
    with timezone.override("UTC"):
        assert time_zone_unchanged(databases=["default"]) == []


def test_another_time_zone_is_warned(late_checkin):
    with timezone.override("Europe/Paris"):          # 00:30 the next day there
        [warning] = time_zone_unchanged(databases=["default"])
    assert warning.id == "masknet.W002" and "1 of the latest 1 check-ins" in warning.msg


def test_only_database_checks_run_it(late_checkin, capsys):
    with timezone.override("Europe/Paris"):
        assert time_zone_unchanged() == []           # a plain `manage.py check` does not query
        call_command("check", "--database", "default")
    assert "masknet.W002" in capsys.readouterr().err
