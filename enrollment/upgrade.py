"""Checks an upgrade runs before ``migrate`` changes anything.

A migration that refuses the data it finds (``enrollment`` 0008: staff ids that differ only in
letter case) would otherwise stop after the migrations planned before it had run: the database
half-upgraded, and the previous release, put back while the data is fixed, failing on columns it
does not know. :func:`refuse_before_migrating` runs on Django's ``pre_migrate`` signal, before the
first migration of the run.
"""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import connections

CASE_UNIQUE_MIGRATION = ("enrollment", "0008_person_staff_id_unique_ignoring_case")
SHOWN = 20


def staff_id_case_clashes(connection) -> list[str]:
    """Pairs of people whose staff ids the database's ``LOWER`` makes equal (as the unique index
    of 0008 compares them: PostgreSQL lowers Unicode, SQLite only ASCII), as
    ``"'A-1' (person #3) and 'a-1' (person #9)"``; empty when there are none."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, staff_id, LOWER(staff_id) FROM enrollment_person WHERE LOWER(staff_id) IN ("
                       " SELECT LOWER(staff_id) FROM enrollment_person GROUP BY LOWER(staff_id)"
                       " HAVING COUNT(*) > 1) ORDER BY LOWER(staff_id), id")
        rows = cursor.fetchall()
    first: dict[str, tuple[int, str]] = {}
    clashes = []
    for pk, staff_id, key in rows:
        if key in first:
            clashes.append(f"{first[key][1]!r} (person #{first[key][0]}) and {staff_id!r} (person #{pk})")
        else:
            first[key] = (pk, staff_id)
    return clashes


def case_clash_error(clashes: list[str], *, before_any: bool = True) -> CommandError:
    """The refusal ``migrate`` prints (one paragraph, no traceback); ``before_any``: said before the
    run's first migration (else by 0008 itself, after the run's earlier ones)."""
    more = f"; and {len(clashes) - SHOWN} more" if len(clashes) > SHOWN else ""
    done = "Nothing was migrated." if before_any else "Migration enrollment 0008 changed nothing."
    return CommandError(
        "staff ids must now be unique ignoring letter case, and these differ only in case: "
        + "; ".join(clashes[:SHOWN]) + more + f". {done} Give one of each pair another staff "
        "id in the admin (or erase a duplicate person), then run migrate again.")


def refuse_before_migrating(sender, *, plan=None, using: str = "default", **kwargs) -> None:
    """``pre_migrate`` receiver: stop a ``migrate`` that would apply 0008 over case-duplicate staff
    ids before it applies anything (``CommandError``: the message, no traceback)."""
    if not plan or (CASE_UNIQUE_MIGRATION, False) not in {((m.app_label, m.name), backwards) for m, backwards in plan}:
        return
    connection = connections[using]
    if "enrollment_person" not in connection.introspection.table_names():
        return   # a new database: nobody to compare
    clashes = staff_id_case_clashes(connection)
    if clashes:
        raise case_clash_error(clashes)
