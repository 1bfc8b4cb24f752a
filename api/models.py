"""API tokens: one per integration, created and revoked by administrators, stored hashed.

Writes go through :mod:`api.services`; simple reads are QuerySet methods here.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

# Scopes a token may hold. ``admin`` implies every other scope.
SCOPE_READ = "read"
SCOPE_ENROL = "enrol"
SCOPE_RECOGNISE = "recognise"
SCOPE_ADMIN = "admin"
SCOPES = {
    SCOPE_READ: "read people, photos' facts, check-ins, kiosks and the index",
    SCOPE_ENROL: "create and change people, add and remove photos, deactivate, rebuild the index",
    SCOPE_RECOGNISE: "identify and verify faces in images",
    SCOPE_ADMIN: "everything, including erasing a person's biometric data and creating or revoking kiosks",
}
TOKEN_PREFIX = "mkn_"


def token_digest(secret: str) -> str:
    """SHA-256 hex digest of a token. Tokens are 256-bit random strings, so a fast hash is enough
    (no dictionary to guess from); only digests are stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    """Reads of API tokens."""

    def usable(self) -> ApiTokenQuerySet:
        """Tokens not revoked and not expired."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True)
                                                            | models.Q(expires_at__gt=now))

    def for_secret(self, secret: str | None) -> ApiToken | None:
        """The usable token whose secret is ``secret`` (``None`` if none)."""
        if not secret or len(secret) > 200 or not secret.startswith(TOKEN_PREFIX):
            return None
        return self.usable().select_related("user").filter(digest=token_digest(secret)).first()


class ApiToken(models.Model):
    """The credential of one integration (an HR system, an access-control gateway...).

    Requests made with it act as ``user``, a service account created with the token (no
    password, not staff), so the audit log names the integration. What it may do is given by
    ``scopes`` only, never by Django permissions.
    """

    name = models.CharField(max_length=100, unique=True, help_text="the integration, e.g. 'hr-system'")
    prefix = models.CharField(max_length=16, editable=False, help_text="first characters, to recognise it")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="any of: " + ", ".join(SCOPES))
    rate = models.CharField(max_length=20, blank=True,
                            help_text="request limit such as '600/min' or '20/s' (empty: MASKNET_API_TOKEN_RATE)")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_token",
                                editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        """Whether an administrator revoked it."""
        return self.revoked_at is not None

    def allows(self, scope: str) -> bool:
        """Whether the token holds ``scope`` (``admin`` holds them all)."""
        return scope in self.scopes or SCOPE_ADMIN in self.scopes
