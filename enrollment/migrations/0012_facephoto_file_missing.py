"""FacePhoto.file_missing: a rebuild found the photo's file gone from storage, told apart from a file storage could not read (a passing failure) in the admin and the run's message; a database default, so a release still serving while this runs inserts photos without it. Photos already failed are marked by the next rebuild, which tries them again."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0011_facephoto_embed_failed_version'),
    ]

    operations = [
        migrations.AddField(
            model_name='facephoto',
            name='file_missing',
            field=models.BooleanField(db_default=False, default=False, help_text='the last rebuild that tried to embed this photo found no file in storage (deleted from the disk or volume, or the volume not mounted); every rebuild tries it again until it is restored or removed'),
        ),
    ]
