"""Case-insensitive text lookups that ignore letter case in every script on SQLite too.

SQLite's ``LIKE``, which Django's ``icontains``, ``istartswith``, ``iendswith`` and ``iexact`` use,
folds ASCII letters only: on the embedded default a search for "élodie" or "иван" found nobody named
"Élodie" or "Иван", where PostgreSQL's ``UPPER()`` finds them. Here each of those lookups, on SQLite
and for a text that is not plain ASCII, compares the column's ``lower()`` with the text's, through a
function this module gives each new SQLite connection (:data:`LOWER_SQL`): ``lower()``, not
``casefold()``, which reads "ß" as "ss" ("weiß" then found "WEISS" but "weiss" not "Weiß", and
PostgreSQL neither). A plain ASCII text keeps SQLite's own ``LIKE`` (the same answer, without a
Python call per row: a non-ASCII search of a large table takes several times longer, 0.4 s for
300,000 rows a column); PostgreSQL is untouched. Registered for every text field by
``enrollment``'s app config (:func:`register`).
"""

from __future__ import annotations

from django.db.backends.signals import connection_created
from django.db.models import CharField, TextField, lookups

LOWER_SQL = "masknet_lower"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _give_lower(sender, connection, **kwargs) -> None:
    """Give a new SQLite connection :data:`LOWER_SQL` (``str.lower``)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(LOWER_SQL, 1, _lower, deterministic=True)


class _FoldedOnSQLite:
    """A pattern lookup that, on SQLite and for a non-ASCII text, matches lower-cased values."""

    lookup_name: str
    pattern: str   # "%{}%", "{}%", "%{}", "{}"

    def as_sqlite(self, compiler, connection):
        if not (isinstance(self.rhs, str) and not self.rhs.isascii()):
            return self.as_sql(compiler, connection)
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        text = connection.ops.prep_for_like_query(self.rhs.lower())
        return f"{LOWER_SQL}({lhs_sql}) LIKE %s ESCAPE '\\'", [*lhs_params, self.pattern.format(text)]


class FoldedIContains(_FoldedOnSQLite, lookups.IContains):
    pattern = "%{}%"


class FoldedIStartsWith(_FoldedOnSQLite, lookups.IStartsWith):
    pattern = "{}%"


class FoldedIEndsWith(_FoldedOnSQLite, lookups.IEndsWith):
    pattern = "%{}"


class FoldedIExact(_FoldedOnSQLite, lookups.IExact):
    pattern = "{}"


def register() -> None:
    """Use the folded lookups for every ``CharField`` and ``TextField`` (their subclasses included)
    and give each new SQLite connection its function."""
    for field in (CharField, TextField):
        for lookup in (FoldedIContains, FoldedIStartsWith, FoldedIEndsWith, FoldedIExact):
            field.register_lookup(lookup)
    connection_created.connect(_give_lower, dispatch_uid="masknet-sqlite-lower")
