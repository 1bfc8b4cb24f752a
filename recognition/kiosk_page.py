"""What version of the kiosk page a server serves (``page_build``: its files, its words and its notice
line): sent in the page's config and in each socket's ``hello``, so that an open page learns that the
server was upgraded under it and reloads itself (a kiosk runs for weeks with the script it loaded;
docs/kiosk.md); and in which language a kiosk's pages speak (``page_context``)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from .models import Kiosk

from .kiosk_text import languages, page_text
from .privacy import notice_wording

# the kiosk socket's messages (docs/kiosk.md): raised with any change a page of the release before
# would misread, so that open pages reload (page_build)
PROTOCOL = 1

# the files the kiosk page is made of: a release that rewords a string reloads open pages too
PAGE_FILES = ("static/kiosk/kiosk.js", "static/kiosk/kiosk.css", "templates/kiosk/kiosk.html",
              "templates/kiosk/base.html", "recognition/templatetags/kiosk_text.py",
              *(f"recognition/kiosk_text/{code}.json" for code in languages()))
# what the page's config carries besides the settings (recognition.views.kiosk): how it films and
# where it talks to, in the digest too, as is the socket's protocol (PROTOCOL, above)
PAGE_CONFIG = {"ws_path": "/ws/kiosk/", "status_url": "/kiosk/status", "max_width": 640, "max_height": 480,
               "jpeg_quality": 0.8}


def page_context(kiosk: Kiosk | None) -> dict:
    """What a kiosk template needs to speak: ``lang`` (``<html lang>``), the kiosk's own language or,
    for a device that is no kiosk (yet), the site's ``MASKNET_KIOSK_LANGUAGE``; ``kiosk_text``, its
    words (``{% say %}``)."""
    lang = kiosk.screen_language if kiosk is not None else settings.MASKNET_KIOSK_LANGUAGE
    return {"lang": lang, "kiosk_text": page_text(lang)}


@lru_cache(maxsize=1)
def page_build() -> str:
    """A short digest of :data:`PAGE_FILES` as this process read them at its first call (a server
    serves one release; the catalogs of its words among them), and of the privacy notice line's
    wording (``MASKNET_KIOSK_NOTICE``, or the release's English default when unset; each language's
    default is in its catalog): an open page shows the line of the server that loaded it, which a
    restart with another wording replaces. And of the settings the page's config carries
    (``TIME_ZONE``, whose hours its clock shows beside the welcomes' times; ``MASKNET_KIOSK_MAX_FPS``):
    a page open across a restart that changed the site's time zone showed its clock in the old one
    ("08:00" above "checked in at 09:00"). And of the config's other values (:data:`PAGE_CONFIG`) and
    the socket's protocol version (:data:`PROTOCOL`): a release changing only those left open pages
    on the old ones. And of the site's default language (``MASKNET_KIOSK_LANGUAGE``): the notice line's
    privacy address carries ``?lang=`` only where the kiosk's language is not it, so a kiosk of its own
    language kept the bare address, which then spoke the new default under its screen. A missing file
    counts as empty."""
    digest = hashlib.sha256()
    for name in PAGE_FILES:
        try:
            digest.update((Path(settings.BASE_DIR) / name).read_bytes())
        except OSError:
            pass
        digest.update(b"\0")
    digest.update(notice_wording().encode())
    digest.update(f"\0{settings.TIME_ZONE}\0{settings.MASKNET_KIOSK_MAX_FPS}\0{settings.MASKNET_KIOSK_LANGUAGE}".encode())
    digest.update(f"\0{sorted(PAGE_CONFIG.items())}\0{PROTOCOL}".encode())
    return digest.hexdigest()[:12]
