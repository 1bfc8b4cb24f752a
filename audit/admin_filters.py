"""An admin list filter of a column's values without a scan of every row.

Django's ``AllValuesFieldListFilter`` (what ``list_filter = ("actor",)`` gives a plain field) finds
its choices with ``SELECT DISTINCT actor ... ORDER BY actor``: every row, on every load of the list
(millions of audit events or check-ins). :class:`IndexedValuesFieldListFilter` finds the same
values by a "loose index scan": the smallest value, then the smallest one above it, and so on, each
one probe of the column's index (``WHERE col > last ORDER BY col LIMIT 1``), up to
:attr:`~IndexedValuesFieldListFilter.max_choices` values. The column wants an index (``db_index``)
for each probe to be one.

For the user it is Django's filter: the same URL parameters (``?actor=alice``, ``?actor__isnull=True``
for a nullable column), the same "All" choice, choices, selection, facet counts and handling of
empty strings (a choice of its own, as Django lists it) and NULLs (the empty-value choice, last).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import get_last_value_from_parameters, reverse_field_path
from django.core.exceptions import ValidationError
from django.db.models import Field, Model, QuerySet
from django.http import HttpRequest


def distinct_values(queryset: QuerySet, column: str, limit: int) -> list[Any]:
    """The distinct non-NULL values of ``column`` in ``queryset``, in the database's order: what
    ``queryset.order_by(column).values_list(column, flat=True).distinct()`` returns, found by one
    probe per value (at most ``limit`` values, ``limit + 1`` probes) instead of a DISTINCT over
    every row."""
    values = queryset.order_by(column).values_list(column, flat=True)
    found: list[Any] = []
    value = values.filter(**{f"{column}__isnull": False}).first()   # NULL sorts first on some databases
    while value is not None and len(found) < limit:
        found.append(value)
        if len(found) < limit:
            value = values.filter(**{f"{column}__gt": value}).first()
    return found


class IndexedValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Django's ``AllValuesFieldListFilter`` with its choices found by index probes
    (:func:`distinct_values`) rather than a ``SELECT DISTINCT`` of every row; use it as
    ``list_filter = (("actor", IndexedValuesFieldListFilter),)``.

    At most :attr:`max_choices` values are listed: the smallest ones, in the column's order. Past
    the cap the list ends there and says so under the choices (the template
    ``admin/indexed_values_filter.html``); a value past it is still a filter by its URL
    (``?actor=zoe``), and when it is the one chosen it is listed too (after the others, as chosen),
    as Django would list it, if any row holds it.
    """

    max_choices = 100
    template = "admin/indexed_values_filter.html"

    def __init__(self, field: Field, request: HttpRequest, params: dict[str, list[str]], model: type[Model],
                 model_admin: admin.ModelAdmin, field_path: str) -> None:
        # AllValuesFieldListFilter.__init__, its choices left to be found when the list shows them
        # (a change list built for the CSV export never does)
        self.lookup_kwarg = field_path
        self.lookup_kwarg_isnull = f"{field_path}__isnull"
        self.lookup_val = params.get(self.lookup_kwarg)
        self.lookup_val_isnull = get_last_value_from_parameters(params, self.lookup_kwarg_isnull)
        self.empty_value_display = model_admin.get_empty_value_display()
        parent_model, _reverse_path = reverse_field_path(model, field_path)
        # as Django: the ModelAdmin's queryset (every row, not the filtered list) decides the choices
        if model == parent_model:
            self._probed = model_admin.get_queryset(request)
        else:
            self._probed = parent_model._default_manager.all()
        self._truncated = False
        admin.FieldListFilter.__init__(self, field, request, params, model, model_admin, field_path)

    @cached_property
    def lookup_choices(self) -> list[Any]:
        """The column's distinct values (Django's list: NULL, when a row holds it, last), at most
        :attr:`max_choices` of them and then the chosen value(s) past the cap, if rows hold them;
        :attr:`truncated` says whether values were left out."""
        column, queryset = self.field.name, self._probed
        values = distinct_values(queryset, column, self.max_choices + 1)
        if len(values) > self.max_choices:
            self._truncated = True
            values = values[:self.max_choices]
            listed = {str(v) for v in values}
            for chosen in dict.fromkeys(self.lookup_val or ()):
                if chosen in listed:
                    continue
                try:
                    held = queryset.filter(**{column: chosen}).exists()
                except (ValueError, ValidationError):   # not a value of this column: the list refuses it
                    continue
                if held:
                    values.append(chosen)
                    listed.add(chosen)
        if self.field.null and queryset.filter(**{f"{column}__isnull": True}).exists():
            values.append(None)
        return values

    @property
    def truncated(self) -> bool:
        """Whether the column holds more values than :attr:`max_choices` (some are not listed)."""
        _ = self.lookup_choices
        return self._truncated


class TimeListFilter(admin.DateFieldListFilter):
    """Django's date filter (today, past 7 days, this month…) headed "By time": for a field named
    ``at`` it read "By at"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "time"
