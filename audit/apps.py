from django.apps import AppConfig


class AuditConfig(AppConfig):
    """An append-only log of administrative changes, recognition decisions and staff logins, shared by every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        """Connects the login, logout and failed-login records, and the login's time that bounds
        its lifetime (``masknet_site.session_lifetime``)."""
        from masknet_site import session_lifetime  # noqa: F401

        from . import logins  # noqa: F401
