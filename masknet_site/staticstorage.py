"""The static files' storage in production: each file is also written under a name that carries its
content's digest (``kiosk/kiosk.3f2a9c1b7d4e.js``), and pages link those names.

``collectstatic`` runs while the previous release still serves (docs/deployment.md, "Each release"),
into the folder nginx serves. With plain names, a kiosk page the previous release rendered in that
window loaded the new release's script under its own HTML: the new script read its words from a
catalog the old page lacks, and the banner read ``starting.title``, ``already.title`` (found by a
helper following the upgrade steps). Digested names keep the earlier release's files beside the new
ones, so each page loads the files it was made with. The plain names are written too (nginx's offline
page links them).

The manifest (which digested name each file has) is kept in the release's own folder
(``var/static-manifest/``), not beside the files: with one manifest in the shared folder, a process of
the previous release started after the new release's ``collectstatic`` (a crash, a reboot) linked the
new release's files under its old HTML, and a web node whose static folder nginx does not read (nginx
on another machine) had none and linked plain names (the review of this change). ``collectstatic``
therefore runs on every web node (docs/deployment.md).
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.files.storage import FileSystemStorage


class ReleaseStaticFilesStorage(ManifestStaticFilesStorage):
    """Django's manifest storage, its manifest in the release's folder (``manifest_location``, by
    default ``var/static-manifest`` under ``BASE_DIR``), and a file the manifest does not list
    (``collectstatic`` not run since it was added) linked by its plain name, as the plain storage
    links every file: the asset is missing (nginx answers 404), not the whole page (Django's raises,
    a 500)."""

    manifest_strict = False

    def __init__(self, *args, manifest_location: str | os.PathLike | None = None, **kwargs) -> None:
        location = Path(manifest_location or Path(settings.BASE_DIR) / "var" / "static-manifest")
        super().__init__(*args, manifest_storage=FileSystemStorage(location=location), **kwargs)

    def stored_name(self, name: str) -> str:
        """The digested name the manifest gives ``name``; ``name`` itself where there is none."""
        try:
            return super().stored_name(name)
        except ValueError:
            return name
