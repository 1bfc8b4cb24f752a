"""How API requests authenticate: an integration's token (``Authorization: Bearer <token>``) or
a logged-in staff session (with CSRF enforced, as DRF's ``SessionAuthentication`` does)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from . import services
from .models import ApiToken

KEYWORDS = (b"bearer", b"token")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer mkn_...`` (or ``Token mkn_...``). Unknown, revoked or expired
    tokens are refused with 401; the request acts as the token's service account."""

    def authenticate(self, request: Request) -> tuple[object, ApiToken] | None:
        """``(service account, token)``, ``None`` without a token header, 401 for a bad token."""
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header: use 'Authorization: Bearer <token>'."))
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid token header.")) from exc
        token = ApiToken.objects.for_secret(secret)
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("Unknown, revoked or expired token."))
        services.api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        """Makes unauthenticated requests answer 401 (not 403) with a challenge."""
        return 'Bearer realm="api"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """The staff's admin login (cookie), with CSRF checks on unsafe methods."""


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents :class:`ApiTokenAuthentication` in the OpenAPI schema."""

    target_class = "api.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema) -> dict:  # noqa: D102
        return {"type": "http", "scheme": "bearer",
                "description": "An integration's API token (created by an administrator)."}


class StaffSessionScheme(OpenApiAuthenticationExtension):
    """Documents :class:`StaffSessionAuthentication` in the OpenAPI schema."""

    target_class = "api.authentication.StaffSessionAuthentication"
    name = "StaffSession"

    def get_security_definition(self, auto_schema) -> dict:  # noqa: D102
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "A logged-in staff session; unsafe methods need the X-CSRFToken header."}
