"""Production settings: secrets only from the environment, `check --deploy` clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "masknet_site.settings.prod",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-from-the-environment-0123456789",
    "DJANGO_ALLOWED_HOSTS": "masknet.example.org",
    "DATABASE_URL": "postgres://masknet:secret@db.example.org:5432/masknet",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.reliability
def test_check_deploy_is_clean_with_the_documented_environment():
    proc = manage("check", "--deploy", "--fail-level", "WARNING", **PROD_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


@pytest.mark.reliability
@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    proc = manage("check", **env)
    assert proc.returncode != 0
    assert missing in proc.stderr

