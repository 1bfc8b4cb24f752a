"""Request and response shapes of the API (validation only: writes are done by the services)."""

from __future__ import annotations

import json
import re
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from enrollment.models import FacePhoto, IndexVersion, Person, TrainingRun
from enrollment.text import PERSON_TEXT, name_normal, staff_id_normal
from recognition.kiosk_text import languages
from recognition.models import CheckIn, Kiosk
from recognition.services import MANUAL_CHECKIN_MAX_DAYS, MANUAL_REASON_MAX, wall_time_occurs


class ErrorSerializer(serializers.Serializer):
    """Every error answer: a stable ``error`` code, a sentence, field errors for validation."""

    error = serializers.CharField(help_text="stable code, e.g. 'validation_error', 'not_found', 'photo_refused'")
    detail = serializers.CharField(help_text="what went wrong, for people")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="field name -> messages (validation errors only)")
    reason = serializers.CharField(required=False, help_text="refusal code of a photo, or of a check-in by hand "
                                                             "(see docs/api.md)")
    checkin = serializers.IntegerField(required=False, help_text="the check-in already recorded in that window "
                                                                 "(409 already_checked_in)")
    erased_on = serializers.DateField(required=False, help_text="the date the person of that staff id was erased at "
                                                                "their request (409 staff_id_erased)")


# --------------------------------------------------------------------------------------------
# people and photos


class PersonVersionSerializer(serializers.Serializer):
    """What a change of a person answers a caller who may change people but not read them (an
    enrol-only token): the id and version (its ``ETag`` comes with it), not the record."""

    id = serializers.IntegerField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class PersonVersionSchema(OpenApiSerializerExtension):
    """:class:`PersonVersionSerializer` in the schema with ``additionalProperties: false``: a change's
    answer is declared ``oneOf`` a person or their version, and a whole person (which has an ``id``
    and an ``updated_at`` too) matched both, so every full answer broke the schema's ``oneOf``."""

    target_class = PersonVersionSerializer

    def map_serializer(self, auto_schema, direction) -> dict:  # noqa: D102
        return {**auto_schema._map_basic_serializer(self.target, direction), "additionalProperties": False}


class _OmittableBoolean(serializers.BooleanField):
    """A boolean a form-encoded body may leave out, as a JSON one may. DRF reads a boolean missing
    from form data as ``false`` (an unticked HTML checkbox): ``POST /people`` with
    ``full_name=...&staff_id=...`` created an inactive person, whom no kiosk recognises, and a PUT
    without ``active`` deactivated them, where the same requests in JSON keep the default or the
    person's own value."""

    default_empty_html = empty


class _OneValue:
    """A field that takes one value: a multipart body with several parts of that name is refused
    (``several``), not answered for one of them with the others dropped without a word."""

    default_error_messages = {"several": "Send one value in this field per request ({count} were sent)."}

    def get_value(self, dictionary):
        values = dictionary.getlist(self.field_name) if hasattr(dictionary, "getlist") else []
        return values if len(values) > 1 else super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, list):
            self.fail("several", count=len(data))
        return super().to_internal_value(data)


class _OneFile(_OneValue, serializers.FileField):
    """A file field that takes one file (a caller expecting the admin's multi-upload lost photos,
    answered for the first alone)."""

    default_error_messages = {"several": "Send one file in this field per request ({count} were sent)."}


class _OneInteger(_OneValue, serializers.IntegerField):
    """An integer field that takes one value (verify compared the image with the last ``person``
    sent, whatever the others were)."""


class _PersonText(serializers.CharField):
    """A name, staff id or search text, read as the services store names and staff ids
    (``normal``: :mod:`enrollment.text`; "Zoë" decomposed is "Zoë" composed, a zero-width space is
    nothing) before its validators run: a staff id taken in another Unicode form is "already
    exists", and one made of invisible characters alone is blank."""

    def __init__(self, *, normal, **kwargs) -> None:
        self.normal = normal
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        value = self.normal(super().to_internal_value(data))
        if not value and not self.allow_blank:
            self.fail("blank")
        return value


# how many refused members of a request's body a 400 names (the rest are counted)
MEMBERS_NAMED = 10


class _ChangeTakesItsFieldsOnly:
    """A change's body (the serializer given an ``instance``: a PUT or a PATCH) refused, 400
    ``validation_error`` naming each member, for a member that is not one of its fields: DRF drops it
    without a word, so ``{"paired": false}`` was answered 200 with nothing changed, and a misspelt
    ``"loaction"`` looked saved. A read-only field of the answer sent back as read (a client's
    GET-modify-PUT) passes when it holds the instance's value now, and those of ``echoed_any``
    (a value that moves on its own) whatever it holds; with another value it is refused too, since
    that change is not made (``read_only_hints``: how it is made, by field). With ``may_read`` false
    in the context (a caller who may change the object but not read it), a read-only field is refused
    whatever it holds, without its value."""

    echoed_any: tuple[str, ...] = ()
    read_only_hints: dict[str, str] = {}

    def to_internal_value(self, data):
        refused = self._members_refused(data) if hasattr(data, "keys") else {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if refused and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**refused, **exc.detail}) from exc
            raise
        if refused:
            raise serializers.ValidationError(refused)
        return value

    def _members_refused(self, data) -> dict[str, list[str]]:
        """The members of ``data`` refused, by name: at most :data:`MEMBERS_NAMED`, a longer name cut to 100
        characters (ending "…"), and how many more under ``non_field_errors`` (a 10 MB object of unknown members
        was answered with a 94 MB error naming each, after 16 s and 1 GB of the server's memory)."""
        fields, shown, refused, more = self.fields, None, {}, 0
        taken = ", ".join(name for name, field in fields.items() if not field.read_only)
        for name in data.keys():
            field = fields.get(name)
            if name == "csrfmiddlewaretoken":   # a staff session's form: Django's, read before the view
                continue
            message = None
            if self.instance is None:   # a create: nothing to send back as read
                if field is None or field.read_only:
                    message = f"{'Read-only' if field else 'Unknown field'}: a new one takes {taken}."
            elif field is None:
                message = f"Unknown field: a change takes {taken} (and the answer's other fields as read)."
            elif field.read_only and name not in self.echoed_any and not self.context.get("may_read", True):
                # a caller who may change but not read (an enrol-only token): neither the value here nor
                # whether theirs is it (a pass or a refusal would tell; a helper's review of the API)
                message = "Read-only: leave it out (this caller may change it, not read it)."
            elif field.read_only and name not in self.echoed_any:
                shown = shown if shown is not None else self.to_representation(self.instance)
                if not _same_value(data[name], shown.get(name)):
                    hint = self.read_only_hints.get(name, "")
                    message = (f"Read-only: it is {json.dumps(shown.get(name))} here; leave it out or send it as "
                               f"read{f' ({hint})' if hint else ''}.")
            if message is None:
                continue
            key = name if len(name) <= 100 else name[:99] + "…"
            if len(refused) < MEMBERS_NAMED and key not in refused:   # two cut to the same name: counted
                refused[key] = [message]
            else:
                more += 1
        if more:
            refused["non_field_errors"] = [f"{more} more members refused, not named here."]
        return refused


class PersonSerializer(_ChangeTakesItsFieldsOnly, serializers.ModelSerializer):
    """A person (no biometric data); ``enrol_erased`` (written, never read) asks to create a person
    of an erased person's staff id, or to give one that staff id. A member that is none of its
    fields is refused (:class:`_ChangeTakesItsFieldsOnly`): a misspelt ``"actve": false`` was
    answered 200 with the person still recognised; ``photo_count`` and ``updated_at`` sent back
    are taken whatever they hold (they move on their own)."""

    echoed_any = ("photo_count", "updated_at")

    photo_count = serializers.IntegerField(read_only=True, default=0)
    # declared: the model's field is not editable, which DRF reads as read-only and not nullable
    deactivated_at = serializers.DateTimeField(
        read_only=True, allow_null=True,
        help_text="when they were last deactivated; null while active, or for a deactivation from before it was "
                  "recorded (attendance counts past days by it)")
    active = _OmittableBoolean(required=False, help_text="recognised at kiosks; new people are active")
    gallery_adaptation = _OmittableBoolean(
        required=False,
        help_text="whether a confident check-in may keep a photo of their face (gallery adaptation, when the site "
                  "has MASKNET_GALLERY_ADAPT on); false stops it (the person objects, or a kept photo was wrong), "
                  "true resumes it; new people: true")
    # in the request alone (create, PUT, PATCH), on this serializer so that the schema's request
    # components keep their names (PersonRequest, PatchedPersonRequest) for generated clients
    enrol_erased = _OmittableBoolean(
        required=False, default=False, write_only=True,
        help_text="the staff id is of a person erased at their request (409 staff_id_erased without it): they asked to "
                  "be enrolled again, or the id is someone else's now; lifts the erased staff id (scope admin)")

    def build_standard_field(self, field_name: str, model_field):
        """The model's fields, names and staff id as :class:`_PersonText`."""
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if field_name in PERSON_TEXT:
            return _PersonText, {**kwargs, "normal": PERSON_TEXT[field_name]}
        return field_class, kwargs

    class Meta:
        model = Person
        fields = ["id", "full_name", "staff_id", "department", "active", "notes", "photo_count", "created_at",
                  "updated_at", "enrol_erased", "deactivated_at", "gallery_adaptation"]
        read_only_fields = ["id", "created_at", "updated_at"]


def _cursor(help_text: str) -> serializers.IntegerField:
    """A list's ``after_id``: the rows with a greater id, by id (a cursor that rows written meanwhile
    do not move)."""
    return serializers.IntegerField(required=False, min_value=0, max_value=2**62, help_text=help_text)


class PersonFilterSerializer(serializers.Serializer):
    """Query parameters of the people list."""

    search = _PersonText(normal=name_normal, required=False, max_length=200,
                         help_text="in name, staff id or department")
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
    department = _PersonText(normal=name_normal, required=False, max_length=120)
    staff_id = _PersonText(normal=staff_id_normal, required=False, max_length=64,
                           help_text="exactly, as staff ids are compared: ignoring letter case, full-width forms, "
                                     "repeated spaces and dashes that look like '-'")
    after_id = _cursor("only people with an id above after_id, answered by id: keep the last id read and ask again "
                       "with it. A read of everyone (a sync finding leavers) sees each person once whatever is "
                       "renamed or erased meanwhile, where page numbers in name order skip and repeat people; one "
                       "created at that moment may be seen at the next read from 0 (docs/api.md, 'Syncing from an "
                       "HR system')")


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]})
class _DateTimeOrDate(serializers.DateTimeField):
    """A date-time, which :class:`PhotoSerializer` may give as its date alone."""


class PhotoSerializer(serializers.ModelSerializer):
    """What the engine found in an enrollment photo (not the pixels), and ``file_missing``: the last
    rebuild that tried to embed it, or the daily photo sweep, found no file in storage for it
    (restore the file or remove the photo; cleared when it is back). A photo gallery adaptation kept
    from a check-in is added seconds after it: its ``created_at`` is the check-in's time, so a
    caller who may not read check-ins (a session without ``recognition.view_checkin``, a token
    without ``read``) gets its date alone (``YYYY-MM-DD``)."""

    created_at = _DateTimeOrDate(read_only=True)

    class Meta:
        model = FacePhoto
        fields = ["id", "person", "source", "width", "height", "box", "quality_score", "quality_verdict", "masked",
                  "masked_prob", "embedding_state", "file_missing", "created_at"]
        read_only_fields = fields

    def to_representation(self, instance: FacePhoto) -> dict:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if instance.source == FacePhoto.Source.CHECKIN and request is not None and not _reads_checkins(request):
            data["created_at"] = timezone.localtime(instance.created_at).date().isoformat()
        return data


def _reads_checkins(request) -> bool:
    """Whether the caller may read check-ins: a token's ``read`` scope, a session's permission."""
    from .models import SCOPE_READ, ApiToken

    if isinstance(getattr(request, "auth", None), ApiToken):
        return request.auth.allows(SCOPE_READ)
    return request.user.has_perm("recognition.view_checkin")


class LookalikeSerializer(serializers.Serializer):
    """Another active person the uploaded face also matches, as a kiosk would decide it."""

    person = serializers.IntegerField(allow_null=True, help_text="their id (null without the recognise scope "
                                                                 "or enrollment.recognise_face)")
    score = serializers.FloatField(allow_null=True)


class PhotoUploadedSerializer(PhotoSerializer):
    """The stored photo's facts, whether its face also matches someone else (null: nobody), and
    what the admin would warn of (a sentence each; empty: nothing)."""

    lookalike = LookalikeSerializer(read_only=True, allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True,
                                     help_text="the same picture as another photo of the person, saved again; every "
                                               "photo of the person shows a face mask")

    class Meta(PhotoSerializer.Meta):
        fields = [*PhotoSerializer.Meta.fields, "lookalike", "warnings"]
        read_only_fields = fields


class PhotoUploadSerializer(serializers.Serializer):
    """``multipart/form-data`` with one JPEG, PNG or WebP file in ``image``."""

    image = _OneFile(help_text="a photo of this person alone, facing the camera")


# --------------------------------------------------------------------------------------------
# check-ins


class CheckInSerializer(serializers.ModelSerializer):
    """One check-in: a kiosk's, or one recorded by hand (``source`` ``manual``: no kiosk, score,
    threshold or index version, 0 frames, and the ``reason`` given)."""

    staff_id = serializers.CharField(source="person.staff_id", read_only=True)
    person_name = serializers.CharField(source="person.full_name", read_only=True)
    kiosk_name = serializers.CharField(source="kiosk.name", read_only=True, default=None, allow_null=True)

    class Meta:
        model = CheckIn
        fields = ["id", "person", "staff_id", "person_name", "kiosk", "kiosk_name", "site", "at", "local_date",
                  "score", "threshold", "masked", "frames", "index_version", "source", "reason"]
        read_only_fields = fields


class _DateAndTime(serializers.DateTimeField):
    """A date-time that must have its time: DRF (Python's ``fromisoformat``) reads a date alone,
    ``2026-11-03`` or ``2026-W45-2``, as that day's midnight, which a client that meant "that day"
    never asked for."""

    default_error_messages = {"date_only": "Give a date and a time (ISO 8601, e.g. 2026-11-03T09:00:00+01:00), "
                                           "not a date alone.",
                              "skipped": "That time did not happen in the site's time zone ({zone}): the clocks went "
                                         "forward over it. Give the time with its UTC offset."}

    def to_internal_value(self, value: object) -> datetime:
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9W-]+\s*", value):
            self.fail("date_only")
        return super().to_internal_value(value)

    def enforce_timezone(self, value: datetime) -> datetime:
        """A time without an offset is the site's (``TIME_ZONE``), as the admin's form reads it: one
        the clocks skip (01:30 on the night they go forward) is refused, where it was stored an hour
        later without a word; one they go back over is its first occurrence, as Python reads it."""
        if timezone.is_naive(value):
            zone = self.timezone if getattr(self, "timezone", None) else self.default_timezone()
            if zone is not None and not wall_time_occurs(value, zone):
                self.fail("skipped", zone=str(zone))
        try:
            return super().enforce_timezone(value)
        except OverflowError:   # DRF's check of a local time at the calendar's edge (no UTC time) raises it
            self.fail("overflow")


class ManualCheckInSerializer(serializers.Serializer):
    """A check-in recorded by hand (``POST /api/v1/checkins``), as the admin's *Record a check-in by
    hand* takes it. Only the shape is checked here: an active person, the time's bounds, a reason of
    at most 200 characters and a known site are ``recognition.services.checkin_record_manual``'s."""

    # a whole number before the lookup: the model's field read 1.9 as int(1.9), another person's id
    person = serializers.PrimaryKeyRelatedField(queryset=Person.objects.all(), help_text="the person's id",
                                                pk_field=serializers.IntegerField())
    at = _DateAndTime(help_text="when they arrived, ISO 8601 with a UTC offset (a time without one is the site's "
                                "local time, TIME_ZONE; a date alone is refused): not more than a minute ahead "
                                f"(taken as now), at most {MANUAL_CHECKIN_MAX_DAYS} days back")
    site = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="a site of the kiosks or check-ins; left out or blank: main, or the "
                                           "first site there is")
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                   help_text=f"why by hand, e.g. 'badge at the loading bay' (at most "
                                             f"{MANUAL_REASON_MAX} characters): kept with the check-in")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # a caller who may record check-ins but not read them (a staff session without
        # view_checkin): an inactive person's id is refused as one that is nobody's, as the admin's
        # form refuses it (its list offers the active people alone)
        if self.context.get("active_only"):
            self.fields["person"].queryset = Person.objects.active()


class CheckInFilterSerializer(serializers.Serializer):
    """Query parameters of the check-in list and CSV: local dates inclusive."""

    date_from = serializers.DateField(required=False, help_text="first local day (YYYY-MM-DD)")
    date_to = serializers.DateField(required=False, help_text="last local day (YYYY-MM-DD)")
    person = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    kiosk = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    site = serializers.CharField(required=False, max_length=100)
    masked = serializers.BooleanField(required=False, allow_null=True, default=None)
    after_id = _cursor("only check-ins recorded after check-in #after_id (ids grow in the order check-ins are "
                       "recorded, whatever their 'at': one recorded by hand for an earlier time has a new id); the "
                       "list then answers them in that order, oldest id first: keep the last id read and ask again "
                       "with it (docs/api.md, 'Reading new check-ins')")

    def validate(self, attrs: dict) -> dict:
        """``date_from`` must not be after ``date_to``."""
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["must not be before date_from"]})
        return attrs


# --------------------------------------------------------------------------------------------
# kiosks


# how a member sent back is read to compare it with the answer's (JSON's, or a form's text): by the
# answer's type ("7" is 7, "false" is false, a time in another offset or form is the same time)
_ANSWER_PARSERS = ((bool, serializers.BooleanField), (int, serializers.IntegerField), (str, serializers.DateTimeField))


def _same_value(sent: object, shown: object) -> bool:
    """Whether ``sent`` (a request's member) is ``shown`` (the answer's) as a field would read it."""
    if sent is None or shown is None:
        return sent is shown
    for kind, parser in _ANSWER_PARSERS:
        if isinstance(shown, kind):
            try:
                return parser().to_internal_value(sent) == parser().to_internal_value(shown)
            except serializers.ValidationError:
                break
    return sent == shown


class KioskSerializer(_ChangeTakesItsFieldsOnly, serializers.ModelSerializer):
    """A kiosk (never its secrets); ``language``, its screen's, blank for the site's default
    (``MASKNET_KIOSK_LANGUAGE``): the admin's choices, the catalogs of :mod:`recognition.kiosk_text`.
    Written by a create and a change (the admin's fields); its device token, pairing state and
    handshake count are not fields here, so no request sets them: a change sending them, or anything
    else but its fields, is refused (:class:`_ChangeTakesItsFieldsOnly`; ``last_seen_at``, which moves
    while the kiosk is connected, is taken whatever it holds)."""

    echoed_any = ("last_seen_at",)
    read_only_hints = dict.fromkeys(("paired", "paired_at", "pairing_pending"),
                                    "POST /api/v1/kiosks/<id>/revoke unpairs its device and voids an unused link; "
                                    "POST /api/v1/kiosks/<id>/pairing-link makes a new link")

    paired = serializers.BooleanField(read_only=True)
    # left out, a new kiosk is active and a changed one keeps its state (form-encoded too)
    active = _OmittableBoolean(required=False, help_text="an inactive kiosk is disconnected at once and cannot check "
                                                         "anyone in; deactivating one unpairs its device")
    pairing_pending = serializers.SerializerMethodField()

    def build_standard_field(self, field_name: str, model_field):
        """``language``'s refusal names the codes there are (DRF's says only that it is not one)."""
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if field_name == "language":
            kwargs["error_messages"] = {**kwargs.get("error_messages", {}), "invalid_choice": (
                f"“{{input}}” is no kiosk language: one of {', '.join(languages())}, or blank for the site's "
                f"default (MASKNET_KIOSK_LANGUAGE, {settings.MASKNET_KIOSK_LANGUAGE})")}
        return field_class, kwargs

    class Meta:
        model = Kiosk
        fields = ["id", "name", "location", "site", "active", "paired", "paired_at", "pairing_pending",
                  "last_seen_at", "created_at", "language"]
        read_only_fields = ["id", "paired", "paired_at", "last_seen_at", "created_at"]

    def get_pairing_pending(self, kiosk: Kiosk) -> bool:
        """Whether an unused, unexpired pairing link exists."""
        return bool(kiosk.pairing_hash and kiosk.pairing_expires_at and kiosk.pairing_expires_at > timezone.now())


class KioskSchema(OpenApiSerializerExtension):
    """:class:`KioskSerializer` and :class:`KioskCreatedSerializer` in the schema with ``active``
    required in answers, as it was while it was read-only: a request may leave it out now (a change
    sets it), but every answer has it, and a client generated from the schema keeps it required."""

    target_class = "api.serializers.KioskSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction) -> dict:  # noqa: D102
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "response":
            schema["required"] = sorted({*schema.get("required", []), "active"})
        return schema


class KioskCreatedSerializer(KioskSerializer):
    """A new kiosk with its one-time pairing link (shown only in this answer)."""

    pairing_url = serializers.CharField(read_only=True, allow_null=True,
                                        help_text="open it once on the kiosk device (null without pair_kiosk)")
    pairing_expires_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                                   help_text="null with pairing_url")

    class Meta(KioskSerializer.Meta):
        fields = [*KioskSerializer.Meta.fields, "pairing_url", "pairing_expires_at"]


# --------------------------------------------------------------------------------------------
# index


class IndexVersionSerializer(serializers.ModelSerializer):
    """An index version's facts."""

    thresholds = serializers.SerializerMethodField()

    class Meta:
        model = IndexVersion
        fields = ["id", "created_at", "is_active", "people_count", "photo_count", "template_count", "dim",
                  "model_version", "adapter_version", "thresholds"]
        read_only_fields = fields

    def get_thresholds(self, version: IndexVersion) -> dict[str, float]:
        """The scores a probe needs against this version now (``masked``, ``unmasked``): the engine's
        thresholds of today, raised to the gallery's fitted ones where they apply (a gallery of 100
        people or more), as the kiosks and identify/verify decide; not the figures recorded when it
        was built, which an older release fitted on any gallery."""
        from enrollment.recognizer import engine_config
        from recognition.engine.gallery import site_threshold

        cfg, site = engine_config(), version.site_thresholds()
        return {"masked": site_threshold(cfg.threshold_masked, site, "masked"),
                "unmasked": site_threshold(cfg.threshold_unmasked, site, "unmasked")}


class TrainingRunSerializer(serializers.ModelSerializer):
    """One index rebuild and its progress."""

    class Meta:
        model = TrainingRun
        fields = ["id", "state", "progress", "message", "error", "reason", "requests", "created_at", "requested_at",
                  "started_at", "finished_at", "index_version", "stats"]
        read_only_fields = fields


class IndexStatusSerializer(serializers.Serializer):
    """The active index version (``null`` before the first rebuild) and the latest rebuild."""

    active = IndexVersionSerializer(allow_null=True)
    latest_rebuild = TrainingRunSerializer(allow_null=True)


# --------------------------------------------------------------------------------------------
# recognition


class IdentifyRequestSerializer(serializers.Serializer):
    """``multipart/form-data`` with the image in ``image``."""

    image = _OneFile(help_text="JPEG, PNG or WebP")


class MatchedPersonSerializer(serializers.Serializer):
    """Who the face is."""

    id = serializers.IntegerField()
    staff_id = serializers.CharField()
    full_name = serializers.CharField()


class FaceAnswerSerializer(serializers.Serializer):
    """One face of an identify request."""

    box = serializers.ListField(child=serializers.FloatField(), help_text="[x1, y1, x2, y2] pixels")
    masked = serializers.BooleanField()
    masked_prob = serializers.FloatField()
    quality_ok = serializers.BooleanField()
    quality_reason = serializers.CharField(allow_null=True)
    decision = serializers.ChoiceField(choices=["match", "no_match", "quality"])
    score = serializers.FloatField(allow_null=True, help_text="cosine similarity of the best candidate")
    threshold = serializers.FloatField(allow_null=True)
    person = MatchedPersonSerializer(allow_null=True)


class IdentifyAnswerSerializer(serializers.Serializer):
    """The faces found in an image, largest first: 10 at most (``api.services.MAX_FACES``; of an image
    with more faces, the 10 the detector is most sure of)."""

    width = serializers.IntegerField()
    height = serializers.IntegerField()
    index_version = serializers.IntegerField()
    faces = FaceAnswerSerializer(many=True)


class VerifyRequestSerializer(serializers.Serializer):
    """``multipart/form-data``: ``image`` and the ``person`` id to compare with."""

    image = _OneFile(help_text="JPEG, PNG or WebP")
    # an id, looked up by the service after the image: an unknown id answers as a person without
    # templates does (409 not_in_index), so a recognise-only token cannot list who exists
    person = _OneInteger(min_value=1, max_value=2**63 - 1)


class VerifyAnswerSerializer(serializers.Serializer):
    """Whether the image's main face is the person."""

    person = serializers.IntegerField(source="person.pk")
    match = serializers.BooleanField()
    score = serializers.FloatField(allow_null=True, help_text="null: the person has no template this face can be "
                                                              "compared with (e.g. enrolled only masked)")
    threshold = serializers.FloatField()
    masked = serializers.BooleanField()
    box = serializers.ListField(child=serializers.FloatField())
    index_version = serializers.IntegerField()
    quality_ok = serializers.BooleanField(help_text="false: the face failed the quality gate (never a match)")
    quality_reason = serializers.CharField(allow_null=True, help_text="why, e.g. 'too_dark' (null when ok)")


def declare_retry_after(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular postprocessing hook: every ``429`` answer declares its ``Retry-After``
    header (seconds until the limit lets the caller in again), which the API always sends with it
    (DRF's throttling) and docs/api.md promises; the schema said nothing of it, so a generated
    client had no field to read it from."""
    header = {"Retry-After": {"description": "seconds to wait before the next request",
                              "schema": {"type": "integer", "minimum": 0}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            throttled = operation.get("responses", {}).get("429") if isinstance(operation, dict) else None
            if throttled is not None:
                throttled.setdefault("headers", {}).update(header)
    return result


def declare_answers_whole(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular postprocessing hook: an answer's object (a component whose request form has a
    component of its own, ``Person`` beside ``PersonRequest``) holds every one of its members, as DRF
    renders each field; the schema left the writable ones that a request may omit (a person's
    ``department``, ``active``, ``notes``; a kiosk's ``location``, ``site``, ``language``) optional,
    and generated clients typed them so. ``tests/api/test_schema.py`` checks real answers against it."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        # and the answers that extend one (KioskCreated: a kiosk and its first pairing link)
        if f"{name.removesuffix('Created')}Request" in schemas and "properties" in schema:
            schema["required"] = sorted(key for key, value in schema["properties"].items()
                                        if not value.get("writeOnly"))
    return result
