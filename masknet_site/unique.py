"""Saving a row whose unique field a concurrent writer may have taken since ``full_clean()``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q


def save_unique(obj: models.Model, field: str, *, key: str | None = None, **save_kwargs: object) -> None:
    """Save ``obj``. ``full_clean()`` checked ``field``'s uniqueness, but a concurrent request can
    take the value before this save: that ``IntegrityError`` is raised as the same
    ``ValidationError`` ``full_clean()`` would have raised (a 400 with the field's message, not a
    500). ``key``: the unique field, set by ``obj.save()``, that decides whether two values of ``field``
    are one (a person's ``staff_key``); the error is said on ``field``.
    Any other integrity error propagates."""
    try:
        with transaction.atomic():   # a savepoint: the caller's transaction stays usable
            obj.save(**save_kwargs)
    except IntegrityError:
        model = type(obj)
        same = Q(**{field: getattr(obj, field)})
        if key:
            same |= Q(**{key: getattr(obj, key)})
        taken = model._default_manager.filter(same)
        if obj.pk is not None:
            taken = taken.exclude(pk=obj.pk)
        if not taken.exists():
            raise
        raise ValidationError({field: [obj.unique_error_message(model, (field,))]}) from None
