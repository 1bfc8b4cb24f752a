"""Checks an upgrade runs before ``migrate`` changes anything.

A migration that refuses the data it finds (``enrollment`` 0008: staff ids that differ only in
letter case; 0016: staff ids that become one once stored in one Unicode form; 0017: staff ids
whose keys are one, compared ignoring letter case and full-width forms; 0020: staff ids whose keys
are one once dash look-alikes are ``-`` and a dotted ``İ`` is ``i``) would otherwise stop
after the migrations planned before it had run: the database half-upgraded, and the previous
release, put back while the data is fixed, failing on columns it does not know.
:func:`refuse_before_migrating` runs on Django's ``pre_migrate`` signal, before the first migration
of the run.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import CommandError
from django.db import connections

from .text import DASHES, staff_id_key, staff_id_key_0017, staff_id_normal

CASE_UNIQUE_MIGRATION = ("enrollment", "0008_person_staff_id_unique_ignoring_case")
TEXT_NORMAL_MIGRATION = ("enrollment", "0016_person_text_normalised")
STAFF_KEY_MIGRATION = ("enrollment", "0017_person_staff_key")
DASH_KEY_MIGRATION = ("enrollment", "0020_person_staff_key_dashes")
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


def _refusal(rule: str, clashes: list[str], migration: str, before_any: bool, each: str = "group") -> CommandError:
    """``migrate``'s refusal of ``clashes`` under ``rule`` (one paragraph, no traceback): the first
    :data:`SHOWN` of them, what was migrated (``before_any``: nothing; else ``migration`` itself,
    after the run's earlier ones, changed nothing) and what to do."""
    more = f"; and {len(clashes) - SHOWN} more" if len(clashes) > SHOWN else ""
    done = "Nothing was migrated." if before_any else f"Migration enrollment {migration} changed nothing."
    return CommandError(rule + "; ".join(clashes[:SHOWN]) + more + f". {done} Give one of each {each} another "
                        "staff id in the admin (or erase a duplicate person), then run migrate again.")


def case_clash_error(clashes: list[str], *, before_any: bool = True) -> CommandError:
    """The refusal ``migrate`` prints (one paragraph, no traceback); ``before_any``: said before the
    run's first migration (else by 0008 itself, after the run's earlier ones)."""
    return _refusal("staff ids must now be unique ignoring letter case, and these differ only in case: ",
                    clashes, "0008", before_any, each="pair")


def staff_id_normal_clashes(connection) -> list[str]:
    """The staff ids that storing them as the site now does (:func:`enrollment.text.staff_id_normal`:
    NFC, no invisible characters, no spaces around) would make one person's (compared as the unique
    index of 0008 compares them, with the database's ``LOWER``), or empty, or longer than a staff
    id; each as ``"'ZO\\xcb-1' (person #3) and 'ZOE\\u0308-1' (person #9) would be one staff id, 'ZOË-1'"``,
    the stored ids in Python's escapes (else both read the same). Groups whose ids differ in
    letter case alone are :func:`staff_id_case_clashes`'. Empty when there are none."""
    from .models import Person

    longest = Person._meta.get_field("staff_id").max_length
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, staff_id, LOWER(staff_id) FROM enrollment_person ORDER BY id")
        rows = cursor.fetchall()
        groups: dict[str, list[tuple[int, str, str]]] = {}
        problems = []
        for pk, staff_id, lowered in rows:
            normal = staff_id_normal(staff_id)
            if normal != staff_id:   # few rows, if any: compared as the index will compare them
                cursor.execute("SELECT LOWER(%s)", [normal])
                lowered = cursor.fetchone()[0]
                if not normal or len(normal) > longest:
                    problems.append(f"{ascii(staff_id)} (person #{pk}) would be "
                                    + ("empty" if not normal else f"longer than {longest} characters"))
            groups.setdefault(lowered, []).append((pk, staff_id, normal))
    for group in groups.values():
        if len(group) > 1 and any(normal != staff_id for _, staff_id, normal in group):
            them = [f"{ascii(staff_id)} (person #{pk})" for pk, staff_id, _ in group]
            problems.append(f"{', '.join(them[:-1])} and {them[-1]} would be one staff id, {group[0][2]!r}")
    return problems


def normal_clash_error(clashes: list[str], *, before_any: bool = True) -> CommandError:
    """The refusal ``migrate`` prints for :func:`staff_id_normal_clashes` (one paragraph, no
    traceback); ``before_any``: said before the run's first migration (else by 0016 itself)."""
    return _refusal(
        "staff ids are now stored in one Unicode form (NFC: a letter followed by a combining accent, such as "
        "'E\\u0308', becomes the one accented letter, '\\xcb'), without invisible characters (such as \\u200b, "
        "a zero-width space) or spaces around them, and these would then be one staff id (written with "
        "Python's escapes): ", clashes, "0016", before_any)


def staff_key_clashes(connection, *, key: Callable[[str], str] = staff_id_key) -> list[str]:
    """Groups of people whose staff ids have one key (:func:`enrollment.text.staff_id_key`: letter
    case in any script, full-width forms, runs of spaces, dash look-alikes, and the stored form's NFC
    and invisible characters; or ``key``: 0017's, :func:`enrollment.text.staff_id_key_0017`), the
    unique key, each as ``"'ZO\xcb-1' (person #3) and 'zo\xeb-1' (person #9) would be one staff
    id, key 'zoë-1'"`` (the stored ids in Python's escapes: else ``\uff3a`` and ``Z``, or
    ``\u2011`` and ``-``, read the same). Empty when there are none."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, staff_id FROM enrollment_person ORDER BY id")
        rows = cursor.fetchall()
    groups: dict[str, list[tuple[int, str]]] = {}
    for pk, staff_id in rows:
        groups.setdefault(key(staff_id), []).append((pk, staff_id))
    clashes = []
    for shared, group in groups.items():
        if len(group) > 1:
            them = [f"{ascii(staff_id)} (person #{pk})" for pk, staff_id in group]
            clashes.append(f"{', '.join(them[:-1])} and {them[-1]} would be one staff id, key {shared!r}")
    return clashes


def key_clash_error(clashes: list[str], *, before_any: bool = True) -> CommandError:
    """The refusal ``migrate`` prints for :func:`staff_key_clashes` (one paragraph, no traceback);
    ``before_any``: said before the run's first migration (else by 0017 itself)."""
    return _refusal(
        "staff ids are now compared ignoring letter case in every script (on SQLite too), full-width forms "
        "(such as '\\uff3a', a full-width 'Z') and repeated spaces, and these would then be one staff id "
        "(written with Python's escapes): ", clashes, "0017", before_any)


def dash_clash_error(clashes: list[str], *, before_any: bool = True) -> CommandError:
    """The refusal ``migrate`` prints for :func:`staff_key_clashes` under the key of 0020, which
    reads dash look-alikes as ``-`` and a dotted ``İ`` as ``i`` (one paragraph, no traceback);
    ``before_any``: said before the run's first migration (else by 0020 itself)."""
    return _refusal(
        "staff ids are now compared reading the dashes that look like '-' as '-' ("
        + ", ".join(ascii(dash)[1:-1] for dash in DASHES) + ": hyphen, non-breaking hyphen, figure dash, "
        "en dash, minus sign) and a dotted capital I ('\\u0130') as 'i', and these would then be one staff id "
        "(written with Python's escapes): ", clashes, "0020", before_any)


def refuse_before_migrating(sender, *, plan=None, using: str = "default", **kwargs) -> None:
    """``pre_migrate`` receiver: stop a ``migrate`` that would apply 0008 over case-duplicate staff
    ids, or 0016, 0017 or 0020 over staff ids that would become one, before it applies anything
    (``CommandError``: the message, no traceback)."""
    planned = {(m.app_label, m.name) for m, backwards in plan or () if not backwards}
    if not planned & {CASE_UNIQUE_MIGRATION, TEXT_NORMAL_MIGRATION, STAFF_KEY_MIGRATION, DASH_KEY_MIGRATION}:
        return
    connection = connections[using]
    if "enrollment_person" not in connection.introspection.table_names():
        return   # a new database: nobody to compare
    if CASE_UNIQUE_MIGRATION in planned and (clashes := staff_id_case_clashes(connection)):
        raise case_clash_error(clashes)
    if TEXT_NORMAL_MIGRATION in planned and (clashes := staff_id_normal_clashes(connection)):
        raise normal_clash_error(clashes)
    if STAFF_KEY_MIGRATION in planned and (clashes := staff_key_clashes(connection, key=staff_id_key_0017)):
        raise key_clash_error(clashes)
    if DASH_KEY_MIGRATION in planned and (clashes := staff_key_clashes(connection)):
        raise dash_clash_error(clashes)
