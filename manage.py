#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# a production machine's environment file (docs/deployment.md, "Environment"): where it exists, a
# command run without it loaded would take the development settings and their SQLite file, and,
# say, create a superuser or migrate a database that no site reads, saying nothing
PRODUCTION_ENV = "/etc/masknet/env"


def _present(path: str) -> bool:
    """Whether ``path`` exists, or may: its folder is one this user cannot look into (``/etc/masknet``
    is readable by the service's group only), where ``os.path.exists`` says no."""
    folder = os.path.dirname(path) or "."
    return os.path.exists(path) or (os.path.isdir(folder) and not os.access(folder, os.X_OK))


# commands that keep the default SIGTERM: the development server (its autoreloader's parent and child)
# and the interactive shells, where a KeyboardInterrupt only ends the line being typed
SIGTERM_KEPT = {"runserver", "testserver", "shell", "dbshell"}


def _stop_on_sigterm() -> None:
    """A command stopped with SIGTERM (``timeout``, systemd, a job runner, ``kill``) ends as Ctrl-C
    ends it, through its own handling: ``import_people`` records what it added in the audit log,
    ``rebuild_index --wait`` marks its run interrupted at once (left running, it held up every
    rebuild until its heartbeat went stale). The default ended the process on the spot, saying nothing;
    one without handling of its own still ends by SIGTERM, after a line that says so."""
    import signal

    from masknet_site.command_line import Terminated

    def stop(signum, frame):
        raise Terminated

    command = sys.argv[1] if len(sys.argv) > 1 else None   # as Django reads it: the first argument
    if command not in SIGTERM_KEPT and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """Run administrative tasks."""
    env_file = os.environ.get("MASKNET_ENV_FILE", PRODUCTION_ENV)
    chosen = "DJANGO_SETTINGS_MODULE" in os.environ or any(
        arg == "--settings" or arg.startswith("--settings=") for arg in sys.argv[1:])
    if not chosen and _present(env_file):
        sys.exit(f"{env_file} is not loaded: DJANGO_SETTINGS_MODULE is not set, and this command would use the "
                 f"development settings and their SQLite database. Load it first (set -a; . {env_file}; set +a), "
                 "or set DJANGO_SETTINGS_MODULE (or --settings) to masknet_site.settings.dev to use those on purpose.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.dev")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    _stop_on_sigterm()
    try:
        execute_from_command_line(sys.argv)
    except KeyboardInterrupt as exc:   # a command without handling of its own: one line, not a traceback
        if "--traceback" in sys.argv:
            raise
        import signal

        from masknet_site.command_line import Terminated, stopped_by

        print(stopped_by(exc), file=sys.stderr)
        sys.stderr.flush()
        # ended by the signal itself, as Python ends on an uncaught Ctrl-C: a shell running it in a
        # loop or a script stops there (an exit status of 130 let bash go on to the next command)
        stop = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        signal.signal(stop, signal.SIG_DFL)
        os.kill(os.getpid(), stop)
    except ImproperlyConfigured as exc:   # a setting from the environment refused: one line, not a traceback
        sys.exit(f"MaskNet is not configured correctly: {exc}")
    except DatabaseError as exc:
        # the database down, unreachable or not migrated: one line that says so (export_audit, a step
        # of the restore runbook, printed 88 lines of traceback), unless --traceback asks for it.
        # Only the driver's first line: the statement and its values (personal data) come after it
        if "--traceback" in sys.argv:
            raise
        from masknet_site.logfilters import error_first_line

        sys.exit(f"the database failed ({type(exc).__name__}: {error_first_line(exc)}); is it running and "
                 "reachable (DATABASE_URL), and migrated (manage.py migrate)? Add --traceback for the details.")


if __name__ == "__main__":
    main()
