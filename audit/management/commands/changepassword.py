"""Django's ``changepassword``, audited: who had their password set (never the password), and by
whom with ``--actor``."""

from __future__ import annotations

from django.contrib.auth.management.commands import changepassword

from audit.management.actor import add_actor_argument, command_actor
from audit.services import audit_user_saves


class Command(changepassword.Command):
    """``manage.py changepassword``, with the change audited."""

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        add_actor_argument(parser, "the password set")

    def handle(self, *args, **options) -> str:
        """Set the password as Django does, then audit it (as ``--actor``'s user: one who may set a
        user's password in the admin, ``auth.change_user``)."""
        actor = command_actor(options.pop("actor", None), ["auth.change_user"], changes="the password set",
                              holders="a superuser has it")
        with audit_user_saves(command="changepassword", change="set the password", actor=actor):
            return super().handle(*args, **options)
