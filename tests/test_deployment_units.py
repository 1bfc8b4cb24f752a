"""docs/deployment.md's systemd units: what its prose asks of a unit is in them, and systemd reads them.

The guide long said "run each command under a process supervisor" and listed what a unit needs
(the environment file, the service user, ``UMask=0077``, ``%%h``, ``KillMode=mixed``) in prose only:
a deployer wrote the units from memory, and a missing ``KillMode=mixed`` killed a rebuild at each
restart. The units are now in the guide; this reads them from there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "deployment.md"
APP = "/opt/masknet/app"   # the guide's checkout


def units() -> dict[str, str]:
    """The guide's ``ini`` blocks by the file name their first comment gives."""
    found = {}
    for block in re.findall(r"```ini\n(.*?)```", GUIDE.read_text(), re.DOTALL):
        first, _, body = block.partition("\n")
        name = re.fullmatch(r"# /etc/systemd/system/(\S+\.service)( \(.*\))?", first)
        assert name, first
        found[name.group(1)] = body
    return found


def setting(unit: str, key: str) -> list[str]:
    """Every value of ``key`` in ``unit`` (systemd allows some keys more than once)."""
    return re.findall(rf"^{re.escape(key)}=(.*)$", unit, re.MULTILINE)


def test_the_guide_has_a_unit_for_each_part():
    assert set(units()) == {"masknet-web.service", "masknet-worker@.service", "masknet-beat.service"}


@pytest.mark.parametrize("name", ["masknet-web.service", "masknet-worker@.service", "masknet-beat.service"])
def test_each_unit_runs_as_the_guide_says(name):
    """The environment file (secrets, ``DJANGO_SETTINGS_MODULE``: without it the command ran the
    development settings), the service user, private files, restarted when it dies."""
    unit = units()[name]
    assert setting(unit, "EnvironmentFile") == ["/etc/masknet/env"]
    assert setting(unit, "User") == ["masknet"] and setting(unit, "Group") == ["masknet"]
    assert setting(unit, "UMask") == ["0077"]
    assert setting(unit, "Restart") == ["always"]
    assert setting(unit, "WorkingDirectory") == [APP]
    assert setting(unit, "WantedBy") == ["multi-user.target"]
    [command] = setting(unit, "ExecStart")
    assert command.startswith(f"{APP}/.venv/bin/"), command


@pytest.mark.parametrize("name", ["masknet-web.service", "masknet-worker@.service", "masknet-beat.service"])
def test_each_units_output_reaches_the_journal_as_it_is_written(name):
    """Under systemd stdout is a pipe to the journal, which Python buffers 8 KiB at a time: Daphne's
    access log (stdout, never flushed) reached ``journalctl -u masknet-web`` minutes late on a quiet
    site, and a crash lost the lines still held (tried: a request's line was in the file only once
    Daphne exited). ``PYTHONUNBUFFERED=1`` writes each line as it comes."""
    assert "PYTHONUNBUFFERED=1" in setting(units()[name], "Environment"), name


def test_the_worker_finishes_its_task_when_stopped_and_names_itself_by_host():
    unit = units()["masknet-worker@.service"]
    assert setting(unit, "KillMode") == ["mixed"]
    assert setting(unit, "TimeoutStopSec")
    [command] = setting(unit, "ExecStart")
    # systemd replaces a single %h with the user's home before Celery sees it
    assert "-n worker%i@%%h" in command and "--concurrency 1" in command


def test_the_units_start_the_guides_commands():
    """The same command lines as "Starting each part" (Daphne with ``--proxy-headers``, the worker,
    beat's schedule under the service user's home)."""
    # the guide without its unit blocks: each unit's own ExecStart holds its command line, so the
    # whole guide always did, whatever "Starting each part" said
    guide = re.sub(r"```ini\n.*?```", "", GUIDE.read_text(), flags=re.DOTALL)
    web = setting(units()["masknet-web.service"], "ExecStart")[0]
    assert re.sub(r"-b \S+", "-b 10.0.0.11", web.replace(f"{APP}/", "")) in guide
    beat = setting(units()["masknet-beat.service"], "ExecStart")[0]
    assert beat.replace(f"{APP}/", "") in guide
    worker = setting(units()["masknet-worker@.service"], "ExecStart")[0]
    assert worker.replace(f"{APP}/", "").replace("worker%i@%%h", "worker1@%h") in guide


SANDBOX = {"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "PrivateTmp": "yes", "PrivateDevices": "yes",
           "ProtectSystem": "strict", "ProtectHome": "yes", "ProtectProc": "invisible", "ProtectKernelTunables": "yes",
           "ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes",
           "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes"}


def environment() -> dict[str, str]:
    """The guide's environment file (its ``sh`` block holding ``DJANGO_SETTINGS_MODULE``)."""
    for block in re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.DOTALL):
        if block.startswith("DJANGO_SETTINGS_MODULE="):
            return dict(re.findall(r"^([A-Z_]+)=(.*)$", block, re.MULTILINE))
    raise AssertionError("the guide's environment file is gone")


@pytest.mark.parametrize("name", ["masknet-web.service", "masknet-worker@.service", "masknet-beat.service"])
def test_each_unit_is_sandboxed_and_may_write_where_it_writes(name):
    """The system read-only (``ProtectSystem=strict``) but for the folders the part writes: the web
    node and the workers the photos (uploads, webcam captures, gallery adaptation) and the index files
    (a rebuild, or the in-process one of ``MASKNET_SINGLE_NODE``) where the guide's environment puts
    them; beat its schedule, under the folder of ``--schedule``. A folder left out would fail each
    upload or rebuild with "Read-only file system"; one more would only widen what a compromised
    process can touch."""
    unit = units()[name]
    for key, value in SANDBOX.items():
        assert setting(unit, key) == [value], (name, key)
    [writable] = setting(unit, "ReadWritePaths")
    if name == "masknet-beat.service":
        [command] = setting(unit, "ExecStart")
        schedule = re.search(r"--schedule (\S+)", command).group(1)
        assert writable.split() == [str(Path(schedule).parent)]
    else:
        env = environment()
        assert sorted(writable.split()) == sorted([env["DJANGO_MEDIA_ROOT"], env["MASKNET_INDEX_DIR"]])



def test_a_site_on_sqlite_is_told_to_let_the_web_unit_write_its_database():
    """The units name the folders of the guide's PostgreSQL layout; a one-node site on SQLite (which the
    production settings accept) keeps its database in a file that ``ProtectSystem=strict`` leaves read-only
    to Daphne. Tried with the web unit's sandbox made by hand (read-only bind mounts but for its
    ``ReadWritePaths=``, the service user): ``/healthz`` answered 200 (it only reads) while the admin's
    login answered 500, ``attempt to write a readonly database``; with the database's folder added, the
    login, an enrolment and the in-process rebuild worked. The guide and the web unit say so, the folder
    (SQLite writes its journal beside the file) and not the checkout."""
    unit = units()["masknet-web.service"]
    before = unit.split("\nReadWritePaths=")[0].splitlines()[-1]
    assert before.startswith("#") and "SQLite" in before and "folder" in before, before
    guide = re.sub(r"```ini\n.*?```", "", GUIDE.read_text(), flags=re.DOTALL)
    said = re.search(r"A site on\s+SQLite.*?attempt to write a readonly\s+database", guide, re.DOTALL)
    assert said and "ReadWritePaths=" in said.group(0) and "folder, not the file" in said.group(0)


def test_the_guide_says_the_units_never_cache_a_flatbuffer():
    """``ProtectSystem=strict`` leaves ``MASKNET_MODELS_DIR`` read-only to every unit: a flatbuffer that
    ``install_models`` did not build (a descriptor switched in the environment file afterwards) is no
    longer built once and cached by the first start but converted at every start. Tried under the
    unit's sandbox made by hand: dlib's ResNet took 3.8 s and the log said "could not cache ...
    ([Errno 30] Read-only file system ...): converting it at every start"."""
    guide = re.sub(r"```ini\n.*?```", "", GUIDE.read_text(), flags=re.DOTALL)
    said = re.search(r"Under the systemd units below the models folder is\s+always read-only.*?at every start`",
                     guide, re.DOTALL)
    assert said and "install_models" in said.group(0) and "MASKNET_DESCRIPTOR" in said.group(0)

def test_systemd_rates_the_units_sandbox(tmp_path):
    """``systemd-analyze security --offline`` (systemd 252 and later) rates each unit's exposure from
    0 (locked down) to 10; without the sandbox's lines each was 9.2 "UNSAFE"."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    for name, body in units().items():
        path = tmp_path / name
        path.write_text(body.replace(APP, str(REPO)))
        rated = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(path)],
                               capture_output=True, text=True, timeout=60)
        if "--offline" in rated.stderr and rated.returncode != 0:
            pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {rated.stderr.strip()[:200]}")
        level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", rated.stdout)
        assert level, rated.stdout[-500:] + rated.stderr
        assert float(level.group(1)) <= 3.5, (name, level.group(0))


def test_systemd_reads_the_units(tmp_path):
    """``systemd-analyze verify`` (offline: no running systemd needed) reports unknown keys or
    sections, bad values and commands that are not executable; the checkout here stands for
    /opt/masknet/app, whose ``.venv`` it has."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    for program in ("daphne", "celery"):
        if not (REPO / ".venv" / "bin" / program).exists():
            pytest.skip(f".venv/bin/{program} is missing (make setup)")
    paths = []
    for name, body in units().items():
        path = tmp_path / name
        path.write_text(body.replace(APP, str(REPO)))
        paths.append(str(path))
    checked = subprocess.run([analyze, "verify", "--man=no", *paths], capture_output=True, text=True, timeout=60)
    said = [line for line in (checked.stdout + checked.stderr).splitlines() if "masknet-" in line]
    assert not said, "\n".join(said)
    assert checked.returncode == 0, checked.stderr
