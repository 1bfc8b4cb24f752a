"""How people's names and staff ids are stored, and how what is typed to find them is read.

One text can be written with different code points that look the same: "Zoë" composed (``ë``,
U+00EB, what most keyboards give: NFC) or decomposed (``e`` + U+0308, what macOS gives a folder's
name: NFD); ``A-100`` with a zero-width space, a byte-order mark or a no-break space pasted from a
web page or a spreadsheet. Stored as they came, such twins were two staff ids (an import created a
second person whose id looked the same) and a search in one form missed the other. Everything that
writes a person (the services, hence the admin, the API, ``import_people``, ``demo``) stores the
forms below, and every lookup reads its query the same way, so that what looks the same is the same.

- **Staff ids** (:func:`staff_id_normal`): every invisible character is removed (Unicode's default
  ignorable code points, e.g. U+200B zero-width space, U+200C/U+200D zero-width (non-)joiners, U+00AD
  soft hyphen, U+200E/U+200F direction marks, U+2060 word joiner, U+FEFF byte-order mark, variation
  selectors) and so are control characters; every kind of space (U+00A0 no-break space, a tab,
  U+3000 ideographic space...) becomes a plain space; spaces at either end are dropped; then NFC.
- **Staff ids compared** (:func:`staff_id_key`, stored beside the staff id as ``Person.staff_key``,
  which is unique): the stored form, then NFKC (full-width ``ＺＯＥ-1`` typed on a Japanese keyboard
  is ``ZOE-1``, a ligature its letters), Python's ``casefold`` (every script's letter case, ``ß``
  as ``ss``: the same on SQLite and PostgreSQL, whose ``LOWER`` differ), every run of spaces one;
  then every dash that stands for a hyphen-minus (:data:`DASHES`: hyphen, non-breaking hyphen,
  figure dash, en dash, minus sign, as Word and spreadsheets paste them) is ``-``, and an ``i`` with
  a dot above (``İ`` casefolded, what a Turkish keyboard types for a capital ``i``) is ``i``.
  A staff id is shown as it was typed (its stored form); this key alone decides whether two are one.
- **Names and departments** (:func:`name_normal`): the same, except that the joiners U+200C and
  U+200D, variation selectors and the other invisible characters that change how a script is
  written (Persian, Indic scripts, a kanji's variant) are kept inside the name (at its ends they go).

Nothing is refused for these characters: what is removed is what nobody sees.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15): drawn as nothing
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
              (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
              (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
              (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
# of those, the ones that change how a name is written, kept inside names: the combining grapheme
# joiner, Hangul fillers, Khmer inherent vowels, Mongolian variation selectors and vowel separator,
# ZWNJ and ZWJ, variation selectors (a kanji's registered variant), tags (emoji flags)
_WRITING = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
            (0x200C, 0x200D), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0020, 0xE007F),
            (0xE0100, 0xE01EF))


def _within(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= ord(ch) <= high for low, high in ranges)


def invisible(ch: str) -> bool:
    """``ch`` is drawn as nothing: a default ignorable code point or a control character that is
    not a space (a tab or a line break is one: :func:`staff_id_normal` makes it a plain space)."""
    return _within(ch, _IGNORABLE) or (unicodedata.category(ch) == "Cc" and not ch.isspace())


def _spaces_plain(text: str) -> str:
    return "".join(" " if ch.isspace() else ch for ch in text)


def staff_id_normal(value: str) -> str:
    """``value`` as a staff id is stored and compared: invisible characters removed, every space a
    plain one, none at either end, NFC. Idempotent."""
    kept = "".join(ch for ch in value if not invisible(ch))
    return unicodedata.normalize("NFC", _spaces_plain(kept).strip())


# the dashes a staff id's key reads as "-": those drawn as a short hyphen that Word, spreadsheets and
# web pages put where "-" was typed (Word's AutoFormat makes "A - 1" "A \u2013 1"; Excel and Word
# paste the non-breaking hyphen). Read after NFKC, which already makes U+2011 U+2010, U+FE63 and
# U+FF0D "-", U+FE32 U+2013, and the superscript and subscript minus U+2212. Not the em dash
# (U+2014), the horizontal bar or the longer dashes: twice as wide, they do not look like "-", and
# Word makes the em dash of two hyphens ("A--1"); nor a script's own hyphen (Armenian, Hebrew maqaf,
# Mongolian, Canadian syllabics, the Japanese wave dash), drawn otherwise.
DASHES = "\u2010\u2011\u2012\u2013\u2212"
_DASHES_PLAIN = str.maketrans(dict.fromkeys(DASHES, "-"))
# "i" and a dot above (U+0307): "\u0130" (Turkish capital dotted I) casefolded, or typed so; the
# dot above an i replaces its own dot (Unicode's Soft_Dotted), so it is drawn as "i"
_DOTTED_I = re.compile("i\u0307+")


def staff_id_key_0017(value: str) -> str:
    """The key of ``value`` as enrollment 0017 computed it, before dashes and the dotted ``İ`` were
    read as :func:`staff_id_key` reads them (enrollment 0020) (``A\u2011100`` was ``a\u2010100``, ``İ-1``
    ``i\u0307-1``): ``value`` as stored (:func:`staff_id_normal`), in NFKC, casefolded (then NFKC
    again: a folded letter may decompose), each run of spaces one space. What the erased staff ids
    kept before that (:class:`~enrollment.models.ErasedStaffId`) were made of, and what 0017 filled."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", staff_id_normal(value)).casefold())
    return " ".join(folded.split())


def staff_id_key(value: str) -> str:
    """What decides whether two staff ids are one person's: ``value``'s :func:`staff_id_key_0017`
    (its stored form, NFKC, casefolded, each run of spaces one), with every one of :data:`DASHES`
    a ``-`` and an ``i`` with a dot above an ``i`` (then NFKC again: ``i\u0307\u0301`` is ``\xed``).
    Computed here, in Python, so that SQLite and PostgreSQL compare staff ids alike. Idempotent;
    empty for a blank id."""
    return unicodedata.normalize("NFKC", _DOTTED_I.sub("i", staff_id_key_0017(value).translate(_DASHES_PLAIN)))


def name_normal(value: str) -> str:
    """``value`` as a full name or department is stored (and a search's text is read): as
    :func:`staff_id_normal`, but the invisible characters that change how a script is written are
    kept inside it. Idempotent."""
    kept = "".join(ch for ch in value if not invisible(ch) or _within(ch, _WRITING))
    text = _spaces_plain(kept)
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or invisible(text[start])):
        start += 1
    while end > start and (text[end - 1].isspace() or invisible(text[end - 1])):
        end -= 1
    return unicodedata.normalize("NFC", text[start:end])


# letters of Latin scripts that Unicode does not write as a base and a mark, read as staff type them
_LETTERS_PLAIN = str.maketrans({"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "ı": "i", "œ": "oe", "æ": "ae",
                                "þ": "th"})
_MARKS_DROPPED_BELOW = 0x0530   # marks on Latin, Greek, Cyrillic and IPA letters: elsewhere they spell


def name_key(value: str) -> str:
    """What a name search compares besides the name itself: ``value`` as stored (:func:`name_normal`),
    casefolded, without the accents of Latin, Greek and Cyrillic letters (NFKD, their combining
    marks dropped), each run of spaces one, and with ``ø``, ``ł``, ``æ``... as their plain letters,
    so that "chavez" finds "Hugo Chávez", "muller" "Müller" and "lukasz" "Łukasz": staff type names
    without accents.
    Marks on the letters of other scripts (Devanagari's vowel signs, Thai's) are kept: there they
    spell. Idempotent; empty for a blank name."""
    out, base = [], ""
    for ch in unicodedata.normalize("NFKD", name_normal(value).casefold()):
        if unicodedata.combining(ch):
            if base and ord(base) < _MARKS_DROPPED_BELOW:
                continue
        else:
            base = ch
        out.append(ch)
    return " ".join(unicodedata.normalize("NFC", "".join(out).translate(_LETTERS_PLAIN)).split())


def name_words(text: str) -> list[str]:
    """The words of a search's ``text`` that a name's key must each contain for the name to be
    found without its accents and in any order (:func:`name_key`'s words; none for blank text, which
    would find everyone). The people search's rule, with :func:`name_found`."""
    return name_key(text).split()


def name_found(full_name: str, text: str) -> bool:
    """Whether a people search for ``text`` finds ``full_name`` by the name: as typed, letter case
    aside, or each of :func:`name_words` in the name's key ("chavez hugo" finds "Hugo Chávez").
    ``PersonQuerySet.search`` asks the database the same."""
    key = name_key(full_name)
    return (name_normal(text).casefold() in full_name.casefold()
            or bool(words := name_words(text)) and all(word in key for word in words))


PERSON_TEXT = {"full_name": name_normal, "staff_id": staff_id_normal, "department": name_normal}


def person_text_normal(fields: dict) -> dict:
    """``fields`` (a person's, by name) with their names and staff id stored as :data:`PERSON_TEXT`
    says; other fields, ``None`` and values that are not text unchanged (a form or a serializer then
    refuses what is not text)."""
    return {name: PERSON_TEXT[name](value) if name in PERSON_TEXT and isinstance(value, str) else value
            for name, value in fields.items()}
