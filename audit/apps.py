from django.apps import AppConfig


class AuditConfig(AppConfig):
    """An append-only log of administrative changes, shared by every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
