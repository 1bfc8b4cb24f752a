"""What version of the kiosk page a server serves (``page_build``: its files and its notice line): sent
in the page's config and in each socket's ``hello``, so that an open page learns that the server was
upgraded under it and reloads itself (a kiosk runs for weeks with the script it loaded; docs/kiosk.md)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .privacy import notice_wording

# the files the kiosk page is made of
PAGE_FILES = ("static/kiosk/kiosk.js", "static/kiosk/kiosk.css", "templates/kiosk/kiosk.html",
              "templates/kiosk/base.html")


@lru_cache(maxsize=1)
def page_build() -> str:
    """A short digest of :data:`PAGE_FILES` as this process read them at its first call (a server
    serves one release), and of the privacy notice line's wording (``MASKNET_KIOSK_NOTICE``, or the
    release's default when unset): an open page shows the line of the server that loaded it, which a
    restart with another wording replaces. A missing file counts as empty."""
    digest = hashlib.sha256()
    for name in PAGE_FILES:
        try:
            digest.update((Path(settings.BASE_DIR) / name).read_bytes())
        except OSError:
            pass
        digest.update(b"\0")
    digest.update(notice_wording().encode())
    return digest.hexdigest()[:12]
