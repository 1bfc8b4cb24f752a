"""The kiosk's catalogs (recognition/kiosk_text/, the privacy page's words among them): every language
says every English string, with the same placeholders and markup, and none is left empty. A new English
string without its translations fails here, not on a screen that shows a key."""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

import pytest

from recognition.checks import NOTICE_MAX_CHARS, notice_url_chars
from recognition.kiosk_text import PLACEHOLDER, SOURCE, catalog, fill, languages, page_text, screen_text

TAG = re.compile(r"</?[a-z]+>")
OTHERS = [code for code in languages() if code != SOURCE]
# the kiosk.js banners, the kiosk templates' words, the public privacy page's (/privacy/)
SECTIONS = ("screen", "page", "privacy")


def test_the_kiosk_speaks_english_portuguese_spanish_french_and_german():
    assert list(languages()) == ["en", "de", "es", "fr", "pt"]
    assert languages()["pt"] == "Português" and languages()["de"] == "Deutsch"


@pytest.mark.parametrize("code", OTHERS)
def test_a_catalog_translates_every_english_string_and_nothing_else(code):
    english, words = catalog(SOURCE), catalog(code)
    assert set(words) == set(english) == {"name", *SECTIONS}
    for section in SECTIONS:
        assert set(words[section]) - set(english[section]) == set(), (code, section, "not in English")
        assert set(english[section]) - set(words[section]) == set(), (code, section, "not translated")


@pytest.mark.parametrize("code", OTHERS)
def test_a_translation_keeps_the_placeholders_and_markup_of_its_english(code):
    english, words = catalog(SOURCE), catalog(code)
    for section in SECTIONS:
        for key, source in english[section].items():
            said = words[section][key]
            assert Counter(PLACEHOLDER.findall(said)) == Counter(PLACEHOLDER.findall(source)), (code, key, said)
            assert sorted(TAG.findall(said)) == sorted(TAG.findall(source)), (code, key, said)


@pytest.mark.parametrize("code", list(languages()))
def test_no_string_is_empty_or_left_in_english(code):
    english, words = catalog(SOURCE), catalog(code)
    assert words["name"].strip()
    for section in SECTIONS:
        for key, said in words[section].items():
            assert isinstance(said, str) and said.strip() == said and said, (code, key, said)
            assert code == SOURCE or said != english[section][key], (code, key, "still English")


@pytest.mark.parametrize("code", list(languages()))
def test_each_language_s_default_notice_fits_the_kiosk_s_layout(code):
    """The privacy notice line is never cut: each language's own default must be no longer than the
    longest notice the layout test lays out (what ``check`` warns above, masknet.W004)."""
    notice = catalog(code)["page"]["notice"]
    assert notice.count("{url}") == 1
    assert len(notice.replace("{url}", "")) + notice_url_chars() <= NOTICE_MAX_CHARS, (code, notice)


@pytest.mark.parametrize("code", list(languages()))
def test_each_screen_string_with_a_placeholder_has_words_for_a_missing_value(code):
    """kiosk.js fills the ``screen`` words itself, from what the socket sends: a welcome without its time (or its
    name) showed "Checked in at undefined" or "Welcome, " where its value was missing. For each placeholder the
    catalog says the same thing without it (``<key>_no_<placeholder>``: "Checked in", "Willkommen"), which the page
    takes instead (tests/js/kiosk_page.js), in every language."""
    screen = catalog(code)["screen"]
    for key, words in catalog(SOURCE)["screen"].items():
        for name in PLACEHOLDER.findall(words):
            variant = f"{key}_no_{name}"
            assert variant in screen, (code, variant)
            assert Counter(PLACEHOLDER.findall(screen[variant])) == Counter(PLACEHOLDER.findall(screen[key])) - Counter(
                [name]), (code, variant, screen[variant])
            # no comma, colon or separator left hanging where the value stood
            assert not re.search(r"^[,:;·\s]|[,:;·\s]$", screen[variant]), (code, variant, screen[variant])


def test_the_proxys_offline_page_says_each_language_s_words():
    """static/offline.html (nginx's page while no web process answers, which cannot ask the server for a kiosk's
    language) was English alone on every kiosk. It holds a card for each catalog, in that catalog's words
    ("offline.*", "unavailable.lead", the reload's 15 seconds); static/kiosk/offline.js shows the one of the language
    the kiosk page kept (tests/js/offline_page.js). A new language fails here until the page has its card."""
    page = (Path(__file__).resolve().parents[2] / "static" / "offline.html").read_text(encoding="utf-8")
    seconds = re.search(r'<meta http-equiv="refresh" content="(\d+)">', page).group(1)
    cards = {lang: (title, body) for lang, title, body in re.findall(
        r'<main class="card"[^>]* lang="([^"]+)" data-title="([^"]+)"[^>]*>(.*?)</main>', page, re.S)}
    assert set(cards) == set(languages())
    for code, (title, body) in cards.items():
        words = page_text(code)
        said = [html.unescape(w) for w in re.findall(r"<(?:h1|p)[^>]*>(.*?)</(?:h1|p)>", body, re.S)]
        assert html.unescape(title) == words["offline.page_title"], code
        assert said == [words["offline.heading"], words["unavailable.lead"],
                        fill(words["offline.text"], seconds=seconds)], (code, said)
        assert ('hidden' in re.search(rf'<main [^>]*lang="{code}"[^>]*>', page).group(0)) == (code != SOURCE)


def test_the_page_gets_english_where_a_catalog_being_written_lacks_a_key(monkeypatch):
    from recognition import kiosk_text

    partial = {"name": "Test", "screen": {"unknown.title": "Unbekannt"}, "page": {}}
    monkeypatch.setattr(kiosk_text, "catalog", lambda code: partial if code == "xx" else catalog(code))
    assert screen_text("xx")["unknown.title"] == "Unbekannt"
    assert screen_text("xx")["searching.title"] == catalog("en")["screen"]["searching.title"]
    assert page_text("xx")["chip.mask"] == "Mask detected"


def test_placeholders_are_filled_once():
    """A name that reads like a placeholder is shown as it is, not filled in turn."""
    assert fill("Welcome, {name}", name="{time}", time="08:59") == "Welcome, {time}"
    assert fill("{kiosk} · {other}", kiosk="Front door") == "Front door · {other}"


def test_an_unknown_code_has_no_catalog():
    for code in ("xx", "../en", "", "EN"):
        with pytest.raises(KeyError):
            catalog(code)
