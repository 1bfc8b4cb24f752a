"""Decoding untrusted image bytes with limits checked before the pixels are decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import FrameTooLarge, UnreadableImage

# what the product accepts: cameras and photo uploads; nothing that runs an interpreter (EPS) or
# brings another parser into play (TIFF, BMP, GIF and the rest of Pillow's formats)
FORMATS = ("JPEG", "PNG", "WEBP")
# Pillow warns about images over Image.MAX_IMAGE_PIXELS (89 Mpx) and raises DecompressionBombError
# over twice that, while reading the header. Every caller checks the size against its own, lower
# limit before decoding, so the warning says nothing new: ignored once for the process. (Setting it
# per call with warnings.catch_warnings is not thread-safe: decodes in several threads at once
# restored each other's filters and left them in the process-wide list.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# EXIF orientation -> the transpose that shows the picture upright
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> np.ndarray:
    """Decode JPEG/PNG/WebP bytes into an ``HxWx3`` uint8 **BGR** array.

    The header is read first: images over ``max_bytes`` bytes or ``max_pixels``
    pixels raise :class:`FrameTooLarge` without being decoded (decompression bombs
    included). Empty, truncated or unknown data, and any other format (TIFF, EPS...), raises
    :class:`UnreadableImage`. EXIF orientation is applied (broken EXIF is ignored); 16-bit grey
    images are scaled to 8 bits. ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size
    as long as both sides stay at least this long (a thumbnail's decode, several times faster).
    """
    if not data:
        raise UnreadableImage("empty image")
    if len(data) > max_bytes:
        raise FrameTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes}")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        w, h = img.size
        if w * h > max_pixels:
            raise FrameTooLarge(f"image is {w}x{h} pixels; the limit is {max_pixels} pixels")
        if w < 1 or h < 1:
            raise UnreadableImage("image has no pixels")
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        img.load()
        img = _upright(img)
        rgb = _eight_bit(img).convert("RGB")
    except FrameTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(_unreadable(exc)) from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])


# Image.info keys that only say how the pixels are encoded or shown; any other (EXIF, XMP, IPTC,
# comments, PNG text chunks) may say where, when and with what camera a photo was taken
_PLAIN_INFO = frozenset({"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive", "progression",
                         "adobe", "adobe_transform", "icc_profile", "gamma", "srgb", "chromaticity", "transparency",
                         "aspect", "interlace", "loop", "background", "duration", "version", "compression"})


# JPEG APPn segments that only say how the pixels are encoded or shown, by marker and the
# identifier they start with: APP0 JFIF (not JFXX, a thumbnail of the original), APP2 ICC profile
# (not FlashPix or a multi-picture index), APP14 Adobe's colour transform. Any other (EXIF, XMP, a
# maker's or an app's own) may say, or show, more than the pixels do
_PLAIN_APP_SEGMENTS = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}


def _jpeg_hides_more(data: bytes) -> bool:
    """Whether a JPEG holds what Pillow's ``info`` does not show: an APPn segment other than
    :data:`_PLAIN_APP_SEGMENTS` or a comment anywhere (between a progressive JPEG's scans too), a
    byte where a marker must be (Pillow skips such junk and decodes the picture all the same), or
    anything but zero padding after its end-of-image marker (a phone's appended clip, a second
    JPEG with its own EXIF). The whole file is walked: its segments and, after each start of scan,
    the entropy-coded data up to the next marker."""
    n, pos = len(data), 2
    while True:
        if pos + 2 > n or data[pos] != 0xFF:
            return True   # truncated, or not a marker where one must be
        marker = data[pos + 1]
        if marker == 0xFF:   # a fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:   # end of image: only zero padding may follow
            return bool(data[pos + 2:].strip(b"\x00"))
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:   # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 > n or length < 2:
            return True
        if marker == 0xFE:
            return True   # a comment
        if 0xE0 <= marker <= 0xEF:
            plain = _PLAIN_APP_SEGMENTS.get(marker)
            if plain is None or not data[pos + 4:pos + 2 + length].startswith(plain):
                return True
        pos += 2 + length
        if marker == 0xDA:   # start of scan: its data runs to the next marker (not a stuffed 0xFF00 or a restart)
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return True   # no end-of-image marker
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos += 2
                elif following == 0xFF:
                    pos += 1
                else:
                    break


def without_metadata(data: bytes, *, max_bytes: int, max_pixels: int) -> bytes:
    """``data`` as a photo may be kept: a JPEG unchanged when it holds nothing but its pixels, else
    re-encoded from its upright pixels (:func:`decode_image`) without EXIF (a phone's GPS position,
    the time, the camera's serial number), XMP, IPTC, comments, text, a JPEG's other APPn segments
    or bytes after its end. A PNG or WebP is always re-encoded (their chunks after the pixels, a
    private chunk or a trailer are not in Pillow's ``info`` when it opens them; a PNG is lossless,
    and a WebP's pixels are what was decoded): as a PNG when that fits in ``max_bytes``, else as
    a JPEG of the highest quality that fits (95 down to 75), scaled down until it fits at 75 (a noisy
    photo saved at a low quality can grow when saved at 75). The orientation is applied to the
    pixels. Raises as :func:`decode_image` does."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            extra = set(img.info) - _PLAIN_INFO
            jpeg = img.format in ("JPEG", "MPO")
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(_unreadable(exc)) from exc
    if jpeg and not extra and not _jpeg_hides_more(data):
        return data
    bgr = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    rgb = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    encodings = ([] if jpeg else [{"format": "PNG"}]) + [{"format": "JPEG", "quality": q} for q in (95, 90, 85, 75)]
    for options in encodings:
        out = io.BytesIO()
        rgb.save(out, **options)
        if out.tell() <= max_bytes:
            return out.getvalue()
    while out.tell() > max_bytes:
        if rgb.width == 1 and rgb.height == 1:   # a limit below any JPEG's own size
            raise FrameTooLarge(f"the photo cannot be stored in {max_bytes} bytes")
        # the bytes go about with the pixels: aim a little under the limit
        scale = 0.95 * (max_bytes / out.tell()) ** 0.5
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=75)
    return out.getvalue()


def _unreadable(exc: BaseException) -> str:
    """The message of an image Pillow could not read: its kind, not Pillow's text (which may name
    a buffer's memory address); the cause stays chained for the logs."""
    if isinstance(exc, UnidentifiedImageError):
        return "cannot decode image: not a JPEG, PNG or WebP image"
    return f"cannot decode image: damaged or truncated ({type(exc).__name__})"


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation. Broken EXIF (a tag of the wrong type, a truncated block) is
    ignored, not an error: the pixels are fine (``ImageOps.exif_transpose`` raised ``TypeError``)."""
    try:
        orientation = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - any EXIF parser failure: keep the picture as stored
        return img
    method = _ORIENT.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit and float grey images scaled to 8 bits (``convert("RGB")`` clips them: a 16-bit grey
    PNG came out almost white)."""
    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    # 16-bit modes always span 0-65535; PNG's 16-bit grey may also open as 32-bit "I"
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.size and arr.max() > 255):
        arr = arr / 257.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
