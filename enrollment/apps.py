from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    """People, their face photos and the gallery index."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "enrollment"

    def ready(self) -> None:
        """Registers the app's system checks and the checks ``migrate`` runs before it changes
        anything (:mod:`enrollment.upgrade`)."""
        from django.db.models.signals import pre_migrate

        from . import checks  # noqa: F401
        from .upgrade import refuse_before_migrating

        pre_migrate.connect(refuse_before_migrating, sender=self, dispatch_uid="enrollment-upgrade-checks")
