"""The audit log: one immutable row per administrative change, recognition decision, staff login
and download of a list of people's data.

Rows never hold biometric data or names: objects are referred to by type and id, so an
erased person leaves only "who erased person #12, when".

Append-only is enforced here, in the ORM: ``save()`` of an existing row, ``delete()`` and
``QuerySet.update()/delete()`` raise :class:`AppendOnlyError`, and the admin has no add, change
or delete permission. The one deliberate exception is retention:
:func:`audit.services.audit_decisions_purge` deletes recognition decisions and staff logins
(:data:`EXPIRING_ACTIONS`) older than ``MASKNET_RETENTION_DECISION_DAYS`` and writes a ``purge``
record saying how many (see docs/security.md).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit row."""


class AuditEventQuerySet(models.QuerySet):
    """Reads of the audit log; bulk changes are refused."""

    def update(self, **kwargs) -> int:  # noqa: D102
        raise AppendOnlyError("the audit log is append-only")

    def delete(self):  # noqa: D102
        raise AppendOnlyError("the audit log is append-only")

    def bulk_create(self, objs, *args, **kwargs):  # noqa: D102
        if kwargs.get("update_conflicts") or (len(args) > 2 and args[2]):  # an upsert rewrites rows
            raise AppendOnlyError("the audit log is append-only")
        return super().bulk_create(objs, *args, **kwargs)

    def for_object(self, object_type: str, object_id: object) -> AuditEventQuerySet:
        """Events about one object (``object_type`` like ``"enrollment.person"``)."""
        return self.filter(object_type=object_type, object_id=str(object_id))


class AuditEvent(models.Model):
    """Who did what to which object, when (``summary``: a short, non-personal sentence)."""

    class Action(models.TextChoices):
        CREATE = "create", "create"
        UPDATE = "update", "update"
        DELETE = "delete", "delete"
        DEACTIVATE = "deactivate", "deactivate"
        PHOTO_ADD = "photo_add", "photo add"
        PHOTO_REMOVE = "photo_remove", "photo remove"
        ERASE = "erase", "erase"
        EXPORT = "export", "export"   # a person's data handed out on request (subject access)
        # a list of people's data downloaded by staff or an integration (a check-in or audit CSV):
        # who took which list, when (audit.services.audit_list_export)
        LIST_EXPORT = "list_export", "list export"
        REBUILD = "rebuild", "rebuild"
        ROLE_CHANGE = "role_change", "role change"
        IMPORT = "import", "import"
        CHECKIN_ACCEPTED = "checkin_accepted", "check-in accepted"
        CHECKIN_UNKNOWN = "checkin_unknown", "check-in rejected: unknown"
        CHECKIN_QUALITY = "checkin_quality", "check-in rejected: quality"
        # a check-in a staff member recorded by hand (an administrative change, kept as one)
        CHECKIN_MANUAL = "checkin_manual", "check-in by hand"
        # face searches: the API's, and the admin's look-alike check of a new photo (which named
        # the other person to staff who may search faces), hence not "API identify"
        API_IDENTIFY = "api_identify", "face search: identify"
        API_VERIFY = "api_verify", "face search: verify"
        PURGE = "purge", "retention purge"
        LOGIN = "login", "login"
        LOGOUT = "logout", "logout"
        LOGIN_FAILED = "login_failed", "login failed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # the actor is copied, not referenced: deleting a user must not rewrite the log
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="username, or 'system'")
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=60, db_index=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=300)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        base_manager_name = "objects"  # the append-only queryset, also for Django's internal access
        # actor: for the admin's filter of actors (probes of the index: audit/admin_filters.py); a Meta
        # index, not db_index, which rebuilt the whole table on SQLite and added PostgreSQL a LIKE index
        indexes = [models.Index(fields=["object_type", "object_id"]),
                   models.Index(fields=["actor"], name="audit_event_actor")]

    def __str__(self) -> str:
        # local time (TIME_ZONE), as the admin shows the list's times; an unsaved row has none yet
        at = f"{timezone.localtime(self.at):%Y-%m-%d %H:%M:%S}" if self.at else "(unsaved)"
        return f"{at} {self.actor or 'system'} {self.action} {self.object_type}#{self.object_id}"

    # An invariant of the log, not business logic: existing rows are never written again.
    def save(self, *args, **kwargs) -> None:
        """Insert only; saving an existing row raises :class:`AppendOnlyError`."""
        if not self._state.adding or kwargs.get("update_fields") is not None:
            raise AppendOnlyError("the audit log is append-only")
        # an INSERT even for a new instance given an existing row's id (a plain save would UPDATE it)
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        """Always refused."""
        raise AppendOnlyError("the audit log is append-only")


# Recognition decisions (one row per kiosk decision or API identify/verify): the only rows that
# retention deletes (MASKNET_RETENTION_DECISION_DAYS), with the staff logins below. Administrative
# changes, subject-access exports and list exports (who downloaded which list of people) are
# accountability records, kept forever.
DECISION_ACTIONS: tuple[str, ...] = (
    AuditEvent.Action.CHECKIN_ACCEPTED, AuditEvent.Action.CHECKIN_UNKNOWN, AuditEvent.Action.CHECKIN_QUALITY,
    AuditEvent.Action.API_IDENTIFY, AuditEvent.Action.API_VERIFY)

# Staff logins, logouts and failed logins (each with the client's address): deleted after the same
# period as the decisions; they record who came in, not what changed.
ACCESS_ACTIONS: tuple[str, ...] = (
    AuditEvent.Action.LOGIN, AuditEvent.Action.LOGOUT, AuditEvent.Action.LOGIN_FAILED)

# what the retention purge deletes
EXPIRING_ACTIONS: tuple[str, ...] = DECISION_ACTIONS + ACCESS_ACTIONS
