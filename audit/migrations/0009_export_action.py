"""The ``export`` action: a person's data handed out on request (``enrollment.services.person_export``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0008_face_search_labels'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('create', 'create'), ('update', 'update'), ('delete', 'delete'), ('deactivate', 'deactivate'), ('photo_add', 'photo add'), ('photo_remove', 'photo remove'), ('erase', 'erase'), ('export', 'export'), ('rebuild', 'rebuild'), ('role_change', 'role change'), ('import', 'import'), ('checkin_accepted', 'check-in accepted'), ('checkin_unknown', 'check-in rejected: unknown'), ('checkin_quality', 'check-in rejected: quality'), ('api_identify', 'face search: identify'), ('api_verify', 'face search: verify'), ('purge', 'retention purge'), ('login', 'login'), ('logout', 'logout'), ('login_failed', 'login failed')], db_index=True, max_length=20),
        ),
    ]
