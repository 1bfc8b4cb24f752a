"""System checks of the recognition app: its data (``manage.py migrate``, ``check --database default``),
the kiosk's notice line, ``MASKNET_*`` environment variables MaskNet does not read (a misspelling),
and, for a production site, its privacy contact, data controller and legal basis, and its host names
(``check --deploy``)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone

from masknet_site.env_names import unknown_names

from .kiosk_text import languages
from .privacy import NO_CONTACT, notice_wording

SAMPLE = 500   # the latest check-ins compared
# the longest notice line the kiosk's layout is checked with (tests/recognition/test_kiosk_layout.py's
# NOTICE with its address: three lines of the line's 44 characters), and the characters counted for
# "{url}" without its "?lang=" (a host name and "/privacy/"; the check runs without a request)
NOTICE_MAX_CHARS = 3 * 44
NOTICE_URL_CHARS = 30
# of those, the host's and port's, which the check cannot know: at least this many
NOTICE_HOST_CHARS = NOTICE_URL_CHARS - len("/privacy/")


@checks.register(checks.Tags.database)
def time_zone_unchanged(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W002`` when the latest check-ins' stored days (``CheckIn.local_date``, the day of
    ``TIME_ZONE`` when each was recorded) are not their days in today's ``TIME_ZONE``: it changed
    after check-ins were recorded, and the attendance pages, exports and the ``day`` cooldown now
    file those check-ins under other days than their times say. Runs only where database checks
    run (``migrate``, ``check --database default``): only check-ins near midnight tell."""
    if not databases or "default" not in databases:
        return []
    from .models import CheckIn

    try:
        latest = list(CheckIn.objects.order_by("-at").values_list("at", "local_date")[:SAMPLE])
    except DatabaseError:        # not migrated yet: nothing recorded
        return []
    moved = sum(timezone.localtime(at).date() != day for at, day in latest)
    if not moved:
        return []
    return [checks.Warning(
        f"{moved} of the latest {len(latest)} check-ins were filed under another day than their time has in "
        f"TIME_ZONE {timezone.get_current_timezone_name()}: TIME_ZONE changed after they were recorded",
        hint="set TIME_ZONE back to the one they were recorded in (each check-in stores its day; see README)",
        id="masknet.W002")]


@checks.register("masknet", deploy=True)
def privacy_contact(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W003`` (``check --deploy``) when ``MASKNET_PRIVACY_CONTACT`` is unset: the public privacy
    page the kiosks point to (``/privacy/``) then tells people to ask reception or the administrator
    for access to or erasure of their data, where the law (GDPR art. 13, BIPA) expects a named contact."""
    if settings.MASKNET_PRIVACY_CONTACT.strip():
        return []
    return [checks.Warning(
        "MASKNET_PRIVACY_CONTACT is not set: the privacy page (/privacy/) names no one to ask for access to "
        f"or erasure of face data, only {NO_CONTACT!r}",
        hint="set MASKNET_PRIVACY_CONTACT to a name, an email address or a desk (README, Configuration)",
        id="masknet.W003")]


@checks.register("masknet", deploy=True)
def privacy_controller(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W005`` (``check --deploy``) when ``MASKNET_PRIVACY_CONTROLLER`` or
    ``MASKNET_PRIVACY_LEGAL_BASIS`` is unset (one warning naming those missing): the privacy page then
    says the operator has not stated who is responsible for the face data (the data controller) or on
    what legal basis, which GDPR art. 13 asks a notice to give and only the operator can know."""
    unstated = {"MASKNET_PRIVACY_CONTROLLER": "who is responsible for the face data (the data controller)",
                "MASKNET_PRIVACY_LEGAL_BASIS": "on what legal basis they are processed"}
    missing = [name for name in unstated if not getattr(settings, name).strip()]
    if not missing:
        return []
    return [checks.Warning(
        f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: the privacy page (/privacy/) "
        f"says the operator has not stated {' nor '.join(unstated[name] for name in missing)}",
        hint="set MASKNET_PRIVACY_CONTROLLER to the operating organisation's name and address and "
             "MASKNET_PRIVACY_LEGAL_BASIS to the basis relied on (README, Configuration)",
        id="masknet.W005")]


@checks.register("masknet", deploy=True)
def any_host(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W007`` (``check --deploy``) when ``DJANGO_ALLOWED_HOSTS`` holds ``*``: the site then
    answers any Host header, which it builds its own addresses from (pairing links, the privacy page's
    address on a kiosk) and compares a socket's Origin with; a page of another domain pointed at this
    server's address (DNS rebinding) is then same-origin to it. Django's own checks say nothing of it."""
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    return [checks.Warning(
        "DJANGO_ALLOWED_HOSTS is '*': any Host header is answered, and pages and sockets of any domain that "
        "resolves to this server count as this site's own",
        hint="name the site's host names in DJANGO_ALLOWED_HOSTS (docs/deployment.md)", id="masknet.W007")]


def notice_url_chars() -> int:
    """The characters of the longest address ``{url}`` becomes in a kiosk's notice
    (:func:`~recognition.privacy.privacy_address`): the host the kiosk reached the site by (the
    longest name in ``ALLOWED_HOSTS``, and at least :data:`NOTICE_HOST_CHARS`: a port, or the name
    a pattern matched, cannot be known without a request), the privacy page's path, and ``?lang=``
    with the longest code of a language other than ``MASKNET_KIOSK_LANGUAGE``, which a kiosk
    speaking it shows: 38 characters by default, where the bare address's 30 were counted."""
    host = max([NOTICE_HOST_CHARS, *(len(name) for name in settings.ALLOWED_HOSTS if name != "*")])
    others = [len(code) for code in languages() if code != settings.MASKNET_KIOSK_LANGUAGE]
    return host + len(reverse("privacy")) + (len("?lang=") + max(others) if others else 0)


@checks.register("masknet")
def kiosk_notice_length(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W004`` when ``MASKNET_KIOSK_NOTICE`` is longer than the kiosk's layout is checked with
    (:data:`NOTICE_MAX_CHARS`, ``{url}`` counted as its longest address, :func:`notice_url_chars`): the
    line is never cut (a notice cut short could drop the privacy page's address), so a longer one runs
    down the screen towards the face box, over the camera's picture, on a phone or a portrait screen."""
    wording, url = notice_wording(), notice_url_chars()
    length = len(wording.replace("{url}", "")) + url * wording.count("{url}")
    if length <= NOTICE_MAX_CHARS:
        return []
    return [checks.Warning(
        f"MASKNET_KIOSK_NOTICE is about {length} characters ({{url}} counted as {url}, its longest address): "
        f"the kiosk screen is checked with notices of up to "
        f"{NOTICE_MAX_CHARS} (three lines on a phone); a longer one runs down over the camera's picture",
        hint="shorten it and put the rest on the privacy page ({url} is its address)",
        id="masknet.W004")]


@checks.register("masknet")
def unknown_environment(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``masknet.W006`` for each ``MASKNET_*`` environment variable that MaskNet does not read
    (:func:`masknet_site.env_names.unknown_names`): a misspelt one (``MASKNET_GALERY_ADAPT=1``) was
    ignored without a word, and the site ran with that setting's default."""
    return [checks.Warning(f"{name} is set, but MaskNet reads no variable of that name: it has no effect",
                           hint=f"did you mean {close}?" if close else
                           "README.md's configuration table lists the variables MaskNet reads",
                           id="masknet.W006")
            for name, close in unknown_names(os.environ)]
