"""API tokens in the admin: superusers create them (the secret is shown once) and revoke them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from enrollment.services import counted
from masknet_site.admin_csv import DateDrillDownChecked
from recognition.admin import LabelledSplitDateTime, SiteDateTimeField

from . import services
from .models import SCOPES, ApiToken


class ApiTokenForm(forms.ModelForm):
    """Name, scopes (checkboxes), rate and expiry."""

    scopes = forms.MultipleChoiceField(choices=[(k, f"{k}: {v}") for k, v in SCOPES.items()],
                                       widget=forms.CheckboxSelectMultiple)
    # the day as YYYY-MM-DD only, as the hand check-in's: Django's formats read 01/02/2027 as 2 January
    expires_at = SiteDateTimeField(
        label="Expires at", required=False, widget=LabelledSplitDateTime("Expires at"),
        help_text="YYYY-MM-DD and HH:MM, in the site's time zone; empty: it never expires")

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "rate", "expires_at"]

    def clean_name(self) -> str:
        """A name no token (or account) has: found by the service only after the form had passed,
        its refusal came with Django's "added successfully" and an "added" history entry."""
        name = (self.cleaned_data.get("name") or "").strip()
        if get_user_model().objects.filter(username=services.api_token_username(name)).exists():
            raise ValidationError("a token (or account) with this name exists already")
        return name

    def clean_expires_at(self):
        """In the future (or empty): a token expired when made was shown as "copy it now", then every
        request with it got 401."""
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("this time has passed: a token expiring then would never work; leave it empty "
                                  "for a token without expiry")
        return expires_at

    def clean_rate(self) -> str:
        """A DRF throttle rate such as ``600/min`` (or empty)."""
        rate = self.cleaned_data.get("rate") or ""
        if rate:
            try:
                services.api_token_rate_validate(rate)
            except ValidationError as exc:
                raise ValidationError(exc.message_dict["rate"]) from exc
        return rate


@admin.register(ApiToken)
class ApiTokenAdmin(DateDrillDownChecked, admin.ModelAdmin):
    """Create (through ``api.services.api_token_create``), list and revoke tokens; never edit one."""

    form = ApiTokenForm
    list_display = ["name", "prefix", "scope_list", "rate", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "user", "created_by", "created_at", "last_used_at", "revoked_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:  # noqa: D102
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:  # noqa: D102
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:  # noqa: D102
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:  # noqa: D102
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:  # noqa: D102
        return False

    def log_addition(self, request: HttpRequest, obj: ApiToken, message):
        """Nothing to log for a token that was not created (``save_model`` said why)."""
        return super().log_addition(request, obj, message) if obj.pk else None

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None):
        """Back to the form, without Django's "added successfully", for a token not created; else
        the secret, on this answer itself. It went as a message through the redirect: in the
        ``messages`` cookie, signed but readable, kept by the browser (and by any proxy or tool that
        records headers) until the next page read it."""
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        response = TemplateResponse(request, "admin/api/apitoken/created.html",
                                    {**self.admin_site.each_context(request), "opts": self.opts,
                                     "title": "API token created", "token": obj, "secret": obj.secret_once})
        add_never_cache_headers(response)
        return response

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        """The scopes, comma-separated."""
        return ", ".join(obj.scopes)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        """Create through the service and show the secret once."""
        try:
            token, secret = services.api_token_create(actor=request.user, name=form.cleaned_data["name"],
                                                      scopes=form.cleaned_data["scopes"],
                                                      rate=form.cleaned_data.get("rate") or "",
                                                      expires_at=form.cleaned_data.get("expires_at"))
        except ValidationError as exc:   # a name taken between the form's check and now
            messages.error(request, f"Token not created: {'; '.join(exc.messages)}")
            return
        obj.pk, obj.scopes, obj.secret_once = token.pk, token.scopes, secret   # for response_add

    @admin.action(description="Revoke selected tokens", permissions=["view"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        """``api.services.api_token_revoke`` for each."""
        tokens = [t for t in queryset if t.revoked_at is None]
        for token in tokens:
            services.api_token_revoke(token=token, actor=request.user)
        if not tokens:   # "0 token(s) revoked." was said as a success
            messages.info(request, "No token was revoked: the tokens selected were revoked already.")
            return
        messages.success(request, f"{counted(len(tokens), 'token')} revoked: requests with "
                                  f"{'it' if len(tokens) == 1 else 'them'} are refused from now on.")
