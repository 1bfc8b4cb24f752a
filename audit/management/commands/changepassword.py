"""Django's ``changepassword``, audited: who had their password set (never the password)."""

from __future__ import annotations

from django.contrib.auth.management.commands import changepassword

from audit.services import audit_user_saves


class Command(changepassword.Command):
    """``manage.py changepassword``, with the change audited."""

    def handle(self, *args, **options) -> str:
        """Set the password as Django does, then audit it."""
        with audit_user_saves(command="changepassword", change="set the password"):
            return super().handle(*args, **options)
