"""The static files' storage in production: each file is also written under a name that carries its
content's digest (``kiosk/kiosk.3f2a9c1b7d4e.js``), and pages link those names.

``collectstatic`` runs while the previous release still serves (docs/deployment.md, "Each release"),
into the folder nginx serves. With plain names, a kiosk page the previous release rendered in that
window loaded the new release's script under its own HTML: the new script read its words from a
catalog the old page lacks, and the banner read ``starting.title``, ``already.title`` (found by a
helper following the upgrade steps). Digested names keep the earlier release's files beside the new
ones, so each page loads the files it was made with. The plain names are written too (nginx's offline
page links them).
"""
from __future__ import annotations

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage


class ReleaseStaticFilesStorage(ManifestStaticFilesStorage):
    """Django's manifest storage, but a file the manifest does not list (``collectstatic`` not run
    since it was added) is linked by its plain name, as the plain storage links every file: the asset
    is missing (nginx answers 404), not the whole page (Django's raises, a 500)."""

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        """The digested name the manifest gives ``name``; ``name`` itself where there is none."""
        try:
            return super().stored_name(name)
        except ValueError:
            return name
