"""The rows an admin change list shows, for its CSV export (and the export's audit record); its
search as names are stored; the lookups through check-ins its address may hold; the way back to it
after a delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import BadRequest, FieldDoesNotExist
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.text import smart_split, unescape_string_literal

from enrollment.text import name_key, name_normal, staff_id_key

# lookups whose value is text a user typed (a name, perhaps), which an audit record does not repeat
FREE_TEXT_LOOKUPS = ("__contains", "__icontains", "__startswith", "__istartswith", "__endswith", "__iendswith",
                     "__regex", "__iregex", "__iexact")


@dataclass(frozen=True)
class ChangelistRows:
    """What a change list's CSV export hands out: its rows, how many, and by which filters."""

    queryset: QuerySet
    count: int                      # the change list's own count of the filtered rows, when it was read
    filters: dict[str, list[str]]   # the query string's filter parameters (no page, order or search)
    searched: bool                  # whether a search narrowed the list

    def described(self, **named: Callable[[str], str]) -> list[str]:
        """The filters as an audit summary words them, ``name=value`` each (a value ``named``
        gives a function for, that function's words: ``person__id__exact=lambda v: f"person #{v}"``),
        and "a search" when there was one: never its text, which may be a person's name; nor that of
        a free-text filter (``?reason__icontains=Alex``: "a filter on reason")."""
        words = []
        for name, values in sorted(self.filters.items()):
            if name not in named and name.endswith(FREE_TEXT_LOOKUPS):
                words.append(f"a filter on {name.rsplit('__', 1)[0]} (its text not recorded)")
                continue
            words += [named[name](v) if name in named else f"{name}={v[:60]}" for v in values]
        if self.searched:
            words.append("a search (its text not recorded)")
        return words


def changelist_rows(model_admin: admin.ModelAdmin, request: HttpRequest) -> ChangelistRows:
    """The change list's rows under the request's filters, search and date drill-down. A filter
    value the change list cannot read (``?at__gte=notadate``) is a 400, as the change list itself
    refuses it (it redirects to ``?e=1``), never a 500."""
    try:
        changelist = model_admin.get_changelist_instance(request)
        return ChangelistRows(queryset=changelist.get_queryset(request), count=changelist.result_count,
                              filters=changelist.get_filters_params(), searched=bool(changelist.query))
    except IncorrectLookupParameters as exc:
        raise BadRequest(f"cannot filter by these parameters: {exc}") from exc


class DateDrillDownChecked:
    """A mixin for a ``ModelAdmin``: a drill-down date Python cannot make (``?at__year=9999`` asks
    for the year after it; ``&at__month=12``, the month after), or a time in a list's address that
    has no UTC time (``?created_at__gte=9999-12-31 23:59:59-05:00``: Django lets an address filter on
    any field; SQLite's adapter overflows), raised ``ValueError`` or ``OverflowError`` out of the
    change list, a 500 on the page and its export; now they are the change list's own "cannot
    filter" (``?e=1``), and a 400 for the export. On every list with a date-and-time field
    (``tests/test_admin_odd_ids.py`` tries each)."""

    def get_changelist_instance(self, request: HttpRequest):
        try:
            return super().get_changelist_instance(request)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class SearchNormalised:
    """A mixin for a ``ModelAdmin`` whose search looks in people's names and staff ids (or in
    usernames, which Django stores NFKC): the search box's text read as names are stored
    (:func:`enrollment.text.name_normal`: NFC, no zero-width spaces, a no-break space a plain one),
    so that "Zoë" typed decomposed (a Mac's paste) finds "Zoë" stored composed. ``staff_key``:
    the lookup of the person's staff id key (``"staff_key"``, ``"person__staff_key"``), whose lists
    also show the people whose key contains the search's (:func:`enrollment.text.staff_id_key`:
    ``ＺＯＥ-1`` finds ``ZOE-1``, ``zoë-1`` finds ``ZOË-1`` on SQLite too); ``name_key``: likewise
    for the name's key (:func:`enrollment.text.name_key`: ``chavez`` finds ``Hugo Chávez``). Its
    CSV export, which runs the same search, follows."""

    staff_key: str | None = None
    name_key: str | None = None   # the lookup of the person's name key: "chavez" finds "Hugo Chávez"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        found, duplicates = super().get_search_results(request, queryset, name_normal(search_term))
        if self.staff_key and (key := staff_id_key(search_term)):
            found |= queryset.filter(**{f"{self.staff_key}__contains": key})
        if self.name_key and (words := _search_words(search_term)):
            # word by word as Django's own search goes (each word in some field): a name's words typed
            # without accents in any order ("chavez hugo"), or beside a staff id ("chavez HC-1")
            fields = [f.lstrip("^=@") for f in self.get_search_fields(request)]
            match = Q()
            for word in words:
                either = Q()
                for field in fields:
                    either |= Q(**{f"{field}__icontains": name_normal(word)})
                if folded := name_key(word):
                    either |= Q(**{f"{self.name_key}__contains": folded})
                if self.staff_key and (key := staff_id_key(word)):
                    either |= Q(**{f"{self.staff_key}__contains": key})
                match &= either
            found |= queryset.filter(match)
        return found, duplicates


def _search_words(search_term: str) -> list[str]:
    """The words of an admin search as Django's ``get_search_results`` splits them (a quoted phrase
    is one word), blank ones left out."""
    words = []
    for bit in smart_split(search_term):
        if bit[:1] in ('"', "'") and bit[-1:] == bit[:1] and len(bit) > 1:
            bit = unescape_string_literal(bit)
        if bit.strip():
            words.append(bit)
    return words


class CheckInLookupsGuarded:
    """A mixin for the ``ModelAdmin`` of a model that check-ins point to (people, kiosks): a lookup
    through its check-ins in the list's address (``?checkins__isnull=False``, ``?checkins__id__gt=N``,
    which Django allows through one relation) is refused (400) to those who may not see check-ins.
    It listed who had checked in, and polled, who had just arrived, to an Enroller or a kiosk
    viewer whom every check-in page refuses."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        try:
            field = self.model._meta.get_field(lookup.split("__")[0])
        except FieldDoesNotExist:
            field = None
        related = getattr(field, "related_model", None)
        if (related is not None and related._meta.label == "recognition.CheckIn"
                and not (request is not None and request.user.has_perm("recognition.view_checkin"))):
            return False
        return super().lookup_allowed(lookup, value, request)


class ListAfterDelete:
    """After a delete, back to the change list with its filters, for staff who may view but never
    change the rows (check-ins, photos: changed by their services alone): Django sends them to the
    admin's home page instead, the list and its filters lost."""

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id) -> HttpResponse:
        response = super().response_delete(request, obj_display, obj_id)
        if response.status_code == 302 and response.url == reverse("admin:index", current_app=self.admin_site.name) \
                and self.has_view_permission(request):
            opts = self.opts
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=self.admin_site.name)
            url = add_preserved_filters({"preserved_filters": self.get_preserved_filters(request), "opts": opts}, url)
            return HttpResponseRedirect(url)
        return response

