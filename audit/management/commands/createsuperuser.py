"""Django's ``createsuperuser``, audited: the user it creates and the roles it grants are written
to the audit log (the admin's pages audit the users they create; this command did not), as the
system's or, with ``--actor``, that user's."""

from __future__ import annotations

from django.contrib.auth.management.commands import createsuperuser

from audit.management.actor import add_actor_argument, command_actor
from audit.services import audit_user_saves


class Command(createsuperuser.Command):
    """``manage.py createsuperuser``, with its creation audited."""

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        add_actor_argument(parser, "the user created")

    def handle(self, *args, **options) -> None:
        """Create the superuser as Django does, then audit it (as ``--actor``'s user: one who may add
        users and give them roles in the admin, ``auth.add_user`` and ``auth.change_user``; checked
        before any question is asked)."""
        actor = command_actor(options.pop("actor", None), ["auth.add_user", "auth.change_user"],
                              changes="the user created", holders="a superuser has them")
        with audit_user_saves(command="createsuperuser", change="changed", actor=actor):
            super().handle(*args, **options)
