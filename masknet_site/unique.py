"""Saving a row whose unique field a concurrent writer may have taken since ``full_clean()``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Value
from django.db.models.functions import Lower


def save_unique(obj: models.Model, field: str, *, ignoring_case: bool = False, **save_kwargs: object) -> None:
    """Save ``obj``. ``full_clean()`` checked ``field``'s uniqueness, but a concurrent request can
    take the value before this save: that ``IntegrityError`` is raised as the same
    ``ValidationError`` ``full_clean()`` would have raised (a 400 with the field's message, not a
    500). ``ignoring_case``: the field is unique ignoring letter case (a constraint on ``LOWER``, compared
    the same way).
    Any other integrity error propagates."""
    try:
        with transaction.atomic():   # a savepoint: the caller's transaction stays usable
            obj.save(**save_kwargs)
    except IntegrityError:
        model = type(obj)
        value = getattr(obj, field)
        taken = (model._default_manager.alias(_lower=Lower(field)).filter(_lower=Lower(Value(value))) if ignoring_case
                 else model._default_manager.filter(**{field: value}))
        if obj.pk is not None:
            taken = taken.exclude(pk=obj.pk)
        if not taken.exists():
            raise
        raise ValidationError({field: [obj.unique_error_message(model, (field,))]}) from None
