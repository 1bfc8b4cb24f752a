"""Test runs on one machine take turns at the test Redis database (``tests.conftest.redis_db_held``):
two runs at once emptied each other's database and counted each other's rate-limited calls."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import redis_db_held, redis_lock_path

REPO = Path(__file__).resolve().parent.parent


def test_a_second_run_waits_for_the_first_to_be_done_with_the_database():
    url = f"redis://127.0.0.1:6379/15?probe={uuid.uuid4().hex}"   # a lock of this test's own
    # another run (a process of its own) holding the database until told to let go
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom tests.conftest import redis_db_held\n"
                               f"with redis_db_held({url!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n"],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(pytest.fail.Exception, match="another test run held the Redis database"):
            with redis_db_held(url, timeout=0.5):
                pass
        holder.stdin.close()   # its run is done
        assert holder.wait(timeout=60) == 0
        with redis_db_held(url, timeout=10):   # this run's turn
            with pytest.raises(pytest.fail.Exception):
                with redis_db_held(url, timeout=0.2):   # one at a time, within one process too
                    pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        redis_lock_path(url).unlink(missing_ok=True)
