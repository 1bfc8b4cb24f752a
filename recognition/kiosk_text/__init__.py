"""The words of the kiosk's screens (the check-in page, its banners, and the pages a device is shown
before it is a kiosk), one catalog per language: ``<code>.json`` beside this file, English (``en``) the
source that every other catalog translates key for key (tests/recognition/test_kiosk_text.py).

A catalog holds ``name`` (the language's own name, for the admin's choice list and the privacy page's
links) and three sections: ``screen``, the words kiosk.js shows (sent to the page in its config, never
fetched), ``page``, those the kiosk templates write, and ``privacy``, those of the public privacy page
(``/privacy/``, templates/privacy/notice.html). ``{name}``-style placeholders are filled in where the words
are shown; in ``page`` and ``privacy``, ``<strong>``, ``<em>`` and ``<code>`` are kept as markup (``{% say %}``,
recognition/templatetags/kiosk_text.py), everything else is text.

Plain Python, no Django: the settings check ``MASKNET_KIOSK_LANGUAGE`` with :func:`languages` at start.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent
SOURCE = "en"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=1)
def languages() -> dict[str, str]:
    """The languages the kiosk speaks: code -> the language's own name, English first, then by code."""
    codes = sorted(p.stem for p in CATALOG_DIR.glob("*.json"))
    codes.sort(key=lambda code: code != SOURCE)
    return {code: catalog(code)["name"] for code in codes}


@cache
def catalog(code: str) -> dict:
    """The catalog of ``code`` as stored (``KeyError`` for a language there is no catalog of)."""
    if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", code or ""):
        raise KeyError(code)
    try:
        return json.loads((CATALOG_DIR / f"{code}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError(code) from None


def screen_text(code: str) -> dict[str, str]:
    """The words kiosk.js shows, in ``code``: English's for any key the catalog lacks (a catalog being
    written; the tests allow none in the repository)."""
    return {**catalog(SOURCE)["screen"], **catalog(code)["screen"]}


def page_text(code: str) -> dict[str, str]:
    """Every word of the kiosk's pages in ``code`` (``screen`` and ``page`` together, English's for a
    key the catalog lacks): what the templates write."""
    source, words = catalog(SOURCE), catalog(code)
    return {**source["screen"], **source["page"], **words["screen"], **words["page"]}


def privacy_text(code: str) -> dict[str, str]:
    """The words of the public privacy page (``/privacy/``) in ``code``: its catalog's ``privacy``,
    English's for a key the catalog lacks."""
    return {**catalog(SOURCE)["privacy"], **catalog(code)["privacy"]}


def fill(words: str, **values: object) -> str:
    """``words`` with each ``{key}`` of ``values`` replaced by its value, in one pass (a value that
    holds braces itself, a name such as "{time}", stays as it is); unknown placeholders stay."""
    return PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], words)
