"""Kiosk.language: the language of a kiosk's screen, blank for the site's MASKNET_KIOSK_LANGUAGE; its choices a callable (the catalogs in recognition/kiosk_text/), so that a new language needs no migration; a database default, so a release still serving while this runs creates kiosks without it."""

from django.db import migrations, models

import recognition.models


class Migration(migrations.Migration):

    dependencies = [
        ('recognition', '0004_kiosk_connection_seq'),
    ]

    operations = [
        migrations.AddField(
            model_name='kiosk',
            name='language',
            field=models.CharField(blank=True, choices=recognition.models.kiosk_language_choices, db_default='', default='', help_text="the language of its screen; the site's default (MASKNET_KIOSK_LANGUAGE) when blank. An open screen takes a change within seconds", max_length=16),
        ),
    ]
