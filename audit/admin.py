"""Read-only audit log in the admin (filter, search, CSV export), and audited user/group admins
so that role changes land in the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone

from masknet_site.admin_csv import DateDrillDownChecked, SearchNormalised, changelist_rows
from masknet_site.csv_export import cross_site_refusal, csv_response

from .admin_filters import IndexedValuesFieldListFilter, TimeListFilter
from .models import AuditEvent
from .services import audit_list_export, audit_record, roles_diff, user_roles

CSV_COLUMNS = ("at", "actor", "actor_id", "action", "object_type", "object_id", "summary")


def audit_csv_rows(queryset: QuerySet[AuditEvent]) -> Iterator[list[object]]:
    """The rows of the audit log's CSV (:data:`CSV_COLUMNS`), read as they are written: TIME_ZONE's
    times, as the list shows them and the check-in exports write them. The admin's *Export CSV* and
    ``manage.py export_audit`` write the same file, which ``reapply_erasures`` reads."""
    # the columns alone and the zone read once (a model instance and localtime() a row: 20 s for
    # 500,000 events, a scale review), at the first row: a streamed answer's rows are made after its view
    def rows() -> Iterator[list[object]]:
        zone = timezone.get_current_timezone()
        for at, actor, actor_id, action, object_type, object_id, summary in queryset.values_list(
                "at", "actor", "actor_id", "action", "object_type", "object_id", "summary").iterator(2000):
            yield [at.astimezone(zone).isoformat(), actor, actor_id or "", action, object_type, object_id, summary]
    return rows()


@admin.register(AuditEvent)
class AuditEventAdmin(SearchNormalised, DateDrillDownChecked, admin.ModelAdmin):
    """Viewable by whoever holds ``audit.view_auditevent`` (superusers); never editable."""

    list_display = ("at", "actor", "action", "object_type", "object_id", "summary")
    # on a phone (audit/templatetags/admin_phone.py): when and what (the summary says the action); with
    # the actor too the summary had 109 px, ten lines for a check-in's
    list_display_phone = ("at", "summary")
    # the object types and actors by index probes, not a DISTINCT over every event (admin_filters.py)
    list_filter = ("action", ("object_type", IndexedValuesFieldListFilter), ("actor", IndexedValuesFieldListFilter),
                   ("at", TimeListFilter))
    search_fields = ("summary", "actor", "object_id")
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False   # a second COUNT(*) over millions of rows on each page
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def get_urls(self):
        """Adds ``export.csv`` (the current filters apply)."""
        extra = [path("export.csv", self.admin_site.admin_view(self.export_csv), name="audit_auditevent_export")]
        return extra + super().get_urls()

    def export_csv(self, request: HttpRequest) -> HttpResponse:
        """The change list's rows (same filters and search) as CSV; the download is audited (a
        ``list_export`` record, itself left out of the file it records)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if refused := cross_site_refusal(request):
            return refused
        rows = changelist_rows(self, request)
        event = audit_list_export(request, object_type="audit.auditevent", what="the audit log (admin)",
                                  rows=rows.count, filters=rows.described(actor=_actor_described))
        queryset = rows.queryset if event is None else rows.queryset.exclude(pk=event.pk)
        return csv_response(f"audit-{timezone.localtime():%Y%m%d-%H%M%S}.csv", CSV_COLUMNS,
                            audit_csv_rows(queryset))


def _actor_described(username: str) -> str:
    """The audit list's actor filter in an export's record: a user by id, as summaries name users
    (a username can be a person's name), "system" and "anonymous" as they are."""
    if username in ("system", "anonymous"):
        return f"actor {username}"
    pk = User.objects.filter(username=username).values_list("pk", flat=True).first()
    return f"actor user #{pk}" if pk is not None else "actor (not a user now, not recorded)"


def _audited_delete(request, obj, delete, action: str, kind: str) -> None:
    """Delete one user or group (``delete()``) and record it once: a row deleted meanwhile by
    another administrator, who recorded it, is nothing more to record."""
    with transaction.atomic():
        if not type(obj).objects.select_for_update().filter(pk=obj.pk).exists():
            return
        pk = obj.pk
        delete()
        audit_record(actor=request.user, action=action, object_type=f"auth.{kind}", object_id=pk,
                     summary=f"deleted {kind} #{pk}")


ROLE_FIELDS = ("is_staff", "is_superuser", "is_active", "groups", "user_permissions")  # audited by user_roles
# what Django's user form let an administrator type over: day first or month first in Django's formats
# (01/02/2026 saved as 2 January), and 9999-12-31 23:59 in a zone behind UTC a 500, or on PostgreSQL a
# row past year 9999 that the user list then answered 500 for (a helper's review of time zones)
RECORDED_DATES = ("last_login", "date_joined")


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(SearchNormalised, DateDrillDownChecked, UserAdmin):
    """Django's user admin; creations, role changes (staff, superuser, groups, permissions), other
    changes (which fields), passwords set by an administrator and deletions are written to the
    audit log."""

    def get_readonly_fields(self, request, obj=None):
        """An API token's service account keeps its username (``api:<token name>``, which Django's
        username rule refuses): the form could not be saved, so the account could not be
        deactivated here, which the API honours. The last login and the date joined are records,
        shown, not typed (:data:`RECORDED_DATES`)."""
        fields = (*super().get_readonly_fields(request, obj), *RECORDED_DATES)
        if obj is not None and hasattr(obj, "api_token"):   # the reverse one-to-one: AttributeError without
            return (*fields, "username")
        return fields

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """Remember the roles before the edit so that :meth:`save_related` can log the change: read
        with the user's row locked, in the transaction that saves the form (read before, another
        administrator's change committed meanwhile, which this form then undoes, was not seen)."""
        if object_id and request.method == "POST":
            with transaction.atomic():
                user = self.get_object(request, object_id)
                if user is not None:
                    user = User.objects.select_for_update().filter(pk=user.pk).first()
                request._audit_roles_before = user_roles(user) if user else None
                return super().changeform_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        after = user_roles(user)
        if not change:
            audit_record(actor=request.user, action=AuditEvent.Action.CREATE, obj=user,
                         summary=f"created user #{user.pk}")
            if after["staff"] or after["superuser"] or after["groups"]:
                audit_record(actor=request.user, action=AuditEvent.Action.ROLE_CHANGE, obj=user,
                             summary=roles_diff({}, after)[:300])
            return
        before = getattr(request, "_audit_roles_before", None) or {}
        changes = roles_diff(before, after)
        if changes:
            audit_record(actor=request.user, action=AuditEvent.Action.ROLE_CHANGE, obj=user, summary=changes)
        # the rest (username, name, e-mail, dates): which fields, never their values
        other = [f for f in form.changed_data if f not in ROLE_FIELDS]
        if other:
            audit_record(actor=request.user, action=AuditEvent.Action.UPDATE, obj=user,
                         summary=f"changed user #{user.pk}: {', '.join(other)}"[:300])

    def user_change_password(self, request, id, form_url=""):
        """Django's page where an administrator sets another user's password; a password set
        there is audited (who, for whom; never the password), in the transaction that sets it."""
        if not (str(id).isascii() and str(id).isdigit()):   # no user's id ("²" is no int): Django's own answer
            return super().user_change_password(request, id, form_url)
        with transaction.atomic():
            stored = User.objects.select_for_update().filter(pk=id).values_list("password", flat=True).first()
            response = super().user_change_password(request, id, form_url)
            # by the stored hash, not the answer: Django also redirects when it refuses a form
            # ("Conflicting form data submitted": nothing saved)
            now = User.objects.filter(pk=id).values_list("password", flat=True).first()
            if request.method == "POST" and stored is not None and now is not None and now != stored:
                done = ("disabled password login for" if now.startswith(UNUSABLE_PASSWORD_PREFIX)
                        else "set the password of")
                audit_record(actor=request.user, action=AuditEvent.Action.UPDATE, object_type="auth.user",
                             object_id=id, summary=f"{done} user #{id}")
        return response

    def delete_model(self, request, obj) -> None:
        _audited_delete(request, obj, lambda: super(AuditedUserAdmin, self).delete_model(request, obj),
                        AuditEvent.Action.DELETE, "user")

    def response_action(self, request, queryset):
        """Admin actions ("delete selected") in one transaction: Django writes its own history of a
        bulk delete before deleting, outside the delete's transaction."""
        with transaction.atomic():
            return super().response_action(request, queryset)

    def delete_queryset(self, request, queryset) -> None:
        _audited_bulk_delete(request, queryset, AuditEvent.Action.DELETE, "user",
                             lambda qs: super(AuditedUserAdmin, self).delete_queryset(request, qs))


@admin.register(Group)
class AuditedGroupAdmin(GroupAdmin):
    """Django's group admin; a group's permission changes are role changes."""

    def save_related(self, request, form, formsets, change) -> None:
        before = set(form.instance.permissions.values_list("codename", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(form.instance.permissions.values_list("codename", flat=True))
        added, removed = sorted(after - before), sorted(before - after)
        renamed = change and "name" in form.changed_data
        if not change or added or removed or renamed:
            parts = [f"{'created' if not change else 'changed'} group #{form.instance.pk}"]
            if renamed:
                parts.append("renamed")
            if added:
                parts.append("added " + ", ".join(added))
            if removed:
                parts.append("removed " + ", ".join(removed))
            audit_record(actor=request.user, action=AuditEvent.Action.ROLE_CHANGE, obj=form.instance,
                         summary="; ".join(parts))

    def delete_model(self, request, obj) -> None:
        with _members_losing(request, [obj.pk]):
            _audited_delete(request, obj, lambda: super(AuditedGroupAdmin, self).delete_model(request, obj),
                            AuditEvent.Action.ROLE_CHANGE, "group")

    def response_action(self, request, queryset):
        """As the user admin's: Django's history of a bulk delete and the delete in one transaction."""
        with transaction.atomic():
            return super().response_action(request, queryset)

    def delete_queryset(self, request, queryset) -> None:
        with _members_losing(request, list(queryset.values_list("pk", flat=True))):
            _audited_bulk_delete(request, queryset, AuditEvent.Action.ROLE_CHANGE, "group",
                                 lambda qs: super(AuditedGroupAdmin, self).delete_queryset(request, qs))


@contextmanager
def _members_losing(request, group_pks: list[int]) -> Iterator[None]:
    """Around the deletion of groups: each member's loss of the group is a role change of theirs,
    recorded on the user as the user admin records one (a group deleted with members left only
    "deleted group #N": a user's record showed no change of their groups). In the deletion's
    transaction, the groups' rows locked first so that no member joins unseen."""
    with transaction.atomic():
        list(Group.objects.select_for_update().filter(pk__in=group_pks).order_by("pk").values_list("pk"))
        members = list(User.objects.filter(groups__pk__in=group_pks).distinct().order_by("pk"))
        before = {user.pk: user_roles(user) for user in members}
        yield
        gone = ", ".join(f"#{pk}" for pk in sorted(group_pks))
        for user in members:
            changes = roles_diff(before[user.pk], user_roles(user))
            if changes:
                audit_record(actor=request.user, action=AuditEvent.Action.ROLE_CHANGE, obj=user,
                             summary=f"{changes} (group {gone} deleted)"[:300])


def _audited_bulk_delete(request, queryset, action: str, noun: str, delete) -> None:
    """The admin's "delete selected" of users or groups: the rows locked, deleted and audited in
    one transaction (Django's action runs outside one), each only if it still existed (two
    administrators deleting the same rows record each deletion once)."""
    with transaction.atomic():
        pks = list(queryset.model.objects.select_for_update().filter(pk__in=queryset.values("pk"))
                   .order_by("pk").values_list("pk", flat=True))   # in one order: two deletes never deadlock
        delete(queryset.model.objects.filter(pk__in=pks))
        for pk in pks:
            audit_record(actor=request.user, action=action, object_type=f"auth.{noun}", object_id=pk,
                         summary=f"deleted {noun} #{pk}")


_site_password_change = admin.site.password_change


def _audited_password_change(request: HttpRequest, extra_context=None) -> HttpResponse:
    """The admin's "change password" page, where a user changes their own: audited as an
    administrator's setting of it is (who, for whom; never the password), in its transaction. A
    stolen session that changed its user's password left no record."""
    with transaction.atomic():
        response = _site_password_change(request, extra_context)
        if request.method == "POST" and response.status_code == 302:
            audit_record(actor=request.user, action=AuditEvent.Action.UPDATE, obj=request.user,
                         summary=f"changed their own password (user #{request.user.pk})")
    return response


# read by the site's URLs (built after the admin modules are imported)
admin.site.password_change = _audited_password_change
