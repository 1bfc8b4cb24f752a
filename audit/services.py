"""Writing to the audit log (the only write the log allows)."""

from __future__ import annotations

from django.db import models

from .models import AuditEvent


def _actor_fields(actor: object | None) -> tuple[int | None, str]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, "system"
    return actor.pk, actor.get_username()


def audit_record(*, actor: object | None, action: str, summary: str,
                 obj: models.Model | None = None, object_type: str = "", object_id: object = "") -> AuditEvent:
    """Append one event. ``obj`` (a model instance) or ``object_type``/``object_id`` name the
    object; ``actor`` is a user or ``None`` for the system (commands, background jobs).
    ``summary`` must not contain biometric data or names."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id if object_id != "" else obj.pk
    actor_id, actor_name = _actor_fields(actor)
    return AuditEvent.objects.create(actor_id=actor_id, actor=actor_name, action=action,
                                     object_type=object_type, object_id=str(object_id if object_id is not None else ""),
                                     summary=summary[:300])
