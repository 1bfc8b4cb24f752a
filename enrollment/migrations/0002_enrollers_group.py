"""The "Enrollers" staff role (see enrollment/roles.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from enrollment.roles import enrollers_group_ensure

# the role as this migration made it (enrollment.roles.ENROLLER_PERMISSIONS grew later: 0005)
PERMISSIONS = (
    ("enrollment", "view_person"), ("enrollment", "add_person"), ("enrollment", "change_person"),
    ("enrollment", "view_facephoto"), ("enrollment", "add_facephoto"), ("enrollment", "delete_facephoto"),
    ("enrollment", "rebuild_index"), ("enrollment", "view_indexversion"), ("enrollment", "view_trainingrun"),
)


def create_group(apps, schema_editor):
    # permissions are normally created after all migrations; the group needs them now
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    enrollers_group_ensure(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), PERMISSIONS)


def drop_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Enrollers").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_group, drop_group)]
