"""Staff ids unique ignoring letter case: ``QA-1`` and ``qa-1`` were two people, whom attendance and
its CSVs listed apart. A site that already has such a pair is told which, and migrates once one of
them has another staff id (or was erased)."""

from django.db import migrations, models
from django.db.models.functions import Lower


def refuse_case_duplicates(apps, schema_editor) -> None:
    Person = apps.get_model("enrollment", "Person")
    seen: dict[str, tuple[int, str]] = {}
    clashes = []
    for pk, staff_id in Person.objects.order_by("pk").values_list("pk", "staff_id").iterator():
        key = staff_id.lower()   # Unicode: stricter than SQLite's LOWER (ASCII), never looser
        if key in seen:
            clashes.append(f"{seen[key][1]!r} (person #{seen[key][0]}) and {staff_id!r} (person #{pk})")
        else:
            seen[key] = (pk, staff_id)
    if clashes:
        raise RuntimeError("staff ids must now be unique ignoring letter case, and these differ only in case: "
                           + "; ".join(clashes[:20]) + (f"; and {len(clashes) - 20} more" if len(clashes) > 20 else "")
                           + ". Give one of each pair another staff id in the admin (or erase a duplicate person), "
                             "then run migrate again.")


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
