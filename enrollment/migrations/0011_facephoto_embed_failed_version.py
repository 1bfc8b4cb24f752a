"""FacePhoto.embed_failed_version: a photo that a recognizer version failed to embed for a cause of its own (no face found, an unreadable image) is left out of that version's later rebuilds, instead of being analysed again by each of them and counted as a new photo; a database default, so a release still serving while this runs inserts photos without it. Photos already failed have none: the next rebuild tries them once more."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0010_trainingrun_drops_older'),
    ]

    operations = [
        migrations.AddField(
            model_name='facephoto',
            name='embed_failed_version',
            field=models.CharField(blank=True, db_default='', default='', help_text="the recognizer (template) version that failed to embed this photo for a cause of the photo's own: its rebuilds leave the photo out; another version tries it again", max_length=64),
        ),
    ]
