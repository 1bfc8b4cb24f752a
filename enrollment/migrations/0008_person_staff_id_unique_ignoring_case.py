"""Staff ids unique ignoring letter case: ``QA-1`` and ``qa-1`` were two people, whom attendance and
its CSVs listed apart. A site that already has such a pair is told which, and migrates once one of
them has another staff id (or was erased)."""

from django.db import connection, migrations, models
from django.db.models.functions import Lower


def refuse_case_duplicates(apps, schema_editor) -> None:
    """Stop here when such a pair exists (``migrate`` normally stops earlier, before its first
    migration: enrollment.upgrade)."""
    from enrollment.upgrade import case_clash_error, staff_id_case_clashes

    clashes = staff_id_case_clashes(schema_editor.connection if schema_editor else connection)
    if clashes:
        raise case_clash_error(clashes, before_any=False)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0007_person_gallery_adaptation"),
    ]

    operations = [
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop),
        # in the model's state (a later migration that rebuilds the table on SQLite keeps it);
        # Person.validate_unique says it first, on the field
        migrations.AddConstraint(
            model_name="person",
            constraint=models.UniqueConstraint(Lower("staff_id"), name="enrollment_person_staff_id_lower_uniq"),
        ),
    ]
