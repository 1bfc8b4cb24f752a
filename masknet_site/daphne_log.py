"""Daphne's access log without query strings or pairing codes.

Daphne writes a line for each request (stdout at its default verbosity, the journal under the
guide's unit; ``manage.py runserver`` through its own logger), with the path as the client sent it,
query string and all: the admin's people search (``?q=Ana+Silva``), its erased staff ids' lookup
(the id the keyed digest exists not to keep), the API's ``?staff_id=`` that an HR sync asks for
each person, so a person's name and staff id stayed in the log after their erasure. A kiosk pairing
link's one-time code is in its path. :func:`install` makes every access log line Daphne writes carry
the path alone, a query string shown as ``?…`` and a pairing code as ``/kiosk/pair/…``
(:func:`logged_path`); ``masknet_site.asgi`` calls it, as it does :mod:`masknet_site.daphne_body`'s.
"""

from __future__ import annotations

from daphne import server

from masknet_site.logfilters import mask_pairing_codes


def logged_path(path: str) -> str:
    """``path`` as an access log line may show it: no query string (``?…`` where there was one),
    no pairing code."""
    path, question, _query = path.partition("?")
    return mask_pairing_codes(path) + ("?…" if question else "")


def install() -> None:
    """Make Daphne's ``Server.log_action`` (which feeds its access log and runserver's request
    lines) pass on each request's path as :func:`logged_path` writes it. Once a process."""
    original = server.Server.log_action
    if getattr(original, "masknet_paths_only", False):
        return

    def log_action(self: server.Server, protocol: str, action: str, details: dict) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": logged_path(details["path"])}
        original(self, protocol, action, details)

    log_action.masknet_paths_only = True
    server.Server.log_action = log_action
