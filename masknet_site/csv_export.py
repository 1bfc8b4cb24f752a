"""CSV downloads shared by the attendance pages, the admin exports, the API and the subject-access
archive (``enrollment.services.person_export``)."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseForbidden, StreamingHttpResponse
from django.utils.http import content_disposition_header

# the full-width forms too (U+FF1D, U+FF0B, U+FF0D, U+FF20): a spreadsheet set up for Japanese or
# Chinese input may take them for the ASCII signs, and a name can hold them
_FORMULA_SIGNS = "=+-@\uff1d\uff0b\uff0d\uff20"
_FORMULA_STARTS = (*_FORMULA_SIGNS, "\t", "\r")
CHUNK_BYTES = 64 * 1024     # rows are sent in pieces of about this size
ASYNC_BATCH = 16            # pieces fetched per thread hop when served over ASGI

log = logging.getLogger(__name__)

CROSS_SITE_REFUSED = ("This download was started from another site's page, so it was not made. Open it from "
                      "MaskNet's own page (its CSV link), or type or bookmark its address.")


# a formula start after another separator than the file's own: a spreadsheet whose list separator
# is ";" (most of continental Europe) or a tab splits "Ops;=cmd|..." there, whatever the quoting
# (it reads the comma file's quotes as text), and the piece after it is a cell of its own
_FORMULA_AFTER_SEPARATOR = re.compile(rf"([;,\t\r\n])([ \t]*)(?=[{re.escape(_FORMULA_SIGNS)}])")


def csv_safe(value: object) -> str:
    """A cell as text, with spreadsheet formulas neutralised (CSV injection): a leading
    ``= + - @`` (or their full-width forms) or control character gets a ``'`` in front, and so does
    one after a ``;``, ``,``, tab or line break inside the text (a cell of its own where that is the
    list separator, the start of a row for a reader that takes the quotes as text)."""
    text = "" if value is None else str(value)
    text = _FORMULA_AFTER_SEPARATOR.sub(r"\1\2'", text)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


class _Echo:
    """A file-like object whose ``write`` hands back the line (Django's streaming-CSV pattern)."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(header: list[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """``header`` and ``rows`` as CSV text, every cell passed through :func:`csv_safe`, in pieces of
    about :data:`CHUNK_BYTES` (a download's, or a file written into an archive)."""
    writer = csv.writer(_Echo())
    chunk, size = [writer.writerow(header)], 0
    for row in rows:
        line = writer.writerow([csv_safe(v) for v in row])
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk)


class CSVStreamingResponse(StreamingHttpResponse):
    """A CSV download produced while it is sent, so a large export is never held in memory.

    Under ASGI (Daphne) Django would read a synchronous iterator whole, with a warning, before
    sending any of it; here the pieces are fetched a few at a time in the request's thread
    (thread-sensitive: the database connection that the rows' queryset uses lives there).
    ``content`` reads the whole body at once, for code written for an ``HttpResponse``.
    """

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = iter(self.streaming_content)
        fetch = sync_to_async(lambda: list(islice(iterator, ASYNC_BATCH)), thread_sensitive=True)
        while parts := await fetch():
            for part in parts:
                yield part

    @property
    def content(self) -> bytes:
        body = b"".join(self.streaming_content)
        self.streaming_content = [body]
        return body


def cross_site_download(request: HttpRequest) -> bool:
    """Whether the browser says a download was started by another site's page: ``Sec-Fetch-Site:
    cross-site`` (a link, a redirect or a form there). A staff session's cookie goes with such a
    top-level GET (``SameSite=Lax``), which would record a list export in the audit log and put
    people's data in the admin's download folder; no page of this site starts one. ``same-origin``,
    ``same-site`` (a sibling host of the site's domain, which shares its cookies anyway) and ``none``
    (typed, bookmarked, opened from a mail client) pass, and so does a request without the header
    (older browsers, a site on plain HTTP, scripts): a defence where browsers give it, beside the
    audit record of every download."""
    return request.META.get("HTTP_SEC_FETCH_SITE", "").strip().lower() == "cross-site"


def cross_site_refusal(request: HttpRequest) -> HttpResponseForbidden | None:
    """403 with :data:`CROSS_SITE_REFUSED` (plain text, logged as a warning) for a staff session's CSV
    download that another site started (:func:`cross_site_download`), before anything is read or
    audited; ``None`` otherwise. Call it first in a CSV branch of a cookie-authenticated view."""
    if not cross_site_download(request):
        return None
    log.warning("Refused a download started from another site (%s, Referer %r)", request.path,
                request.META.get("HTTP_REFERER", "")[:200])
    return HttpResponseForbidden(CROSS_SITE_REFUSED, content_type="text/plain; charset=utf-8")


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[object]]) -> CSVStreamingResponse:
    """An attachment download of ``header`` and ``rows``, every cell passed through :func:`csv_safe`;
    ``rows`` is read while the response is sent (it may be a lazy generator over a queryset).

    ``filename`` may hold user input (a site name, a staff id): quotes, newlines and non-ASCII
    are encoded as RFC 6266 says, never a broken or refused header."""
    response = CSVStreamingResponse(csv_chunks(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
