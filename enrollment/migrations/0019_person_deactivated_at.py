"""When a person was deactivated (``Person.deactivated_at``): attendance's past days counted people
by whether they are active now, so that someone deactivated today vanished from the missing lists
of every earlier day (a month already exported read otherwise a month later). From now on every
deactivation sets it and a reactivation clears it.

People already inactive get the time of the audit log's latest record of their deactivation: a
``deactivate`` record, or, from releases before 2026-12-05 that recorded unticking "active" on the
admin's form or in an API PATCH as an ``update``, an ``update`` record whose changed fields include
``active`` (the latest change of ``active`` of someone inactive now is their deactivation). Without
one it stays NULL: unknown, and attendance treats them as before, never expected on any day."""

from django.db import migrations, models

PERSON = "enrollment.person"
BATCH = 500


def _deactivation(action: str, summary: str) -> bool | None:
    """What an audit record of a person says of ``active``: ``True`` a deactivation (a ``deactivate``
    record, or an older release's update, "updated person #12: department, active", whose changed
    fields name it), ``False`` a reactivation ("...: active; reactivated"), ``None`` neither."""
    if action == "deactivate":
        return True
    fields, _, rest = summary.partition(": ")[2].partition(";")
    if "active" not in (name.strip() for name in fields.split(",")):
        return None
    return "reactivated" not in rest


def fill_deactivated_at(apps, schema_editor) -> None:
    """Each inactive person without a date given the time of their latest deactivation the audit
    log records (module docstring); the others left NULL."""
    Person = apps.get_model("enrollment", "Person")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    inactive = list(Person.objects.filter(active=False, deactivated_at__isnull=True).values_list("pk", flat=True))
    found = []
    for start in range(0, len(inactive), BATCH):
        ids = [str(pk) for pk in inactive[start:start + BATCH]]
        latest: dict[str, object] = {}
        records = (AuditEvent.objects.filter(object_type=PERSON, object_id__in=ids, action__in=["deactivate", "update"])
                   .order_by("at", "id").values_list("object_id", "action", "summary", "at"))
        for object_id, action, summary, at in records.iterator():
            said = _deactivation(action, summary)
            if said is not None:   # in time order: the last change of "active" stays
                latest[object_id] = at if said else None
        # the last change a reactivation, yet inactive (a restored backup?): unknown, left NULL
        found += [Person(pk=int(object_id), deactivated_at=at) for object_id, at in latest.items() if at is not None]
    Person.objects.bulk_update(found, ["deactivated_at"], batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0018_erasedstaffid"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="deactivated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_deactivated_at, migrations.RunPython.noop),
    ]
