"""Help texts of the check-in day and cooldown window in words an administrator reads (no SQL)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recognition', '0002_checkin_site_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='checkin',
            name='local_date',
            field=models.DateField(db_index=True, help_text="the check-in's day in the site's time zone"),
        ),
        migrations.AlterField(
            model_name='checkin',
            name='window',
            field=models.CharField(help_text="the site and period this check-in counts for (one per person each), e.g. 'main|2026-11-30'", max_length=160),
        ),
    ]
