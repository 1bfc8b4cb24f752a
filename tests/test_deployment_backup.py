"""docs/deployment.md's "Backup and restore", followed in the order it is read.

Followed as written on a production-form site (PostgreSQL, Redis, Daphne, a Celery worker), the
restore worked, but the step it needs first, exporting the audit log from the admin while the site
still runs, was asked for only three paragraphs after the restore's commands: read in order, the
export came after the database it should have been taken from was dropped, and with it every
erasure since the backup. Its shell blocks also ran ``.venv/bin/python`` without the ``cd`` into
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


def test_the_audit_export_is_asked_for_before_anything_is_stopped_or_dropped():
    text = section()
    export = text.find("*Export CSV*")
    assert export != -1
    assert export < text.index("DROP SCHEMA"), "the audit export comes after the database is dropped"
    assert export < text.index("stop every Daphne"), "the export needs the admin: before the site is stopped"


def test_each_block_that_runs_the_checkouts_python_goes_into_the_checkout_first():
    for block in shell_blocks(section()):
        if ".venv/bin/python" not in block:
            continue
        lines = [line.split("#")[0].strip() for line in block.splitlines()]
        first_python = next(i for i, line in enumerate(lines) if ".venv/bin/python" in line)
        assert f"cd {APP}" in lines[:first_python], block


def test_the_restore_steps_come_in_the_order_the_prose_gives():
    blocks = "\n".join(shell_blocks(section()))
    steps = ["DROP SCHEMA public CASCADE", "pg_restore ", "manage.py migrate", 'find "$DJANGO_MEDIA_ROOT"',
             'tar -C "$DJANGO_MEDIA_ROOT" -xpf', 'find "$MASKNET_INDEX_DIR"',
             "reapply_erasures /backup/audit.csv --dry-run", "reapply_erasures /backup/audit.csv  ",
             "rebuild_index --wait"]
    at = {step: blocks.find(step) for step in steps}
    assert -1 not in at.values(), at
    assert list(at.values()) == sorted(at.values()), at
