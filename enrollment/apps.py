from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    """People, their face photos and the gallery index."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "enrollment"

    def ready(self) -> None:
        """Registers the app's system checks."""
        from . import checks  # noqa: F401
