"""The staff pages' own colours against what is behind them, in both of the Django admin's themes
(WCAG 2.x contrast ratio: 4.5:1 for body text, 3:1 for large text and for graphics such as a focus ring):
static/enrollment/admin.css (verdicts, the capture page's live line, the rebuild status bar, "0: cannot
check in yet") and templates/attendance/_style.html (the day's counts, the chart's focus ring and line).

The admin switches theme with its toggle or the system's setting, by custom properties (Django's
base.css and dark_mode.css); our colours follow it the same way. The light theme's colours fell to
2.6-4.0:1 on the dark theme's backgrounds, the chart's focused bar and ring to 1.8:1. Pure Python, from
the style sheets as the pages get them (the WCAG arithmetic of tests/recognition/test_kiosk_contrast.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import django
import pytest

from tests.recognition.test_kiosk_contrast import contrast

REPO = Path(__file__).resolve().parents[1]
ADMIN_CSS = (REPO / "static" / "enrollment" / "admin.css").read_text()
ATTENDANCE_CSS = re.search(r"<style>(.*)</style>", (REPO / "templates" / "attendance" / "_style.html").read_text(),
                           re.S).group(1)
DJANGO_CSS = Path(django.__file__).parent / "contrib" / "admin" / "static" / "admin" / "css"
THEMES = ("light", "dark")


def uncommented(css: str) -> str:
    return re.sub(r"/\*.*?\*/", "", css, flags=re.S)


def block(css: str, selector: str, required: bool = True) -> dict[str, str]:
    """The declarations of the first rule whose selector is exactly ``selector`` (none: {}, unless required)."""
    found = re.search(r"(?:^|[{}\n])\s*" + re.escape(selector) + r"\s*\{([^{}]*)\}", uncommented(css))
    if not found and not required:
        return {}
    assert found, f"no rule for {selector!r}"
    return {k.strip(): v.strip() for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+);?", found.group(1))}


def media_dark(css: str) -> dict[str, str]:
    """The ``:root`` declarations under ``@media (prefers-color-scheme: dark)``."""
    found = re.search(r"@media \(prefers-color-scheme: dark\)\s*\{\s*:root\s*\{([^{}]*)\}", uncommented(css))
    assert found, "no dark-theme rule for the system's setting"
    return {k.strip(): v.strip() for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+);?", found.group(1))}


def properties(theme: str, own: str) -> dict[str, str]:
    """The custom properties a page has in ``theme``: Django's, then the style sheet ``own``'s."""
    django_light = block((DJANGO_CSS / "base.css").read_text(), 'html[data-theme="light"],\n:root')
    mine_light = block(own, 'html[data-theme="light"], :root', required=False)
    if theme == "light":
        return {**django_light, **mine_light}
    return {**django_light, **block((DJANGO_CSS / "dark_mode.css").read_text(), 'html[data-theme="dark"]'),
            **block(own, 'html[data-theme="dark"]', required=False)}


def colour(value: str, props: dict[str, str]) -> tuple[float, float, float]:
    """An opaque CSS colour: ``#rgb``, ``#rrggbb`` or ``var(--x[, fallback])`` resolved in ``props``."""
    value = value.strip()
    var = re.fullmatch(r"var\(\s*(--[\w-]+)\s*(?:,\s*([^)]+))?\)", value)
    if var:
        return colour(props[var.group(1)] if var.group(1) in props else var.group(2), props)
    digits = value.lstrip("#")
    assert value.startswith("#") and len(digits) in (3, 6), f"unknown colour {value!r}"
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


# (selector, property, the backgrounds it lies on, the ratio it needs)
ADMIN = [
    (".mn-verdict.ok", "color", ("--body-bg", "--selected-row"), 4.5),   # a photo's line; a ticked row
    (".mn-verdict.bad", "color", ("--body-bg", "--selected-row"), 4.5),
    (".mn-feedback.ok", "color", ("--body-bg",), 4.5),                  # 16 px bold: not large text
    (".mn-feedback.bad", "color", ("--body-bg",), 4.5),
    (".mn-status .mn-run-state.failed", "color", ("--darkened-bg",), 4.5),
    (".mn-status .mn-outdated", "color", ("--darkened-bg",), 4.5),
    (".mn-status .mn-storage-low", "color", ("--darkened-bg",), 4.5),
    (".mn-no-photo", "color", ("--body-bg", "--selected-row"), 4.5),
    (".mn-results", "color", ("--body-bg",), 4.5),
]
ATTENDANCE = [
    (".att-card.ok .n", "color", ("--darkened-bg",), 3.0),               # 30 px bold: large text
    (".att-card.bad .n", "color", ("--darkened-bg",), 3.0),
    (".att-card .label", "color", ("--darkened-bg",), 4.5),
    (".att-chart-note", "color", ("--darkened-bg",), 4.5),
    (".att-chart .axis", "fill", ("--darkened-bg",), 4.5),
    (".att-chart a:focus-visible .hit", "stroke", ("--darkened-bg",), 3.0),   # the focused day's ring
    (".att-chart a:hover .bar, .att-chart a:focus .bar", "fill", ("--darkened-bg",), 3.0),
    (".att-chart .active", "stroke", ("--darkened-bg",), 3.0),           # the line of people active now
    (".att-empty", "color", ("--body-bg",), 4.5),
]


def ratios(css: str, rules: list, theme: str) -> list[tuple[str, str, float, float]]:
    props = properties(theme, css)
    found = []
    for selector, prop, backgrounds, needed in rules:
        value = block(css, selector)[prop]
        for background in backgrounds:
            found.append((selector, background, contrast(colour(value, props), colour(f"var({background})", props)),
                          needed))
    return found


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize(("css", "rules"), [(ADMIN_CSS, ADMIN), (ATTENDANCE_CSS, ATTENDANCE)],
                         ids=["admin.css", "attendance"])
def test_staff_colours_are_readable_in_both_themes(css: str, rules: list, theme: str):
    low = [f"{sel} on {bg}: {ratio:.2f} < {needed}" for sel, bg, ratio, needed in ratios(css, rules, theme)
           if ratio < needed]
    assert not low, low


def test_the_chart_box_focus_ring_is_visible_in_both_themes():
    """The scroll box's outline (a tab stop on a phone) against the chart's background."""
    for theme in THEMES:
        props = properties(theme, ATTENDANCE_CSS)
        ring = block(ATTENDANCE_CSS, ".att-chart-scroll:focus-visible")["outline"].split()[-1]
        assert contrast(colour(ring, props), colour("var(--darkened-bg)", props)) >= 3.0, theme


@pytest.mark.parametrize("css", [ADMIN_CSS, ATTENDANCE_CSS], ids=["admin.css", "attendance"])
def test_the_dark_colours_follow_the_system_setting_and_the_toggle_alike(css: str):
    """Django's toggle sets ``data-theme``; "auto" follows the system's setting: both give the same colours."""
    assert media_dark(css) == block(css, 'html[data-theme="dark"]')
