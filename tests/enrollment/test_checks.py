"""The system check of the task settings: a countdown Redis would take for a lost task."""

from __future__ import annotations

from django.core.management import call_command
from django.test import override_settings

from enrollment.checks import task_countdowns, task_redelivery


@override_settings(REDIS_URL="redis://127.0.0.1:6379/0", MASKNET_TASK_REDELIVERY_S=120)
def test_a_wait_longer_than_redelivery_is_warned() -> None:
    messages = task_redelivery()
    assert [m.id for m in messages] == ["masknet.W001"]
    assert "retention purge" in messages[0].msg and "300" in messages[0].msg


@override_settings(REDIS_URL="redis://127.0.0.1:6379/0", MASKNET_TASK_REDELIVERY_S=600)
def test_the_defaults_pass() -> None:
    assert max(task_countdowns().values()) < 600
    assert task_redelivery() == []


@override_settings(REDIS_URL="redis://127.0.0.1:6379/0", MASKNET_TASK_REDELIVERY_S=600,
                   MASKNET_REBUILD_DEBOUNCE_S=900)
def test_a_long_debounce_is_warned() -> None:
    assert "MASKNET_REBUILD_DEBOUNCE_S" in task_redelivery()[0].msg


@override_settings(REDIS_URL="redis://127.0.0.1:6379/0", MASKNET_TASK_REDELIVERY_S=600, MASKNET_REBUILD_STALE_S=900)
def test_a_rebuild_copy_waiting_longer_than_redelivery_is_warned() -> None:
    # a copy of a running rebuild's message waits up to MASKNET_REBUILD_STALE_S for its heartbeat
    assert "MASKNET_REBUILD_STALE_S" in task_redelivery()[0].msg


@override_settings(REDIS_URL=None, MASKNET_TASK_REDELIVERY_S=5)
def test_the_embedded_runner_has_no_redelivery() -> None:
    assert task_redelivery() == []


@override_settings(REDIS_URL="redis://127.0.0.1:6379/0", MASKNET_TASK_REDELIVERY_S=60)
def test_manage_py_check_reports_it(capsys) -> None:
    call_command("check")  # a warning is reported, not raised
    assert "masknet.W001" in capsys.readouterr().err
