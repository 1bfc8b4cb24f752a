"""Past inactive periods (``PersonInactivePeriod``): a reactivation cleared ``Person.deactivated_at``,
so that someone away for three months and then reactivated counted as expected, and missing, on
every working day of those months in attendance's pages, chart and summary. From now on each
reactivation keeps the period it ends (``enrollment.services.person_update``).

The periods that ended before are read from the audit log, in each person's records in time
order, where a deactivation and a reactivation pair up: a deactivation (0019's reading of a record:
a ``deactivate`` record, or an older release's ``update`` naming ``active``) opens a period, a later
one while it is open changes nothing (a deactivation applied again after a restore: the first is
when they left), and the next reactivation ("...: active; reactivated") closes it. An older release's
``update`` naming ``active`` (before 2026-12-05) said so of a reactivation too (a change of the locked
row's ``active`` either way): one while a period is open is the reactivation that closes it. A reactivation
whose person's record of creation is their latest record before it that says anything of
``active`` closes a period from their creation (created inactive, as an import's ``active`` no
does; the creation's record does not say so). Any other reactivation has no known start and gives
no period: that person counts as before, as if active all along. Records from before the person's
creation are someone else's (an id used again after a restored backup) and are skipped."""

import importlib

from django.db import migrations, models

PERSON = "enrollment.person"
BATCH = 500

_0019 = importlib.import_module("enrollment.migrations.0019_person_deactivated_at")


def fill_periods(apps, schema_editor) -> None:
    """The inactive periods the audit log's records pair into (module docstring), for every person."""
    Person = apps.get_model("enrollment", "Person")
    Period = apps.get_model("enrollment", "PersonInactivePeriod")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    created = dict(Person.objects.values_list("pk", "created_at"))
    ids = sorted(created)
    for start in range(0, len(ids), BATCH):
        batch = {str(pk): created[pk] for pk in ids[start:start + BATCH]}
        # per person, while a period may be open: ("off", when they were deactivated), or ("created",
        # their creation) until their first change of "active" says which they were created
        open_: dict[str, tuple[str, object]] = {}
        periods = []
        records = (AuditEvent.objects.filter(object_type=PERSON, object_id__in=list(batch),
                                             action__in=["create", "deactivate", "update"])
                   .order_by("at", "id").values_list("object_id", "action", "summary", "at"))
        for object_id, action, summary, at in records.iterator():
            if at < batch[object_id]:
                continue
            if action == "create":
                open_[object_id] = ("created", batch[object_id])
                continue
            said = _0019._deactivation(action, summary)
            if said is True and action == "update" and open_.get(object_id, ("on", None))[0] == "off":
                # an older release's "updated person #12: active" recorded ticking the box as unticking it,
                # a change of the locked row's: of someone inactive, their reactivation (read as a
                # deactivation again, the period stayed open across their time back)
                said = False
            if said is True:
                if open_.get(object_id, ("on", None))[0] != "off":   # deactivated again: the first stays
                    open_[object_id] = ("off", at)
            elif said is False and object_id in open_:
                periods.append(Period(person_id=int(object_id), deactivated_at=open_.pop(object_id)[1],
                                      reactivated_at=at))
        Period.objects.bulk_create(periods, batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0020_person_staff_key_dashes"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonInactivePeriod",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("deactivated_at", models.DateTimeField(blank=True, null=True)),
                ("reactivated_at", models.DateTimeField()),
                ("person", models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="inactive_periods",
                                             to="enrollment.person")),
            ],
            options={"ordering": ["person", "reactivated_at", "id"]},
        ),
        migrations.RunPython(fill_periods, migrations.RunPython.noop),
    ]
