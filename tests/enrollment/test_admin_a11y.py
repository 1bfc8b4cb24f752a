"""The enrollment admin's own pages for screen readers and keyboards (WCAG 2.1 AA), from their markup:
the webcam page's camera preview is named, its live checks' line (rewritten twice a second) is no live
region itself (static/enrollment/capture.js reads it out once settled, through a region of its own),
and the burst's outcome lies in a live region that is always there. The scripts' side: tests/js/*.js.
Colours: tests/test_staff_contrast.py.
"""

from __future__ import annotations

import re

from django.urls import reverse


def tag(html: str, element_id: str) -> str:
    """The start tag of the element with ``id="element_id"``."""
    found = re.search(r'<[a-z]+[^>]*\bid="' + re.escape(element_id) + r'"[^>]*>', html)
    assert found, element_id
    return found.group(0)


def test_the_capture_page_names_its_preview_and_announces_politely(su_client, person):
    html = su_client.get(reverse("admin:enrollment_person_capture", args=[person.pk])).content.decode()
    assert not re.search(r"\{[#%]", html)   # no template comment shown as text (a multi-line {# #})
    assert 'aria-label="Camera preview"' in tag(html, "mn-video")
    # the visible line changes with every check: read out from the hidden region, once settled
    assert "aria-live" not in tag(html, "mn-feedback")
    said = tag(html, "mn-feedback-said")
    assert 'aria-live="polite"' in said and 'class="visually-hidden"' in said and " hidden" not in said
    # the outcome appears (hidden at first) inside a live region that is rendered from the start
    outcome = tag(html, "mn-outcome")
    assert " hidden" in outcome and "aria-live" not in outcome
    region = re.search(r'<div role="status" aria-live="polite">\s*' + re.escape(outcome), html)
    assert region, "the outcome is not inside a live region rendered from the start"


def test_the_rebuild_status_reads_out_changes_of_state_not_progress(su_client, person):
    from enrollment.models import TrainingRun

    run = TrainingRun.objects.create(state=TrainingRun.State.RUNNING, progress=40, message="embedded 4/10 photos")
    for url in (reverse("admin:enrollment_person_changelist"),
                reverse("admin:enrollment_person_change", args=[person.pk]),
                reverse("admin:enrollment_trainingrun_changelist")):
        html = su_client.get(url).content.decode()
        # the bar's message follows every progress message: no live region (training.js reads out the
        # run's changes of state through the hidden one beside it)
        bar = re.search(r'<span class="mn-run"[^>]*>', html).group(0)
        assert "aria-live" not in bar and "role=" not in bar, url
        said = re.search(r'<span class="mn-run-said[^"]*"[^>]*>', html).group(0)
        assert 'role="status"' in said and 'aria-live="polite"' in said and "visually-hidden" in said, url
        assert " hidden" not in said, url
    # each row's progress bar is named, not one of several unnamed progressbars
    assert f'aria-label="run #{run.pk} progress"' in html
