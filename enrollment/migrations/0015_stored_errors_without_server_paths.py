"""Errors stored before the site hid server paths and database text from them (a failed rebuild's
``error``, a photo's ``embedding_error``: shown in the admin, the progress socket, ``status.json``,
the API and a person's data export) rewritten as they are written now. Data only; the reverse
keeps them rewritten (the original text is in the server's log of the time)."""

from django.db import migrations

from enrollment.services.common import stored_error_shown


def rewrite(apps, schema_editor) -> None:
    """Rewrite each stored error that shows a server path or a database's text."""
    for model, field, limit in (("TrainingRun", "error", 2000), ("FacePhoto", "embedding_error", 200)):
        rows = apps.get_model("enrollment", model).objects.exclude(**{field: ""})
        for pk, text in rows.values_list("pk", field).iterator():
            shown = stored_error_shown(text)[:limit]
            if shown != text:
                rows.filter(pk=pk).update(**{field: shown})


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0014_facephoto_file_missing_swept'),
    ]

    operations = [
        migrations.RunPython(rewrite, migrations.RunPython.noop, elidable=True),
    ]
