"""FacePhoto.file_missing's help text: the daily photo sweep marks it too (a photo embedded before
its file went), and clears it when the file is back. No change to the database."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0013_export_person_permission'),
    ]

    operations = [
        migrations.AlterField(
            model_name='facephoto',
            name='file_missing',
            field=models.BooleanField(db_default=False, default=False, help_text='no file in storage for this photo when a rebuild last tried to embed it or the daily photo sweep last listed the files (deleted from the disk or volume, or the volume not mounted); every rebuild tries it again until it is restored or removed; cleared when its file is back'),
        ),
    ]
