from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    """The recognizer's Django side: models install, evaluation commands, kiosk socket."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "recognition"

    def ready(self) -> None:
        """Registers the app's system checks."""
        from . import checks  # noqa: F401
