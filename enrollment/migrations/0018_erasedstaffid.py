"""Erased staff ids: a person erased at their request leaves their staff id as a keyed digest alone
(HMAC-SHA256 under a key derived from ``SECRET_KEY``) and the erasure's time, so that
``import_people`` run again on HR's folder, which still holds their photos, does not enrol them
again. A new table only: people erased before it have no entry (nothing of their staff id is left
to make one from)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0017_person_staff_key"),
    ]

    operations = [
        migrations.CreateModel(
            name="ErasedStaffId",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("digest", models.CharField(editable=False, max_length=64, unique=True)),
                ("key_id", models.CharField(editable=False, max_length=16)),
                ("erased_at", models.DateTimeField(editable=False)),
            ],
            options={
                "verbose_name": "erased staff id",
                "ordering": ["-erased_at", "-id"],
            },
        ),
    ]
