"""Who may call what: tokens by their scopes, staff sessions by their Django permissions.

Each API view declares ``access``: for each action (a viewset action or an HTTP method in
lower case) the token scope and the Django permission it needs.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .models import ApiToken


def required_access(request: Request, view: APIView) -> tuple[str, str] | None:
    """``(scope, permission)`` of this request (falls back to the method's entry); ``None`` when
    the view declares none."""
    access: dict[str, tuple[str, str]] = getattr(view, "access", {})
    action = getattr(view, "action", None)
    if action and action in access:
        return access[action]
    key = request.method.lower()
    if key == "head":
        key = "get"
    return access.get(key)


class ScopedAccess(BasePermission):
    """A token needs the scope; a session user must be active staff with the permission."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Check the request's credentials against the view's ``access``."""
        if request.method == "OPTIONS":
            return bool(request.user and request.user.is_authenticated)
        needed = required_access(request, view)
        if needed is None:
            # no handler for this method: let the view answer 405 to authenticated callers;
            # a handler without a declared access is refused (fail closed)
            has_handler = hasattr(view, request.method.lower())
            return bool(request.user and request.user.is_authenticated) and not has_handler
        scope, perm = needed
        if isinstance(request.auth, ApiToken):
            if not request.auth.allows(scope):
                self.message = f"This token lacks the '{scope}' scope."
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        if not user.has_perm(perm):
            self.message = f"Your account lacks the permission '{perm}'."
            return False
        return True
