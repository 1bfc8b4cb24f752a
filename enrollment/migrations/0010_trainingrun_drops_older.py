"""TrainingRun.drops_older: a run a photo removal asked for deletes the versions built before it (no clocks); a database default, so a release still serving while this runs inserts runs without it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0009_person_gallery_adaptation_db_default'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingrun',
            name='drops_older',
            field=models.BooleanField(db_default=False, default=False, help_text='a photo removal asked for it: older versions are not kept'),
        ),
    ]
