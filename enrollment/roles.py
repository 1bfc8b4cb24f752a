"""Staff roles. Enrollers may enrol (people, photos, webcam capture, rebuilds) but may not erase
biometric data or read the audit log; superusers may do everything."""

from __future__ import annotations

ENROLLERS_GROUP = "Enrollers"

# (app label, codename)
ENROLLER_PERMISSIONS = (
    ("enrollment", "view_person"), ("enrollment", "add_person"), ("enrollment", "change_person"),
    ("enrollment", "view_facephoto"), ("enrollment", "add_facephoto"), ("enrollment", "delete_facephoto"),
    ("enrollment", "rebuild_index"), ("enrollment", "view_indexversion"), ("enrollment", "view_trainingrun"),
    # face search (API identify and verify from a staff session): more than reading the people list
    ("enrollment", "recognise_face"),
)


def enrollers_group_ensure(group_model=None, permission_model=None, permissions=ENROLLER_PERMISSIONS):
    """Create the Enrollers group if needed and give it exactly ``permissions`` (by default
    :data:`ENROLLER_PERMISSIONS`; idempotent; the data migrations pass the list of their day, with
    historical models)."""
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = group_model or Group, permission_model or Permission
    group, _ = group_model.objects.get_or_create(name=ENROLLERS_GROUP)
    perms = [permission_model.objects.get(content_type__app_label=app, codename=code)
             for app, code in permissions]
    group.permissions.set(perms)
    return group
