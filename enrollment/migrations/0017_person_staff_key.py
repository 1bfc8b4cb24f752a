"""Staff ids compared by a key stored beside them (``Person.staff_key``, unique:
:func:`enrollment.text.staff_id_key`), computed in Python, instead of a unique ``LOWER(staff_id)``:
SQLite's ``LOWER`` folds ASCII letters only (``ZOË-1`` and ``zoë-1`` were two people there, one on
PostgreSQL), and neither folded full-width forms (``ＺＯＥ-1``, typed on a Japanese keyboard) or runs
of spaces, ids that look the same as another's. A site where that would make two people's staff
ids one is told which (enrollment.upgrade, before any migration runs) and migrates once one of
each has another staff id: people are never merged. The staff ids themselves are unchanged.
The key as it was then (:func:`enrollment.text.staff_id_key_0017`): 0020 reads dashes since."""

from django.db import connection, migrations, models

from enrollment.text import staff_id_key_0017


def refuse_key_clashes(apps, schema_editor) -> None:
    """Stop here when two people's staff ids have one key (``migrate`` normally stops earlier,
    before its first migration: enrollment.upgrade)."""
    from enrollment.upgrade import key_clash_error, staff_key_clashes

    clashes = staff_key_clashes(schema_editor.connection if schema_editor else connection, key=staff_id_key_0017)
    if clashes:
        raise key_clash_error(clashes, before_any=False)


def fill_keys(apps, schema_editor) -> None:
    """Every person's key, from their staff id."""
    Person = apps.get_model("enrollment", "Person")
    people = list(Person.objects.only("pk", "staff_id"))
    for person in people:
        person.staff_key = staff_id_key_0017(person.staff_id) or None
    Person.objects.bulk_update(people, ["staff_key"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0016_person_text_normalised"),
    ]

    operations = [
        migrations.RunPython(refuse_key_clashes, migrations.RunPython.noop),
        # nullable: the release before, still serving while migrate runs, inserts people without it
        migrations.AddField(
            model_name="person",
            name="staff_key",
            field=models.CharField(editable=False, max_length=None, null=True),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="person",
            name="staff_key",
            field=models.CharField(editable=False, max_length=None, null=True, unique=True),
        ),
        migrations.RemoveConstraint(
            model_name="person",
            name="enrollment_person_staff_id_lower_uniq",
        ),
    ]
