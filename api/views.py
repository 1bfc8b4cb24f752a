"""The ``/api/v1/`` endpoints. Each parses its input, calls one service and formats the answer.

Every write goes through ``enrollment.services``, ``recognition.services`` or ``api.services``,
so the audit log records it with the caller (a staff user or a token's service account).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, mixins, parsers, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from audit.services import audit_list_export
from enrollment import services as enrollment
from enrollment.models import FacePhoto, IndexVersion, Person, TrainingRun
from enrollment.views import export_download
from masknet_site.csv_export import CROSS_SITE_REFUSED, cross_site_refusal, csv_response
from recognition import services as recognition
from recognition.engine import EngineError, ModelsMissing
from recognition.exports import CHECKIN_CSV_HEADER, checkin_csv_rows, checkin_filters_described
from recognition.models import CheckIn, Kiosk, default_site

from . import serializers as s
from . import services
from .authentication import ApiTokenAuthentication, StaffSessionAuthentication
from .errors import ApiError, api_exception_handler, refused
from .models import SCOPE_ADMIN, SCOPE_ENROL, SCOPE_READ, SCOPE_RECOGNISE, ApiToken
from .permissions import ScopedAccess
from .throttling import ApiRateThrottle, RecogniseRateThrottle

ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 429: s.ErrorSerializer}
NOT_FOUND = {404: s.ErrorSerializer}


def json_errors(responses: dict) -> dict:
    """``responses`` with each error declared as JSON alone, for an endpoint whose success is another
    type (CSV, ZIP): drf-spectacular declares an error in every type the view renders, and a client
    generated from that expected CSV or ZIP error bodies, where they are always JSON
    (:meth:`ApiMixin.finalize_response`)."""
    return {(code if isinstance(code, tuple) or code < 400 else (code, "application/json")): body
            for code, body in responses.items()}
# engine error code -> HTTP status
ENGINE_STATUS = {"unreadable_image": 400, "frame_too_large": 413, "no_face": 422, "models_missing": 503}


class ApiPagination(PageNumberPagination):
    """``?page=N`` (from 1) and ``?page_size=`` (default 50, at most 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: APIView | None = None) -> list | None:
        """DRF's pages, with a page past the end (or not a number) a 400 on ``page``: a 404 here
        would read as "no such endpoint"; and a ``page_size`` that is no whole number from 1 a 400
        on it (DRF read ``0``, ``-1`` or ``ten`` as the default 50 without a word)."""
        size = request.query_params.get(self.page_size_query_param)
        if size is not None and not (size.isascii() and size.isdigit() and int(size) >= 1):
            raise exceptions.ValidationError({self.page_size_query_param: [
                f"A whole number of rows a page, from 1 (at most {self.max_page_size} are served)."]})
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({"page": [str(exc.detail)]}) from exc

    def get_schema_operation_parameters(self, view: APIView) -> list[dict]:
        """DRF's, with the page size's least value (more than the most is served as the most)."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters


class CSVRenderer(renderers.BaseRenderer):
    """``text/csv``, so that a request that accepts only CSV is served: the CSV itself is written
    by the view, and errors are rendered as JSON (:meth:`ApiMixin.finalize_response`)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: object, accepted_media_type: str | None = None,
               renderer_context: dict | None = None) -> bytes:
        """Never called for an error (those are JSON); a body the view did not write as CSV."""
        return renderers.JSONRenderer().render(data)


class ZipRenderer(CSVRenderer):
    """``application/zip``, so that a request that accepts only ZIP is served: the archive is made by
    the view, errors are JSON (as for :class:`CSVRenderer`)."""

    media_type = "application/zip"
    format = "zip"
    charset = None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested too deeply for Python's parser (``RecursionError``, not a
    ``ValueError``) is a 400 like any malformed JSON, not a server error."""

    def parse(self, stream: object, media_type: str | None = None, parser_context: dict | None = None) -> object:
        """The parsed body, or ``ParseError``."""
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc


class MemoryOnlyUploadHandler(MemoryFileUploadHandler):
    """Uploads held in memory, never in a temporary file: a request larger than
    ``FILE_UPLOAD_MAX_MEMORY_SIZE`` is refused (413) instead of being passed on to Django's next
    handler, which writes to disk (without one, its file would vanish: a misleading "no file")."""

    def handle_raw_input(self, input_data: object, META: dict, content_length: int | None, boundary: bytes,
                         encoding: str | None = None) -> None:
        """Take the body, or refuse it if it is too large for memory."""
        super().handle_raw_input(input_data, META, content_length, boundary, encoding)
        if not self.activated:
            raise ApiError(status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, code="request_too_large",
                           detail=f"The request body is larger than {settings.FILE_UPLOAD_MAX_MEMORY_SIZE} bytes.")


class ApiErrors:
    """The API's error bodies (:class:`api.serializers.ErrorSerializer`) and its 406 for an unknown
    format: every endpoint's, and the schema's."""

    def get_exception_handler(self) -> Callable[[Exception, dict], Response | None]:
        """Every API error in the shape of :class:`api.serializers.ErrorSerializer`."""
        return api_exception_handler

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        """DRF's negotiation; an unknown ``?format=`` is a 406 like an unknown ``Accept``, not a
        404 (which would read as "no such endpoint")."""
        try:
            return super().perform_content_negotiation(request, force)
        except Http404 as exc:
            raise exceptions.NotAcceptable(f"Unknown format {request.query_params.get('format', '')!r}.") from exc


# how many unknown query parameters a 400 names (Django lets a request hold up to 1,000)
UNKNOWN_QUERY_NAMED = 10
QUERY_REPEATED = "Given more than once: give it once (a filter takes one value)."
QUERY_EMPTY = "Empty: leave the parameter out to filter nothing by it, or give a value."


class ApiMixin(ApiErrors):
    """Authentication, scope/permission checks, rate limits, pagination and error bodies shared by
    every endpoint. ``access`` maps an action (or HTTP method) to ``(token scope, Django perm)``;
    ``memory_only_uploads``: uploaded files never touch the disk (:class:`MemoryOnlyUploadHandler`)."""

    authentication_classes = [ApiTokenAuthentication, StaffSessionAuthentication]
    permission_classes = [ScopedAccess]
    throttle_classes = [ApiRateThrottle]
    pagination_class = ApiPagination
    renderer_classes = [renderers.JSONRenderer]
    parser_classes = [JSONParser, parsers.MultiPartParser, parsers.FormParser]
    access: dict[str, tuple[str, str]] = {}
    memory_only_uploads = False
    # the serializer of the query parameters an action (or HTTP method) filters by, beside the page's
    query_filters: dict[str, type] = {}

    def initial(self, request: Request, *args, **kwargs) -> None:
        """DRF's checks (authentication, scope, rate), then :meth:`refuse_unknown_query`."""
        super().initial(request, *args, **kwargs)
        self.refuse_unknown_query(request)

    def query_parameters(self, request: Request) -> set[str]:
        """The query parameters this request's endpoint reads: ``format`` (DRF's), a list's ``page``
        and ``page_size``, and its filters (:attr:`query_filters`)."""
        action = getattr(self, "action", None) or request.method.lower()
        known = {api_settings.URL_FORMAT_OVERRIDE}
        paginator = getattr(self, "paginator", None)
        if action == "list" and paginator is not None:
            known |= {paginator.page_query_param, paginator.page_size_query_param}
        if action in self.query_filters:
            known |= set(self.query_filters[action]().fields)
        return known

    def refuse_unknown_query(self, request: Request) -> None:
        """A 400 ``validation_error`` naming each query parameter the endpoint does not read: a
        misspelt filter (``date_form=``) was ignored, and the answer held every row instead of the
        ones asked for (a whole year's check-ins exported as one day's)."""
        known = self.query_parameters(request)
        unknown = sorted(name for name in request.query_params if name not in known)
        if unknown:
            takes = ", ".join(sorted(known)) if len(known) > 1 else "no query parameters besides format"
            message = f"Unknown query parameter: this endpoint takes {takes}."
            # at most a few named, each cut short: the error answers a URL, it does not repeat it
            raise exceptions.ValidationError({name[:100]: [message] for name in unknown[:UNKNOWN_QUERY_NAMED]})
        # a filter given empty or twice was read as not given, or as its last value: `?person=` (a
        # script's unset variable) exported every check-in, `?staff_id=` listed everyone
        action = getattr(self, "action", None) or request.method.lower()
        filters = set(self.query_filters[action]().fields) if action in self.query_filters else set()
        wrong = {name: [QUERY_REPEATED] for name in sorted(request.query_params)
                 if len(request.query_params.getlist(name)) > 1}
        wrong.update({name: [QUERY_EMPTY] for name in sorted(filters & set(request.query_params))
                      if name not in wrong and not request.query_params[name].strip()})
        if wrong:
            raise exceptions.ValidationError(wrong)

    def initialize_request(self, request: HttpRequest, *args, **kwargs) -> Request:
        """DRF's request; with ``memory_only_uploads``, its upload handlers set before anything reads
        the body (a staff session's CSRF check reads the form before the view does)."""
        if self.memory_only_uploads:
            request.upload_handlers = [MemoryOnlyUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @staticmethod
    def caller_may(request: Request, scope: str, perm: str) -> bool:
        """Whether the caller holds ``scope`` (a token) or ``perm`` (a staff session)."""
        return request.auth.allows(scope) if isinstance(request.auth, ApiToken) else request.user.has_perm(perm)

    def finalize_response(self, request: Request, response: HttpResponse, *args, **kwargs) -> HttpResponse:
        """Answers carry personal data (names, staff ids, check-ins, pairing links): never stored
        by a browser or proxy. Errors are JSON whatever was accepted (a CSV request's too)."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400 \
                and not isinstance(response.accepted_renderer, renderers.JSONRenderer):
            response.accepted_renderer, response.accepted_media_type = renderers.JSONRenderer(), "application/json"
        patch_cache_control(response, private=True, no_store=True)
        return response


def _validated(serializer_class: type, data: object) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _upload_bytes(upload: UploadedFile) -> bytes:
    """The uploaded file's bytes, read no further than the size limit (+1 to notice the excess)."""
    return upload.read(settings.MASKNET_MAX_PHOTO_BYTES + 1)


# what a caller is told when the face models are missing: the engine's message names the server's
# models folder, which the log keeps (the admin says the same sentence: enrollment.admin.MODELS_MISSING)
MODELS_MISSING_DETAIL = ("The face models are not installed on the server (its administrator runs "
                         "`manage.py install_models`).")
log = logging.getLogger(__name__)


# what a caller is told when the engine failed on the server's side (models that cannot be converted or
# loaded, an index it cannot search): its message names the server's files, which the log keeps
ENGINE_FAILED_DETAIL = ("The server could not analyse the image: its face recognizer failed (logged for its "
                        "administrator). Try again later.")


def _engine_error(exc: EngineError) -> ApiError:
    """The API's answer to an engine error: the image's fault (unreadable, too large, no face) as its
    status says; missing models 503 ``models_missing``; any other (the server's models or index) 503
    under its own code, said without its message (which names the server's files) and logged. It was
    a 422 with that message, as if the image were at fault."""
    if isinstance(exc, ModelsMissing):
        log.error("API: %s", exc)
        return ApiError(status_code=ENGINE_STATUS["models_missing"], code=exc.code, detail=MODELS_MISSING_DETAIL)
    if exc.code not in ENGINE_STATUS:
        log.error("API: the engine failed: %s", exc, exc_info=exc)
        return ApiError(status_code=503, code=exc.code, detail=ENGINE_FAILED_DETAIL)
    return ApiError(status_code=ENGINE_STATUS[exc.code], code=exc.code, detail=str(exc) or exc.code)


# --------------------------------------------------------------------------------------------
# people


# a person as a change answers it: the record, or (to a caller who may not read people) its id and version
PERSON_OR_VERSION = PolymorphicProxySerializer(component_name="PersonOrVersion", resource_type_field_name=None,
                                               serializers=[s.PersonSerializer, s.PersonVersionSerializer])


def _person_etag(person: Person) -> str:
    """The person's version for ``If-Match``: when they were last changed."""
    return f'"{person.updated_at.isoformat()}"'


def _person_version_matches(tag: str, person: Person) -> bool:
    """Whether ``tag`` (one entry of ``If-Match``) names the person's version: their ``ETag``, or their
    ``updated_at`` as an answer writes it (quoted or not, ``Z`` or ``+00:00``), so that a sync that read
    the people list may write back with the version of each row it read, without reading each person
    again for the header."""
    if tag == _person_etag(person):
        return True
    try:
        sent = parse_datetime(tag.strip('"'))
    except ValueError:
        return False
    return sent is not None and sent.tzinfo is not None and sent == person.updated_at


# the version a person's answers carry and a PUT or PATCH may send back (PersonViewSet.update)
ETAG = OpenApiParameter("ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 201],
                        description="the person's version: send it back as If-Match with a later PUT or PATCH")
IF_MATCH = OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                            description="the ETag of the copy this change was made from (or that copy's "
                                        "updated_at, as a list row gives it): 412 precondition_failed if the person "
                                        "changed since (without it, the change is applied as sent)")


@extend_schema_view(
    list=extend_schema(summary="List people", parameters=[s.PersonFilterSerializer],
                       responses={200: s.PersonSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="A person", parameters=[ETAG],
                           responses={200: s.PersonSerializer, **ERRORS, **NOT_FOUND}),
    create=extend_schema(summary="Create a person (scope enrol; enrol_erased: scope admin)", parameters=[ETAG],
                         responses={201: PERSON_OR_VERSION, 409: s.ErrorSerializer, **ERRORS}),
    update=extend_schema(summary="Replace a person's fields (scope enrol; If-Match: the ETag read, else 412; "
                                 "enrol_erased: scope admin)",
                         parameters=[IF_MATCH, ETAG],
                         responses={200: PERSON_OR_VERSION, 409: s.ErrorSerializer, 412: s.ErrorSerializer, **ERRORS,
                                    **NOT_FOUND}),
    partial_update=extend_schema(summary="Change some of a person's fields (scope enrol; If-Match and enrol_erased "
                                         "as for PUT)",
                                 parameters=[IF_MATCH, ETAG],
                                 responses={200: PERSON_OR_VERSION, 409: s.ErrorSerializer, 412: s.ErrorSerializer,
                                            **ERRORS, **NOT_FOUND}),
)
class PersonViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """People: list, create, retrieve, update, deactivate, erase, export."""

    serializer_class = s.PersonSerializer
    lookup_value_regex = r"[0-9]{1,18}"
    query_filters = {"list": s.PersonFilterSerializer}
    access = {
        "list": (SCOPE_READ, "enrollment.view_person"), "retrieve": (SCOPE_READ, "enrollment.view_person"),
        "create": (SCOPE_ENROL, "enrollment.add_person"), "update": (SCOPE_ENROL, "enrollment.change_person"),
        "partial_update": (SCOPE_ENROL, "enrollment.change_person"),
        "deactivate": (SCOPE_ENROL, "enrollment.change_person"), "erase": (SCOPE_ADMIN, "enrollment.erase_person"),
        "export": (SCOPE_ADMIN, "enrollment.export_person"),
    }

    def get_queryset(self) -> QuerySet[Person]:
        """People with photo counts, filtered by the query parameters on lists."""
        qs = Person.objects.with_photo_stats().order_by("full_name", "id")
        if self.action != "list":
            return qs
        f = _validated(s.PersonFilterSerializer, self.request.query_params)
        if f.get("search"):
            qs = qs.search(f["search"])
        if f.get("active") is not None:
            qs = qs.filter(active=f["active"])
        if f.get("department"):
            qs = qs.filter(department=f["department"])
        if f.get("staff_id"):
            qs = qs.with_staff_id(f["staff_id"])   # unique by its key: one person at most
        if f.get("after_id") is not None:
            # a cursor reads on by id: a rename (name order) or an erasure (a page fewer) meanwhile moved
            # the pages under a sync reading everyone, which then missed people (a helper's HR sync)
            qs = qs.filter(pk__gt=f["after_id"]).order_by("id")
        return qs

    def _answer(self, person: Person, code: int = status.HTTP_200_OK) -> Response:
        fresh = Person.objects.with_photo_stats().get(pk=person.pk)
        if not self.caller_may(self.request, SCOPE_READ, "enrollment.view_person"):
            # a caller who may change people but not read them (an enrol-only token): the record
            # was theirs to read by sending an empty PATCH to each id; the id and version alone
            return Response(s.PersonVersionSerializer(fresh).data, status=code, headers={"ETag": _person_etag(fresh)})
        return Response(s.PersonSerializer(fresh).data, status=code, headers={"ETag": _person_etag(fresh)})

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        """One person, with an ``ETag`` that a later PUT or PATCH may send back as ``If-Match``."""
        return self._answer(self.get_object())

    def create(self, request: Request, *args, **kwargs) -> Response:
        """``enrollment.services.person_create``. The staff id of a person erased at their request is
        409 ``staff_id_erased`` (with ``erased_on``): one person created on purpose, so the caller is
        asked rather than the request skipped as an import skips a folder. ``enrol_erased`` enrols them
        again, lifting the erased staff id: the reverse of part of an erasure, so it takes what
        erasing takes (scope ``admin``; a staff session: ``enrollment.delete_erasedstaffid``)."""
        data = dict(_validated(s.PersonSerializer, request.data))
        adaptation = data.pop("gallery_adaptation", True)
        with self._erased_asked(data) as enrol_erased, transaction.atomic():
            person = enrollment.person_create(actor=request.user, **data, enrol_erased=enrol_erased)
            if not adaptation:
                enrollment.person_gallery_adaptation_stop(person=person, actor=request.user)
        return self._answer(person, status.HTTP_201_CREATED)

    @contextmanager
    def _erased_asked(self, data: dict) -> Iterator[bool]:
        """Around a create or a change of ``data`` (``enrol_erased`` taken out of it): whether the
        service may lift an erased person's staff id (asked, by a caller who may), and its refusal
        of one (:class:`~enrollment.services.StaffIdErased`) as the answer: 403 when ``enrol_erased``
        was sent by a caller who may not lift, else 409 ``staff_id_erased`` with ``erased_on``."""
        asked = data.pop("enrol_erased", False)
        try:
            yield asked and self.caller_may(self.request, SCOPE_ADMIN, "enrollment.delete_erasedstaffid")
        except enrollment.StaffIdErased as exc:
            if asked:
                raise exceptions.PermissionDenied(
                    "enrol_erased lifts an erased person's staff id: it takes a token of scope admin (a staff "
                    "session: the permission enrollment.delete_erasedstaffid).") from exc
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code="staff_id_erased", erased_on=exc.entry.erased_on,
                           detail=f"{exc}: not enrolled again unasked. If they asked to be enrolled again (or the "
                                  "id is someone else's now), send \"enrol_erased\": true (scope admin).") from exc

    def update(self, request: Request, *args, **kwargs) -> Response:
        """``enrollment.services.person_update`` (PUT: every writable field; PATCH: some). With
        ``If-Match`` (the ``ETag`` of the copy the client read), a person changed since is a 412:
        a stale copy written back would undo that change (an offboarding's deactivation). The row is
        locked from the check to the write, so a change committed in between is not undone either. A
        new staff id that is an erased person's is refused and ``enrol_erased`` lifts it, as for
        :meth:`create`."""
        with transaction.atomic():
            enrollment.person_lock(kwargs.get(self.lookup_field))
            person = self.get_object()
            expected = {tag.strip() for tag in request.headers.get("If-Match", "").split(",") if tag.strip()}
            if expected and "*" not in expected and not any(_person_version_matches(t, person) for t in expected):
                raise ApiError(status_code=status.HTTP_412_PRECONDITION_FAILED, code="precondition_failed",
                               detail="The person changed since the copy this request was made from: read them "
                                      "again (their ETag) and apply the change to that.")
            serializer = s.PersonSerializer(person, data=request.data, partial=kwargs.get("partial", False),
                                            context={"may_read": self.caller_may(request, SCOPE_READ,
                                                                                 "enrollment.view_person")})
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            adaptation = data.pop("gallery_adaptation", None)
            with self._erased_asked(data) as enrol_erased:
                enrollment.person_update(person=person, actor=request.user, **data, enrol_erased=enrol_erased)
            if adaptation is False:
                enrollment.person_gallery_adaptation_stop(person=person, actor=request.user)
            elif adaptation:
                enrollment.person_gallery_adaptation_resume(person=person, actor=request.user)
        return self._answer(person)

    @extend_schema(summary="Deactivate a person (scope enrol): out of the index, still enrolled", request=None,
                   parameters=[ETAG], responses={200: PERSON_OR_VERSION, **ERRORS, **NOT_FOUND})
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, pk: str | None = None) -> Response:
        """``enrollment.services.person_deactivate``."""
        person = enrollment.person_deactivate(person=self.get_object(), actor=request.user)
        return self._answer(person)

    @extend_schema(summary="Erase a person's biometric data (scope admin; superusers)", request=None,
                   responses={204: None, 507: s.ErrorSerializer, **ERRORS, **NOT_FOUND})
    @action(detail=True, methods=["post"])
    def erase(self, request: Request, pk: str | None = None) -> Response:
        """``enrollment.services.person_erase``: the person, photos, templates and index entries."""
        enrollment.person_erase(person=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="A ZIP of what the site holds about a person: subject access (token of scope admin)",
                   auth=[{"ApiToken": []}],
                   responses=json_errors({(200, "application/zip"): OpenApiTypes.BINARY, 406: s.ErrorSerializer,
                                          409: s.ErrorSerializer, **ERRORS, **NOT_FOUND}))
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, ZipRenderer])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        """``enrollment.services.person_export`` (audited); over ``MASKNET_EXPORT_MAX_BYTES``, 409. HEAD
        (which the router gives every GET) is 405: it would build the archive and record an export
        of data it never hands out (a link checker's or a monitor's request).

        An API token only: a staff session (cookie) is refused, 403. The cookie goes with a top-level
        GET from another site's link, which would write the audit record and put biometric data in
        a download folder, and no header tells such a GET from this site's own: ``Sec-Fetch-Site``
        is not sent by older browsers nor to a site served over plain HTTP, ``Origin`` not with a
        GET navigation, and the linking page can withhold ``Referer``. In a browser, the admin's
        *Export personal data* downloads it by a CSRF-checked POST."""
        if request.method == "HEAD":
            raise exceptions.MethodNotAllowed("HEAD", detail="Use GET: a HEAD request would record an export "
                                                             "that hands nothing out.")
        if not isinstance(request.auth, ApiToken):
            raise exceptions.PermissionDenied("The API's export takes an API token of scope admin; in the browser, "
                                              "use Export personal data on the person's admin page.")
        person = self.get_object()
        try:
            data = enrollment.person_export(person=person, actor=request.user)
        except enrollment.ExportTooLarge as exc:
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code="export_too_large", detail=str(exc)) from exc
        except Person.DoesNotExist as exc:   # erased while the archive was being made
            raise Http404 from exc
        return export_download(person.pk, data)


# --------------------------------------------------------------------------------------------
# photos


@extend_schema_view(
    list=extend_schema(summary="A person's photos", responses={200: s.PhotoSerializer(many=True), **ERRORS,
                                                               **NOT_FOUND}),
    retrieve=extend_schema(summary="One photo's facts", responses={200: s.PhotoSerializer, **ERRORS, **NOT_FOUND}),
    destroy=extend_schema(summary="Remove a photo (scope enrol)", responses={204: None, **ERRORS, **NOT_FOUND}),
)
class PhotoViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Photos of a person: list, upload (the admin's validation), delete."""

    serializer_class = s.PhotoSerializer
    access = {
        "list": (SCOPE_READ, "enrollment.view_facephoto"), "retrieve": (SCOPE_READ, "enrollment.view_facephoto"),
        "create": (SCOPE_ENROL, "enrollment.add_facephoto"), "destroy": (SCOPE_ENROL, "enrollment.delete_facephoto"),
    }

    def check_permissions(self, request: Request) -> None:
        """``access``; and to upload from a staff session, the right to see people too
        (``view_person``, or ``change_person``, which implies it), as the admin's capture page asks:
        an upload names a person by id, and its answer (404 or not) tells whether that id exists.
        Checked before the person is looked up, so that every id answers the same 403. (A token's
        ``enrol`` scope may change people by id, so knows them already.)"""
        super().check_permissions(request)
        if self.action == "create" and not isinstance(request.auth, ApiToken) and not any(
                request.user.has_perm(f"enrollment.{p}_person") for p in ("view", "change")):
            self.permission_denied(request, message="Your account lacks the permission 'enrollment.view_person'.")

    def person(self) -> Person:
        """The person of the URL (404 if none)."""
        return get_object_or_404(Person, pk=self.kwargs["person_pk"])

    def get_queryset(self) -> QuerySet[FacePhoto]:
        """The person's photos."""
        return FacePhoto.objects.filter(person=self.person()).order_by("id")

    @extend_schema(summary="Upload a photo (scope enrol; refused photos answer 422 with the reason)",
                   request={"multipart/form-data": s.PhotoUploadSerializer},
                   responses={201: s.PhotoUploadedSerializer, 413: s.ErrorSerializer, 422: s.ErrorSerializer,
                              503: s.ErrorSerializer, 507: s.ErrorSerializer, **ERRORS, **NOT_FOUND})
    def create(self, request: Request, person_pk: str) -> Response:
        """``enrollment.services.photo_add``; a refusal answers 422 with ``reason`` (its code)."""
        person = self.person()
        upload = _validated(s.PhotoUploadSerializer, request.data)["image"]
        try:
            photo = enrollment.photo_add(person=person, data=_upload_bytes(upload), actor=request.user,
                                         filename=upload.name or "photo.jpg")
        except enrollment.PhotoRefused as exc:
            raise ApiError(status_code=422, code="photo_refused", detail=exc.message, reason=exc.code) from exc
        except EngineError as exc:
            raise _engine_error(exc) from exc
        body = s.PhotoSerializer(photo, context={"request": request}).data
        # the face also matches another active person (a photo filed under the wrong person, a
        # duplicate record): who and how closely only for a caller who may search faces anyway
        shown = enrollment.photo_lookalike_shown(
            photo=photo, actor=request.user, via="photo upload",
            may_search=self.caller_may(request, SCOPE_RECOGNISE, "enrollment.recognise_face"))
        body["lookalike"] = ({"person": shown[0].pk, "score": round(float(shown[1]), 4)} if shown
                             else None if photo.lookalike is None else {"person": None, "score": None})
        # the person by name only for a caller who may read people: an enrol-only token gets a
        # person's id and version alone (PersonViewSet._answer), never their name
        by_name = self.caller_may(request, SCOPE_READ, "enrollment.view_person")
        body["warnings"] = [w for w in (enrollment.photo_repeat_warning(photo=photo, by_name=by_name),
                                        enrollment.photo_mismatch_warning(photo=photo, by_name=by_name),
                                        enrollment.photos_masked_only_warning(person=person, by_name=by_name),
                                        enrollment.photos_inactive_warning(person=person, by_name=by_name)) if w]
        return Response(body, status=status.HTTP_201_CREATED)

    def get_throttles(self) -> list:
        """An upload answers like identify (``lookalike``: whom the face looks like for a caller who
        may search faces, whether it looks like anyone for the others): it counts against the
        recognise rate too, whoever asks (else 600 searches a minute instead of 120)."""
        throttles = super().get_throttles()
        if self.action == "create":
            throttles.append(RecogniseRateThrottle())
        return throttles

    def destroy(self, request: Request, person_pk: str, pk: str) -> Response:
        """``enrollment.services.photo_remove``."""
        enrollment.photo_remove(photo=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------
# check-ins


@extend_schema_view(list=extend_schema(summary="List check-ins, newest first (with after_id: those recorded after "
                                               "that check-in, in the order recorded)",
                                       parameters=[s.CheckInFilterSerializer],
                                       responses={200: s.CheckInSerializer(many=True), **ERRORS}))
class CheckInViewSet(ApiMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Check-ins, filtered by local date range, person, kiosk, site and masked, or read on from a
    cursor (``after_id``); also as CSV; and one recorded by hand."""

    serializer_class = s.CheckInSerializer
    access = {"list": (SCOPE_READ, "recognition.view_checkin"), "csv": (SCOPE_READ, "recognition.view_checkin"),
              "create": (SCOPE_ADMIN, "recognition.add_checkin")}
    query_filters = {"list": s.CheckInFilterSerializer, "csv": s.CheckInFilterSerializer}

    @extend_schema(summary="Record a check-in by hand (scope admin; a staff session: recognition.add_checkin)",
                   request=s.ManualCheckInSerializer,
                   responses={201: s.CheckInSerializer, 409: s.ErrorSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """``recognition.services.checkin_record_manual``, as the admin's *Record a check-in by hand*
        (audited as ``checkin_manual``, recorded by the staff user or the token's service account).
        Its refusals: one in that cooldown window already, 409 ``already_checked_in`` with that
        check-in's id; check-ins of the person recorded and deleted meanwhile, twice, 409 ``try_again``;
        the others (an inactive or erased person, the time, the reason, the site), 400
        ``validation_error`` on the service's field, with its code as ``reason``."""
        # a staff session that may record check-ins but not read them is told no more than the
        # admin's form tells it: neither an inactive person nor when the check-in already there was
        detailed = self.caller_may(request, SCOPE_READ, "recognition.view_checkin")
        serializer = s.ManualCheckInSerializer(data=request.data, context={"active_only": not detailed})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            checkin = recognition.checkin_record_manual(person=data["person"], at=data["at"],
                                                        site=data.get("site") or default_site(),
                                                        reason=data["reason"], actor=request.user)
        except recognition.CheckInExists as exc:
            detail = exc.sentence if detailed else (
                f"Person #{data['person'].pk} is already checked in at site {exc.checkin.site} for that "
                f"{recognition.cooldown_period()}.")
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code=exc.code, detail=detail,
                           checkin=exc.checkin.pk) from exc
        except recognition.CheckInContended as exc:   # not the request's fault: the same request may pass
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code=exc.code, detail=exc.sentence) from exc
        except recognition.CheckInRefused as exc:
            raise refused(field=exc.field, message=exc.sentence, reason=exc.code) from exc
        return Response(s.CheckInSerializer(checkin).data, status=status.HTTP_201_CREATED)

    def list(self, request: Request, *args, **kwargs) -> Response:
        """A page of check-ins (newest first); each page read audited as the CSV is (``list_export``:
        the filters, the page and its size as served, after the cap of 500, and the rows on it): a page
        of 500 hands out as much
        as a CSV of 500 rows, and paging through the list, the whole of it. A staff session's page
        that another site's link started is refused as the CSV is (:meth:`_refuse_cross_site`)."""
        self._refuse_cross_site(request)
        page = self.paginate_queryset(self.get_queryset())   # 400 for invalid filters or pages: nothing recorded
        filters = _validated(s.CheckInFilterSerializer, request.query_params)
        audit_list_export(request, object_type="recognition.checkin",
                          what=f"check-ins (API), page {self.paginator.page.number} of "
                               f"{self.paginator.get_page_size(request)} a page",
                          rows=len(page), filters=checkin_filters_described(filters), form="JSON")
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @staticmethod
    def _refuse_cross_site(request: Request) -> None:
        """403 ``permission_denied`` (logged as a warning) for a staff session's read of the list that
        another site's page started (``masknet_site.csv_export.cross_site_refusal``): its cookie goes
        with such a link, and each read writes a ``list_export`` record. Before the filters are read;
        a token is no cookie a link can carry, so its request never is."""
        if not isinstance(request.auth, ApiToken) and cross_site_refusal(request):
            raise exceptions.PermissionDenied(CROSS_SITE_REFUSED)

    def get_queryset(self) -> QuerySet[CheckIn]:
        """Filtered by the query parameters (400 when they are invalid)."""
        f = _validated(s.CheckInFilterSerializer, self.request.query_params)
        qs = CheckIn.objects.listed().select_related("person", "kiosk").filtered(**f)
        # a cursor (after_id) reads on in the order recorded: page 1 is always the next batch, and a
        # check-in recorded meanwhile goes to the end instead of shifting the pages being read (newest
        # first, by ``at``, one recorded by hand for an earlier time lands among those already read)
        return qs.order_by("id") if f.get("after_id") is not None else qs.order_by("-at", "-id")

    @extend_schema(summary="Check-ins as CSV (same filters, oldest first)", parameters=[s.CheckInFilterSerializer],
                   responses=json_errors({(200, "text/csv"): OpenApiTypes.STR, 406: s.ErrorSerializer, **ERRORS}))
    @action(detail=False, methods=["get"], renderer_classes=[renderers.JSONRenderer, CSVRenderer],
            pagination_class=None)
    def csv(self, request: Request) -> HttpResponse:
        """The attendance export's columns (``recognition.exports.CHECKIN_CSV_HEADER``); each download
        audited as the token's service account (``list_export``: the filters and the row count)."""
        self._refuse_cross_site(request)
        queryset = self.get_queryset()   # 400 for invalid filters, before anything is recorded
        filters = _validated(s.CheckInFilterSerializer, request.query_params)
        audit_list_export(request, object_type="recognition.checkin", what="check-ins (API)",
                          rows=queryset.count(), filters=checkin_filters_described(filters))
        return csv_response(f"checkins-{timezone.localdate().isoformat()}.csv", CHECKIN_CSV_HEADER,
                            checkin_csv_rows(queryset))


# --------------------------------------------------------------------------------------------
# kiosks

# a kiosk's PUT and PATCH in the schema: what the view does, and what the request takes besides its
# fields (api.serializers._ChangeTakesItsFieldsOnly)
KIOSK_CHANGE_DESCRIPTION = (
    "Saved as the admin's change page saves a kiosk (recognition.services.kiosk_update): audited with the "
    "fields changed; an open kiosk screen takes a new name, location or language at once, a new site at its "
    "next check-in. Any member other than the fields is refused (400 validation_error, fields naming it), "
    "except the read-only members of a kiosk's answer sent back as read (a GET-modify-PUT): id, paired, "
    "paired_at, pairing_pending and created_at are taken when they hold the kiosk's values (refused "
    "otherwise: that change is not made), last_seen_at whatever it holds; they change nothing.")


@extend_schema_view(
    list=extend_schema(summary="List kiosks", responses={200: s.KioskSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="A kiosk", responses={200: s.KioskSerializer, **ERRORS, **NOT_FOUND}),
    update=extend_schema(summary="Replace a kiosk's fields (scope admin; active: as for PATCH)",
                         description=KIOSK_CHANGE_DESCRIPTION,
                         responses={200: s.KioskSerializer, **ERRORS, **NOT_FOUND}),
    partial_update=extend_schema(summary="Change some of a kiosk's fields (scope admin; a staff session changing "
                                         "active: pair_kiosk too); deactivating unpairs its device at once",
                                 description=KIOSK_CHANGE_DESCRIPTION,
                                 responses={200: s.KioskSerializer, **ERRORS, **NOT_FOUND}),
)
class KioskViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                   viewsets.GenericViewSet):
    """Kiosks: list, create (with the one-time pairing link), change, revoke the paired device."""

    serializer_class = s.KioskSerializer
    queryset = Kiosk.objects.order_by("name", "id")
    lookup_value_regex = r"[0-9]{1,18}"
    access = {
        "list": (SCOPE_READ, "recognition.view_kiosk"), "retrieve": (SCOPE_READ, "recognition.view_kiosk"),
        "create": (SCOPE_ADMIN, "recognition.add_kiosk"), "revoke": (SCOPE_ADMIN, "recognition.pair_kiosk"),
        "pairing_link": (SCOPE_ADMIN, "recognition.pair_kiosk"),
        "update": (SCOPE_ADMIN, "recognition.change_kiosk"),
        "partial_update": (SCOPE_ADMIN, "recognition.change_kiosk"),
    }

    @extend_schema(summary="Create a kiosk (scope admin); the pairing link is shown only in this answer",
                   request=s.KioskSerializer, responses={201: s.KioskCreatedSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """``recognition.services.kiosk_create``."""
        data = _validated(s.KioskSerializer, request.data)
        # the link only for those who may pair, as in the admin: an admin-scope token, or pair_kiosk
        may_pair = isinstance(request.auth, ApiToken) or request.user.has_perm("recognition.pair_kiosk")
        kiosk, code = recognition.kiosk_create(actor=request.user, name=data["name"], with_link=may_pair,
                                               location=data.get("location", ""), site=data.get("site") or "main",
                                               language=data.get("language", ""), active=data.get("active", True))
        kiosk.pairing_url = request.build_absolute_uri(recognition.pairing_path(code)) if code else None
        return Response(s.KioskCreatedSerializer(kiosk).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        """``recognition.services.kiosk_update``, as the admin's change page saves a kiosk (PUT: ``name``
        and whichever others are sent; PATCH: those sent): audited with the fields changed, an open
        socket told at once (a new name, location or language reaches its page; a new site its next
        check-in). Changing ``active`` is a revocation or its undoing, which the admin leaves to those
        who may pair: a staff session needs ``recognition.pair_kiosk`` for it too (403 otherwise).
        Deactivating unpairs the device and closes its socket, as revoking does. Any other member is
        refused, but the answer's read-only ones sent back as read (``KIOSK_CHANGE_DESCRIPTION``)."""
        kiosk = self.get_object()
        serializer = s.KioskSerializer(kiosk, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "active" in data and not self.caller_may(request, SCOPE_ADMIN, "recognition.pair_kiosk"):
            # sent as it is (a PUT of the kiosk as read): no change, and not passed on, so that a
            # deactivation committed meanwhile is not undone by a caller who may not make it
            if data.pop("active") != kiosk.active:
                raise exceptions.PermissionDenied("Changing active unpairs or readmits the kiosk's device: your "
                                                  "account lacks the permission 'recognition.pair_kiosk'.")
        kiosk = recognition.kiosk_update(kiosk=kiosk, actor=request.user, **data)
        kiosk.refresh_from_db()   # the row as stored (a field another request changed meanwhile too)
        return Response(s.KioskSerializer(kiosk).data)

    @extend_schema(summary="Revoke the kiosk's paired device and unused pairing link (scope admin)", request=None,
                   responses={200: s.KioskSerializer, **ERRORS, **NOT_FOUND})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """``recognition.services.kiosk_revoke``: its token and unused link stop working at once."""
        kiosk = recognition.kiosk_revoke(kiosk=self.get_object(), actor=request.user)
        return Response(s.KioskSerializer(kiosk).data)

    @extend_schema(summary="A new one-time pairing link for the kiosk (scope admin), shown only in this answer; "
                           "an unused earlier link stops working, the paired device keeps working until it is used",
                   request=None, responses={200: s.KioskCreatedSerializer, 409: s.ErrorSerializer, **ERRORS,
                                            **NOT_FOUND})
    @action(detail=True, methods=["post"], url_path="pairing-link")
    def pairing_link(self, request: Request, pk: str | None = None) -> Response:
        """``recognition.services.kiosk_pairing_issue``, as the admin's *New pairing link*: the way back for
        a kiosk whose create answer was lost, or a device replaced. An inactive kiosk: 409 ``kiosk_inactive``
        (a link it could never use)."""
        kiosk = self.get_object()
        try:
            code = recognition.kiosk_pairing_issue(kiosk=kiosk, actor=request.user)
        except recognition.KioskInactive as exc:
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code="kiosk_inactive", detail=str(exc)) from exc
        kiosk.pairing_url = request.build_absolute_uri(recognition.pairing_path(code))
        return Response(s.KioskCreatedSerializer(kiosk).data)


# --------------------------------------------------------------------------------------------
# index


class IndexView(ApiMixin, APIView):
    """The recognition index: the active version and the latest rebuild."""

    access = {"get": (SCOPE_READ, "enrollment.view_indexversion")}

    @extend_schema(summary="The active index version", responses={200: s.IndexStatusSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        """``null`` members before the first rebuild."""
        data = {"active": IndexVersion.objects.current(), "latest_rebuild": TrainingRun.objects.order_by("-id").first()}
        return Response(s.IndexStatusSerializer(data).data)


@extend_schema_view(
    list=extend_schema(summary="Index rebuilds, newest first",
                       responses={200: s.TrainingRunSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="A rebuild's progress",
                           responses={200: s.TrainingRunSerializer, **ERRORS, **NOT_FOUND}),
)
class RebuildViewSet(ApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Index rebuilds: start one, follow its progress."""

    serializer_class = s.TrainingRunSerializer
    queryset = TrainingRun.objects.order_by("-id")
    lookup_value_regex = r"[0-9]{1,18}"
    access = {
        "list": (SCOPE_READ, "enrollment.view_trainingrun"), "retrieve": (SCOPE_READ, "enrollment.view_trainingrun"),
        "create": (SCOPE_ENROL, "enrollment.rebuild_index"),
    }

    @extend_schema(summary="Start a rebuild now (scope enrol); follow it at its URL", request=None,
                   responses={202: s.TrainingRunSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        """``enrollment.services.index_rebuild_request(force=True)`` (joins a queued rebuild)."""
        run = enrollment.index_rebuild_request(actor=request.user, reason="api: rebuild requested", force=True)
        return Response(s.TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


# --------------------------------------------------------------------------------------------
# recognition


class IdentifyView(ApiMixin, APIView):
    """``POST /api/v1/identify``: who are the faces in this image?"""

    access = {"post": (SCOPE_RECOGNISE, "enrollment.recognise_face")}
    memory_only_uploads = True   # probe images are never stored (docs/security.md)
    throttle_classes = [ApiRateThrottle, RecogniseRateThrottle]

    @extend_schema(summary="Identify the faces of an image (scope recognise)",
                   request={"multipart/form-data": s.IdentifyRequestSerializer},
                   responses={200: s.IdentifyAnswerSerializer, 409: s.ErrorSerializer, 413: s.ErrorSerializer,
                              503: s.ErrorSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        """``api.services.face_identify``."""
        upload = _validated(s.IdentifyRequestSerializer, request.data)["image"]
        try:
            answer = services.face_identify(data=_upload_bytes(upload), actor=request.user)
        except services.IndexUnavailable as exc:
            raise ApiError(status_code=409, code="no_index", detail=str(exc)) from exc
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return Response(s.IdentifyAnswerSerializer(answer).data)


class VerifyView(ApiMixin, APIView):
    """``POST /api/v1/verify``: is the face in this image this person?"""

    access = {"post": (SCOPE_RECOGNISE, "enrollment.recognise_face")}
    memory_only_uploads = True
    throttle_classes = [ApiRateThrottle, RecogniseRateThrottle]

    @extend_schema(summary="Verify that an image's main face is a given person (scope recognise)",
                   request={"multipart/form-data": s.VerifyRequestSerializer},
                   responses={200: s.VerifyAnswerSerializer, 409: s.ErrorSerializer, 413: s.ErrorSerializer,
                              422: s.ErrorSerializer, 503: s.ErrorSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        """``api.services.face_verify``."""
        data = _validated(s.VerifyRequestSerializer, request.data)
        try:
            answer = services.face_verify(data=_upload_bytes(data["image"]), person_id=data["person"],
                                          actor=request.user)
        except services.IndexUnavailable as exc:
            raise ApiError(status_code=409, code="no_index", detail=str(exc)) from exc
        except services.NotInIndex as exc:
            raise ApiError(status_code=409, code="not_in_index", detail=str(exc)) from exc
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return Response(s.VerifyAnswerSerializer(answer).data)


def _other_slash(path: str) -> str | None:
    """``path`` with its trailing slash taken away or added, when that is an endpoint's URL, else ``None``.

    The endpoints under ``/api/v1/`` end without a slash, the schema and its page with one (Django's
    and DRF's usual form), and the catch-all below answers before Django's ``APPEND_SLASH`` could
    redirect: ``/api/v1/people/`` was a bare "No API endpoint", which read as a site without the API."""
    other = path[:-1] if path.endswith("/") else path + "/"
    if not other.startswith("/api/"):
        return None
    try:
        match = resolve(other)
    except Resolver404:
        return None
    return None if match.func is not_found else other


@csrf_exempt   # no side effects: an unsafe method gets the same JSON 404, not Django's HTML CSRF 403
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other URL under ``/api/``, whatever the method: a JSON 404 like every other API error
    (naming the endpoint's URL where this one differs from it by a trailing slash)."""
    detail = "No API endpoint at this URL (see /api/schema/)."
    other = _other_slash(request.path_info)
    if other is not None:
        detail = f"No API endpoint at this URL; did you mean {request.path.removesuffix(request.path_info) + other}?"
    response = JsonResponse({"error": "not_found", "detail": detail}, status=404)
    patch_cache_control(response, private=True, no_store=True)
    return response


# --------------------------------------------------------------------------------------------
# the schema


class SchemaView(ApiErrors, SpectacularAPIView):
    """``/api/schema/``: open to anyone (it holds no data), generated from the code once per
    process (0.05-0.1 s of a core, the GIL held) and kept. ``cache_page`` before it keyed on the
    whole URL: ``?x=1``, ``?x=2``… each built it anew and stored another 64 KB copy in the cache
    (Redis in production, beside the login lockouts and rate limits) for 10 minutes. Errors are
    the API's (JSON, 406 for an unknown ``?format=``, never stored)."""

    _built: dict | None = None
    _lock = threading.Lock()

    def _get_schema_response(self, request: Request) -> Response:
        with SchemaView._lock:
            if SchemaView._built is None:
                # no version from the query string either: one schema, whatever is asked
                SchemaView._built = self.generator_class(urlconf=self.urlconf, api_version=None,
                                                         patterns=self.patterns).get_schema(request=None, public=True)
        return Response(data=SchemaView._built,
                        headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, None)}"'})

    def finalize_response(self, request: Request, response: HttpResponse, *args, **kwargs) -> HttpResponse:
        """The schema may be cached for 10 minutes (docs/api.md); an error, JSON, never."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            if isinstance(response, Response):
                response.accepted_renderer, response.accepted_media_type = renderers.JSONRenderer(), "application/json"
            patch_cache_control(response, private=True, no_store=True)
        else:
            patch_cache_control(response, max_age=600)
        return response
