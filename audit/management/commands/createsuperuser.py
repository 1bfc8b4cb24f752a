"""Django's ``createsuperuser``, audited: the user it creates and the roles it grants are written
to the audit log (the admin's pages audit the users they create; this command did not)."""

from __future__ import annotations

from django.contrib.auth.management.commands import createsuperuser

from audit.services import audit_user_saves


class Command(createsuperuser.Command):
    """``manage.py createsuperuser``, with its creation audited."""

    def handle(self, *args, **options) -> None:
        """Create the superuser as Django does, then audit it."""
        with audit_user_saves(command="createsuperuser", change="changed"):
            super().handle(*args, **options)
