"""Subject access gets a permission of its own, ``export_person``: superusers hold it, the Enrollers
role does not (its permissions are a fixed list: ``enrollment.roles``)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0012_facephoto_file_missing'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='person',
            options={'ordering': ['full_name', 'id'], 'permissions': [('erase_person', "Can erase a person's biometric data"), ('export_person', "Can export a person's data (subject access)"), ('rebuild_index', 'Can rebuild the recognition index'), ('recognise_face', 'Can identify and verify faces (API)')], 'verbose_name_plural': 'people'},
        ),
    ]
