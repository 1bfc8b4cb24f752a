"""What the public privacy page (``/privacy/``) and the kiosk screen's notice line tell the people
whose faces a kiosk analyses (GDPR art. 13, biometric-privacy laws such as Illinois BIPA): read from
this site's settings at each request, so that they say what the site does, not what a default did
(the data inventory they summarise: docs/security.md, "What is stored, and for how long")."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from .kiosk_text import SOURCE, catalog

NO_CONTACT = "the reception or the administrator of this site"


def kept_for(days: int, without_limit: str) -> str:
    """``"for 30 days"`` (``"for 1 day"``), or ``without_limit`` for 0 (the retention settings' "keep")."""
    if days <= 0:
        return without_limit
    return f"for {days} day{'' if days == 1 else 's'}"


@dataclass(frozen=True)
class PrivacyFacts:
    """Who operates this site and on what legal basis (as its operator states them), and what it
    stores of a face at a kiosk, and for how long (days; 0: no time limit)."""

    contact: str                 # MASKNET_PRIVACY_CONTACT, "" when unset
    controller: str              # MASKNET_PRIVACY_CONTROLLER (the data controller), "" when unset
    legal_basis: str             # MASKNET_PRIVACY_LEGAL_BASIS, "" when unset
    first_name_only: bool        # MASKNET_KIOSK_GREETING=first: a welcome shows the first name
    snapshots: bool              # MASKNET_CHECKIN_SNAPSHOTS
    snapshot_days: int           # MASKNET_RETENTION_SNAPSHOT_DAYS (0: as long as the check-in)
    adaptation: bool             # MASKNET_GALLERY_ADAPT
    adapted_max_photos: int      # MASKNET_GALLERY_ADAPT_MAX_PHOTOS
    adapted_days: int            # MASKNET_RETENTION_ADAPTED_DAYS (0: as long as the other photos)
    decision_days: int           # MASKNET_RETENTION_DECISION_DAYS (0: no time limit)

    @property
    def contact_or_default(self) -> str:
        """Whom to ask: the setting, or reception and the administrator when it is unset."""
        return self.contact or NO_CONTACT

    @property
    def snapshot_kept(self) -> str:
        """How long a check-in's snapshot is kept."""
        return kept_for(self.snapshot_days, "as long as the check-in")

    @property
    def adapted_kept(self) -> str:
        """How long a photo kept by gallery adaptation is kept."""
        return kept_for(self.adapted_days, "as long as the other enrolment photos")

    @property
    def decision_kept(self) -> str:
        """How long the audit log keeps a recognition decision's record."""
        return kept_for(self.decision_days, "without a time limit")


def privacy_facts() -> PrivacyFacts:
    """This site's :class:`PrivacyFacts`, from its settings as they are now."""
    return PrivacyFacts(
        contact=settings.MASKNET_PRIVACY_CONTACT.strip(),
        controller=settings.MASKNET_PRIVACY_CONTROLLER.strip(),
        legal_basis=settings.MASKNET_PRIVACY_LEGAL_BASIS.strip(),
        first_name_only=settings.MASKNET_KIOSK_GREETING == "first",
        snapshots=bool(settings.MASKNET_CHECKIN_SNAPSHOTS),
        snapshot_days=int(settings.MASKNET_RETENTION_SNAPSHOT_DAYS),
        adaptation=bool(settings.MASKNET_GALLERY_ADAPT),
        adapted_max_photos=int(settings.MASKNET_GALLERY_ADAPT_MAX_PHOTOS),
        adapted_days=int(settings.MASKNET_RETENTION_ADAPTED_DAYS),
        decision_days=int(settings.MASKNET_RETENTION_DECISION_DAYS))


def privacy_address(request: HttpRequest) -> str:
    """The privacy page's address as a person at the kiosk would type it: the host the kiosk
    reached the site by (validated against ``ALLOWED_HOSTS``) and the path, no scheme."""
    return request.get_host() + reverse("privacy")


def notice_wording(language: str = SOURCE) -> str:
    """The kiosk notice line as worded, ``{url}`` still in it: ``MASKNET_KIOSK_NOTICE`` when set (as the
    site wrote it, whatever the kiosk's language), else the release's own in ``language`` (its catalog's
    ``notice``, recognition/kiosk_text; part of the kiosk page's build: ``recognition.kiosk_page.page_build``)."""
    return settings.MASKNET_KIOSK_NOTICE.strip() or catalog(language)["page"]["notice"]


def kiosk_notice(request: HttpRequest, language: str = SOURCE) -> str:
    """The kiosk screen's notice line: :func:`notice_wording` with ``{url}`` replaced by
    :func:`privacy_address` (the only placeholder: other braces stay)."""
    return notice_wording(language).replace("{url}", privacy_address(request))
