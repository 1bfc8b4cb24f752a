"""The enrollment admin: people (thumbnails, photo upload, webcam capture, rebuild, deactivate,
erase), photos, index versions and training runs (live progress). Every write goes through
:mod:`enrollment.services`."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from masknet_site.admin_csv import CheckInLookupsGuarded, DateDrillDownChecked, ListAfterDelete, SearchNormalised
from masknet_site.logfilters import error_first_line
from masknet_site.middleware import PERMISSIONS_POLICY_HEADER, permissions_policy
from recognition.engine.errors import ModelsMissing

from . import recognizer, services
from .events import run_payload
from .models import (
    ErasedStaffId,
    FacePhoto,
    IndexVersion,
    Person,
    TrainingRun,
    inactive_periods_described,
    secret_fingerprint,
    site_secrets,
)
from .text import PERSON_TEXT, person_text_normal, staff_id_key
from .views import export_download

log = logging.getLogger(__name__)

PERSON_FIELDS = ("full_name", "staff_id", "department", "active", "notes")
IMAGE_ACCEPT = "image/jpeg,image/png,image/webp"
# the webcam capture page films (this origin only); every other admin page is denied the camera
CAPTURE_PERMISSIONS_POLICY = permissions_policy("camera")
# what follows an "active" change, said by the change form and by the list's actions alike
REACTIVATED = "recognised again once the index is rebuilt (a few seconds)"
DEACTIVATED = "no longer recognised; the index is being rebuilt"
# said instead of REACTIVATED's "recognised again" for someone no kiosk can recognise
NO_USABLE_PHOTO = "no usable photo (none, or none with a face the engine could use): add one so kiosks recognise them"
MODELS_MISSING = "The face models are not installed on the server (manage.py install_models)."
# how many files of a batch, not tried after the photo storage was found full, a message names
UNTRIED_NAMED = 10
# the change form's uploads, kept on the request by save_related for changeform_view
_PENDING_UPLOADS = "_enrollment_pending_uploads"
# Django's "was changed successfully", held back by message_user on a save that changed nothing but
# the photos: said once a photo is stored, not above refusals of every one (nothing changed then)
_HELD_SUCCESS = "_enrollment_held_success"
# set by construct_change_message: the save changed the photos alone (no history entry of its own)
_PHOTOS_ALONE = "_masknet_photos_alone"
# the service's refusal of the staff id saved (an erasure of it committed after the form's check),
# kept on the request by changeform_view for the form it then shows again (PersonForm.refused)
_REFUSED_ERASED = "_enrollment_refused_erased"


def thumb_html(photo_id: int | None, size: int = 48, alt: str = "") -> str:
    """An ``<img>`` of a photo's thumbnail (served by the permission-checked view). ``alt``: its
    text (default "photo #id", where the page shows photo ids)."""
    if not photo_id:
        return format_html('<span class="mn-nophoto" style="width:{0}px;height:{0}px" title="no photo">–'
                           '<span class="visually-hidden"> no photo</span></span>', size)
    # named: in the people list the thumbnail is also the row's link
    return format_html('<img src="{}" alt="{}" class="mn-thumb" style="max-width:{}px;max-height:{}px" '
                       'loading="lazy">', reverse("enrollment:photo-thumb", args=[photo_id]),
                       alt or f"photo #{photo_id}", size, size)


def verdict_html(photo: FacePhoto) -> str:
    """Quality verdict, mask state and embedding state of a photo, as a short HTML line."""
    ok = photo.quality_verdict == "ok"
    return format_html(
        '<span class="mn-verdict {}">{}</span> · q {} · {} · {}',
        "ok" if ok else "bad", "good" if ok else photo.quality_verdict,
        f"{photo.quality_score:.2f}" if photo.quality_score is not None else "?",
        "mask" if photo.masked else "no mask", photo.embedding_state)


class MultipleFileInput(forms.ClearableFileInput):
    """A file input that accepts several files."""

    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several uploaded files (each size-checked by the service)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": IMAGE_ACCEPT}))
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list:
        """A list of uploaded files (empty when none). An empty file is kept, to be refused by name
        with the others' outcomes (Django's own check refused the whole batch, naming none); other
        errors name their file."""
        files = [d for d in data if d] if isinstance(data, (list, tuple)) else [data] if data else []
        kept = []
        for upload in files:
            try:
                kept.append(super().clean(upload, initial))
            except forms.ValidationError as exc:
                if exc.code == "empty":
                    kept.append(upload)
                    continue
                raise forms.ValidationError(f"{getattr(upload, 'name', 'a file')}: {' '.join(exc.messages)}",
                                            code=exc.code) from exc
        return kept

    def has_changed(self, initial, data) -> bool:
        """Only when files were sent (the input gives ``[]`` for none: "Changed Add photos." on every save)."""
        return not self.disabled and bool(data)


def _source(photo: FacePhoto) -> str:
    """Where the photo came from; for one kept by gallery adaptation, until when it is kept."""
    expiry = services.adapted_photo_expiry(photo)
    return photo.get_source_display() + (f", kept until {expiry:%Y-%m-%d}" if expiry else "")


class PhotoGridWidget(forms.CheckboxSelectMultiple):
    """The person's photos as thumbnails with the detected box and the verdict; each with a
    "remove" checkbox when the user may remove photos."""

    def __init__(self, *args, can_remove: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.can_remove = can_remove

    def render(self, name, value, attrs=None, renderer=None) -> str:  # noqa: D102
        selected = {str(v) for v in (value or [])}
        cells = []
        for choice_value, _label in self.choices:
            photo = getattr(choice_value, "instance", None)
            if photo is None:
                continue
            cells.append(self._cell(name, photo, str(photo.pk) in selected))
        if not cells:
            return mark_safe('<p class="help">No photos yet: upload some below or capture them from the webcam.</p>')
        return format_html('<div class="mn-grid">{}</div>', mark_safe("".join(cells)))

    def _cell(self, name: str, photo: FacePhoto, checked: bool) -> str:
        box = ""
        if photo.box and photo.width and photo.height:
            x1, y1, x2, y2 = photo.box
            box = format_html('<span class="mn-box" style="left:{}%;top:{}%;width:{}%;height:{}%"></span>',
                              *(round(100 * v, 2) for v in (x1 / photo.width, y1 / photo.height,
                                                            (x2 - x1) / photo.width, (y2 - y1) / photo.height)))
        remove = ""
        if self.can_remove:
            remove = format_html('<label><input type="checkbox" name="{}" value="{}"{} aria-label="remove photo #{}">'
                                 ' remove</label>', name, photo.pk, " checked" if checked else "", photo.pk)
        return format_html(
            '<figure class="mn-photo"><a href="{}" target="_blank" class="mn-frame">'
            '<img src="{}" alt="photo {}">{}</a><figcaption>#{} · {}<br>'
            '<span class="mn-verdict-line" data-photo="{}">{}</span><br>{}</figcaption></figure>',
            reverse("enrollment:photo-image", args=[photo.pk]), reverse("enrollment:photo-thumb", args=[photo.pk]),
            photo.pk, box, photo.pk, _source(photo), photo.pk, verdict_html(photo), remove)


# people one erasure action takes at most (erased together, one rewrite of the active index for them all)
ERASE_BATCH_MAX = 100


def _people(count: int) -> str:
    """``1 person``, ``3 people``."""
    return services.counted(count, "person", "people")


class _PhotosToRemove(forms.ModelMultipleChoiceField):
    """The photos ticked for removal; one removed meanwhile (another administrator, another tab) is
    left out, not "not one of the available choices", which refused the whole save, uploads and all."""

    def clean(self, value):
        if value and not isinstance(value, str):
            ids = [v for v in value if str(v).isascii() and str(v).isdigit()]
            still = {str(pk) for pk in self.queryset.filter(pk__in=ids).values_list("pk", flat=True)}
            value = [v for v in value if str(v) in still]
        return super().clean(value)


class _SeenField(forms.CharField):
    """A form's record of when its page was drawn: never a change of the person's own."""

    def has_changed(self, initial, data) -> bool:
        return False


def _erased_entry(staff_id: str, person: Person | None) -> ErasedStaffId | None:
    """The entry of an erased person's staff id that saving ``staff_id`` on ``person`` (``None`` or
    unsaved: a new person) would take: one nobody holds (taken, the model says so), and not
    ``person``'s own staff id written otherwise (no change of identity)."""
    if not staff_id or (person is not None and person.pk and staff_id_key(staff_id) == staff_id_key(person.staff_id)):
        return None
    erased = ErasedStaffId.objects.matching([staff_id]).get(staff_id)
    return None if erased is None or Person.objects.with_staff_id(staff_id).exists() else erased


class PersonForm(forms.ModelForm):
    """The person's fields, their photos (remove), and new photos (upload several)."""

    remove_photos = _PhotosToRemove(queryset=FacePhoto.objects.none(), required=False, widget=PhotoGridWidget,
                                    label="Photos")
    photos = MultipleFileField(label="Add photos", help_text=f"JPEG, PNG or WebP; one person per photo, at most "
                               f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES} at once. "
                               "Refused photos are listed with the reason. Enrol at least two plain photos: "
                               "masked faces are recognised best from three taken on different days.")

    # the person's updated_at when the page was drawn: a save over someone else's later change (a
    # deactivation, a corrected name) is refused instead of silently undoing it
    seen = _SeenField(widget=forms.HiddenInput, required=False)

    # the add and change forms of staff who may lift erased staff ids (PersonAdmin.get_form), shown
    # once the staff id typed is an erased person's (PersonAdmin.get_fieldsets)
    enrol_erased = forms.BooleanField(
        label="Enrol again although erased", required=False,
        help_text="This staff id's person was erased at their request. Tick it only if they asked to be enrolled "
                  "again (or the id is someone else's now): the erased staff id is lifted, and that is audited.")

    # the services' refusal of this staff id in this request's save (PersonAdmin.changeform_view): the
    # form shown again says it on the field, whatever the database shows by then (PersonAdmin.get_form)
    refused: services.StaffIdErased | None = None

    class Meta:
        model = Person
        fields = PERSON_FIELDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "seen" in self.fields:
            self.fields["seen"].initial = self.instance.updated_at.isoformat()
        self.erased: ErasedStaffId | None = None   # the entry the staff id saved lifts (enrol_erased)

    def clean(self) -> dict:
        data = super().clean()
        # names and staff id as the services store them, before the model's checks (a staff id
        # taken in another Unicode form is then "already exists", on the field)
        data.update(person_text_normal({name: data[name] for name in PERSON_TEXT if name in data}))
        if data.get("staff_id"):   # a new person's, or a change of a person's (instance: the row as it is)
            self._erased_check(data["staff_id"], data.get("enrol_erased", False))
        if self.refused is not None and not self.has_error("staff_id"):
            # the page again after the save was refused: never a save, whatever the box says now
            self.add_error("staff_id", self._erased_error(self.refused.staff_id, self.refused.entry))
        seen = data.get("seen")
        # on a POST the admin has just read the person again: instance is the row as it is now
        if self.instance.pk and seen and seen != self.instance.updated_at.isoformat():
            raise forms.ValidationError(
                "Someone else changed this person after you opened this page (e.g. deactivated them or "
                "corrected their name). Nothing was saved: open the person again to see their changes, "
                "then make yours.", code="stale")
        return data

    def _erased_check(self, staff_id: str, enrol: bool) -> None:
        """A new person of an erased person's staff id (nobody's now), or a person whose staff id is
        changed to one: an error on the staff id unless "Enrol again although erased" is ticked,
        which only staff who may lift erased staff ids see. Adding or changing people is a
        deliberate act of one person at a time, unlike an import of HR's folder, so it asks rather
        than skips; it never enrols them again unasked."""
        erased = _erased_entry(staff_id, self.instance)
        if erased is None:
            return
        if enrol and "enrol_erased" in self.fields:
            self.erased = erased
            return
        self.add_error("staff_id", self._erased_error(staff_id, erased))

    def _erased_error(self, staff_id: str, erased: ErasedStaffId) -> forms.ValidationError:
        """The staff id's refusal: whose it was, when erased, and who may enrol it again."""
        said = f"{staff_id} was erased on {erased.erased_on} at the person's request: it is not enrolled again unasked."
        if "enrol_erased" in self.fields:
            said += (" If they asked to be enrolled again (or the id is someone else's now), tick “Enrol again "
                     "although erased” below and save: the erased staff id is lifted (audited).")
        else:
            said += (" Only an administrator allowed to lift erased staff ids (a superuser) can enrol it again, "
                     "if the person asks to be.")
        return forms.ValidationError(said, code="erased")

    def full_clean(self) -> None:
        """Photos chosen on a form that comes back with an error (a taken staff id: found by the
        model's validation, after ``clean``) are not kept by the browser, whose file input cannot be
        filled in again: say so beside the field."""
        super().full_clean()
        chosen = (getattr(self, "cleaned_data", None) or {}).get("photos")
        if self.errors and "photos" not in self.errors and chosen:
            them = "them" if len(chosen) != 1 else "it"
            self.add_error("photos", f"{services.counted(len(chosen), 'photo')} chosen: choose {them} again once "
                                     f"the errors above are corrected (nothing was saved).")


class PhotoCountFilter(admin.SimpleListFilter):
    """People by number of photos: recognition improves with each photo up to three and beyond
    (docs/accuracy.md, "Several enrolment photos"), so "fewer than 3" is the list to work through."""

    title = "photos"
    parameter_name = "photos"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("0", "none"), ("lt3", "fewer than 3"), ("3+", "3 or more")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "0":
            return queryset.filter(photo_count=0)
        if self.value() == "lt3":
            return queryset.filter(photo_count__lt=3)
        if self.value() == "3+":
            return queryset.filter(photo_count__gte=3)
        return None


def _without_usable_photo(people: list[Person]) -> list[Person]:
    """Those of ``people`` with no photo but failed ones: reactivated, nobody recognises them."""
    usable = set(FacePhoto.objects.filter(person__in=people).exclude(embedding_state=FacePhoto.Embedding.FAILED)
                 .values_list("person_id", flat=True))
    return [p for p in people if p.pk not in usable]


class DepartmentFilter(admin.SimpleListFilter):
    """People by department, letter case aside: "Flight" and "flight" are one choice (Django's own
    filter listed them apart, each finding part of the department), named by its most common
    spelling; people without a department are the choice "(none)" (an empty, unlabelled link)."""

    title = "department"
    parameter_name = "department"
    NONE_LABEL = "(none)"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        spellings: dict[str, Counter[str]] = {}
        rows = Person.objects.order_by().values_list("department").annotate(n=Count("pk"))
        for department, n in rows:
            spellings.setdefault(department.lower(), Counter())[department] += n
        # the most common spelling names the choice; a tie goes to the first in code-point order
        names = sorted(min(found, key=lambda d: (-found[d], d)) for found in spellings.values())
        return [(name, name or self.NONE_LABEL) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value is None:
            return None
        return queryset.filter(department="") if value == "" else queryset.filter(department__iexact=value)

    def choices(self, changelist):
        """Django's, the choice shown chosen in any letter case (``?department=flight``: "Flight")."""
        value = self.value()
        yield {"selected": value is None, "query_string": changelist.get_query_string(remove=[self.parameter_name]),
               "display": "All"}
        for lookup, title in self.lookup_choices:
            yield {"selected": value is not None and value.lower() == lookup.lower(),
                   "query_string": changelist.get_query_string({self.parameter_name: lookup}), "display": title}


class RebuildMixin:
    """What the admins whose actions queue an index rebuild share: the permission and the message."""

    def has_rebuild_permission(self, request: HttpRequest) -> bool:
        """May queue an index rebuild."""
        return request.user.has_perm("enrollment.rebuild_index")

    def _rebuild_message(self, request: HttpRequest, run: TrainingRun, said: str = "Index rebuild queued") -> None:
        url = reverse("admin:enrollment_trainingrun_changelist")
        messages.info(request, format_html('{} (<a href="{}">training run #{}</a>).', said, url, run.pk))


def adaptation_stopped_message(people: list[Person]) -> str:
    """Told when removing a photo gallery adaptation kept stopped it for its person (recorded in the
    audit log, which Enrollers cannot read): no other face of theirs is kept from a check-in."""
    names = ", ".join(str(p) for p in people[:5]) + (f" and {len(people) - 5} more" if len(people) > 5 else "")
    return (f"Gallery adaptation is stopped for {names}: a photo it had kept was removed, so no other face "
            f"from their check-ins is kept.")


@admin.register(Person)
class PersonAdmin(CheckInLookupsGuarded, SearchNormalised, RebuildMixin, DateDrillDownChecked, admin.ModelAdmin):
    """People: list with thumbnails, search and filters; change page with photos, upload and
    capture; actions rebuild / deactivate / reactivate / erase."""

    form = PersonForm
    list_display = ("thumbnail", "full_name", "staff_id", "department", "active", "photo_count", "updated_at")
    list_display_links = ("thumbnail", "full_name")
    list_display_phone = ("thumbnail", "full_name", "active")   # audit/templatetags/admin_phone.py
    list_filter = ("active", PhotoCountFilter, DepartmentFilter, "created_at")
    search_fields = ("full_name", "staff_id", "department")
    staff_key = "staff_key"   # a staff id typed in any form (SearchNormalised)
    name_key = "name_key"     # a name typed without its accents
    readonly_fields = ("created_at", "updated_at", "deactivated_at", "inactive_history", "photo_grid",
                       "gallery_adaptation")
    actions = ("rebuild_index", "deactivate", "reactivate", "stop_gallery_adaptation", "resume_gallery_adaptation",
               "erase_biometric_data")
    list_per_page = 50

    class Media:
        css = {"all": ("enrollment/admin.css",)}

    # ---------------------------------------------------------------- list
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_photo_stats()

    @admin.display(description="")
    def thumbnail(self, obj: Person) -> str:
        # the people list shows no photo ids: its screen reader heard "photo #41, link" for a row
        return thumb_html(getattr(obj, "first_photo_id", None), alt=f"photo of {obj.full_name}")

    @admin.display(description="photos", ordering="photo_count")
    def photo_count(self, obj: Person) -> str:
        count = getattr(obj, "photo_count", 0)
        # a bare 0 did not say that this person cannot check in
        return str(count) if count else format_html('<span class="mn-no-photo">{}</span>', "0: cannot check in yet")

    @admin.display(description="Photos")
    def photo_grid(self, obj: Person) -> str:
        """The person's photos for view-only staff: the change page's grid, without "remove"."""
        widget = PhotoGridWidget(can_remove=False)
        widget.choices = forms.ModelMultipleChoiceField(queryset=obj.photos.all()).choices
        return widget.render("photo_grid", [])

    @admin.display(description="Inactive periods")
    def inactive_history(self, obj: Person) -> str:
        """The person's past inactive periods, oldest first, and the current one (attendance counts
        nobody missing in them), read-only: written by deactivations and reactivations alone."""
        lines = inactive_periods_described(obj, obj.inactive_periods.all())
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines)) or self.get_empty_value_display()

    # ---------------------------------------------------------------- permissions
    def has_delete_permission(self, request: HttpRequest, obj: Person | None = None) -> bool:
        return False  # people leave through "erase biometric data", which leaves an audit record

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Erasure is for superusers (``enrollment.erase_person``), not for Enrollers."""
        return request.user.has_perm("enrollment.erase_person")

    # ---------------------------------------------------------------- form
    def has_lift_permission(self, request: HttpRequest) -> bool:
        """May enrol an erased person's staff id again, lifting it (``enrollment.delete_erasedstaffid``:
        superusers, not Enrollers): the reverse of part of an erasure."""
        return request.user.has_perm("enrollment.delete_erasedstaffid")

    def get_fieldsets(self, request: HttpRequest, obj: Person | None = None):
        staff_id = request.POST.get("staff_id", "") if request.method == "POST" else ""
        # asked once the id typed is an erased person's (obj: the person as they are, before the form),
        # or the save said it is (changeform_view)
        erased = _erased_entry(staff_id, obj) or getattr(request, _REFUSED_ERASED, None)
        asked = ("enrol_erased",) if self.has_lift_permission(request) and erased else ()
        main = (None, {"fields": (*PERSON_FIELDS, *asked)})
        if obj is None:
            return [main, ("Photos", {"fields": ("photos",)})]
        if self.has_change_permission(request, obj):
            main = (None, {"fields": (*PERSON_FIELDS, "seen", *asked)})
        # view-only staff: the form's own fields (upload, remove) are not model fields and cannot
        # be shown read-only; the same grid without checkboxes instead
        photos = ("remove_photos", "photos") if self.has_change_permission(request, obj) else ("photo_grid",)
        return [main, ("Photos", {"fields": photos}),
                ("Record", {"fields": ("created_at", "updated_at", "deactivated_at", "inactive_history",
                                       "gallery_adaptation"),
                            "classes": ("collapse",)})]

    def get_form(self, request: HttpRequest, obj: Person | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # the factory's class shares PersonForm's declared field objects with every request:
        # what is set below for this request and user must go on copies
        form.base_fields = copy.deepcopy(form.base_fields)
        form.refused = getattr(request, _REFUSED_ERASED, None)
        if not self.has_lift_permission(request):
            form.base_fields.pop("enrol_erased", None)
        if "remove_photos" in form.base_fields:
            field = form.base_fields["remove_photos"]
            field.queryset = obj.photos.all() if obj else FacePhoto.objects.none()
            field.widget = PhotoGridWidget(can_remove=request.user.has_perm("enrollment.delete_facephoto"))
            field.widget.choices = field.choices
        if not request.user.has_perm("enrollment.add_facephoto") and "photos" in form.base_fields:
            form.base_fields["photos"].disabled = True
        elif "photos" in form.base_fields and not recognizer.engine_loaded():
            # loading since the page was asked for (changeform_view); the save waits for it otherwise
            form.base_fields["photos"].help_text += (" The server is still loading its face checks (a few seconds "
                                                     "after a start): a save with photos may wait for them.")
        return form

    # ---------------------------------------------------------------- Django's own history
    # Django's admin history ("Recent actions", each object's history page) stores str(obj), the
    # person's name and staff id, in django_admin_log: keep only the id there, as the audit log does,
    # so that erasure leaves no name behind (person_erase deletes the person's rows too).
    def _log(self, request: HttpRequest, obj: Person, flag: int, message: str | list) -> LogEntry:
        return LogEntry.objects.create(
            user_id=request.user.pk, content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
            object_id=str(obj.pk), object_repr=f"person #{obj.pk}", action_flag=flag,
            change_message=message if isinstance(message, str) else json.dumps(message))

    def log_addition(self, request: HttpRequest, obj: Person, message: str | list) -> LogEntry:
        return self._log(request, obj, ADDITION, message)

    def log_change(self, request: HttpRequest, obj: Person, message: str | list) -> LogEntry | None:
        if getattr(request, _PHOTOS_ALONE, False):   # their own entry, once stored (_log_photos_added), or none
            return None
        return self._log(request, obj, CHANGE, message)

    def construct_change_message(self, request: HttpRequest, form: forms.ModelForm, formsets, add: bool = False):
        """Django's, without "Add photos": a form whose photos were all refused was on the person's
        history (and their data export's admin_history.csv) as "Changed Add photos."; the photos
        stored are their own entry (:meth:`_log_photos_added`)."""
        message = super().construct_change_message(request, form, formsets, add)
        label = str(form.fields["photos"].label) if "photos" in form.fields else None
        for entry in message:
            fields = entry.get("changed", {}).get("fields")
            if fields and label in fields:
                fields.remove(label)
        kept = [entry for entry in message if entry.get("changed", {"fields": True})["fields"]]
        setattr(request, _PHOTOS_ALONE, bool(message) and not kept)
        return kept

    def _log_photos_added(self, request: HttpRequest, person: Person, pks: list[int]) -> None:
        """The person's history entry for the photos stored (the upload's or the webcam's)."""
        if pks:
            self._log(request, person, CHANGE, [{"added": {"name": "photo", "object": f"#{pk}"}} for pk in pks])

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> list[LogEntry]:
        return [self._log(request, obj, DELETION, "") for obj in queryset]

    def save_model(self, request: HttpRequest, obj: Person, form: forms.ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in PERSON_FIELDS if name in form.cleaned_data}
        if change:
            services.person_update(person=obj, actor=request.user, enrol_erased=form.erased is not None,
                                   **{k: v for k, v in fields.items() if k in form.changed_data})
            self._erased_lifted(request, form, obj, "given to this person")
            if "active" in form.changed_data:   # Django's "changed successfully" does not say what follows
                if not obj.active:
                    messages.info(request, f"Deactivated: {DEACTIVATED}.")
                elif _without_usable_photo([obj]):
                    messages.warning(request, f"Reactivated, but {NO_USABLE_PHOTO}.")
                else:
                    messages.info(request, f"Reactivated: {REACTIVATED}.")
            return
        person = services.person_create(actor=request.user, **fields, enrol_erased=form.erased is not None)
        obj.pk, obj.created_at, obj.updated_at = person.pk, person.created_at, person.updated_at
        self._erased_lifted(request, form, person, "enrolled again")
        obj._state.adding, obj._state.db = False, person._state.db

    @staticmethod
    def _erased_lifted(request: HttpRequest, form: PersonForm, person: Person, done: str) -> None:
        """Say that the staff id saved was an erased person's, its entry lifted ("Enrol again although erased")."""
        if form.erased is not None:
            # not begun with the staff id: the admin capitalises a message's first letter ("Fb-1" for fb-1)
            messages.info(request, f"Staff id “{person.staff_id}” had been erased on {form.erased.erased_on} at the "
                                   f"person's request: {done}, its erased staff id lifted.")

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        person = form.instance
        removed = []
        if request.user.has_perm("enrollment.delete_facephoto"):
            removed = form.cleaned_data.get("remove_photos") or []
            stopped = [services.photo_remove(photo=photo, actor=request.user) for photo in removed]
            if removed:
                messages.info(request, f"{services.counted(len(removed), 'photo')} removed (files and templates "
                                       f"deleted); the index is being rebuilt.")
            if any(stopped):
                messages.info(request, adaptation_stopped_message([person]))
        uploads = form.cleaned_data.get("photos") or []
        adding = uploads and request.user.has_perm("enrollment.add_facephoto")
        if removed and not adding and (warning := services.photos_masked_only_warning(person=person)):
            messages.warning(request, warning)   # the photo removed was the last one without a mask
        if adding:
            # checked by changeform_view once this form's transaction has committed; said there whether
            # a removal left only masked photos, whatever became of the uploads
            setattr(request, _PENDING_UPLOADS, (person, uploads, bool(removed)))
            if change and not removed and not set(form.changed_data) - {"photos", "remove_photos"}:
                setattr(request, _HELD_SUCCESS, [])   # the photos alone: whether anything changed is theirs to say

    def message_user(self, request: HttpRequest, message, level=messages.INFO, extra_tags: str = "",
                     fail_silently: bool = False) -> None:
        """Django's messages; its success message held back while the uploads decide whether the
        save changed anything (:data:`_HELD_SUCCESS`)."""
        held = getattr(request, _HELD_SUCCESS, None)
        if held is not None and level == messages.SUCCESS:
            held.append((message, extra_tags))
            return
        super().message_user(request, message, level, extra_tags=extra_tags, fail_silently=fail_silently)

    def _add_uploads(self, request: HttpRequest, person: Person, uploads: list, removed: bool = False,
                     held: list[tuple[str, str]] | None = None) -> None:
        """The change form's new photos, checked and saved outside any transaction, as on the capture
        page: a face check takes up to a second, and inside the form's transaction on SQLite anyone
        else's write meanwhile (a check-in, a rebuild's heartbeat) failed the admin's own write
        ("database is locked": a 500, the edits lost) or, once the admin had written, waited for
        the checks. ``held``: Django's success messages of a save that changed nothing else, said
        only if a photo is stored. ``removed``: the same save removed photos (the warning that only
        masked photos are left is said even if every upload was refused)."""
        try:
            self._add_photos(request, person, uploads, FacePhoto.Source.UPLOAD, held, removed=removed)
        except ModelsMissing:
            messages.error(request, f"The photos were not added: {MODELS_MISSING}")
            if removed and (masked_only := services.photos_masked_only_warning(person=person)):
                messages.warning(request, masked_only)
        except Person.DoesNotExist:   # erased by someone else while the photos were inspected
            messages.error(request, "This person was erased meanwhile: the photos were not added.")

    def _add_photos(self, request: HttpRequest, person: Person, files, source: str,
                    held: list[tuple[str, str]] | None = None, removed: bool = False) -> None:
        """The change form's uploads: each one stored if it passes, the outcome said in messages
        (after ``held``, Django's success messages, when a photo was stored; else, with ``held``
        given, that the save changed nothing)."""
        saved, refused, warnings, untried = [], [], [], []
        seen: dict = {}   # the faces of the photos stored so far: the same-picture check's memo
        for upload in files:
            if refused and refused[-1]["code"] == "storage_full":
                # the rest would each be checked for a face (up to a second) to fail the same way
                untried.append(upload.name or "photo.jpg")
                continue
            data = upload.read(settings.MASKNET_MAX_PHOTO_BYTES + 1)
            pk, refusal, said = self._add_photo(request, person, upload.name, data, source, seen=seen)
            saved += [pk] if pk else []
            refused += [refusal] if refusal else []
            warnings += said
        self._log_photos_added(request, person, saved)
        if saved:
            for message, extra_tags in held or []:
                messages.success(request, message, extra_tags=extra_tags)
            # an inactive person's photos wait in the gallery: said, or "added" read as "recognised now"
            inactive = services.photos_inactive_warning(person=person)
            messages.success(request, f"{services.counted(len(saved), 'photo')} added; the index is being rebuilt."
                                      + (f" {inactive}" if inactive else ""))
        elif held is not None:
            # Django's "was changed successfully" above the refusals claimed a change that never was
            if untried:   # after a full storage
                chosen = f"{len(refused)} refused and {len(untried)} not tried"
            elif len(files) == 1:
                chosen = "the photo chosen was refused"
            else:
                chosen = f"the {len(files)} photos chosen were all refused"
            messages.warning(request, f"Nothing was changed: no photo was added ({chosen}, as said below).")
        for r in refused:
            # the name quoted: the admin capitalises each message's first letter ("Noface.jpg")
            messages.error(request, f"“{r['name']}”: refused — {r['message']}")
        if untried:
            names = ", ".join(f"“{name}”" for name in untried[:UNTRIED_NAMED])
            more = f" and {len(untried) - UNTRIED_NAMED} more" if len(untried) > UNTRIED_NAMED else ""
            messages.error(request, f"Not tried, since the server's storage is full (as said above): {names}{more}. "
                                    "Add them again once space is freed.")
        if (saved or removed) and (masked_only := services.photos_masked_only_warning(person=person)):
            warnings.append(masked_only)
        for w in dict.fromkeys(warnings):
            messages.warning(request, w)

    def _add_photo(self, request: HttpRequest, person: Person, name: str, data: bytes, source: str,
                   inspection: services.PhotoInspection | None = None, seen: dict | None = None,
                   named: bool = True) -> tuple[int | None, dict | None, list[str]]:
        """One photo through ``photo_add``: ``(its id, None, its warnings)`` when stored (a look-alike,
        the same picture as another photo of the person), else ``(None, {"name", "code", "message"}, [])``.
        ``named`` false: the warnings say "This face", "This photo" instead of the file's name (a webcam
        burst's names, "webcam-1733-2.jpg", tell the user nothing)."""
        try:
            photo = services.photo_add(person=person, data=data, filename=name or "photo.jpg", source=source,
                                       actor=request.user, inspection=inspection, seen=seen)
        except services.PhotoRefused as exc:
            return None, {"name": name, "code": exc.code, "message": exc.message}, []
        except (ModelsMissing, Person.DoesNotExist):
            raise
        except Exception as exc:  # noqa: BLE001 - a full disk, a database error: this file, not the batch
            # (photo_add removes its own file when it fails): the photos saved so far are said
            # as saved, the rest still tried, instead of a bare 500
            # not the upload's file name: often the person's own ("Ann Bee passport.jpg"), which the
            # page names to the uploader; the log, kept and read by others, has the id
            if services.database_full(exc):   # the photo's row not written, its file removed by photo_add
                log.error("could not store a photo (%s) of person #%s: the database is out of disk space (%s)",
                          source, person.pk, error_first_line(exc))
                return None, {"name": name, "code": "storage_full",
                              "message": services.STORAGE_FULL_MESSAGES["database"]}, []
            if isinstance(exc, services.StorageFull):   # nothing of it kept; which storage, and what to do
                # one line: the kernel's error says it all, a traceback for each file of a batch would not
                log.error("could not store a photo (%s) of person #%s: %s (%s)", source, person.pk, exc,
                          exc.__cause__)
                return None, {"name": name, "code": "storage_full", "message": str(exc)}, []
            log.exception("could not store a photo (%s) of person #%s", source, person.pk)
            return None, {"name": name, "code": "not_stored", "message": services.REFUSALS["not_stored"]}, []
        # who, only for staff who may search faces (as the API does), and on record
        via = "admin webcam capture" if source == FacePhoto.Source.WEBCAM else "admin photo upload"
        shown = services.photo_lookalike_shown(photo=photo, actor=request.user, via=via,
                                               may_search=request.user.has_perm("enrollment.recognise_face"))
        shown_name = name if named else ""
        said = [w for w in (services.photo_lookalike_warning(photo=photo, shown=shown, name=shown_name),
                            services.photo_repeat_warning(photo=photo, name=shown_name),
                            services.photo_mismatch_warning(photo=photo, name=shown_name)) if w]
        return photo.pk, None, said

    def _add_best(self, request: HttpRequest, person: Person, files) -> dict:
        """A webcam burst: its best good frame alone is stored (:func:`services.photo_choose`); the
        page's JSON says how many frames came (``frames``) and passed the checks (``good``).
        ``refused``: every frame's reason when none passed, else the chosen frame's when
        ``photo_add`` refused it. No other frame is stored in its place: they are the same moment,
        so the reasons of the file's own (``duplicate``: the person has this picture already, a
        frozen camera; ``enrolled_elsewhere``: it is another person's) hold for them as well, and a
        failed write or an erasure meanwhile would fail them too."""
        limit = settings.MASKNET_MAX_PHOTO_BYTES + 1
        # read one at a time (a frame's bytes are not kept once inspected), the chosen one again
        best, inspections = services.photo_choose(photos=(upload.read(limit) for upload in files))
        names = [upload.name or "photo.jpg" for upload in files]
        answer = {"saved": [], "refused": [], "warnings": [], "frames": len(files),
                  "good": sum(inspection.ok for inspection in inspections)}
        if best is None:
            answer["refused"] = [{"name": name, "code": inspection.code, "message": inspection.message}
                                 for name, inspection in zip(names, inspections, strict=True)]
            return answer
        files[best].seek(0)
        pk, refusal, warnings = self._add_photo(request, person, names[best], files[best].read(limit),
                                                FacePhoto.Source.WEBCAM, inspection=inspections[best], named=False)
        self._log_photos_added(request, person, [pk] if pk else [])
        said = [services.photos_masked_only_warning(person=person), services.photos_inactive_warning(person=person)]
        answer.update(saved=[pk] if pk else [], refused=[refusal] if refusal else [],
                      warnings=[*warnings, *(w for w in said if w and pk)])
        return answer

    # ---------------------------------------------------------------- actions
    @admin.action(description="Rebuild the recognition index now", permissions=["rebuild"])
    def rebuild_index(self, request: HttpRequest, queryset: QuerySet) -> None:
        run = services.index_rebuild_request(actor=request.user, reason="admin: rebuild action", force=True)
        self._rebuild_message(request, run)

    @admin.action(description="Deactivate selected people", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        # at once, not one at a time (a department of 1,716 people took 20 s); not those deactivated
        # or erased by someone else meanwhile
        done = len(services.people_deactivate(people=list(queryset.filter(active=True).values_list("pk", flat=True)),
                                              actor=request.user))
        if not done:
            messages.info(request, "Nobody was deactivated: the people selected were inactive already.")
            return
        messages.success(request, f"{_people(done)} deactivated: {DEACTIVATED}.")

    @admin.action(description="Reactivate selected people", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        chosen = list(queryset.filter(active=False).values_list("pk", flat=True))
        # at once (see deactivate); not those reactivated by someone else meanwhile
        reactivated, refused = services.people_reactivate(people=chosen, actor=request.user)
        for pk, why in refused.items():   # a record an earlier release let in (a field now refused)
            messages.error(request, f"Person #{pk} was not reactivated: {why} Correct it on their page.")
        gone = set(chosen) - set(reactivated) - set(refused)
        gone -= set(Person.objects.filter(pk__in=gone).values_list("pk", flat=True))
        for pk in sorted(gone):   # erased meanwhile by someone else
            messages.warning(request, f"Person #{pk} was erased meanwhile.")
        failed, done = len(refused) + len(gone), len(reactivated)
        found = Person.objects.in_bulk(reactivated)
        back = [found[pk] for pk in chosen if pk in found]   # in the list's order
        if not done:
            if not failed:
                messages.info(request, "Nobody was reactivated: the people selected were active already.")
            return
        messages.success(request, f"{_people(done)} reactivated: {REACTIVATED}.")
        if without := _without_usable_photo(back):
            names = ", ".join(p.full_name for p in without[:10]) + (f" and {len(without) - 10} more"
                                                                    if len(without) > 10 else "")
            messages.warning(request, f"{names}: {NO_USABLE_PHOTO}.")

    @admin.action(description="Stop gallery adaptation for selected people", permissions=["change"])
    def stop_gallery_adaptation(self, request: HttpRequest, queryset: QuerySet) -> None:
        # counted as stopped here: not those stopped before, nor meanwhile by someone else; at once
        done = len(services.people_gallery_adaptation_set(
            people=queryset.filter(gallery_adaptation=True).values_list("pk", flat=True), on=False, actor=request.user))
        if not done:
            messages.info(request, "Nobody's gallery adaptation was stopped: it was stopped already for the people "
                                   "selected.")
            return
        messages.success(request, f"Gallery adaptation stopped for {_people(done)}: their check-ins add no "
                                  f"photos (their photos stay as they are).")

    @admin.action(description="Resume gallery adaptation for selected people", permissions=["change"])
    def resume_gallery_adaptation(self, request: HttpRequest, queryset: QuerySet) -> None:
        # stopped by this list's action or by removing a kept photo: there was no way back but SQL
        done = len(services.people_gallery_adaptation_set(
            people=queryset.filter(gallery_adaptation=False).values_list("pk", flat=True), on=True, actor=request.user))
        if not done:
            messages.info(request, "Nobody's gallery adaptation was resumed: it was on already for the people "
                                   "selected.")
            return
        on = "" if settings.MASKNET_GALLERY_ADAPT else " once MASKNET_GALLERY_ADAPT is on (it is off on this site)"
        messages.success(request, f"Gallery adaptation resumed for {_people(done)}: a confident check-in may add "
                                  f"a photo of them again{on}.")

    @admin.action(description="Erase biometric data of selected people", permissions=["erase"])
    def erase_biometric_data(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        selected = queryset.count()
        if selected > ERASE_BATCH_MAX:
            # one transaction holds them all (their rows locked), and the confirmation posts one field
            # a person (over Django's 1,000 fields: a bare "Bad Request" with nothing erased)
            messages.error(request, f"Erase at most {ERASE_BATCH_MAX} people at a time ({selected} selected): "
                                    f"filter the list to fewer and erase them in turns.")
            return None
        if request.POST.get("post") == "yes":
            people = list(queryset)
            count, full = self._erase(request, people)
            # the confirmation posts each person it listed: those erased meanwhile by someone else are
            # no longer in the queryset, and were counted nowhere ("0 people erased" as a success)
            posted = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
            dropped = {int(v) for v in posted if v.isascii() and v.isdigit() and len(v) < 19} - {p.pk for p in people}
            # of those, the ones still there left the list's filter meanwhile (deactivated...): not erased
            kept = sorted(Person.objects.filter(pk__in=dropped).values_list("pk", flat=True))
            left = len(dropped) - len(kept)
            already = f" ({_people(left)} had been erased already)" if left else ""
            if count:
                messages.success(request, f"{_people(count)} erased: photos, templates and index entries deleted"
                                          f"{already}.")
            elif not full and not kept:
                messages.info(request, "Nobody was erased: "
                                       + ("the person selected had been erased already." if left == 1
                                          else "the people selected had been erased already."))
            if kept:
                who = (f"Person #{kept[0]} was" if len(kept) == 1
                       else f"{len(kept)} people (#{', #'.join(str(i) for i in kept)}) were")
                messages.warning(request, f"{who} not erased: no longer in the list as filtered (changed meanwhile). "
                                          "Nothing of them was deleted; erase them again from their page.")
            if full:
                messages.error(request, self._not_erased(full))
            return None
        return self._erase_confirmation(request, list(queryset), action=True)

    def _erase(self, request: HttpRequest, people: list[Person]) -> tuple[int, list[int]]:
        """Erase ``people`` at once (one index rewrite for them all: one at a time, each rewrote the
        active index and had every kiosk load it again): how many were erased here (not meanwhile by
        someone else), and the ids of those left as they were because the index storage is full
        (then nobody is erased)."""
        try:
            return len(services.people_erase(people=[p.pk for p in people], actor=request.user)), []
        except services.StorageFull:
            return 0, [p.pk for p in people]

    @staticmethod
    def _not_erased(ids: list[int]) -> str:
        """The error naming the people a full index storage left unerased."""
        who = (f"Person #{ids[0]} was" if len(ids) == 1
               else f"{len(ids)} people (#{', #'.join(str(i) for i in ids)}) were")
        return (f"{who} not erased: nothing of them was deleted. "
                f"{services.STORAGE_FULL_MESSAGES['index']}")

    def _erase_confirmation(self, request: HttpRequest, people: list[Person], action: bool) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "people": people,
                   "title": "Erase biometric data?", "action": action,
                   "photo_total": FacePhoto.objects.filter(person__in=people).count(),
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/enrollment/person/erase_confirmation.html", context)

    # ---------------------------------------------------------------- extra pages
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("rebuild/", wrap(self.rebuild_view), name="enrollment_person_rebuild"),
            path("<int:object_id>/erase/", wrap(self.erase_view), name="enrollment_person_erase"),
            path("<int:object_id>/export/", wrap(self.export_view), name="enrollment_person_export"),
            path("<int:object_id>/capture/", wrap(self.capture_view), name="enrollment_person_capture"),
            path("<int:object_id>/capture/check/", wrap(self.capture_check_view),
                 name="enrollment_person_capture_check"),
            path("<int:object_id>/capture/save/", wrap(self.capture_save_view),
                 name="enrollment_person_capture_save"),
        ] + super().get_urls()

    def rebuild_view(self, request: HttpRequest) -> HttpResponse:
        """POST: queue a rebuild now (the changelist's button)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_rebuild_permission(request):
            raise PermissionDenied
        run = services.index_rebuild_request(actor=request.user, reason="admin: rebuild button", force=True)
        self._rebuild_message(request, run)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            target = reverse("admin:enrollment_trainingrun_changelist")   # never another site
        return HttpResponseRedirect(target)

    def erase_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Confirm, then erase one person."""
        if not self.has_erase_permission(request):
            raise PermissionDenied
        person = Person.objects.filter(pk=object_id).first()
        confirmed = request.method == "POST" and request.POST.get("post") == "yes"
        if person is not None and not confirmed:
            return self._erase_confirmation(request, [person], action=False)
        erased, full = self._erase(request, [person]) if person is not None else (0, [])
        if full:
            messages.error(request, self._not_erased(full))
            return HttpResponseRedirect(reverse("admin:enrollment_person_change", args=[object_id]))
        if erased:
            messages.success(request, f"Person #{object_id} erased: photos, templates and index entries deleted.")
        else:   # erased in another tab, or by someone else, since this page was opened
            messages.info(request, f"Person #{object_id} had been erased already.")
        return HttpResponseRedirect(reverse("admin:enrollment_person_changelist"))

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Subject access is for superusers (``enrollment.export_person``), not for Enrollers."""
        return request.user.has_perm("enrollment.export_person")

    def export_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: what the archive holds, and a button; POST (CSRF-checked): the ZIP. Not a plain GET
        link: the export writes an audit record and puts biometric data in a download folder, which
        a link followed from another site (a top-level GET carries the session cookie) or a
        browser's prefetch must not do."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        person = get_object_or_404(Person, pk=object_id)
        if request.method != "POST":
            context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": person,
                       "title": "Export personal data",
                       "limit": services.amount(settings.MASKNET_EXPORT_MAX_BYTES, "bytes")}
            return TemplateResponse(request, "admin/enrollment/person/export.html", context)
        try:
            data = services.person_export(person=person, actor=request.user)
        except services.ExportTooLarge as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(reverse("admin:enrollment_person_change", args=[person.pk]))
        except Person.DoesNotExist:   # erased while the archive was being made
            messages.info(request, f"Person #{person.pk} was erased meanwhile: nothing was exported.")
            return HttpResponseRedirect(reverse("admin:enrollment_person_changelist"))
        return export_download(person.pk, data)

    def _capture_allowed(self, request: HttpRequest) -> None:
        """Capturing adds photos to a person the page names: both rights are needed (adding photos
        alone would show anyone's name by id)."""
        if not (request.user.has_perm("enrollment.add_facephoto") and self.has_view_permission(request)):
            raise PermissionDenied

    def _capture_person(self, request: HttpRequest, object_id: int) -> Person:
        self._capture_allowed(request)
        return get_object_or_404(Person, pk=object_id)

    def _capture_target(self, request: HttpRequest, object_id: int) -> Person | None:
        """The person of a capture request; ``None`` once erased (the page answers ``person_gone``)."""
        self._capture_allowed(request)
        return Person.objects.filter(pk=object_id).first()

    def capture_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The webcam page: live feedback, then a burst of photos saved through ``photo_add``."""
        person = self._capture_person(request, object_id)
        recognizer.warm_soon()   # while the camera starts; until then the page says the checks are loading
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": person,
                   "title": f"Capture photos of {person.full_name}", "engine_ready": recognizer.engine_loaded(),
                   "check_url": reverse("admin:enrollment_person_capture_check", args=[person.pk]),
                   "save_url": reverse("admin:enrollment_person_capture_save", args=[person.pk]),
                   "change_url": reverse("admin:enrollment_person_change", args=[person.pk]),
                   "time_zone": settings.TIME_ZONE}   # the bursts' times, as the staff pages write times
        response = TemplateResponse(request, "admin/enrollment/person/capture.html", context)
        # the one admin page that films: the camera for this origin (the site's default denies it)
        response[PERMISSIONS_POLICY_HEADER] = CAPTURE_PERMISSIONS_POLICY
        return response

    def capture_check_view(self, request: HttpRequest, object_id: int) -> JsonResponse:
        """POST one JPEG frame (field ``frame``): is it a good enrollment photo, and if not, why."""
        if self._capture_target(request, object_id) is None:
            return _person_gone()
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        upload = request.FILES.get("frame")
        if upload is None:
            return JsonResponse({"ok": False, "code": "missing", "message": "No frame was sent."}, status=400)
        if upload.size > settings.MASKNET_MAX_FRAME_BYTES:
            limit = settings.MASKNET_MAX_FRAME_BYTES   # any number from 1: whole KiB only where it is so
            said = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
            return JsonResponse({"ok": False, "code": "too_large",
                                 "message": f"The frame is too large (at most {said})."}, status=400)
        try:
            return JsonResponse(services.photo_inspect(data=upload.read()).as_json())
        except ModelsMissing:
            return _models_missing()

    def capture_save_view(self, request: HttpRequest, object_id: int) -> JsonResponse:
        """POST a burst (fields ``photos``): saves the best good one, or says why none was saved."""
        person = self._capture_target(request, object_id)
        if person is None:
            return _person_gone()
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        files = request.FILES.getlist("photos")
        if not files or len(files) > CAPTURE_MAX_FRAMES:
            # the page sends 5; each frame is a face analysis (100 in one request took half a minute)
            return JsonResponse({"ok": False, "code": "too_many" if files else "missing",
                                 "message": f"Send 1 to {CAPTURE_MAX_FRAMES} photos at once."}, status=400)
        try:
            result = self._add_best(request, person, files)
        except ModelsMissing:
            return _models_missing()
        except Person.DoesNotExist:   # erased while the burst was being inspected
            return _person_gone()
        return JsonResponse(result)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra = {**(extra_context or {}), **_index_status_context(request)}
        return super().changelist_view(request, extra)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Person | None:
        """The change form's POST (inside Django's transaction) locks the person's row first: the
        form's stale-page check (``PersonForm.clean``) then holds until the save. Other pages keep
        their own lock order (an erasure takes the index's lock first)."""
        match = request.resolver_match
        if (request.method == "POST" and match is not None and match.url_name == "enrollment_person_change"
                and transaction.get_connection().in_atomic_block):
            services.person_lock(object_id, photos=True)   # the form may remove photos
        return super().get_object(request, object_id, from_field)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET" and request.user.has_perm("enrollment.add_facephoto"):
            recognizer.warm_soon()   # the models load while photos are chosen, not when the form is saved
        extra = {**(extra_context or {}), **_index_status_context(request),
                 "can_capture": request.user.has_perm("enrollment.add_facephoto"),
                 "can_erase": self.has_erase_permission(request),
                 "can_export": self.has_export_permission(request)}
        try:
            response = super().changeform_view(request, object_id, form_url, extra)
        except services.StaffIdErased as refused:
            # an erasure of the staff id typed committed after the form's check (PersonForm.clean) and
            # before the save, which the service refused: a 500 with nothing saved. Nothing is saved
            # still (Django's transaction is rolled back); the page is drawn again as the form would
            # have answered had the erasure come first: the field's error (a form told of the refusal
            # is never valid, so this second pass saves nothing).
            setattr(request, _REFUSED_ERASED, refused)
            response = super().changeform_view(request, object_id, form_url, extra)
        # the form saved and its transaction committed: now the uploads (their messages still go
        # with this response's redirect)
        pending = getattr(request, _PENDING_UPLOADS, None)
        held = getattr(request, _HELD_SUCCESS, None)
        if held is not None:
            delattr(request, _HELD_SUCCESS)
        if pending:
            delattr(request, _PENDING_UPLOADS)
            self._add_uploads(request, *pending, held=held)
        return response


# the most frames one capture burst may send (the page sends 5)
CAPTURE_MAX_FRAMES = 10


def _models_missing() -> JsonResponse:
    """The capture page's answer while the face models are not installed (a 503 it can show)."""
    return JsonResponse({"ok": False, "code": "models_missing", "message": MODELS_MISSING}, status=503)


def _person_gone() -> JsonResponse:
    """The capture page's answer once the person is erased: it stops its camera and says so."""
    return JsonResponse({"ok": False, "code": "person_gone",
                         "message": "This person no longer exists (erased meanwhile)."}, status=404)


def _index_status_context(request: HttpRequest) -> dict:
    services.index_rebuild_resume()   # a queued run whose message was lost starts now
    # the latest run (its message and error) only for those who may see runs, as status.json does
    may_see_runs = request.user.has_perm("enrollment.view_trainingrun")
    latest = TrainingRun.objects.order_by("-id").first() if may_see_runs else None
    current = IndexVersion.objects.current()
    # made with other models or another template scheme (an upgrade): kiosks and the API keep using it
    # until the rebuild they ask for (or one started here) is done, so the admin says so
    outdated = current is not None and current.outdated
    # a disk nearly full, said before it refuses photos and rebuilds (MASKNET_STORAGE_LOW_MB)
    low = [f"{services.STORAGE_NAMES[name]} has {services.amount(free, 'bytes')} free"
           for name, free in sorted(services.storage_low().items())]
    return {"index_current": current, "index_outdated": outdated, "storage_low": low,
            "training_latest": run_payload(latest) if latest else None, "can_watch_runs": may_see_runs,
            "can_rebuild": request.user.has_perm("enrollment.rebuild_index")}


class ReadOnlyAdmin(DateDrillDownChecked, admin.ModelAdmin):
    """Rows written only by the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ErasedStaffId)
class ErasedStaffIdAdmin(DateDrillDownChecked, admin.ModelAdmin):
    """The staff ids of people erased at their request, which imports skip: the date alone (the
    digest is never shown), found by typing a staff id. Deleting one lifts it (audited): the person
    asked to be enrolled again. Superusers only (Enrollers hold none of its permissions)."""

    list_display = ("erased_on", "secret_key")
    fields = readonly_fields = ("erased_on", "secret_key")
    # the search box; get_search_results finds the entry of the staff id typed, never by the digest's text
    search_fields = ("digest",)
    search_help_text = ("Type a staff id to find its entry (letter case, full-width forms, spaces and dashes aside). "
                        "Delete an entry to lift it: imports and the admin then enrol that staff id again.")
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False   # kept by erasures only

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="erased on", ordering="erased_at")
    def erased_on(self, obj: ErasedStaffId) -> str:
        return obj.erased_on

    @admin.display(description="secret key")
    def secret_key(self, obj: ErasedStaffId) -> str:
        """Whether the site can still match it: made under ``DJANGO_SECRET_KEY``, a key in
        ``DJANGO_SECRET_KEY_FALLBACKS``, or a key it no longer has (it then stops no import)."""
        fingerprints = [secret_fingerprint(secret) for secret in site_secrets()]
        if obj.key_id == fingerprints[0]:
            return "current"
        if obj.key_id in fingerprints:
            return "a previous key (DJANGO_SECRET_KEY_FALLBACKS): matched"
        return "a key this site no longer has: matches no staff id"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        if not search_term.strip():
            return queryset, False
        return queryset.of(search_term), False

    def response_action(self, request: HttpRequest, queryset: QuerySet):
        """As the user admin's: Django's history of a bulk delete and the lifts in one transaction."""
        with transaction.atomic():
            return super().response_action(request, queryset)

    def delete_model(self, request: HttpRequest, obj: ErasedStaffId) -> None:
        services.erased_staff_id_lift(entry=obj, actor=request.user, note="in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for entry in list(queryset.order_by("pk")):
            services.erased_staff_id_lift(entry=entry, actor=request.user, note="in the admin")


# a failed photo's state, by what rebuilds do with it (FacePhotoAdmin.embedding, EmbeddingFailureFilter)
EMBEDDING_FAILURES = {
    "left_out": "failed: left out of the index (remove it, or add another photo)",
    "file_missing": "failed: file missing from storage (restore the file, or remove the photo)",
    "again": "failed: tried again at the next rebuild",
}


def _embedding_failure(photo: FacePhoto) -> str:
    """Which of :data:`EMBEDDING_FAILURES` a failed photo is in."""
    if photo.embed_failed_version and photo.embed_failed_version == recognizer.template_version():
        return "left_out"
    return "file_missing" if photo.file_missing else "again"


class EmbeddingFailureFilter(admin.SimpleListFilter):
    """Failed photos by what rebuilds do with them: left out, file missing from storage, tried again;
    "file missing from storage" also lists photos embedded before their file went (marked by the
    daily photo sweep: ``services.photo_files_sweep``)."""

    title = "embedding failure"
    parameter_name = "failure"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(key, label.removeprefix("failed: ")) for key, label in EMBEDDING_FAILURES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        version = recognizer.template_version()
        failed = queryset.filter(embedding_state=FacePhoto.Embedding.FAILED)
        if self.value() == "left_out":
            return failed.filter(embed_failed_version=version)
        if self.value() == "file_missing":   # embedded ones too: the photo sweep found their file gone
            return queryset.filter(file_missing=True).exclude(embedding_state=FacePhoto.Embedding.FAILED,
                                                              embed_failed_version=version)
        if self.value() == "again":
            return failed.exclude(embed_failed_version=version).filter(file_missing=False)
        return None


class VerdictFilter(admin.AllValuesFieldListFilter):
    """Photos by quality verdict, worded as the rows word it (:func:`verdict_html`): "good", not the
    stored ``ok``, which stays the query string's value (``?quality_verdict=ok``)."""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            display = str(choice["display"])   # "ok", or "ok (3)" with the counts shown
            if display == "ok" or display.startswith("ok ("):
                choice = {**choice, "display": "good" + display.removeprefix("ok")}
            yield choice


@admin.register(FacePhoto)
class FacePhotoAdmin(ListAfterDelete, SearchNormalised, RebuildMixin, DateDrillDownChecked, admin.ModelAdmin):
    """Every photo with its verdict; removing goes through ``photo_remove`` (file, templates, rebuild);
    "Try again at the next rebuild" through ``photos_embed_again``."""

    list_display = ("thumbnail", "id", "person", "source", "verdict", "masked", "embedding", "created_at")
    # on a phone (audit/templatetags/admin_phone.py): the verdict too took 356 px of 330 beside a long name
    list_display_phone = ("thumbnail", "person")
    list_filter = (("quality_verdict", VerdictFilter), "masked", "source", "embedding_state", EmbeddingFailureFilter)
    search_fields = ("person__full_name", "person__staff_id")
    staff_key = "person__staff_key"
    name_key = "person__name_key"
    list_select_related = ("person",)
    readonly_fields = ("preview", "person", "source", "kept_until", "kept_from", "width", "height", "box",
                       "quality_score",
                       "quality_verdict", "masked", "masked_prob", "embedding", "embedding_error", "added_by",
                       "created_at")
    fields = readonly_fields
    actions = ("embed_again",)

    @admin.display(description="embedding state", ordering="embedding_state")
    def embedding(self, photo: FacePhoto) -> str:
        """The embedding state; a failed photo says whether rebuilds of this recognizer leave it out
        (a cause of its own: ``embed_failed_version``), its file is gone from storage (tried by every
        rebuild: ``file_missing``) or the next rebuild tries it again (a file storage could not read,
        or a failure under other models): "failed" alone did not tell. A photo embedded (or pending)
        whose file the photo sweep found gone says so as well: "embedded; file missing from storage
        (…)"."""
        if photo.embedding_state != FacePhoto.Embedding.FAILED:
            missing = EMBEDDING_FAILURES["file_missing"].removeprefix("failed: ")
            return photo.get_embedding_state_display() + (f"; {missing}" if photo.file_missing else "")
        return EMBEDDING_FAILURES[_embedding_failure(photo)]

    class Media:
        css = {"all": ("enrollment/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos are added on the person's page

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    # A photo kept by gallery adaptation was taken at a check-in, seconds before it was added: its
    # time is that check-in's, which only those who may see check-ins see (an Enroller sees the day)
    def get_list_display(self, request: HttpRequest):
        return self._dated(request, super().get_list_display(request))

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self._dated(request, super().get_readonly_fields(request, obj))

    def get_fields(self, request: HttpRequest, obj=None):
        return self._dated(request, super().get_fields(request, obj))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """No filtering on the time for those who see the day alone: ``?created_at__lt=...`` found a
        kept photo's time to the second (Django allows any lookup on the model's own fields)."""
        if (lookup.split("__")[0] == "created_at"
                and not (request is not None and request.user.has_perm("recognition.view_checkin"))):
            return False
        return super().lookup_allowed(lookup, value, request)

    @staticmethod
    def _dated(request: HttpRequest, names) -> tuple:
        if request.user.has_perm("recognition.view_checkin"):
            return tuple(names)
        # the check-in a kept face came from is theirs to see who may read check-ins
        return tuple("added" if name == "created_at" else name for name in names if name != "kept_from")

    @admin.display(description="kept until")
    def kept_until(self, obj: FacePhoto) -> str:
        """A photo kept by gallery adaptation: the day its retention ends (the daily purge after it
        deletes it)."""
        expiry = services.adapted_photo_expiry(obj)
        return (f"{expiry:%Y-%m-%d} (MASKNET_RETENTION_ADAPTED_DAYS; deleted by the daily purge after then)"
                if expiry else "while the person is enrolled")

    @admin.display(description="kept from")
    def kept_from(self, obj: FacePhoto) -> str:
        """A photo kept by gallery adaptation: the check-in whose face it is, linked (an administrator
        correcting a wrong check-in finds the face it left; the check-in's deletion names it too)."""
        from recognition.models import CheckIn

        pk = obj.kept_from_checkin
        if pk is None:
            return ("-" if obj.source != FacePhoto.Source.CHECKIN
                    else "a check-in (kept before 2026-12-07: not recorded)")
        if not CheckIn.objects.filter(pk=pk).exists():
            return f"check-in #{pk} (deleted)"
        return format_html('<a href="{}">check-in #{}</a>', reverse("admin:recognition_checkin_change", args=[pk]), pk)

    @admin.display(description="created at", ordering="created_at")
    def added(self, obj: FacePhoto) -> str:
        """When the photo was added; for a photo kept from a check-in, the day alone."""
        local = timezone.localtime(obj.created_at)
        return f"{local:%Y-%m-%d}" if obj.source == FacePhoto.Source.CHECKIN else f"{local:%Y-%m-%d %H:%M}"

    @admin.display(description="")
    def thumbnail(self, obj: FacePhoto) -> str:
        return thumb_html(obj.pk)

    @admin.display(description="preview")
    def preview(self, obj: FacePhoto) -> str:
        return thumb_html(obj.pk, size=192)

    @admin.display(description="verdict")
    def verdict(self, obj: FacePhoto) -> str:
        return verdict_html(obj)

    @admin.action(description="Try again at the next rebuild", permissions=["rebuild"])
    def embed_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Photos left out of this recognizer's rebuilds (failed for a cause of their own) are tried
        again by the next one; the others selected are tried by every rebuild already."""
        selected = queryset.count()
        done, run = services.photos_embed_again(photos=queryset, actor=request.user)
        if run is None:
            messages.info(request, "No photo selected was left out of the index: nothing to do (every rebuild "
                                   "tries the other failed photos already).")
            return
        rest = f"; {selected - done} of those selected were not left out" if done < selected else ""
        self._rebuild_message(request, run, said=f"{services.counted(done, 'photo')} to try again at the next "
                                                 f"rebuild{rest}: index rebuild queued")

    def delete_model(self, request: HttpRequest, obj: FacePhoto) -> None:
        person = obj.person
        stopped = services.photo_remove(photo=obj, actor=request.user)
        self._after_removal(request, [person], [person] if stopped else [])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        photos = list(queryset.select_related("person"))
        stopped = {photo.person_id: photo.person for photo in photos
                   if services.photo_remove(photo=photo, actor=request.user)}
        self._after_removal(request, list({photo.person_id: photo.person for photo in photos}.values()),
                            list(stopped.values()))

    @staticmethod
    def _after_removal(request: HttpRequest, people: list[Person], stopped: list[Person]) -> None:
        """What the person's page says after a removal: the rebuild, gallery adaptation stopped for
        those whose kept photo it was, and a person left with masked photos alone (recognised only
        while wearing one); Django's "deleted successfully" said none of it."""
        messages.info(request, "The index is being rebuilt without them.")
        if stopped:
            messages.info(request, adaptation_stopped_message(stopped))
        for person in people:
            if warning := services.photos_masked_only_warning(person=person):
                messages.warning(request, warning)


@admin.register(IndexVersion)
class IndexVersionAdmin(ReadOnlyAdmin):
    """Index versions (immutable files; the active one serves the kiosks)."""

    list_display = ("id", "is_active", "created_at", "people_count", "photo_count", "template_count",
                    "thresholds", "model_version", "made_by")
    list_filter = ("is_active",)
    list_select_related = ("built_by",)
    readonly_fields = ("path", "sha256", "created_at", "people_count", "photo_count", "template_count", "dim",
                       "model_version", "adapter_version", "metrics", "is_active", "made_by")

    @admin.display(description="built by")
    def made_by(self, obj: IndexVersion) -> str:
        """The run that built it; for a version an erasure rewrote (without the person, whom it does not
        name), that it did and from which version: it keeps the run of the version it was read from,
        whose own page shows this version as its result rewritten (TrainingRunAdmin.index_shown)."""
        run = format_html('<a href="{}">{}</a>', reverse("admin:enrollment_trainingrun_change", args=[obj.built_by_id]),
                          obj.built_by) if obj.built_by_id else "–"
        source = (obj.metrics or {}).get("rewritten_from")
        if source is None:
            return run
        return format_html("{}: its version v{}, rewritten by an erasure", run, source)

    @admin.display(description="thresholds as built (unmasked / masked)")
    def thresholds(self, obj: IndexVersion) -> str:
        t = (obj.metrics or {}).get("thresholds") or {}
        if not t:
            return "–"
        offset = f", offset {t['offset']:+g}" if t.get("offset") else ""   # MASKNET_THRESHOLD_OFFSET
        return f"{t.get('unmasked', '?')} / {t.get('masked', '?')} ({t.get('source', '?')}{offset})"


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    """Rebuilds with live progress (Channels; polling when the socket is unavailable)."""

    list_display = ("id", "state", "progress_bar", "message", "reason", "requests", "created_at", "started_at",
                    "finished_at", "index_shown")
    # on a phone (audit/templatetags/admin_phone.py); the running one's bar shows in the status bar above
    list_display_phone = ("id", "state", "message")
    list_filter = ("state",)
    list_select_related = ("index_version",)
    readonly_fields = ("state", "progress", "message", "error", "reason", "requests", "requested_by", "created_at",
                       "requested_at", "started_at", "heartbeat_at", "finished_at", "attempts", "index_shown",
                       "stats")

    class Media:
        css = {"all": ("enrollment/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # an erasure replaces the active version with a rewrite (built_by kept) and deletes the one
        # the run built, which empties index_version: the rewrite is found by this instead
        rewrites = (IndexVersion.objects.filter(built_by=OuterRef("pk"), metrics__has_key="rewritten_from")
                    .order_by("-id").values("pk")[:1])
        return super().get_queryset(request).annotate(rewritten_version=Subquery(rewrites))

    @admin.display(description="index version")
    def index_shown(self, obj: TrainingRun) -> str:
        """The version this run built; once an erasure rewrote it (IndexVersionAdmin.made_by), the
        rewrite, saying so (the version itself is gone)."""
        if obj.index_version_id:
            return format_html('<a href="{}">{}</a>', reverse("admin:enrollment_indexversion_change",
                                                              args=[obj.index_version_id]), obj.index_version)
        pk = getattr(obj, "rewritten_version", None)
        version = IndexVersion.objects.filter(pk=pk).first() if pk else None   # rare: the latest few only
        if version is None:
            return "–"
        return format_html("<a href=\"{}\">{}</a>: this run's version, rewritten by an erasure",
                           reverse("admin:enrollment_indexversion_change", args=[version.pk]), version)

    @admin.display(description="progress")
    def progress_bar(self, obj: TrainingRun) -> str:
        # named: a row's bar is a progressbar of its own to screen readers, unnamed beside the others
        return format_html('<progress class="mn-progress" data-run="{}" max="100" value="{}" '
                           'aria-label="run #{} progress"></progress> <span class="mn-pct" data-run="{}">{}%</span>',
                           obj.pk, obj.progress, obj.pk, obj.pk, obj.progress)

    def get_urls(self):
        return [path("status.json", self.admin_site.admin_view(self.status_view),
                     name="enrollment_trainingrun_status")] + super().get_urls()

    def status_view(self, request: HttpRequest) -> JsonResponse:
        """The latest runs and the active version (the pages' fallback when WebSockets are unavailable)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        # as the pages do when drawn: a run whose worker died, or whose message was lost, is taken
        # up again (at most once a minute a process), rather than polled as "running 45 %" for good
        services.index_rebuild_resume()
        current = IndexVersion.objects.current()
        return JsonResponse({"runs": [run_payload(r) for r in TrainingRun.objects.order_by("-id")[:20]],
                             "index": {"version": current.pk, "people": current.people_count,
                                       "templates": current.template_count,
                                       "outdated": current.outdated}
                             if current else None})

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra = {**(extra_context or {}), **_index_status_context(request)}
        return super().changelist_view(request, extra)

