"""Decoding untrusted image bytes with limits checked before the pixels are decoded."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import FrameTooLarge, UnreadableImage

# what the product accepts: cameras and photo uploads; nothing that runs an interpreter (EPS) or
# brings another parser into play (TIFF, BMP, GIF and the rest of Pillow's formats)
FORMATS = ("JPEG", "PNG", "WEBP")
# A progressive JPEG's decoder passes over the whole picture once per scan, and nothing in the
# format bounds the number of scans: 5,000 copies of one 12-byte refinement scan (a 72 KB file)
# took 5.6 s to decode at 1920x1080, and a kiosk frame's 512 KiB or an upload's 8 MiB hold tens or
# hundreds of thousands. Encoders write about ten (libjpeg's progressive default: 10, Photoshop's
# 3 to 5); more than this is refused before decoding
MAX_JPEG_SCANS = 100
# Pillow reads a JPEG's markers (and the fill or junk bytes before them) and a PNG's chunks one at a
# time in Python, holding the GIL: 8 MiB of empty ones (2 million comments, 8 million fill bytes,
# 700,000 PNG chunks) took 3 to 4.5 s to open and as long again to decode (8 MiB of junk: 0.8 s),
# while every kiosk socket and request of the process waited. Encoders write a few dozen JPEG
# markers, and a PNG's pixels in chunks of 8 KiB (libpng) or more; a file past these is refused
# before Pillow reads it
MAX_JPEG_MARKERS = 1000
MAX_PNG_CHUNKS = 20_000
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


def image_extension(data: bytes) -> str | None:
    """The extension of a JPEG, PNG or WebP file (``.jpg``, ``.png``, ``.webp``) from its first bytes, as
    Pillow tells them; ``None`` for anything else. The one rule for the kiosk's frames, enrolment
    photos and the decoders' messages."""
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> np.ndarray:
    """Decode JPEG/PNG/WebP bytes into an ``HxWx3`` uint8 **BGR** array.

    The header is read first: images over ``max_bytes`` bytes or ``max_pixels``
    pixels raise :class:`FrameTooLarge` without being decoded (decompression bombs
    included). Empty, truncated or unknown data, and any other format (TIFF, EPS...), raises
    :class:`UnreadableImage`, as does a JPEG or PNG that costs more to read than any encoder's
    (:func:`refuse_costly`). EXIF orientation is applied (broken EXIF is ignored); 16-bit grey
    images are scaled to 8 bits. ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size
    as long as both sides stay at least this long (a thumbnail's decode, several times faster).
    """
    if not data:
        raise UnreadableImage("empty image")
    if len(data) > max_bytes:
        raise FrameTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes}")
    refuse_costly(data)
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
        img = _upright(_full_key(img, data))
        rgb = _opaque(_eight_bit(img))
    except FrameTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(_too_many_pixels(exc, max_pixels)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(_unreadable(exc, data)) from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])


def animated(img: Image.Image) -> bool:
    """Whether the opened ``img`` is an animated WebP or PNG: several pictures, maybe of several
    people, of which a decode keeps the first alone. Not a JPEG's frames: a phone's MPO file holds
    its photo and a preview or depth map so, and is a still photo."""
    return img.format in ("WEBP", "PNG") and getattr(img, "n_frames", 1) > 1


def _too_many_pixels(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    """Pillow's refusal of a header claiming a huge size (it stops before our own size check), said
    as that check says it: its text ("could be decompression bomb DOS attack", Pillow's own
    limit) reached API callers and the admin."""
    claimed = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(claimed.group(1))} pixels" if claimed else "more pixels than that"
    return f"image is {size}; the limit is {max_pixels} pixels"


# Image.info keys that only say how the pixels are encoded or shown; any other (EXIF, XMP, IPTC,
# comments, PNG text chunks) may say where, when and with what camera a photo was taken
_PLAIN_INFO = frozenset({"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive", "progression",
                         "adobe", "adobe_transform", "icc_profile", "gamma", "srgb", "chromaticity", "transparency",
                         "aspect", "interlace", "loop", "background", "duration", "version", "compression"})


# JPEG APPn segments that only say how the pixels are encoded or shown, by marker, the identifier
# they start with and, where the format fixes it, their length: APP0 JFIF without a thumbnail (16
# bytes: not JFXX, nor JFIF's own thumbnail, pictures of the original), APP2 ICC profile (not
# FlashPix or a multi-picture index), APP14 Adobe's colour transform (14 bytes). Any other (EXIF,
# XMP, a maker's or an app's own) may say, or show, more than the pixels do
_PLAIN_APP_SEGMENTS = {0xE0: (b"JFIF\x00", 16), 0xE2: (b"ICC_PROFILE\x00", None), 0xEE: (b"Adobe", 14)}
# the next marker in a scan's entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker or another 0xFF (a fill byte); found by the regex engine, not byte by byte in Python
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILL = re.compile(rb"\xff+")


def _jpeg_markers(data: bytes) -> Iterator[tuple[int, int, int]]:
    """The markers of a JPEG after its start of image, in order: ``(marker, position, end)``, where
    ``end`` is where its segment ends (for a start of scan, where the scan's entropy-coded data
    ends: at the next marker); a run of fill bytes before a marker as ``(0xFF, start, end)``, and
    junk where a marker must be (bytes a decoder skips, up to the next 0xFF) as ``(-1, start,
    end)``. Ends after the end-of-image marker, or with ``(-1, position, position)`` where no marker
    follows (truncated, a scan without an end)."""
    n, pos = len(data), 2
    while True:
        if pos + 2 > n:
            yield -1, pos, pos   # truncated
            return
        if data[pos] != 0xFF:   # junk where a marker must be, which decoders skip up to the next 0xFF
            end = data.find(b"\xff", pos)
            yield -1, pos, max(end, pos)
            if end < 0:
                return
            pos = end
            continue
        if data[pos + 1] == 0xFF:   # fill bytes before a marker: (0xFF, their start, their end)
            end = _FILL.match(data, pos).end() - 1   # the last 0xFF is the marker's
            yield 0xFF, pos, end
            pos = end
            if pos + 2 > n:
                yield -1, pos, pos
                return
        marker = data[pos + 1]
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:   # markers without a length
            yield marker, pos, pos + 2
            if marker == 0xD9:
                return
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 > n or length < 2:
            yield -1, pos, pos
            return
        end = pos + 2 + length
        if marker == 0xDA:   # start of scan: its data runs to the next marker
            found = _NEXT_MARKER.search(data, end)
            if found is None:
                yield -1, pos, pos   # no end-of-image marker
                return
            end = found.start()
        yield marker, pos, end
        pos = end


def _jpeg_hides_more(data: bytes) -> bool:
    """Whether a JPEG holds what Pillow's ``info`` does not show: an APPn segment other than
    :data:`_PLAIN_APP_SEGMENTS` or a comment anywhere (between a progressive JPEG's scans too), a
    byte where a marker must be (Pillow skips such junk and decodes the picture all the same), or
    anything but zero padding after its end-of-image marker (a phone's appended clip, a second
    JPEG with its own EXIF). The whole file is walked: its segments and, after each start of scan,
    the entropy-coded data up to the next marker (:func:`_jpeg_markers`)."""
    for marker, pos, end in _jpeg_markers(data):
        if marker < 0 or marker == 0xFE:   # no marker where one must be; a comment
            return True
        if marker == 0xD9:   # end of image: only zero padding may follow
            return bool(data[end:].strip(b"\x00"))
        if 0xE0 <= marker <= 0xEF:
            identifier, size = _PLAIN_APP_SEGMENTS.get(marker, (None, None))
            if identifier is None or not data[pos + 4:end].startswith(identifier) or (
                    size is not None and end - pos - 2 != size):
                return True
    return True


# PNG chunks that only say how the pixels are encoded or shown (not text, EXIF, times, private or
# animation chunks), and WebP's (not EXIF, XMP or animation)
_PLAIN_PNG_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
                               b"sBIT", b"pHYs", b"bKGD"})
_PLAIN_WEBP_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP"})


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """A PNG's chunks after its signature, in order: ``(kind, position, end)``; ends after its end
    chunk, or when too few bytes are left for another chunk's header (``end`` past the data: a
    chunk cut short)."""
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        yield kind, pos, pos + 12 + length
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_hides_more(data: bytes) -> bool:
    """Whether a PNG holds a chunk other than :data:`_PLAIN_PNG_CHUNKS` anywhere (Pillow's ``info``
    shows only those before the pixels), or anything after its end chunk."""
    for kind, _pos, end in _png_chunks(data):
        if kind not in _PLAIN_PNG_CHUNKS:
            return True
        if kind == b"IEND":
            return end != len(data)
    return True   # no end chunk


def refuse_costly(data: bytes) -> None:
    """Raise :class:`UnreadableImage` for a JPEG of more than :data:`MAX_JPEG_SCANS` scans or
    :data:`MAX_JPEG_MARKERS` markers, fill bytes and junk bytes, or a PNG of more than :data:`MAX_PNG_CHUNKS`
    chunks: no encoder writes such a file, and reading it costs seconds (see the limits). Call it
    before Pillow reads untrusted bytes; it stops at the first limit passed, and other data passes."""
    if data.startswith(b"\xff\xd8\xff"):   # as Pillow tells a JPEG
        scans = steps = 0
        for marker, pos, end in _jpeg_markers(data):
            steps += end - pos if marker in (0xFF, -1) else 1   # fill and junk: Pillow reads them byte by byte
            scans += marker == 0xDA
            if scans > MAX_JPEG_SCANS:
                raise UnreadableImage(f"cannot decode image: a JPEG of more than {MAX_JPEG_SCANS} scans")
            if steps > MAX_JPEG_MARKERS:
                raise UnreadableImage(f"cannot decode image: a JPEG of more than {MAX_JPEG_MARKERS} markers")
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        for count, _chunk in enumerate(_png_chunks(data), 1):
            if count > MAX_PNG_CHUNKS:
                raise UnreadableImage(f"cannot decode image: a PNG of more than {MAX_PNG_CHUNKS} chunks")


def _webp_hides_more(data: bytes) -> bool:
    """Whether a WebP holds a chunk other than :data:`_PLAIN_WEBP_CHUNKS`, or bytes after the size
    its RIFF header gives."""
    n = len(data)
    if n < 12 or int.from_bytes(data[4:8], "little") + 8 != n:
        return True
    pos = 12
    while pos + 8 <= n:
        kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if kind not in _PLAIN_WEBP_CHUNKS:
            return True
        pos += 8 + length + (length & 1)
    return pos != n


def _hides_more(kind: str, data: bytes) -> bool:
    """Whether an image of Pillow's format ``kind`` holds more than its pixels and how to show them."""
    if kind in ("JPEG", "MPO"):
        return _jpeg_hides_more(data)
    if kind == "PNG":
        return _png_hides_more(data)
    if kind == "WEBP":
        return _webp_hides_more(data)
    return True


def turn_clockwise(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` (``HxW[xC]``) turned ``degrees`` clockwise, a multiple of 90 (0: itself)."""
    if degrees % 90:
        raise ValueError(f"a quarter turn or more: {degrees} degrees")
    quarters = degrees // 90 % 4
    # OpenCV's: numpy's rot90 copied into a contiguous array took 112 ms for a 12-megapixel photo
    # turned half a circle, cv2.rotate 8 ms (a photo with no face is tried so: photos._half_turn)
    if not quarters:
        return image
    return cv2.rotate(image, (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)[quarters - 1])


def without_metadata(data: bytes, *, max_bytes: int, max_pixels: int, turn: int = 0) -> bytes:
    """``data`` as a photo may be kept: unchanged when it holds nothing but its pixels and how to
    show them, else re-encoded from its upright pixels (:func:`decode_image`) without EXIF (a
    phone's GPS position, the time, the camera's serial number), XMP, IPTC, comments, text, a JPEG's
    other APPn segments, a PNG's or WebP's other chunks, or bytes after its end (the whole file is
    walked: what comes after the pixels is not in Pillow's ``info``): a PNG as a PNG when that fits
    in ``max_bytes`` (lossless), else, and a JPEG or WebP, as
    a JPEG of the highest quality that fits (95 down to 75), scaled down until it fits at 75 (a noisy
    photo saved at a low quality can grow when saved at 75). The orientation is applied to the
    pixels. ``turn``: degrees clockwise to turn them besides (:func:`turn_clockwise`; a photo on its
    side without EXIF orientation, whose face the engine found turned), re-encoded then whatever the
    file holds. A photo with transparent pixels is flattened on white, as it is shown (what they
    hold is not kept); an RGB colour profile is kept with the pixels it describes. Raises as
    :func:`decode_image` does."""
    refuse_costly(data)
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            extra = set(img.info) - _PLAIN_INFO
            kind = img.format
            # an RGB colour profile (Adobe RGB, Display P3) says how to show the pixels, which stay as
            # they were: kept, or the stored photo's colours changed. A CMYK or grey one describes
            # other pixels than the RGB ones written here: left out
            icc = img.info.get("icc_profile")
            icc = icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None
            # what transparent pixels hold (an erased bystander's colours) is not shown, yet kept
            # in the file: flattened on white as shown. An opaque one (many exports have an alpha
            # channel all 255) is kept byte for byte; too many pixels to look: decode_image refuses it
            see_through = _transparent(img, max_pixels, data)
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(_too_many_pixels(exc, max_pixels)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(_unreadable(exc, data)) from exc
    if not extra and not see_through and not turn % 360 and not _hides_more(kind, data):
        return data
    bgr = turn_clockwise(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels), turn)
    rgb = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    # a WebP is mostly lossy already: as a PNG it could be ten times its size
    profile = {"icc_profile": icc} if icc else {}
    encodings = ([{"format": "PNG", **profile}] if kind == "PNG" else []) + [
        {"format": "JPEG", "quality": q, **profile} for q in (95, 90, 85, 75)]
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
        rgb.save(out, format="JPEG", quality=75, **profile)
    return out.getvalue()


def _unreadable(exc: BaseException, data: bytes) -> str:
    """The message of an image Pillow could not read: its kind, not Pillow's text (which may name
    a buffer's memory address); the cause stays chained for the logs. A file that begins as a JPEG,
    PNG or WebP does (:func:`image_extension`) is damaged, whatever Pillow made of the rest (a JPEG's
    first bytes and then noise were "not a JPEG" here and "damaged" at enrolment and the kiosk)."""
    if isinstance(exc, UnidentifiedImageError) and image_extension(data) is None:
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


def _may_see_through(img: Image.Image) -> bool:
    """Whether ``img`` can have pixels that are not fully opaque: an alpha channel, or a transparent
    palette entry or colour."""
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _transparent(img: Image.Image, max_pixels: int, data: bytes) -> bool:
    """Whether ``img`` (opened from ``data``, not yet loaded) has a pixel not fully opaque; read only
    for an image that can have one (an alpha channel, a transparent palette entry or colour), and
    taken as ``True`` past ``max_pixels`` (its decode is refused anyway)."""
    if not _may_see_through(img):
        return False
    if img.width * img.height > max_pixels:
        return True
    return _full_key(img, data).convert("RGBA").getchannel("A").getextrema()[0] < 255


def _full_key(img: Image.Image, data: bytes) -> Image.Image:
    """A 16-bit PNG whose transparent colour is a key (a ``tRNS`` chunk) as an 8-bit image with an
    alpha channel taken from its 16-bit samples; any other image as it is. Pillow reads such a PNG
    in 8 bits but keeps the key in 16: compared with the 8-bit pixels, the transparent pixels were
    seen in their colour, and with a small key (a near-black) every opaque pixel of that 8-bit value
    was whitened in the stored file; a 16-bit grey one lost its key when scaled to 8 bits. The
    samples are read again by OpenCV, which keeps their 16 bits; EXIF and the rest of ``info`` stay."""
    key = img.info.get("transparency")
    if img.format != "PNG" or key is None or data[24:25] != b"\x10" or img.mode not in ("RGB", "I", "I;16", "I;16B"):
        return img
    samples = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if samples is None or samples.dtype != np.uint16 or samples.shape[:2] != (img.height, img.width):
        raise UnreadableImage("cannot decode image: damaged or truncated (16-bit PNG)")
    # in OpenCV's integer arithmetic, on its BGR(A) samples as decoded: through float64 a
    # 16-megapixel photo took 750 MB more than the same photo without a key, now about 180 more
    if samples.ndim == 3:   # maybe with OpenCV's own alpha from the key: matched on the colours alone
        b, g, r = (int(k) for k in reversed(key))
        hidden = cv2.inRange(samples, (b, g, r, 0)[:samples.shape[2]], (b, g, r, 65535)[:samples.shape[2]])
        channels, mode = cv2.split(cv2.convertScaleAbs(samples, alpha=1 / 257))[2::-1], "RGBA"
    else:
        hidden = cv2.inRange(samples, int(key), int(key))
        channels, mode = [cv2.convertScaleAbs(samples, alpha=1 / 257)], "LA"   # rounded to the nearest
    del samples
    out = Image.fromarray(cv2.merge([*channels, cv2.bitwise_not(hidden)]), mode)
    out.info = {k: v for k, v in img.info.items() if k != "transparency"}
    out.format = img.format
    return out


def _opaque(img: Image.Image) -> Image.Image:
    """``img`` in RGB as a browser shows it on a white page: its transparent pixels white.
    ``convert("RGB")`` alone drops the alpha channel and shows what the transparent pixels still
    hold (an editor erases to transparency and leaves the colours), so a person cut out of a photo
    was still seen ("more than one usable face"), shown in its thumbnail and kept in the stored file."""
    if _may_see_through(img):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return img.convert("RGB")


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
