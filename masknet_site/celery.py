"""Celery application (the documented Django boilerplate).

With ``REDIS_URL`` set, tasks go to Redis and run on Celery workers. Without it
(the embedded default) ``CELERY_TASK_ALWAYS_EAGER`` is off too, and the project's
task helpers run the task in a background thread of the web process instead.
"""

import logging
import os

from celery import Celery
from celery.signals import beat_init, worker_init

from masknet_site.logfilters import ROUTINE_TASK_LOGGERS, RoutineTaskFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.dev")

app = Celery("masknet_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# quiet about the every-minute rebuild check when it finds nothing (masknet_site.logfilters)
for _name in ROUTINE_TASK_LOGGERS:
    logging.getLogger(_name).addFilter(RoutineTaskFilter())


@worker_init.connect
@beat_init.connect
def refuse_the_in_memory_broker(sender: object = None, **kwargs: object) -> None:
    """A worker or beat started without ``REDIS_URL`` (an environment that did not reach it: a
    systemd unit without its EnvironmentFile, ``sudo``) would serve a broker of its own that no web
    process sends to: rebuilds never run, the retention purge never reaches a worker. Stop instead."""
    broker = str(app.conf.broker_url or "")
    if broker.startswith("memory://"):
        raise SystemExit(f"celery: the broker is {broker!r}, private to this process; set REDIS_URL (and "
                         f"DJANGO_SETTINGS_MODULE) as on the web nodes (docs/deployment.md)")
