"""Check-ins recorded by hand: CheckIn.source (kiosk or by hand), recorded_by (the staff user) and reason;
score may be empty (no vote decided a check-in by hand). Database defaults for source and reason, so a
release still serving while this runs records kiosk check-ins without them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recognition', '0005_kiosk_language'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='checkin',
            name='reason',
            field=models.CharField(blank=True, db_default='', default='', help_text="why it was recorded by hand (e.g. 'not recognised', 'kiosk offline')", max_length=200),
        ),
        migrations.AddField(
            model_name='checkin',
            name='recorded_by',
            field=models.ForeignKey(blank=True, help_text='the staff user who recorded it by hand', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='checkin',
            name='source',
            field=models.CharField(choices=[('kiosk', 'kiosk'), ('manual', 'by hand')], db_default='kiosk', default='kiosk', help_text='how it was recorded: by a kiosk, or by hand (a staff member, with a reason)', max_length=10),
        ),
        migrations.AlterField(
            model_name='checkin',
            name='score',
            field=models.FloatField(blank=True, help_text='mean cosine similarity over the voting frames (none for a check-in by hand)', null=True),
        ),
    ]
