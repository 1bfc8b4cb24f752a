"""The admin index's "Recent actions": a link only to a page its user may open.

Django's panel links every entry of the user's own log but deletions to the object's change page,
whatever the user may do there now: a desk user (``recognition.add_checkin`` alone) who recorded a
check-in by hand found it listed as a link that answered 403, as did anyone whose permission to
view a kind of object was taken away after they changed one.
"""

from __future__ import annotations

from django import template
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.http import HttpRequest

register = template.Library()


@register.simple_tag(takes_context=True)
def log_entry_url(context: template.Context, entry: LogEntry) -> str:
    """``entry``'s admin address when the request's user may view or change objects of its kind
    (as the kind's ModelAdmin decides), else ``""``: the panel then names the object without a link."""
    request: HttpRequest | None = context.get("request")
    url = entry.get_admin_url() if not entry.is_deletion() else None
    if not url or request is None or entry.content_type is None:
        return ""
    model = entry.content_type.model_class()
    model_admin = admin.site._registry.get(model) if model is not None else None
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return ""
    return url
