"""The ``list_export`` action: a list of people's data downloaded as CSV (check-ins, the audit log),
recorded by ``audit.services.audit_list_export``; ``export`` stays the subject-access export."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0009_export_action'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('create', 'create'), ('update', 'update'), ('delete', 'delete'), ('deactivate', 'deactivate'), ('photo_add', 'photo add'), ('photo_remove', 'photo remove'), ('erase', 'erase'), ('export', 'export'), ('list_export', 'list export'), ('rebuild', 'rebuild'), ('role_change', 'role change'), ('import', 'import'), ('checkin_accepted', 'check-in accepted'), ('checkin_unknown', 'check-in rejected: unknown'), ('checkin_quality', 'check-in rejected: quality'), ('api_identify', 'face search: identify'), ('api_verify', 'face search: verify'), ('purge', 'retention purge'), ('login', 'login'), ('logout', 'logout'), ('login_failed', 'login failed')], db_index=True, max_length=20),
        ),
    ]
