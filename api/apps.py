"""App configuration of the REST API."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The ``api`` app: tokens, authentication, permissions and the ``/api/v1/`` endpoints."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "api"
    verbose_name = "API"
