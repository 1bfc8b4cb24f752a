from django.apps import AppConfig


class AuditConfig(AppConfig):
    """An append-only log of administrative changes, recognition decisions and staff logins, shared by every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        """Connects the login, logout and failed-login records."""
        from . import logins  # noqa: F401
