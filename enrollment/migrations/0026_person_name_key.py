"""``Person.name_key``: the name without its accents (:func:`enrollment.text.name_key`), which the
people searches compare besides the name itself, so that "chavez" finds "Hugo Chávez": staff type
names without accents, and the searches compared them as typed. Set by ``Person.save``; filled
here for everyone enrolled before. A person the release before adds while ``migrate`` runs gets the
database default (empty) and is found by their name as typed until their next save."""

from django.db import migrations, models

from enrollment.text import name_key

BATCH = 500


def fill_name_keys(apps, schema_editor) -> None:
    """Each person's name key, from their name as stored."""
    Person = apps.get_model("enrollment", "Person")
    people = [Person(pk=pk, name_key=name_key(name)) for pk, name in Person.objects.values_list("pk", "full_name")]
    Person.objects.bulk_update(people, ["name_key"], batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0025_kept_from_checkin_backfill"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="name_key",
            field=models.CharField(blank=True, db_default="", default="", editable=False),
        ),
        migrations.RunPython(fill_name_keys, migrations.RunPython.noop),
    ]
