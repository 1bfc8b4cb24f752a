"""Kiosks (create, pairing links, revoke) and check-ins (filters, CSV export) in the admin.

Every write goes through :mod:`recognition.services`, so that it is audited and an open kiosk
socket is closed when its kiosk is revoked, deactivated or deleted.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers, widgets
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeData, mark_safe

from audit.admin_filters import IndexedValuesFieldListFilter, TimeListFilter
from audit.services import audit_list_export
from enrollment.models import Person
from enrollment.services import counted
from enrollment.text import name_found
from masknet_site.admin_csv import (
    CheckInLookupsGuarded,
    DateDrillDownChecked,
    ListAfterDelete,
    SearchNormalised,
    changelist_rows,
)
from masknet_site.csv_export import cross_site_refusal, csv_response

from . import services
from .exports import CHECKIN_CSV_HEADER, checkin_csv_rows
from .models import CheckIn, Kiosk, default_site, known_sites

# a paired kiosk heard from this recently is shown "online": four of its page's 30 s checks
KIOSK_ONLINE_S = 120
_SESSION_NEW = "recognition.pairing_new.{pk}"   # a kiosk just added: its pairing page makes the link
# a check-in's page name, kept on the request by delete_view for the message once it is deleted
_DELETED_NAME = "_recognition_deleted_checkin_name"


def _link_state(kiosk: Kiosk) -> str:
    """Which pairing link a kiosk has (its expiry, a new link's own): the pairing page's form sends the
    one it was drawn with."""
    return kiosk.pairing_expires_at.isoformat() if kiosk.pairing_expires_at else ""


def pairing_qr(url: str) -> str:
    """``url`` as an SVG QR code (inline, no image request): a tablet at the entrance opens the
    link by pointing its camera at the administrator's screen instead of typing 80 characters."""
    svg = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=4).to_string(encoding="unicode")
    # sized in pixels, on white (a dark page would make it unreadable); hidden from screen readers, which
    # hear the image the page wraps it in (templates/admin/recognition/kiosk/pairing.html: role="img",
    # named), not a second, unnamed image inside it
    svg = re.sub(r'^<svg width="[^"]*" height="[^"]*"',
                 '<svg width="260" height="260" style="background:#fff" aria-hidden="true" focusable="false"', svg)
    return mark_safe(svg)  # noqa: S308 - path data alone: the link is drawn as modules, never written as text


@admin.register(Kiosk)
class KioskAdmin(CheckInLookupsGuarded, DateDrillDownChecked, admin.ModelAdmin):
    """Kiosks. Adding one shows its one-time pairing link; the change page links to a new pairing
    link and to revocation."""

    list_display = ("name", "location", "site", "active", "is_paired", "connection")
    list_display_phone = ("name", "connection")   # audit/templatetags/admin_phone.py
    list_filter = ("active", "site")
    search_fields = ("name", "location", "site")
    fields = ("name", "location", "site", "language", "active", "paired_at", "last_seen_at", "created_at")
    readonly_fields = ("paired_at", "last_seen_at", "created_at")
    actions = ["revoke_selected"]

    @admin.display(boolean=True, description="paired")
    def is_paired(self, obj: Kiosk) -> bool:
        return obj.paired

    @admin.display(description="last seen", ordering="last_seen_at")
    def connection(self, obj: Kiosk) -> str:
        """When the kiosk was last heard from, "online" within ``KIOSK_ONLINE_S`` (an open page
        with its camera on is heard from every ``MASKNET_KIOSK_RECHECK_S``, 30 s)."""
        if obj.last_seen_at is None:
            return "never"
        ago = (timezone.now() - obj.last_seen_at).total_seconds()
        if ago <= KIOSK_ONLINE_S and obj.paired:
            return "online"
        return f"{timezone.localtime(obj.last_seen_at):%Y-%m-%d %H:%M}"

    def has_pair_permission(self, request: HttpRequest) -> bool:
        """Pairing links and revocation need ``recognition.pair_kiosk``."""
        return request.user.has_perm("recognition.pair_kiosk")

    def get_readonly_fields(self, request: HttpRequest, obj: Kiosk | None = None) -> tuple[str, ...]:
        """``active`` is read-only on an existing kiosk for those without ``recognition.pair_kiosk``:
        unticking it unpairs the device (:func:`services.kiosk_update`), a revocation. A new kiosk
        has no device yet, so anyone who may add one sets it."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_pair_permission(request):
            fields += ("active",)
        return fields

    def save_model(self, request: HttpRequest, obj: Kiosk, form, change: bool) -> None:
        if not change:
            # a link only for those who may pair (it is shown once, to them)
            # the link is made when the page that shows it is drawn (after the redirect): a code
            # kept in the session until then sat in its database row, usable, if that page was never
            # opened (the codes are otherwise stored only as digests)
            kiosk, _code = services.kiosk_create(actor=request.user, name=obj.name, location=obj.location,
                                                 site=obj.site, active=obj.active, with_link=False,
                                                 language=obj.language)
            obj.pk = kiosk.pk
            obj.refresh_from_db()
            if kiosk.active and self.has_pair_permission(request):
                request.session[_SESSION_NEW.format(pk=kiosk.pk)] = True
            return
        # a read-only field (``active`` without the pair permission) is not in the form: unchanged
        was_paired = Kiosk.objects.filter(pk=obj.pk).exclude(token_hash="").exists()
        services.kiosk_update(kiosk=obj, actor=request.user, **{
            k: form.cleaned_data.get(k) for k in ("name", "location", "site", "active", "language")})
        if "active" in form.changed_data and not obj.active and was_paired:
            # "changed successfully" alone: activating it again later did not bring the device back
            self.message_user(request, f"Kiosk “{obj.name}” is inactive and its device was unpaired: to use it "
                                       "again, activate it and create a new pairing link.", messages.WARNING)

    def response_add(self, request: HttpRequest, obj: Kiosk, post_url_continue: str | None = None) -> HttpResponse:
        if _SESSION_NEW.format(pk=obj.pk) in request.session:
            return HttpResponseRedirect(reverse("admin:recognition_kiosk_pairing", args=[obj.pk]))
        pairs = request.user.has_perm("recognition.pair_kiosk")   # activating one is theirs too (read-only else)
        self.message_user(request, f"Kiosk “{obj.name}” added. " + (
            "Pairing a device needs the “pair kiosk” permission." if obj.active
            else "It is inactive: activate it, then create a pairing link." if pairs
            else "It is inactive: someone with the “pair kiosk” permission activates it and pairs a device."),
            messages.INFO)
        return HttpResponseRedirect(reverse("admin:recognition_kiosk_change", args=[obj.pk]))

    def delete_model(self, request: HttpRequest, obj: Kiosk) -> None:
        services.kiosk_delete(kiosk=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for kiosk in queryset:
            services.kiosk_delete(kiosk=kiosk, actor=request.user)

    @admin.action(description="Revoke the selected kiosks' devices (disconnects them now)",
                  permissions=["pair"])
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        revoked, unpaired = 0, []
        for kiosk in queryset:
            if services.kiosk_unpair(kiosk=kiosk, actor=request.user):
                revoked += 1
            else:
                unpaired.append(f"“{kiosk.name}”")
        if revoked or not unpaired:
            self.message_user(request, f"Revoked {counted(revoked, 'kiosk device')}.", messages.SUCCESS)
        if unpaired:
            self.message_user(request, f"Not paired, no device to revoke: {', '.join(unpaired)} "
                                       "(their unused pairing links, if any, no longer work).", messages.WARNING)

    def get_urls(self):
        """Adds ``<id>/pairing/`` and ``<id>/revoke/``."""
        extra = [
            path("<int:pk>/pairing/", self.admin_site.admin_view(self.pairing_view),
                 name="recognition_kiosk_pairing"),
            path("<int:pk>/revoke/", self.admin_site.admin_view(self.revoke_view), name="recognition_kiosk_revoke"),
        ]
        return extra + super().get_urls()

    def pairing_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Shows a fresh pairing link once (after creation, or after POST: a new link)."""
        # the permission first, as revoke_view does: a 404 before it told anyone which kiosk ids exist
        if not self.has_pair_permission(request):
            raise PermissionDenied
        kiosk = get_object_or_404(Kiosk, pk=pk)
        code = None
        asked = request.method == "POST"
        if asked and request.POST.get("drawn", _link_state(kiosk)) != _link_state(kiosk):
            # a link was made since the page that posted was drawn: a reload sending that page's form
            # again (or another administrator); a new one would void it, unsaid
            asked = False
            self.message_user(request, "A pairing link was made since this page was drawn (reloading a page sends "
                                       "its form again): it still works. To replace it, make another below.",
                              messages.WARNING)
        if asked or request.session.pop(_SESSION_NEW.format(pk=pk), False):
            try:
                code = services.kiosk_pairing_issue(kiosk=kiosk, actor=request.user)
            except services.KioskInactive as exc:
                self.message_user(request, str(exc), messages.ERROR)
        url = request.build_absolute_uri(services.pairing_path(code)) if code else None
        ttl = settings.MASKNET_KIOSK_PAIRING_TTL_S
        context = {**self.admin_site.each_context(request), "opts": self.opts, "kiosk": kiosk, "url": url,
                   "qr": pairing_qr(url) if url else None, "drawn": _link_state(kiosk),
                   "title": f"Pair kiosk “{kiosk.name}”",
                   "ttl": f"{ttl // 3600} hours" if ttl >= 7200 else f"{max(ttl // 60, 1)} minutes"}
        return TemplateResponse(request, "admin/recognition/kiosk/pairing.html", context)

    def revoke_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: confirm; POST: unpair the device and close its socket now."""
        if not self.has_pair_permission(request):
            raise PermissionDenied
        kiosk = get_object_or_404(Kiosk, pk=pk)
        if request.method == "POST":
            if services.kiosk_unpair(kiosk=kiosk, actor=request.user):
                self.message_user(request, f"“{kiosk.name}” is disconnected and unpaired.", messages.SUCCESS)
            else:
                self.message_user(request, f"“{kiosk.name}” was not paired: no device to revoke "
                                           "(an unused pairing link, if any, no longer works).", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:recognition_kiosk_change", args=[pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "kiosk": kiosk,
                   "title": f"Revoke kiosk “{kiosk.name}”?"}
        return TemplateResponse(request, "admin/recognition/kiosk/revoke.html", context)


class PersonShownFilter(admin.SimpleListFilter):
    """Check-ins of one person (``?person__id__exact=``, the attendance page's link): the sidebar
    names only the person chosen, where a list of everyone who ever checked in (thousands of
    links) was built on every load and every CSV export."""

    title = "person"
    parameter_name = "person__id__exact"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        # the value asked for, always (a filter without choices is dropped, its value then ignored)
        value = self.value()
        if not value:
            return []
        name = Person.objects.filter(pk=value).values_list("full_name", flat=True).first() if str(
            value).isascii() and str(value).isdigit() else None
        return [(str(value), name or f"#{value}")]

    def queryset(self, request: HttpRequest, queryset):
        value = self.value()
        if not value:
            return queryset
        if not (str(value).isascii() and str(value).isdigit()):   # "²" is a digit to isdigit(), not to int()
            raise IncorrectLookupParameters(f"person {value!r} is not an id")
        return queryset.filter(person_id=int(value))


def _renamed(entry: str | list, names: dict[str, str]) -> str | list:
    """An entry of Django's list of deleted objects (an HTML line, or a list of them), each check-in's
    ``str()`` in it replaced by its page name."""
    if isinstance(entry, list):
        return [_renamed(e, names) for e in entry]
    for old, new in names.items():   # a line with a link is HTML; one without, text (escaped when shown)
        entry = (mark_safe(entry.replace(escape(old), escape(new))) if isinstance(entry, SafeData)  # noqa: S308
                 else entry.replace(old, new))
    return entry


def checkin_page_name(checkin: CheckIn) -> str:
    """What a check-in's admin page is called: "Eileen Collins at 2026-12-03 08:59" (local time, in
    the staff pages' format)."""
    return f"{checkin.person.full_name} at {date_format(timezone.localtime(checkin.at), 'DATETIME_FORMAT')}"


def _iso_day(value: str) -> date | None:
    """``value`` (YYYY-MM-DD) as a date, ``None`` when it is not one."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _attendance_url(day: date | None, site: str = "") -> str:
    """The daily attendance page of ``day`` (today's without one), at ``site`` when one is given."""
    query = {**({"date": day.isoformat()} if day else {}), **({"site": site} if site else {})}
    return reverse("attendance-day") + (f"?{urlencode(query)}" if query else "")


# the record page's person: a list of every active person up to this many; above, a text field
# ("Staff id or name") resolved on the server (ManualCheckInForm): 2,000 options made a page of
# 120 KiB that nobody could search by staff id
CHOOSER_LIST_MAX = 300
# the people a text that found several offers to choose from (more: the first ones, and "type more")
CHOOSER_MATCHES_MAX = 20


class LabelledSplitDateTime(widgets.AdminSplitDateTime):
    """The admin's date and time inputs, each named for screen readers ("Time (date)", "Time (time of
    day)") and described by the field's help text (its rules: the day as YYYY-MM-DD, the site's time
    zone). Django's pair has neither: its label names no input (``MultiWidget.id_for_label`` is
    empty), so the help text has no id either. The label now names the date input, as a one-input
    field's names its input."""

    def __init__(self, label: str, attrs: dict | None = None) -> None:
        super().__init__(attrs)
        self.label = label

    def id_for_label(self, id_: str) -> str:
        """The date input's id: the label's ``for`` and the help text's id (``<id>_helptext``) follow it."""
        return f"{id_}_0" if id_ else ""

    def get_context(self, name: str, value, attrs: dict | None) -> dict:
        """Django's context, each input with its ``aria-label`` and ``aria-describedby``."""
        context = super().get_context(name, value, attrs)
        field_id = (attrs or {}).get("id")
        for sub, part in zip(context["widget"]["subwidgets"], ("date", "time of day"), strict=True):
            sub["attrs"]["aria-label"] = f"{self.label} ({part})"
            if field_id:
                sub["attrs"]["aria-describedby"] = f"{self.id_for_label(field_id)}_helptext"
        return context


class SiteDateTimeField(forms.SplitDateTimeField):
    """The hand check-in's day and time, in the site's time zone: the day as YYYY-MM-DD only (Django's
    default formats read 11/12/2026 as 12 November, the wrong day for most of the world, saved
    without a word), and a time in the hour the clocks go back over (01:30 happens twice) read as
    its first occurrence, where Django refused it as "ambiguous" and a night shift's arrival could
    not be recorded (its page then says which). A time the clocks skip is still refused, and so is
    one with no UTC time (9999-12-31 23:59 behind UTC, 0001-01-01 00:00 ahead of it: someone typing
    "never" into a token's expiry got a 500, and on PostgreSQL a row stored past year 9999 that every
    later page reading it answered 500; a helper's review)."""

    default_error_messages = {
        **forms.SplitDateTimeField.default_error_messages,
        "out_of_range": "This time has no UTC time: choose one between the years 1 and 9999 everywhere.",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(input_date_formats=["%Y-%m-%d"], **kwargs)

    def compress(self, data_list):
        value = None
        if data_list and data_list[0] is not None and data_list[1] is not None:
            naive = datetime.combine(*data_list)
            zone = timezone.get_current_timezone()
            if services.wall_time_occurs(naive, zone) == 2:
                value = naive.replace(tzinfo=zone, fold=0)
        value = value or super().compress(data_list)
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None
        return value


class ManualCheckInForm(forms.Form):
    """A check-in recorded by hand (:func:`services.checkin_record_manual` checks the rest: an active
    person, a time neither in the future nor too far back, one check-in per window).

    The person is chosen from a list of the active people, or, above :data:`CHOOSER_LIST_MAX` of them,
    by a staff id or name typed in (:meth:`_resolved`): no more of anyone is shown either way than the
    list shows (names and staff ids of active people)."""

    person = forms.ModelChoiceField(
        queryset=Person.objects.all(), help_text="the active people, by name and staff id")
    at = SiteDateTimeField(
        label="Time", widget=LabelledSplitDateTime("Time"),
        help_text=f"when they arrived, in the site's time ({settings.TIME_ZONE}), the day as YYYY-MM-DD: not in the "
                  f"future (a minute ahead is taken as now), at most {services.MANUAL_CHECKIN_MAX_DAYS} days back")
    site = forms.ChoiceField(help_text="the site they came in at (the sites of the kiosks)")
    reason = forms.CharField(
        max_length=services.MANUAL_REASON_MAX, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="why by hand, e.g. “face not recognised”, “kiosk offline”, “came in by the loading bay”; kept "
                  "with the check-in (its page and the CSV exports show it)")

    def __init__(self, *args, detailed: bool = True, **kwargs) -> None:
        """``detailed`` false: for staff who may record check-ins but not read them (no
        ``recognition.view_checkin``), whom a refusal tells no more than the list offers (:meth:`refused`)."""
        super().__init__(*args, **kwargs)
        self.detailed = detailed
        self.fields["site"].choices = [(site, site) for site in known_sites()]
        # typed: a form drawn with the text field is read as one even if the gallery shrank since
        self.typed = "find" in self.data or Person.objects.active().count() > CHOOSER_LIST_MAX
        if self.typed:
            self._typed_fields()
            return
        # the list offers the active people; one made inactive since the page was drawn is still
        # found, and refused by the service in words ("inactive"), not as "not one of the choices";
        # except to staff who may not read check-ins: an id posted would tell them an inactive person
        # (whom the attendance pages show to those who may read them), so it is not one of the choices
        if not detailed:
            self.fields["person"].queryset = Person.objects.active()
        self.fields["person"].widget.choices = [("", "---------"), *(
            (p.pk, str(p)) for p in Person.objects.active().only("full_name", "staff_id"))]

    def _typed_fields(self) -> None:
        """The text field, and the people it found to choose from (none until a text finds several);
        the attendance page's link (``?person=<id>``, an active person) fills in their staff id and
        shows them chosen."""
        self.fields["find"] = forms.CharField(
            label="Staff id or name", required=False, max_length=200,
            widget=forms.TextInput(attrs={"size": 40, "autocomplete": "off"}),
            help_text="a staff id (letter case, full-width forms and dashes that look like “-” aside), taken at "
                      "once, or part of an active person's name or staff id: the people found by it are listed "
                      "below to choose from (one alone, chosen: record again to confirm)")
        self.fields["person"] = forms.CharField(required=False, widget=forms.HiddenInput,
                                                help_text="the people found: choose one")
        self.order_fields(["find", "person"])
        pk = self.initial.get("person")
        found = Person.objects.active().filter(pk=pk).first() if not self.is_bound and isinstance(pk, int) else None
        if found is not None:
            self.initial = {**self.initial, "find": found.staff_id}
            self._offer([found])

    def _offer(self, people: list[Person], chosen: Person | None = None) -> None:
        """``people`` as the radio buttons to choose from (none: no buttons, and no stale choice kept),
        ``chosen`` (when the form comes back) checked."""
        self.fields["person"].widget = (forms.RadioSelect(choices=[(p.pk, str(p)) for p in people]) if people
                                        else forms.HiddenInput())
        if self.is_bound:
            self.data = self.data.copy()
            self.data["person"] = str(chosen.pk) if chosen is not None else ""

    def clean(self) -> dict:
        """Typed: the person the text (or a choice among those it found) names, in ``person``. The
        service's refusals that need no row (the time, the reason, the site), each on its field
        unless the form already refused it: all at once, where the service says its first."""
        data = super().clean()
        if self.typed and "find" not in self.errors:
            person = self._resolved(data.get("find", ""), data.get("person", ""))
            if person is not None:
                data["person"] = person
        if data.get("at") is not None:
            for refusal in services.checkin_manual_refusals(at=data["at"], site=data.get("site", ""),
                                                            reason=data.get("reason", "")):
                if refusal.field not in self.errors:
                    self.add_error(refusal.field, refusal.sentence)
        return data

    def _resolved(self, text: str, picked: str) -> Person | None:
        """The person chosen by ``text`` and ``picked`` (a radio button's id), or ``None`` with the
        text field's error: a staff id typed in full is that person's (compared by key:
        :meth:`PersonQuerySet.with_staff_id`); else among the active people whose name or staff id
        contains it (:meth:`PersonQuerySet.search`, departments left out: they are not what the list
        shows), the one picked; the only one found (by their name, or because their staff id contains
        the text: ``E-1`` typed, ``E-10`` found) is offered checked, to confirm; several are offered
        (at most :data:`CHOOSER_MATCHES_MAX`); none is an error. An id picked without a text is
        taken as the list's choice is. Staff without :attr:`detailed` find active people only, so that
        an inactive person's staff id or id is answered as one that is nobody's."""
        active = Person.objects.active().only("full_name", "staff_id")
        known = Person.objects.all() if self.detailed else active
        pk = int(picked) if picked.isascii() and picked.isdigit() else None
        if not text:
            found = known.filter(pk=pk).first() if pk is not None else None
            if found is None:
                self._offer([])
                self.add_error("find", "Type a staff id or name." if pk is None else
                               "That person is not one of the active people: type their staff id or name.")
            return found
        found = known.with_staff_id(text).first()
        matches = active.search(text, departments=False)
        if found is None and pk is not None:
            found = matches.filter(pk=pk).first()
        if found is not None:
            self._offer([found], found)
            return found
        people = list(matches[:CHOOSER_MATCHES_MAX + 1])
        self._offer(people[:CHOOSER_MATCHES_MAX], people[0] if len(people) == 1 else None)
        if not people:
            error = f"No active person has the staff id “{text}” or a name or staff id containing it."
        elif len(people) == 1 and name_found(people[0].full_name, text):
            # not taken at once: Enter on "Ann" recorded Anna Berg when Ann Lee was meant
            error = (f"{people[0]} is the one active person whose name contains “{text}”: they are chosen below; "
                     "record again to take them, or type another.")
        elif len(people) == 1:
            error = (f"No active person has the staff id “{text}”, but the staff id of {people[0]} contains it: "
                     "they are chosen below; record again to take them, or type another.")
        elif len(people) > CHOOSER_MATCHES_MAX:
            error = (f"More than {CHOOSER_MATCHES_MAX} active people match “{text}”: the first "
                     f"{CHOOSER_MATCHES_MAX} are below; choose one, or type more of the name or the staff id.")
        else:
            error = f"{len(people)} active people match “{text}”: choose one below, or type more."
        self.add_error("find", error)
        return None

    @staticmethod
    def initial_for(query) -> dict:
        """The form's first values from the query string (the attendance page's link): ``person``,
        ``site`` and ``date`` (a past day within reach: its date, the time left to fill in); the
        site's default otherwise, and now."""
        now = timezone.localtime().replace(second=0, microsecond=0)
        sites = known_sites()
        site = query.get("site", "")
        initial = {"site": site if site in sites else default_site(sites), "at": now}
        if str(query.get("person", "")).isascii() and str(query.get("person", "")).isdigit():
            initial["person"] = int(query["person"])
        day = _iso_day(query.get("date", ""))
        earliest = now.date() - timedelta(days=services.MANUAL_CHECKIN_MAX_DAYS)
        if day is not None and earliest <= day < now.date():
            initial["at"] = [day, None]   # the split widget's two parts
        return initial

    @staticmethod
    def link_note(initial: dict, *, may_name: bool) -> str | None:
        """What to say of the attendance page's link (``initial["person"]``: :meth:`initial_for`) when it names
        none of the active people (someone deactivated, or deleted, since the page was drawn), else ``None``:
        the form has no one chosen. ``may_name``: staff who may see inactive people (the attendance pages, People)
        are told who, and that they are no longer active; others no more than the list offers them (an inactive
        person's id is answered as one that is nobody's, as :meth:`_resolved` answers it)."""
        pk = initial.get("person")
        if pk is None or Person.objects.active().filter(pk=pk).exists():
            return None
        gone = Person.objects.filter(pk=pk).only("full_name", "staff_id").first() if may_name else None
        if gone is None:
            return "The person this link names is not one of the active people: choose someone else."
        return (f"{gone} is no longer active: a check-in is recorded for active people only. Reactivate them "
                "(People) to record one, or choose someone else.")

    def refused(self, exc: services.CheckInRefused) -> None:
        """The service's refusal as the form's error, the person named (the service names ids).
        Not :attr:`detailed` (staff who may record check-ins but not read them): the check-in
        already there is not described (its time, kiosk or reason: what the check-ins list tells),
        nor a person made inactive since the form was checked."""
        person = self.cleaned_data["person"]
        if isinstance(exc, services.CheckInExists) and not self.detailed:
            period = services.cooldown_period()
            text = (f"{person} already has a check-in at {exc.checkin.site} for that {period}. One check-in per "
                    f"person per {period} and site.")
        elif isinstance(exc, services.CheckInPersonInactive) and not self.detailed:
            text = "The person chosen is inactive: reactivate them (People) before checking them in."
        elif isinstance(exc, services.CheckInExists):
            how = f"by hand ({exc.checkin.reason})" if exc.checkin.manual else (
                f"at the kiosk {exc.checkin.kiosk.name}" if exc.checkin.kiosk else "at a kiosk")
            exc.checkin.person = person
            period = services.cooldown_period()
            text = (f"{person} already has a check-in at {exc.checkin.site} for that {period}: "
                    f"{checkin_page_name(exc.checkin)}, {how}. One check-in per person per {period} and site: "
                    f"delete that one first to record another time.")
        elif isinstance(exc, services.CheckInPersonInactive):
            text = f"{person} is inactive: reactivate them (People) before checking them in."
        elif isinstance(exc, services.CheckInContended):
            text = exc.naming(person)
        else:
            text = exc.sentence
        self.add_error(exc.field, text)


def _people_named(value: str) -> str:
    return ", ".join(f"person #{pk.strip()}" for pk in value.split(","))


# every way the list's address may name the person (?person=2, ?person__id__in=2,3...): audited as
# "person #2", the words a person's data export finds their records by (enrollment.services.export)
PERSON_LOOKUPS = {f"{field}{lookup}": _people_named for field in ("person", "person_id", "person__id", "person__pk")
                  for lookup in ("", "__exact", "__in")}


@admin.register(CheckIn)
class CheckInAdmin(ListAfterDelete, SearchNormalised, DateDrillDownChecked, admin.ModelAdmin):
    """The attendance record: read-only, filterable, exportable as CSV (with the current filters);
    its "add" page records a check-in by hand (``recognition.add_checkin``)."""

    # "at": the local time as every staff page writes it (masknet_site/formats/en), to the minute;
    # the CSV export keeps the seconds
    list_display = ("at", "person_link", "kiosk", "site", "source", "mask", "score_display", "frames",
                    "index_version")
    # on a phone: when and who, each row's link to its page (audit/templatetags/admin_phone.py)
    list_display_phone = ("at", "person_link")
    # the sites by index probes, not a DISTINCT over every check-in (audit/admin_filters.py)
    list_filter = (("at", TimeListFilter), "masked", "source", "kiosk", ("site", IndexedValuesFieldListFilter),
                   PersonShownFilter)
    date_hierarchy = "at"
    search_fields = ("person__full_name", "person__staff_id", "person__department")
    staff_key = "person__staff_key"
    name_key = "person__name_key"
    list_select_related = ("person", "kiosk")
    list_per_page = 100
    readonly_fields = ("person", "kiosk", "site", "at", "local_date", "window", "source", "recorded_by", "reason",
                       "score_display", "threshold_display", "mask", "frames", "index_version", "snapshot_image")
    fields = readonly_fields
    actions = None
    add_form_template = "admin/recognition/checkin/record.html"

    show_full_result_count = False   # a second COUNT(*) over every check-in on each page

    def get_queryset(self, request: HttpRequest):
        """Without the snapshot images (:meth:`CheckInQuerySet.listed`)."""
        return super().get_queryset(request).listed()

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: CheckIn | None = None) -> HttpResponse:
        """A check-in's page (its title, heading and breadcrumbs) names the person and the local
        time; ``str(checkin)``, ids only, stays what the audit log keeps (it outlives an erasure)."""
        if obj is not None:
            context["subtitle"] = checkin_page_name(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _named(self, request: HttpRequest, object_id: str, extra_context: dict | None) -> dict:
        """``extra_context`` with the check-in's page name as the page's subtitle (title, heading,
        breadcrumbs), as its change page has it; Django's delete and history pages show ``str()``."""
        obj = self.get_object(request, unquote(object_id))
        return {**(extra_context or {}), **({"subtitle": checkin_page_name(obj)} if obj is not None else {})}

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        """Django's, the check-in named as on its page: in the title and heading, the breadcrumbs,
        the question, the list of what goes and the message once it is gone."""
        extra = self._named(request, object_id, extra_context)
        if "subtitle" in extra:
            setattr(request, _DELETED_NAME, extra["subtitle"])
        return super().delete_view(request, object_id, extra)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """Django's list of what a deletion takes, each check-in named as on its page (no other row
        refers to a check-in: the list is the check-ins themselves)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        names = {str(checkin): checkin_page_name(checkin) for checkin in objs}
        return [_renamed(entry, names) for entry in deleted], counts, perms_needed, protected

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id) -> HttpResponse:
        return super().response_delete(request, getattr(request, _DELETED_NAME, obj_display), obj_id)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        """Django's, titled "Change history" and named as the check-in's page is."""
        extra = self._named(request, object_id, extra_context)
        if "subtitle" in extra:
            extra.setdefault("title", "Change history")
        return super().history_view(request, object_id, extra)

    @admin.display(description="person", ordering="person__full_name")
    def person_link(self, obj: CheckIn) -> str:
        return format_html('<a href="{}">{}</a>', reverse("attendance-person", args=[obj.person_id]),
                           obj.person.full_name)

    @admin.display(description="score", ordering="score")
    def score_display(self, obj: CheckIn) -> str:
        return "—" if obj.score is None else f"{obj.score:.3f}"   # none: recorded by hand

    @admin.display(description="threshold")
    def threshold_display(self, obj: CheckIn) -> str:
        return "—" if obj.threshold is None else f"{obj.threshold:.3f}"   # none recorded (demo data)

    @admin.display(description="mask", ordering="masked")
    def mask(self, obj: CheckIn) -> str:
        # words, not Django's red cross for False: no mask is not a failure; by hand, nobody looked
        return "—" if obj.manual else "masked" if obj.masked else "no mask"

    @admin.display(description="snapshot")
    def snapshot_image(self, obj: CheckIn) -> str:
        if obj.manual:   # no camera saw them: there never was one to keep
            return "— (recorded by hand)"
        if not obj.snapshot:
            return "— (snapshots are off, or this one expired: MASKNET_RETENTION_SNAPSHOT_DAYS)"
        data = base64.b64encode(bytes(obj.snapshot)).decode()
        return format_html('<img src="data:image/jpeg;base64,{}" width="160" height="160" alt="face at check-in">',
                           data)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Record a check-in by hand (:class:`ManualCheckInForm`, :func:`services.checkin_record_manual`),
        in the admin's own form page; a refusal (inactive, the time, one in that window already) is
        the form's error. Back to the day's attendance when the link came from there
        (``return=attendance``), else to the check-in list."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        back = params.get("return") == "attendance"
        # the day page's site filter, kept for the way back (its link names the site it showed)
        back_site = ((params.get("return_site") if request.method == "POST" else params.get("site")) or "")[:100]
        # and its day: the page's Cancel and breadcrumbs lead back to it, without recording (the
        # person was in after all), as recording does
        back_day = _iso_day((params.get("return_date") if request.method == "POST" else params.get("date")) or "")
        back_url = _attendance_url(back_day, back_site) if back and self.has_view_permission(request) else ""
        if request.method == "POST":
            form = ManualCheckInForm(request.POST, detailed=self.has_view_permission(request))
            if form.is_valid():
                data = form.cleaned_data
                try:
                    checkin = services.checkin_record_manual(person=data["person"], at=data["at"], site=data["site"],
                                                             reason=data["reason"], actor=request.user)
                except services.CheckInRefused as exc:
                    form.refused(exc)
                else:
                    return self._recorded(request, checkin, back, back_site)
        else:
            initial = ManualCheckInForm.initial_for(request.GET)
            form = ManualCheckInForm(initial=initial, detailed=self.has_view_permission(request))
            note = ManualCheckInForm.link_note(initial, may_name=form.detailed
                                               or request.user.has_perm("enrollment.view_person"))
            if note:
                self.message_user(request, note, messages.WARNING)
        admin_form = helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}, model_admin=self)
        context = {**self.admin_site.each_context(request), "title": "Record a check-in by hand",
                   "adminform": admin_form, "object_id": None, "original": None, "is_popup": False,
                   "to_field": None, "media": self.media + admin_form.media, "inline_admin_formsets": [],
                   "errors": helpers.AdminErrorList(form, []), "preserved_filters": "", "back": back,
                   "back_site": back_site if back else "", "back_day": back_day if back else None,
                   "back_url": back_url,
                   "max_days": services.MANUAL_CHECKIN_MAX_DAYS, **(extra_context or {})}
        return self.render_change_form(request, context, add=True, form_url=form_url)

    def _recorded(self, request: HttpRequest, checkin: CheckIn, back: bool, back_site: str = "") -> HttpResponse:
        """The answer to a check-in recorded by hand: a message, and the page to go on from (the day's
        attendance, with the site it showed, when the link came from there)."""
        self.log_addition(request, checkin, [{"added": {}}])
        local = timezone.localtime(checkin.at)
        repeated = services.wall_time_occurs(local.replace(tzinfo=None), local.tzinfo) == 2
        twice = (f" {local:%H:%M} happened twice that night (the clocks went back): recorded as the first, "
                 f"{local:%H:%M %Z}." if repeated else "")
        self.message_user(request, f"Recorded by hand: {checkin_page_name(checkin)}, site {checkin.site}.{twice}",
                          messages.SUCCESS)
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:recognition_checkin_add"))
        if back:
            return HttpResponseRedirect(_attendance_url(checkin.local_date, back_site))
        return HttpResponseRedirect(reverse("admin:recognition_checkin_changelist"))

    def has_change_permission(self, request: HttpRequest, obj: CheckIn | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: CheckIn) -> None:
        self._kept_faces(request, [(obj.pk, services.checkin_delete(checkin=obj, actor=request.user))])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        self._kept_faces(request, [(checkin.pk, services.checkin_delete(checkin=checkin, actor=request.user))
                                   for checkin in queryset])

    @staticmethod
    def _kept_faces(request: HttpRequest, deleted: list[tuple[int, object | None]]) -> None:
        """After deleting check-ins: the photos gallery adaptation kept from their faces, named (linked for
        those who may open them). A check-in deleted because someone else was recognised as the person
        left that face among their photos, where it makes the mistake likelier next time (a helper's
        review: nothing pointed to it)."""
        may_open = request.user.has_perm("enrollment.view_facephoto")
        for checkin_pk, photo in deleted:
            if photo is None:
                continue
            name = (format_html('<a href="{}">photo #{}</a>', reverse("admin:enrollment_facephoto_change",
                                                                       args=[photo.pk]), photo.pk)
                    if may_open else f"photo #{photo.pk}")
            messages.warning(request, format_html(
                "The face of check-in #{} was kept as {} of {} (gallery adaptation): if someone else was "
                "recognised as them, remove that photo too.", checkin_pk, name, photo.person))

    def get_urls(self):
        """Adds ``export.csv`` (the change list's filters and search apply)."""
        extra = [path("export.csv", self.admin_site.admin_view(self.export_csv),
                      name="recognition_checkin_export")]
        return extra + super().get_urls()

    def export_csv(self, request: HttpRequest) -> HttpResponse:
        """The change list's rows (same filters, search and date drill-down) as CSV; the download
        is audited (a ``list_export`` record: the filters, the person by id, and the row count)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if refused := cross_site_refusal(request):
            return refused
        rows = changelist_rows(self, request)
        audit_list_export(request, object_type="recognition.checkin", what="check-ins (admin)", rows=rows.count,
                          filters=rows.described(**PERSON_LOOKUPS))
        return csv_response(f"checkins-{timezone.localdate().isoformat()}.csv", CHECKIN_CSV_HEADER,
                            checkin_csv_rows(rows.queryset))
