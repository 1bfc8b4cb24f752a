"""Names and staff ids stored in one Unicode form (NFC), without invisible characters or spaces
around them (:mod:`enrollment.text`), as the site now stores them: "Zoë" typed on a Mac (NFD: "e"
and a combining diaeresis) and elsewhere (NFC) were two staff ids, which an import made two people,
and a search in one form missed the other. A site where that would make two people's staff ids one
is told which (enrollment.upgrade, before any migration runs) and migrates once one of each has
another staff id: people are never merged. Data only; the reverse leaves the rows normalised."""

from django.db import connection, migrations

from enrollment.text import name_normal, staff_id_normal


def normalise(apps, schema_editor) -> None:
    """Refuse staff ids that would become one; then store each name, department and staff id that
    is not in its stored form so (a name left as it is where that would empty it or make it too
    long: its field's own check says so at its next change)."""
    from enrollment.upgrade import normal_clash_error, staff_id_normal_clashes

    clashes = staff_id_normal_clashes(schema_editor.connection if schema_editor else connection)
    if clashes:
        raise normal_clash_error(clashes, before_any=False)
    Person = apps.get_model("enrollment", "Person")
    fields = {"full_name": name_normal, "department": name_normal, "staff_id": staff_id_normal}
    for pk, *values in Person.objects.values_list("pk", *fields).iterator():
        changed = {}
        for (name, normal), value in zip(fields.items(), values, strict=True):
            new = normal(value)
            if new != value and (new or name == "department") and len(new) <= Person._meta.get_field(name).max_length:
                changed[name] = new
        if changed:
            Person.objects.filter(pk=pk).update(**changed)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0015_stored_errors_without_server_paths"),
    ]

    operations = [
        migrations.RunPython(normalise, migrations.RunPython.noop),
    ]
