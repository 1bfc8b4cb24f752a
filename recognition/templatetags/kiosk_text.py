"""``{% say "key" name=value %}``: a kiosk page's words in its language (recognition/kiosk_text).

The view puts the language's words in the context as ``kiosk_text``
(:func:`recognition.kiosk_page.page_context`). The words are escaped, then their ``<strong>``,
``<em>`` and ``<code>`` (the only markup a catalog may hold) are made markup again and each
``{placeholder}`` filled with its value, escaped."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from recognition.kiosk_text import fill

register = template.Library()

MARKUP = re.compile(r"&lt;(/?)(strong|em|code)&gt;")


@register.simple_tag(takes_context=True)
def say(context: template.Context, key: str, **values: object) -> SafeString:
    """The words ``key`` of the page's language, escaped, with their markup and ``values`` filled in."""
    words = MARKUP.sub(r"<\1\2>", escape(context["kiosk_text"][key]))
    return mark_safe(fill(words, **{name: escape(value) for name, value in values.items()}))
