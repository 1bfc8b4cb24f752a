from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    """People, their face photos and the gallery index."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "enrollment"

    def ready(self) -> None:
        """Registers the app's system checks, the checks ``migrate`` runs before it changes
        anything (:mod:`enrollment.upgrade`), and text lookups that fold letter case in every script
        on SQLite too (:mod:`masknet_site.text_search`: people's names in searches)."""
        from django.db.models.signals import pre_migrate

        from masknet_site import text_search

        from . import checks  # noqa: F401
        from .upgrade import refuse_before_migrating

        text_search.register()

        pre_migrate.connect(refuse_before_migrating, sender=self, dispatch_uid="enrollment-upgrade-checks")
