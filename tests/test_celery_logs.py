"""Celery's lines about the every-minute rebuild check stay out of the log when it did nothing
(``masknet_site.logfilters.RoutineTaskFilter``): beat's "Sending due task", the worker's "received"
and "succeeded … : 0" were three lines a minute in a quiet site's journal. Emitted here by Celery's
own code (its tracer running the real task, its scheduler sending the real schedule entry)."""

from __future__ import annotations

import logging
import uuid

import pytest
from celery import beat
from celery.app import trace
from celery.worker import strategy

from enrollment.tasks import resume_rebuilds_task
from masknet_site.celery import app
from masknet_site.logfilters import ROUTINE_TASK

pytestmark = pytest.mark.django_db


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("celery.")]


def test_the_rebuild_check_that_found_nothing_logs_nothing(caplog):
    caplog.set_level(logging.INFO)
    # beat: the schedule's own entry, sent (the broker call left out: only its log line is looked at)
    scheduler = beat.Scheduler(app, lazy=True)
    scheduler.apply_async = lambda *args, **kwargs: None
    entry = beat.ScheduleEntry(name="resume-rebuilds", app=app, **app.conf.beat_schedule["resume-rebuilds"])
    scheduler.apply_entry(entry)
    # the worker: received, then the real task traced as a worker runs it (nothing to resume: 0)
    strategy.logger.info(trace.LOG_RECEIVED, {"id": "1", "name": ROUTINE_TASK, "args": "()", "kwargs": "{}",
                                              "eta": None})
    tracer = trace.build_tracer(ROUTINE_TASK, resume_rebuilds_task, app=app, eager=False)
    result = tracer(str(uuid.uuid4()), (), {}, {})
    assert result.retval == 0 and result.info is None   # succeeded, nothing handed on
    assert lines(caplog) == []


def test_its_other_lines_and_every_other_tasks_are_kept(caplog):
    """A check that handed rebuilds on says so, and the other tasks' lines are as Celery writes them."""
    caplog.set_level(logging.INFO)
    trace.info(trace.LOG_SUCCESS, {"id": "2", "name": ROUTINE_TASK, "return_value": "1", "runtime": 0.01,
                                   "args": "()", "kwargs": "{}"})
    strategy.logger.info(trace.LOG_RECEIVED, {"id": "3", "name": "enrollment.rebuild_index", "args": "()",
                                              "kwargs": "{}", "eta": None})
    scheduler = beat.Scheduler(app, lazy=True)
    scheduler.apply_async = lambda *args, **kwargs: None
    scheduler.apply_entry(beat.ScheduleEntry(name="purge-expired", app=app,
                                             **app.conf.beat_schedule["purge-expired"]))
    logging.getLogger("celery.app.trace").warning("Task %s[%s] retry", ROUTINE_TASK, "4")
    assert lines(caplog) == [f"Task {ROUTINE_TASK}[2] succeeded in 0.01s: 1",
                             "Task enrollment.rebuild_index[3] received",
                             "Scheduler: Sending due task purge-expired (recognition.purge_expired)",
                             f"Task {ROUTINE_TASK}[4] retry"]
