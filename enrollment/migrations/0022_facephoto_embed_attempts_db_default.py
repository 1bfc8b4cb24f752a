"""A database default for ``FacePhoto.embed_attempts`` (0004 added the column NOT NULL without one):
``migrate`` runs while the previous release still serves (docs/deployment.md), and a release from
before 0004 inserts photos without the column, so every photo added there failed on NOT NULL (an
IntegrityError, a 500 in the admin and the API) until its processes restarted. As 0009 did for
0007's ``gallery_adaptation``."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('enrollment', '0021_personinactiveperiod'),
    ]

    operations = [
        migrations.AlterField(
            model_name='facephoto',
            name='embed_attempts',
            field=models.PositiveSmallIntegerField(db_default=0, default=0, help_text='embeddings of this photo begun and never finished (the worker stopped during them)'),
        ),
    ]
