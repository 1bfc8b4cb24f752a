"""Kiosk.connection_seq: which of two sockets of a kiosk is the newer is counted by the database at each handshake, no longer told by the web nodes' clocks; a database default, so a release still serving while this runs creates kiosks without it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recognition', '0003_checkin_help_texts'),
    ]

    operations = [
        migrations.AddField(
            model_name='kiosk',
            name='connection_seq',
            field=models.PositiveBigIntegerField(db_default=0, default=0, editable=False, help_text="handshakes of this kiosk's sockets so far: of two open sockets the one with the higher number stays"),
        ),
    ]
