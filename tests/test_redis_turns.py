"""Test runs on one machine take turns at the test Redis database (``tests.conftest.redis_db_held``):
two runs at once emptied each other's database and counted each other's rate-limited calls."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
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


def test_the_lock_file_opens_for_every_user_whatever_the_umask_of_the_run_that_made_it():
    """A run under a private umask (``077``, common on shared machines) made the lock file ``0600``:
    every other user's run then failed to open it (PermissionError), where it should have waited."""
    url = f"redis://127.0.0.1:6379/15?probe={uuid.uuid4().hex}"
    before = os.umask(0o077)
    try:
        with redis_db_held(url, timeout=5):
            mode = stat.S_IMODE(redis_lock_path(url).stat().st_mode)
    finally:
        os.umask(before)
        redis_lock_path(url).unlink(missing_ok=True)
    assert mode == 0o644, oct(mode)


def test_a_lock_file_another_user_made_opens_without_asking_to_create_it(monkeypatch):
    """Linux's ``fs.protected_regular`` (1 on systemd's distributions, Debian's included) refuses an
    ``O_CREAT`` open of a file another user owns in a world-writable sticky folder such as /tmp, even
    read-only and even for root: the second user's run got PermissionError. That rule is played here
    (the kernel of the test machine may not have it on, and the tests run as one user)."""
    url = f"redis://127.0.0.1:6379/15?probe={uuid.uuid4().hex}"
    path = redis_lock_path(url)
    path.touch(0o644)   # made by "another user's" run
    real_open = os.open

    def open_as_another_user(file, flags, *args, **kwargs):
        if Path(file) == path and flags & os.O_CREAT and path.exists():
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_another_user)
    try:
        with redis_db_held(url, timeout=5):
            pass
    finally:
        monkeypatch.undo()
        path.unlink(missing_ok=True)


def test_asking_again_for_the_database_this_process_holds_fails_at_once():
    """Taken twice by one process (a test holding ``redis_url`` that takes it again), the lock can
    never be had: that waited out the whole ``timeout`` (300 s) before failing."""
    url = f"redis://127.0.0.1:6379/15?probe={uuid.uuid4().hex}"
    try:
        with redis_db_held(url, timeout=5):
            started = time.monotonic()
            with pytest.raises(pytest.fail.Exception, match="this process holds it already"):
                with redis_db_held(url, timeout=5):
                    pass
            assert time.monotonic() - started < 1
        with redis_db_held(url, timeout=1):   # and it was let go
            pass
    finally:
        redis_lock_path(url).unlink(missing_ok=True)
