"""The rows an admin change list shows, for its CSV export."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest
from django.db.models import QuerySet
from django.http import HttpRequest


def changelist_queryset(model_admin: admin.ModelAdmin, request: HttpRequest) -> QuerySet:
    """The change list's rows under the request's filters, search and date drill-down. A filter
    value the change list cannot read (``?at__gte=notadate``) is a 400, as the change list itself
    refuses it (it redirects to ``?e=1``), never a 500."""
    try:
        return model_admin.get_changelist_instance(request).get_queryset(request)
    except IncorrectLookupParameters as exc:
        raise BadRequest(f"cannot filter by these parameters: {exc}") from exc
