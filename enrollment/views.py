"""Face photos for staff who may view them: the file, or a small JPEG thumbnail; and the download
of a person's subject-access archive (the admin's and the API's).

Photos are biometric data: no public URL, a permission check on every request, never cached
(a browser's disk cache would keep them after logout, and after an erasure).
"""

from __future__ import annotations

import io

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from PIL import Image

from recognition.engine.decode import decode_image
from recognition.engine.errors import EngineError

from .models import FacePhoto

THUMB_PX = 192
_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def _photo_for(request: HttpRequest, pk: int) -> FacePhoto:
    if not request.user.has_perm("enrollment.view_facephoto"):
        raise PermissionDenied
    return get_object_or_404(FacePhoto, pk=pk)


def _private(response: HttpResponse) -> HttpResponse:
    # no-store, not max-age: a cached copy outlives the session and the photo itself (thumbnails
    # too, enough to recognise someone; each list page asks for them again, small and lazy-loaded)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = "inline"
    return response


@staff_member_required
def photo_image(request: HttpRequest, pk: int) -> HttpResponse:
    """The stored photo (as uploaded, less any metadata: ``services.photo_add``)."""
    photo = _photo_for(request, pk)
    try:
        fh = photo.image.open("rb")
    except OSError as exc:   # missing, or unreadable (a restore with other owners): as the thumbnail does
        raise Http404("photo file missing or unreadable") from exc
    ext = "." + photo.image.name.rsplit(".", 1)[-1].lower()
    return _private(FileResponse(fh, content_type=_TYPES.get(ext, "application/octet-stream")))


@staff_member_required
def photo_thumb(request: HttpRequest, pk: int) -> HttpResponse:
    """A JPEG at most ``THUMB_PX`` pixels on its longer side (made on the fly, never stored).

    Decoded as the engine decoded it when the photo was added, within the same limits: upright
    (broken EXIF ignored), 16-bit grey scaled to 8 bits. A file that cannot be read or decoded is a 404.
    """
    photo = _photo_for(request, pk)
    try:
        with photo.image.open("rb") as fh:
            data = fh.read(settings.MASKNET_MAX_PHOTO_BYTES + 1)
        # a JPEG decoded at the smallest scale that still covers the thumbnail (an admin page of
        # people decodes one per photo on every view: no-store)
        bgr = decode_image(data, max_bytes=settings.MASKNET_MAX_PHOTO_BYTES, max_pixels=settings.MASKNET_MAX_PIXELS,
                           min_side=THUMB_PX)
        img = Image.fromarray(bgr[:, :, ::-1])
        img.thumbnail((THUMB_PX, THUMB_PX))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
    except (OSError, EngineError) as exc:   # FileNotFoundError included; UnreadableImage, FrameTooLarge
        raise Http404("photo file missing or unreadable") from exc
    return _private(HttpResponse(out.getvalue(), content_type="image/jpeg"))


def export_download(person_id: int, data: bytes) -> HttpResponse:
    """``person_export``'s archive as an attachment named by the id alone (``person-12-data.zip``:
    a name would be personal data in every download folder and proxy log), never cached."""
    response = _private(HttpResponse(data, content_type="application/zip"))
    response["Content-Disposition"] = content_disposition_header(True, f"person-{int(person_id)}-data.zip")
    return response
