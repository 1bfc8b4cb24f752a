"""The ``checkin_manual`` action: a check-in recorded by hand by a staff member
(``recognition.services.checkin_record_manual``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0010_list_export_action'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('create', 'create'), ('update', 'update'), ('delete', 'delete'), ('deactivate', 'deactivate'), ('photo_add', 'photo add'), ('photo_remove', 'photo remove'), ('erase', 'erase'), ('export', 'export'), ('list_export', 'list export'), ('rebuild', 'rebuild'), ('role_change', 'role change'), ('import', 'import'), ('checkin_accepted', 'check-in accepted'), ('checkin_unknown', 'check-in rejected: unknown'), ('checkin_quality', 'check-in rejected: quality'), ('checkin_manual', 'check-in by hand'), ('api_identify', 'face search: identify'), ('api_verify', 'face search: verify'), ('purge', 'retention purge'), ('login', 'login'), ('logout', 'logout'), ('login_failed', 'login failed')], db_index=True, max_length=20),
        ),
    ]
