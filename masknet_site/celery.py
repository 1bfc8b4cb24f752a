"""Celery application (the documented Django boilerplate).

With ``REDIS_URL`` set, tasks go to Redis and run on Celery workers. Without it
(the embedded default) ``CELERY_TASK_ALWAYS_EAGER`` is off too, and the project's
task helpers run the task in a background thread of the web process instead.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.dev")

app = Celery("masknet_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
