"""Staff logins in the audit log: every login, logout and failed login, with the client's address.

Connected by :class:`audit.apps.AuditConfig`. A failed login is recorded only when the username
names an existing account (the account is the record's object; the actor is "anonymous"):
attempts at usernames that do not exist would let anyone fill the log, and could hold a password
typed into the username field. The login throttle (``masknet_site.login_throttle``) bounds how
many failures one account can collect; an attempt it refuses (429) never reaches authentication
and is not recorded. The address is Daphne's client address (the real one behind a proxy with
``--proxy-headers``). These records are deleted with the decisions after
``MASKNET_RETENTION_DECISION_DAYS`` (:data:`audit.models.ACCESS_ACTIONS`). A wrong current password on
the admin's own password change page is a failed login too (:func:`record_wrong_current_password`,
written by the login throttle), its actor the session's user.
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .models import AuditEvent
from .services import audit_record


def _address(request) -> str:
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    return str(address)[:64] if address else "an unknown address"


@receiver(user_logged_in, dispatch_uid="audit-login")
def record_login(sender, request, user, **kwargs) -> None:
    """A staff login: the user is actor and object."""
    audit_record(actor=user, action=AuditEvent.Action.LOGIN, obj=user, summary=f"login from {_address(request)}")


@receiver(user_logged_out, dispatch_uid="audit-logout")
def record_logout(sender, request, user, **kwargs) -> None:
    """A logout (nothing when nobody was logged in)."""
    if user is not None and getattr(user, "is_authenticated", False):
        audit_record(actor=user, action=AuditEvent.Action.LOGOUT, obj=user,
                     summary=f"logout from {_address(request)}")


def _account(username: object):
    """The user ``username`` names (as the login form authenticates it), or ``None``."""
    model = get_user_model()
    if not isinstance(username, str) or not username:
        return None
    try:
        return model._default_manager.get_by_natural_key(username)
    except model.DoesNotExist:
        return None


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def record_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """A failed login for an existing account (a wrong password, or an inactive account)."""
    user = _account(credentials.get(get_user_model().USERNAME_FIELD, credentials.get("username")))
    if user is None:
        return
    reason = "" if user.is_active else " (the account is deactivated)"
    audit_record(actor=AnonymousUser(), action=AuditEvent.Action.LOGIN_FAILED, obj=user,
                 summary=f"failed login{reason} from {_address(request)}")


def record_wrong_current_password(request, user) -> None:
    """A wrong (or missing) current password on the admin's own password change page, which the
    login throttle (``masknet_site.login_throttle``) counts as a failed login of ``user``: the
    session's user is actor and object (a session, not a typed username, said who it is)."""
    audit_record(actor=user, action=AuditEvent.Action.LOGIN_FAILED, obj=user,
                 summary=f"wrong current password on the password change page from {_address(request)}")


def _locked_account(raw: object):
    """The account a lock keyed on ``raw`` applies to: the one the login form would authenticate
    (stripped, NFKC), else the one user whose name matches ignoring case, as the lock's key does
    (``login_throttle.normalize_username``): "ALICE" locks alice out, and was recorded as "no such
    username" beside alice's own failed logins."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:   # NUL: refused by PostgreSQL in text
        return None
    typed = unicodedata.normalize("NFKC", raw.strip())
    user = _account(typed)
    if user is None:
        model = get_user_model()
        matches = list(model._default_manager.filter(**{f"{model.USERNAME_FIELD}__iexact": typed})[:2])
        user = matches[0] if len(matches) == 1 else None
    return user


def record_lockout(request, *, kind: str, failures: int, lockout_s: int, account=None) -> None:
    """A lock the login throttle set (``masknet_site.login_throttle``): once per lock, against the
    account the username names (:func:`_locked_account`; never the text typed), else against no
    account. ``account``: the logged-in user whose wrong current passwords on the password change
    page set it (the record says so)."""
    user = account if account is not None else _locked_account(request.POST.get("username"))
    summary = f"logins locked for {lockout_s} s after {failures} failures per {kind} from {_address(request)}"
    if account is not None:
        summary += " (wrong current passwords on the password change page)"
    audit_record(actor=AnonymousUser(), action=AuditEvent.Action.LOGIN_FAILED, obj=user, object_type="auth.user",
                 summary=summary if user is not None else summary + " (no such username)")
