"""Face search (API identify and verify) gets a permission of its own, ``recognise_face``: staff
who could view the people list could run a 1:N face search with it. The Enrollers role keeps it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    """Add the permission to the Enrollers group as it is (an operator may have changed its other
    permissions, or removed it: neither is undone here)."""
    # permissions are normally created after all migrations; the group needs this one now
    app_config = apps.get_app_config("enrollment")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    permission = apps.get_model("auth", "Permission").objects.get(content_type__app_label="enrollment",
                                                                  codename="recognise_face")
    for group in apps.get_model("auth", "Group").objects.filter(name="Enrollers"):
        group.permissions.add(permission)


def revoke(apps, schema_editor):
    apps.get_model("auth", "Permission").objects.filter(content_type__app_label="enrollment",
                                                        codename="recognise_face").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0004_photo_embed_attempts"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="person",
            options={"ordering": ["full_name", "id"],
                     "permissions": [("erase_person", "Can erase a person's biometric data"),
                                     ("rebuild_index", "Can rebuild the recognition index"),
                                     ("recognise_face", "Can identify and verify faces (API)")],
                     "verbose_name_plural": "people"},
        ),
        migrations.RunPython(grant, revoke),
    ]
