"""The kiosk page's text against what is behind it, computed from static/kiosk/kiosk.css's own colours
(WCAG 2.x contrast ratio: 4.5:1 for body text, 3:1 for large text and for graphics).

Most of the kiosk's text lies on translucent layers over the camera's picture, which is whatever the
camera sees: a white wall or a window behind the person at an entrance. So each ratio is the worst
over a white and a black picture behind the layers (the text is light, so white is the worse).
The vignette's gradients are left out: they darken the picture, so leaving them out only errs on the
safe side. Pure Python, no browser: the colours are read from the style sheet as the page gets it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "static" / "kiosk" / "kiosk.css").read_text()
TONES = ("idle", "work", "warn", "ok", "info", "bad")
WHITE, BLACK = (255.0, 255.0, 255.0), (0.0, 0.0, 0.0)
Colour = tuple[float, float, float, float]   # r, g, b 0-255, alpha 0-1


def declarations(selector: str) -> dict[str, str]:
    """The declarations of the first rule whose selector is exactly ``selector`` (no media query's)."""
    found = re.search(r"(?:^|[}\n])\s*" + re.escape(selector) + r"\s*\{([^}]*)\}", re.sub(r"/\*.*?\*/", "", CSS,
                                                                                         flags=re.S))
    assert found, f"no rule for {selector!r} in kiosk.css"
    return {k.strip(): v.strip() for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+);?", found.group(1))}


ROOT = declarations(":root")


def colour(value: str, tone: str | None = None) -> Colour:
    """A CSS colour (``#rgb``, ``#rrggbb``, ``rgb[a](...)``, ``var(--x)``; ``var(--tone)`` is ``tone``'s)."""
    value = value.strip()
    if value == "var(--tone)":
        assert tone, "var(--tone) outside a tone"
        return colour(ROOT[f"--{tone}"])
    if value.startswith("var("):
        return colour(ROOT[value[4:-1].strip()], tone)
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 1.0)
    parts = [float(p) for p in re.findall(r"[\d.]+", value)]
    assert value.startswith("rgb") and len(parts) in (3, 4), f"unknown colour {value!r}"
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else 1.0)


def over(top: Colour, below: tuple[float, float, float]) -> tuple[float, float, float]:
    """``top`` composited over the opaque ``below``."""
    a = top[3]
    return tuple(a * t + (1 - a) * b for t, b in zip(top[:3], below, strict=True))


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """WCAG contrast ratio of two opaque colours (1-21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def banner_background(tone: str) -> Colour:
    """The banner's own background in ``tone`` (some tones have their own: ``.stage.tone-ok .banner``)."""
    own = re.search(r"\.stage\.tone-" + tone + r" \.banner\s*\{[^}]*background:\s*([^;]+);", CSS)
    return colour(own.group(1) if own else declarations(".banner")["background"])


def worst(text: Colour, layers: list[Colour]) -> float:
    """The lowest contrast of ``text`` over ``layers`` (bottom first) over a white or a black picture."""
    ratios = []
    for picture in (WHITE, BLACK):
        behind = picture
        for layer in layers:
            behind = over(layer, behind)
        ratios.append(contrast(over(text, behind), behind))
    return min(ratios)


@pytest.mark.parametrize("tone", TONES)
def test_banner_text_is_readable_over_any_picture(tone: str):
    """The banner's title, detail line and "Mask detected" chip in each tone, whatever the camera sees."""
    behind = [banner_background(tone)]
    title = colour(ROOT["--ink"])
    detail = colour(declarations(".banner-text p")["color"])
    assert worst(title, behind) >= 4.5, tone
    assert worst(detail, behind) >= 4.5, tone
    # the chip: dark text on the tone itself (opaque), 0.8 of the detail's size: body text
    chip = declarations(".chip")
    assert contrast(colour(chip["color"], tone)[:3], colour(chip["background"], tone)[:3]) >= 4.5, tone


def test_top_bar_text_is_readable_over_any_picture():
    """The kiosk's name and location, the clock and date, and the privacy notice (the smallest text on
    the page): they lay on the bare picture, under a gradient that had faded to 0.39 of its darkness
    by the notice's second line on a phone, 2.1:1 over a white wall (the notice's text shadow aside).
    The bar has a backing of its own now, whatever its height on the screen."""
    bar = declarations(".topbar")
    assert "background" in bar, "the top bar's text has nothing behind it but the camera's picture"
    # a gradient: the stop under the text (the first); its fade lies in the bar's bottom padding
    backing = re.match(r"linear-gradient\(\s*to bottom,\s*(var\([^)]*\)|rgba?\([^)]*\)|#\w+)", bar["background"])
    layer = colour(backing.group(1) if backing else bar["background"])
    for text in (ROOT["--ink"], declarations(".notice")["color"], declarations(".where-location")["color"]):
        assert worst(colour(text), [layer]) >= 4.5, text
