"""How the suite is collected for ``make test``'s two processes (pytest-xdist; ``tests/conftest.py``):
every test its own node id, and the reliability package first, as one group."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from tests.conftest import REPO


def collected(*args: str) -> list[str]:
    """The node ids ``pytest --collect-only`` lists for ``args``, in its order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REDIS_URL"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "--ds=masknet_site.settings.test", "-q",
                           "-p", "no:cacheprovider", "--collect-only", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_each_test_has_a_node_id_of_its_own():
    """schemathesis gave each API operation of the schema test one shared id, and xdist ran one of
    those 12 tests (one node id, one test to it): 11 operations went untested under ``make test``."""
    ids = collected("tests/api/test_schema.py")
    assert ids and not [i for i, n in Counter(ids).items() if n > 1]
    schema = [i for i in ids if "::test_get_endpoints_against_the_schema" in i]
    assert len(schema) >= 10 and "test_get_endpoints_against_the_schema[GET /api/v1/people]" in " ".join(schema)


def test_under_xdist_the_reliability_package_runs_first_and_otherwise_in_collection_order():
    """Its ~3 minutes, started last, were the run's tail; one process keeps pytest's order."""
    args = ("tests/test_masks.py", "tests/reliability")
    plain, parallel = collected(*args), collected("-n", "2", "--dist", "loadgroup", *args)
    assert sorted(plain) == sorted(parallel)
    reliability = [i for i in plain if i.startswith("tests/reliability/")]
    assert len(reliability) >= 5 and set(parallel[:len(reliability)]) == set(reliability)
    assert set(plain[:len(reliability)]) != set(reliability)   # pytest's (and pytest-django's) order
