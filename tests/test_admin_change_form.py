"""templates/admin/change_form.html draws the object's name (Django's ``subtitle`` heading) after the
object tools on a change page, where Django draws it before them (the tools, floated up beside the
title, covered a long name). Walked over every admin add and change page of the site (a row of every
model: tests/test_headers.py's world), as a page and as a popup, and the person's and kiosk's change
forms that extend it: the name is there exactly once, a ``<h2>`` after the page's ``<h1>`` and before
any other heading (a screen reader's heading list reads the title, then the name); on a change page
that is not a popup, after the object tools; on an add page, no name.
"""

from __future__ import annotations

import re

from django.utils.html import escape

# isolated media and index folders; rebuild requests recorded instead of run
from tests.enrollment.conftest import enqueued, isolated_storage  # noqa: F401
from tests.test_headers import concrete, routes, world  # noqa: F401

HEADING = re.compile(r"<(h[1-6])\b[^>]*>(.*?)</\1>", re.S)


def admin_form_pages() -> list[str]:
    """The admin's add and change routes, as the URL conf writes them."""
    return [r for r in routes() if re.fullmatch(r"admin/\w+/\w+/(<path:object_id>/change/|add/)", r)]


def test_the_object_name_is_drawn_once_after_the_title_and_the_object_tools(world):  # noqa: F811
    staff = world["staff"]
    pages = admin_form_pages()
    assert len(pages) >= 20 and any("enrollment/person" in p for p in pages), pages   # the walk found them
    named = 0
    for route in pages:
        for popup in ("", "?_popup=1"):
            url = concrete(route, world) + popup
            answer = staff.get(url)
            if answer.status_code == 403:   # an add page nobody may use (the audit log, photos, runs)
                assert route.endswith("add/"), url
                continue
            assert answer.status_code == 200, url
            html = answer.content.decode()
            name = answer.context.get("subtitle") if route.endswith("change/") else None
            body = html[html.index('id="content"'):]
            headings = HEADING.findall(body)
            assert headings and headings[0][0] == "h1", (url, headings)
            if not name:
                assert not route.endswith("change/"), f"{url}: no object name"
                continue
            named += 1
            drawn = [h for h in headings if h[1].strip() == escape(name)]
            assert len(drawn) == 1, (url, headings)
            assert headings[1] == ("h2", drawn[0][1]), (url, headings)   # straight after the title
            tools = body.find('class="object-tools"')
            assert (tools == -1) == bool(popup), url   # a popup has no tools
            if not popup:
                assert tools < body.index(f"<h2>{drawn[0][1]}</h2>"), f"{url}: the name before the object tools"
    assert named >= 2 * 10, named
