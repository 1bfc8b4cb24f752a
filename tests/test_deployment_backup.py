"""docs/deployment.md's "Backup and restore", followed in the order it is read.

Followed as written on a production-form site (PostgreSQL, Redis, Daphne, a Celery worker), the
restore worked, but the step it needs first, exporting the audit log, was asked for only three
paragraphs after the restore's commands: read in order, the export came after the database it
should have been taken from was dropped, and with it every erasure since the backup. The export is
now a command run with the site stopped (``manage.py export_audit``). Its shell blocks also ran
``.venv/bin/python`` without the ``cd`` into
the checkout that the install section's block has.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "deployment.md"
APP = "/opt/masknet/app"   # the guide's checkout


def section() -> str:
    text = GUIDE.read_text()
    start = text.index("## Backup and restore")
    return text[start:text.index("\n## ", start + 1)]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def test_the_audit_export_is_taken_once_everything_is_stopped_and_before_anything_is_dropped():
    """First taken from the admin while the site ran (an erasure between the export and the stop was
    missing from it), now by ``manage.py export_audit`` with every part of the site stopped."""
    text = section()
    blocks = "\n".join(shell_blocks(text))
    export = blocks.find("manage.py export_audit /backup/audit.csv")
    assert export != -1 and export < blocks.index("DROP SCHEMA"), "the audit export comes after the drop"
    assert text.index("stop every Daphne") < text.index("export_audit"), "exported while the site still ran"


def test_each_block_that_runs_the_checkouts_python_goes_into_the_checkout_first():
    for block in shell_blocks(section()):
        if ".venv/bin/python" not in block:
            continue
        lines = [line.split("#")[0].strip() for line in block.splitlines()]
        first_python = next(i for i, line in enumerate(lines) if ".venv/bin/python" in line)
        assert f"cd {APP}" in lines[:first_python], block


def test_the_restore_steps_come_in_the_order_the_prose_gives():
    blocks = "\n".join(shell_blocks(section()))
    steps = ["manage.py export_audit /backup/audit.csv --erased-ids /backup/erased-ids.csv",
             "DROP SCHEMA public CASCADE", "pg_restore ",
             "manage.py migrate", 'find "$DJANGO_MEDIA_ROOT"',
             'tar -C "$DJANGO_MEDIA_ROOT" -xpf', 'find "$MASKNET_INDEX_DIR"',
             "reapply_erasures /backup/audit.csv --erased-ids /backup/erased-ids.csv --dry-run",
             "reapply_erasures /backup/audit.csv --erased-ids /backup/erased-ids.csv  ",
             "rebuild_index --wait"]
    at = {step: blocks.find(step) for step in steps}
    assert -1 not in at.values(), at
    assert list(at.values()) == sorted(at.values()), at
