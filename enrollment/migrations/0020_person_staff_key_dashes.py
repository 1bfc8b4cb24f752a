"""Staff ids' keys (``Person.staff_key``) computed again by :func:`enrollment.text.staff_id_key`,
which now reads the dashes that look like ``-`` as ``-`` (hyphen U+2010, non-breaking hyphen
U+2011, figure dash U+2012, en dash U+2013, minus sign U+2212: what HR's spreadsheets and Word
paste, so that a folder ``A\u2011100`` became a second person beside ``A-100``) and an ``i`` with a
dot above (``\u0130``, a Turkish keyboard's capital ``i``, casefolded) as ``i``. A site where that
would make two people's staff ids one is told which (enrollment.upgrade, before any migration
runs) and migrates once one of each has another staff id: people are never merged. The staff ids
themselves are unchanged; so are the erased staff ids' digests (of the key before: they are
matched under both keys, ``ErasedStaffIdQuerySet``)."""

from collections.abc import Callable

from django.db import connection, migrations

from enrollment.text import staff_id_key, staff_id_key_0017


def refuse_key_clashes(apps, schema_editor) -> None:
    """Stop here when two people's staff ids have one key (``migrate`` normally stops earlier,
    before its first migration: enrollment.upgrade)."""
    from enrollment.upgrade import dash_clash_error, staff_key_clashes

    clashes = staff_key_clashes(schema_editor.connection if schema_editor else connection)
    if clashes:
        raise dash_clash_error(clashes, before_any=False)


def _rekey(apps, key: Callable[[str], str]) -> None:
    """Every person's ``staff_key`` as ``key`` makes it from their staff id, where it changes (a key
    the release before left NULL too): first NULL, then the new key, so that no row takes, even for
    a moment, a key another still holds."""
    Person = apps.get_model("enrollment", "Person")
    changed = []
    for person in Person.objects.only("pk", "staff_id", "staff_key").iterator(chunk_size=2000):
        if (new := key(person.staff_id) or None) != person.staff_key:
            person.staff_key = new
            changed.append(person)
    for start in range(0, len(changed), 500):
        Person.objects.filter(pk__in=[person.pk for person in changed[start:start + 500]]).update(staff_key=None)
    Person.objects.bulk_update(changed, ["staff_key"], batch_size=500)


def recompute_keys(apps, schema_editor) -> None:
    """Every person's key by :func:`enrollment.text.staff_id_key`."""
    _rekey(apps, staff_id_key)


def restore_keys(apps, schema_editor) -> None:
    """Back to 0017's keys (:func:`enrollment.text.staff_id_key_0017`), which the release before
    compares: never a clash, since ids of one key then have one key now."""
    _rekey(apps, staff_id_key_0017)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0019_person_deactivated_at"),
    ]

    operations = [
        migrations.RunPython(refuse_key_clashes, migrations.RunPython.noop),
        migrations.RunPython(recompute_keys, restore_keys),
    ]
