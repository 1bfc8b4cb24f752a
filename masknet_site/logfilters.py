"""Logging filters: what the site's log lines must never carry."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

# a kiosk pairing link's one-time code (recognition.urls: kiosk/pair/<code>/)
_PAIRING_CODE = re.compile(r"(/kiosk/pair/)[^/\s\"'?#]+")


def mask_pairing_codes(text: str) -> str:
    """``text`` with each kiosk pairing link's code shown as ``…`` (``/kiosk/pair/…``)."""
    return _PAIRING_CODE.sub(r"\1…", text)


def error_first_line(exc: BaseException, limit: int = 200) -> str:
    """``exc``'s message as a log line may carry it: its first line, at most ``limit`` characters. A
    database driver says which error it was there (a refused connection, a full disk, a lock), and
    puts the statement and its values, personal data among them, on the lines after."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]


class SecretsFilter(logging.Filter):
    """Masks a pairing link's code in every record: Django logs the path of a refused or failed
    request ("Forbidden (CSRF cookie not set.): /kiosk/pair/<code>/"), and the development server
    every request's, while the code may still be unused (Daphne's access log goes to stdout
    without Python's logging: :mod:`masknet_site.daphne_log` masks it there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call: logging reports it, as without the filter
            return True
        masked = mask_pairing_codes(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class ClientErrorTracebackFilter(logging.Filter):
    """Drops the traceback from Django's records of a client's error (a 403, a 404: "Forbidden
    (Permission denied): /attendance/", "Not Found: /x"; a request Django found suspicious, logged
    as an error by ``django.security.*``: "Invalid HTTP_HOST header: 'evil.com'"), keeping the line:
    each carried the whole traceback of the exception raised to answer it, fifteen lines a request
    that anyone, logged in or not, could repeat to flood the log. Server errors (500s, logged as
    errors by ``django.request``) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and (record.name.startswith("django.security.")
                                or (record.name == "django.request" and record.levelno < logging.ERROR)):
            record.exc_info, record.exc_text = None, None
        return True


ROUTINE_TASK = "enrollment.resume_rebuilds"   # scheduled every minute (CELERY_BEAT_SCHEDULE)
# the loggers that say a task was sent, received and finished, by Celery's own names
ROUTINE_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class RoutineTaskFilter(logging.Filter):
    """Drops Celery's INFO lines about the every-minute rebuild check (:data:`ROUTINE_TASK`) when it
    found nothing to do: beat's "Scheduler: Sending due task resume-rebuilds …", the worker's "Task
    enrollment.resume_rebuilds[…] received" and "… succeeded in 0.01s: 0", three lines a minute,
    over 4,000 a day in the journal of a site where nothing happened. A check that handed a rebuild
    on (a result other than 0), a failure, a retry and every other task's lines are kept. Set on
    :data:`ROUTINE_TASK_LOGGERS` themselves (``masknet_site.celery``), so it holds whatever handlers
    Celery installs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        args = record.args
        if record.name == "celery.beat":   # info('Scheduler: Sending due task %s (%s)', entry.name, entry.task)
            return not (isinstance(args, tuple) and len(args) == 2 and args[1] == ROUTINE_TASK
                        and record.msg.startswith("Scheduler: Sending due task"))
        if isinstance(args, Mapping) and args.get("name") == ROUTINE_TASK:
            # received (no result yet), or succeeded with nothing handed on (the result as Celery writes it)
            return "return_value" in args and str(args["return_value"]) not in ("0", "None")
        return True
