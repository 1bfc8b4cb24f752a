"""Clear error bodies: every error is ``{"error": code, "detail": sentence}`` plus ``fields``
for validation errors (see :class:`api.serializers.ErrorSerializer`)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler, set_rollback

from enrollment.services import STORAGE_FULL_MESSAGES, StorageFull, database_full, storage_full
from masknet_site.logfilters import error_first_line


class ApiError(exceptions.APIException):
    """An error with its own status, code and optional extra members (e.g. ``reason``)."""

    def __init__(self, *, status_code: int, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code, self.error_code, self.extra = status_code, code, extra


_CODES = {
    status.HTTP_400_BAD_REQUEST: "bad_request",
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


VALIDATION_DETAIL = "The request is not valid: see fields."
STORAGE_FULL_DETAIL = "The server's storage is full: nothing was stored. Try again once space is freed."
SERVER_ERROR_DETAIL = "The server could not answer this request; it was logged. Try again later."


def refused(*, field: str | None, message: str, reason: str) -> ApiError:
    """A service's refusal of one input as a 400 ``validation_error``: ``fields`` names the input
    (``non_field_errors``: the whole request), ``reason`` gives the refusal's code, as a refused
    photo's does."""
    return ApiError(status_code=status.HTTP_400_BAD_REQUEST, code="validation_error", detail=VALIDATION_DETAIL,
                    fields={field or "non_field_errors": [message]}, reason=reason)


def _flatten(errors: object) -> dict[str, list[str]]:
    if isinstance(errors, dict):
        out: dict[str, list[str]] = {}
        for key, value in errors.items():
            if isinstance(value, dict):
                for sub, messages in _flatten(value).items():
                    out[f"{key}.{sub}"] = messages
            else:
                out[str(key)] = [str(v) for v in (value if isinstance(value, list) else [value])]
        return out
    return {"non_field_errors": [str(v) for v in (errors if isinstance(errors, list) else [errors])]}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, with Django's ``ValidationError`` and ``DoesNotExist`` accepted and every body
    reshaped."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, (Http404, ObjectDoesNotExist)):
        # ObjectDoesNotExist: a row deleted by another request meanwhile (a person erased during
        # their photo's upload), the same 404 as a row that was never there
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        # logged where Django logs it (django.security.<class>), then answered in the API's shape
        logging.getLogger(f"django.security.{type(exc).__name__}").warning("%s", exc)
        if isinstance(exc, RequestDataTooBig):   # Django's own limit on a body read into memory
            exc = ApiError(status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, code="request_too_large",
                           detail=f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
        else:   # too many fields or files, a malformed upload...
            exc = exceptions.ParseError(detail="The request could not be read.")
    elif database_full(exc):
        # the database's disk is full: the write was rolled back whole, the request was fine
        logging.getLogger("django.request").error("API database full: %s %s: %s",
                                                  getattr(context.get("request"), "method", "?"),
                                                  getattr(context.get("request"), "path", "?"),
                                                  error_first_line(exc))
        exc = ApiError(status_code=status.HTTP_507_INSUFFICIENT_STORAGE, code="storage_full",
                       detail=STORAGE_FULL_MESSAGES["database"])
    elif storage_full(exc):
        # a write into a full media or index folder (the service removed what it began): the request
        # was fine, the server cannot take it now; said in the log for the operator, who must free space
        logging.getLogger("django.request").error("API storage full: %s %s: %s",
                                                  getattr(context.get("request"), "method", "?"),
                                                  getattr(context.get("request"), "path", "?"), exc)
        exc = ApiError(status_code=status.HTTP_507_INSUFFICIENT_STORAGE, code="storage_full",
                       detail=str(exc) if isinstance(exc, StorageFull) else STORAGE_FULL_DETAIL)
    response = exception_handler(exc, context)
    if response is None:
        # anything else is a bug or an outage (a database error...): logged with its traceback as
        # Django logs a 500, and answered in the API's shape, not as Django's HTML error page
        request = context.get("request")
        logging.getLogger("django.request").error("API server error: %s %s", getattr(request, "method", "?"),
                                                  getattr(request, "path", "?"), exc_info=exc)
        set_rollback()
        return Response({"error": "server_error", "detail": SERVER_ERROR_DETAIL},
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ApiError):
        body = {"error": exc.error_code, "detail": str(exc.detail), **exc.extra}
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        body = {"error": "validation_error", "detail": VALIDATION_DETAIL, "fields": fields}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
        body = {"error": _CODES.get(response.status_code, "error"), "detail": str(detail)}
    response.data = body
    return response
