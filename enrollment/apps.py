from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    """People, their face photos and the gallery index."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "enrollment"
