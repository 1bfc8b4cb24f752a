"""The admin's change lists on a phone: the columns that name a row, the others left out.

Django's ``responsive.css`` does nothing for ``#changelist`` tables on a narrow screen but let the
results scroll sideways in their own box (``changelists.css``: ``.results { overflow-x: auto }``):
a 375 px phone showed 330 px of the check-ins' 988 px table, of the photos' 1048 px, of the
training runs' 1013 px, and a row scrolled sideways to its score left its time and name behind.
Up to 767 px (a phone held upright; most phones turned sideways are wider) each list keeps the
columns its admin names in ``list_display_phone`` (by default its first two, the actions' checkbox
aside) and hides the rest, which the row's own page shows. Wider screens are untouched.
"""

from __future__ import annotations

import re

from django import template
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.utils.html import format_html, format_html_join

register = template.Library()

PHONE_MAX_WIDTH_PX = 767      # responsive.css's own "Mobile" width
DEFAULT_PHONE_COLUMNS = 2
_CLASS_NAME = re.compile(r"[A-Za-z_][\w-]*\Z")


def phone_columns(cl: ChangeList) -> list[str]:
    """The names of ``cl``'s columns shown on a phone, in ``list_display`` order: those of the
    admin's ``list_display_phone``, or its first :data:`DEFAULT_PHONE_COLUMNS`."""
    names = [name for name in cl.list_display if isinstance(name, str) and name != "action_checkbox"]
    chosen = getattr(cl.model_admin, "list_display_phone", None)
    return [name for name in names if name in chosen] if chosen else names[:DEFAULT_PHONE_COLUMNS]


def _may_wrap(cl: ChangeList, name: str) -> bool:
    """Whether the column ``name`` is a foreign key's, which Django keeps on one line ("nowrap", as
    it does a date's): a person's name and staff id, 369 px of the photos' 330 on a phone. A date
    and time stays on its line (it broke at its hyphens, "2026-" over "12-05", once allowed to wrap)."""
    try:
        return cl.model._meta.get_field(name).many_to_one
    except FieldDoesNotExist:
        return False


@register.simple_tag
def phone_columns_style(cl: ChangeList) -> str:
    """A ``<style>`` that, up to :data:`PHONE_MAX_WIDTH_PX`, hides every cell of the results table
    but the checkbox and :func:`phone_columns` (Django classes a column's heading ``column-<name>``
    and its cells ``field-<name>``), and lets the foreign keys' cells among them wrap."""
    kept = [name for name in phone_columns(cl) if _CLASS_NAME.match(name)]
    shown = format_html_join("", ", .column-{0}, .field-{0}", ((name,) for name in kept))
    wrapped = format_html_join(", ", "#result_list .field-{}", ((name,) for name in kept if _may_wrap(cl, name)))
    return format_html("<style>@media (max-width: {}px) {{ #result_list tr > :not(.action-checkbox-column, "
                       ".action-checkbox{}) {{ display: none; }}{} }}</style>", PHONE_MAX_WIDTH_PX, shown,
                       format_html(" {} {{ white-space: normal; }}", wrapped) if wrapped else "")
