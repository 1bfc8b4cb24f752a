"""Static file finders for the development server (``make run``) that answer a path leaving the
static folders (``/static/../x``, ``/static/..%2f..%2fetc/passwd``) with a 404.

Django's finders raise ``SuspiciousFileOperation`` for such a path, which the development server's
static handler does not catch (it catches ``Http404`` only): the request answered 500 with a
traceback. Production serves ``STATIC_ROOT`` from the proxy and never calls the finders per request.
"""
from __future__ import annotations

from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation


class FileSystemFinder(finders.FileSystemFinder):
    """``STATICFILES_DIRS``; a path outside them is not found."""

    def find_location(self, root: str, path: str, prefix: str | None = None) -> str | None:
        """The file ``path`` in ``root``, or ``None`` (also when ``path`` leaves ``root``)."""
        try:
            return super().find_location(root, path, prefix)
        except SuspiciousFileOperation:
            return None


class AppDirectoriesFinder(finders.AppDirectoriesFinder):
    """The apps' ``static/`` folders (the admin's); a path outside them is not found."""

    def find_in_app(self, app: str, path: str) -> str | None:
        """The file ``path`` in ``app``'s static folder, or ``None`` (also when ``path`` leaves it)."""
        try:
            return super().find_in_app(app, path)
        except SuspiciousFileOperation:
            return None
