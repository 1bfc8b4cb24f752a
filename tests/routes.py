"""Every URL pattern of the site, for tests that walk them all (audit coverage, headers)."""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def url_patterns(patterns: list | None = None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """``(route, pattern)`` of each pattern under ``patterns`` (the whole URL conf by default), the
    route as written in the URL conf, its includes' prefixes joined (``api/v1/^people/(?P<pk>...)$``)."""
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            yield from url_patterns(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p
