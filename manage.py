#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# a production machine's environment file (docs/deployment.md, "Environment"): where it exists, a
# command run without it loaded would take the development settings and their SQLite file, and,
# say, create a superuser or migrate a database that no site reads, saying nothing
PRODUCTION_ENV = "/etc/masknet/env"


def main() -> None:
    """Run administrative tasks."""
    env_file = os.environ.get("MASKNET_ENV_FILE", PRODUCTION_ENV)
    if "DJANGO_SETTINGS_MODULE" not in os.environ and os.path.exists(env_file):
        sys.exit(f"{env_file} is not loaded: DJANGO_SETTINGS_MODULE is not set, and this command would use the "
                 f"development settings and their SQLite database. Load it first (set -a; . {env_file}; set +a), "
                 "or set DJANGO_SETTINGS_MODULE=masknet_site.settings.dev to use those on purpose.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masknet_site.settings.dev")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:   # a setting from the environment refused: one line, not a traceback
        sys.exit(f"MaskNet is not configured correctly: {exc}")


if __name__ == "__main__":
    main()
