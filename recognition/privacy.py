"""What the public privacy page (``/privacy/``) and the kiosk screen's notice line tell the people
whose faces a kiosk analyses (GDPR art. 13, biometric-privacy laws such as Illinois BIPA): read from
this site's settings at each request, so that they say what the site does, not what a default did
(the data inventory they summarise: docs/security.md, "What is stored, and for how long")."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from .kiosk_text import SOURCE, catalog, fill, languages, privacy_text

# whom to ask when MASKNET_PRIVACY_CONTACT is unset (in English, as the checks say it; the page says
# its language's, recognition/kiosk_text)
NO_CONTACT = catalog(SOURCE)["privacy"]["responsible.no_contact"]


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


def privacy_language(request: HttpRequest) -> str:
    """The language the privacy page speaks: its ``?lang=`` where there is a catalog of it, else the
    site's ``MASKNET_KIOSK_LANGUAGE`` (an unknown or malformed code is no error: the default)."""
    asked = request.GET.get("lang", "")
    return asked if asked in languages() else settings.MASKNET_KIOSK_LANGUAGE


def privacy_said(facts: PrivacyFacts, words: dict[str, str]) -> dict[str, str]:
    """What the page fills its words with, in the language of ``words`` (:func:`privacy_text`): whom to
    ask (``contact``: the setting as written, or the language's "the reception or the administrator"),
    and how long each thing is kept (``snapshot_kept``, ``adapted_kept``, ``decision_kept``: "for 30 days",
    "for 1 day", or the language's words for no time limit where the setting is 0)."""

    def kept(days: int, without_limit: str) -> str:
        if days <= 0:
            return words[without_limit]
        return fill(words["kept.one_day" if days == 1 else "kept.days"], days=days)

    return {"contact": facts.contact or words["responsible.no_contact"],
            "snapshot_kept": kept(facts.snapshot_days, "kept.snapshots_no_limit"),
            "adapted_kept": kept(facts.adapted_days, "kept.adapted_no_limit"),
            "decision_kept": kept(facts.decision_days, "kept.decisions_no_limit")}


def privacy_page_context(language: str) -> dict:
    """The privacy page's template context in ``language``: ``lang`` (``<html lang>``), ``kiosk_text`` (its
    words, ``{% say %}``), ``languages`` (code -> name, the links at its top), ``facts`` and ``said``."""
    facts, words = privacy_facts(), privacy_text(language)
    return {"lang": language, "kiosk_text": words, "languages": languages(), "facts": facts,
            "said": privacy_said(facts, words)}


def privacy_address(request: HttpRequest, language: str | None = None) -> str:
    """The privacy page's address as a person at the kiosk would type it: the host the kiosk
    reached the site by (validated against ``ALLOWED_HOSTS``) and the path, no scheme; with
    ``?lang=<language>`` for a kiosk that speaks another language than the site's default
    (``MASKNET_KIOSK_LANGUAGE``, which the bare address speaks), so that the page speaks its kiosk's."""
    address = request.get_host() + reverse("privacy")
    if language and language != settings.MASKNET_KIOSK_LANGUAGE:
        address += f"?lang={language}"
    return address


def notice_wording(language: str = SOURCE) -> str:
    """The kiosk notice line as worded, ``{url}`` still in it: ``MASKNET_KIOSK_NOTICE`` when set (as the
    site wrote it, whatever the kiosk's language), else the release's own in ``language`` (its catalog's
    ``notice``, recognition/kiosk_text; part of the kiosk page's build: ``recognition.kiosk_page.page_build``)."""
    return settings.MASKNET_KIOSK_NOTICE.strip() or catalog(language)["page"]["notice"]


def kiosk_notice(request: HttpRequest, language: str = SOURCE) -> str:
    """The kiosk screen's notice line: :func:`notice_wording` with ``{url}`` replaced by
    :func:`privacy_address` in ``language`` (the only placeholder: other braces stay)."""
    return notice_wording(language).replace("{url}", privacy_address(request, language))
