"""Typed errors on bad image bytes, checked before any pixel is decoded."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from recognition.engine.decode import decode_image, image_extension
from recognition.engine.errors import FrameTooLarge, UnreadableImage

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 40_000_000}


def encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decodes_jpeg_to_bgr():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    out = decode_image(encode(rgb, "PNG"), **LIMITS)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 255]  # BGR order


def test_empty_bytes():
    with pytest.raises(UnreadableImage):
        decode_image(b"", **LIMITS)


def test_random_bytes():
    with pytest.raises(UnreadableImage):
        decode_image(np.random.default_rng(0).bytes(5000), **LIMITS)


def test_truncated_jpeg():
    data = encode(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(UnreadableImage):
        decode_image(data[: len(data) // 3], **LIMITS)


def test_huge_header_refused_without_decoding():
    with pytest.raises(FrameTooLarge):
        decode_image(png_header_only(20000, 20000), **LIMITS)


def test_a_header_past_pillows_own_limit_is_refused_in_our_words():
    """Pillow refuses a header over 179 Mpx before our size check: its text ("could be decompression
    bomb DOS attack", its own limit) reached API callers and the admin."""
    from recognition.engine.decode import without_metadata

    for refuse in (decode_image, without_metadata):
        with pytest.raises(FrameTooLarge) as refused:
            refuse(png_header_only(60000, 60000), **LIMITS)
        assert str(refused.value) == f"image is 3600000000 pixels; the limit is {LIMITS['max_pixels']} pixels"


def test_decoding_leaves_the_process_warning_filters_alone(monkeypatch):
    """Kiosk threads decode at the same time: per-call warning filters (catch_warnings) are not
    thread-safe and leaked into the process-wide list; bombs are refused by the pixel limit."""
    from recognition.engine import decode

    class NoFilters:
        def __getattr__(self, name):
            raise AssertionError(f"decode_image used warnings.{name} while decoding")

    monkeypatch.setattr(decode, "warnings", NoFilters())
    for size in (12000, 20000):   # over Pillow's warning (89 Mpx) and error (179 Mpx) limits
        with pytest.raises(FrameTooLarge):
            decode_image(png_header_only(size, size), max_bytes=LIMITS["max_bytes"], max_pixels=100_000_000)
    assert decode_image(encode(np.zeros((8, 8, 3), np.uint8), "PNG"), **LIMITS).shape == (8, 8, 3)


def test_too_many_bytes():
    with pytest.raises(FrameTooLarge):
        decode_image(b"\xff" * 100, max_bytes=50, max_pixels=100)


def _jpeg_with_exif(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A 64x48 JPEG (left half white) with a raw EXIF block of ``(tag, type, count, 4-byte value)``."""
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", tag, kind, count) + value
                                                       for tag, kind, count, value in entries) + b"\0\0\0\0"
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", exif=b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd)
    return buf.getvalue()


def test_exif_orientation_is_applied_and_broken_exif_is_ignored():
    orientation_6 = (0x0112, 3, 1, struct.pack("<HH", 6, 0))        # SHORT 6: rotate to show upright
    assert decode_image(_jpeg_with_exif([orientation_6]), **LIMITS).shape[:2] == (64, 48)
    # XResolution stored as text: ImageOps.exif_transpose raised TypeError (an upload's 500)
    text_resolution = (0x011A, 2, 4, b"ab\0\0")
    img = decode_image(_jpeg_with_exif([orientation_6, text_resolution]), **LIMITS)
    assert img.shape == (64, 48, 3)


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (32, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    img = decode_image(buf.getvalue(), **LIMITS)
    grey = img[..., 0].astype(int)
    assert grey[0, 0] == 0 and grey[0, -1] == 255
    assert 0.45 < (grey > 127).mean() < 0.55                  # clipping made 99.6% of it white


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "GIF"])
def test_only_camera_and_photo_formats_are_decoded(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, fmt)
    with pytest.raises(UnreadableImage) as info:
        decode_image(buf.getvalue(), **LIMITS)
    assert str(info.value) == "cannot decode image: not a JPEG, PNG or WebP image"   # no object address


@pytest.mark.parametrize("start", [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x10\x00\x00\x00WEBP"])
def test_a_file_that_begins_as_an_image_and_then_is_noise_is_damaged_not_another_type(start):
    """A JPEG's first bytes and then noise were "not a JPEG, PNG or WebP image" to identify and verify,
    "damaged" at enrolment and the kiosk (a bad-input review): one rule, ``image_extension``."""
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    assert image_extension(start + noise) is not None and image_extension(noise) is None
    with pytest.raises(UnreadableImage) as info:
        decode_image(start + noise, **LIMITS)
    assert str(info.value).startswith("cannot decode image: damaged or truncated ("), str(info.value)
    with pytest.raises(UnreadableImage) as info:
        decode_image(noise, **LIMITS)
    assert str(info.value) == "cannot decode image: not a JPEG, PNG or WebP image"


def test_a_damaged_image_is_named_without_pillow_internals():
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "PNG")
    with pytest.raises(UnreadableImage) as info:
        decode_image(buf.getvalue()[:60], **LIMITS)
    assert str(info.value).startswith("cannot decode image: damaged or truncated (") and "0x" not in str(info.value)


def test_a_photo_is_kept_without_its_metadata():
    """EXIF (a phone's GPS position, time, camera), comments and PNG text are not kept: such a photo
    is re-encoded from its upright pixels; one that holds nothing but pixels is kept byte for byte."""
    from recognition.engine.decode import without_metadata

    gps = Image.Exif()
    gps[0x0112] = 6                                    # rotate to show upright
    gps[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}      # GPS latitude
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", exif=gps.tobytes(), comment=b"at home")
    kept = without_metadata(buf.getvalue(), **LIMITS)
    with Image.open(io.BytesIO(kept)) as out:
        assert out.format == "JPEG" and out.size == (48, 64)        # upright, as it was shown
        assert "exif" not in out.info and "comment" not in out.info and not out.getexif()
    assert np.abs(decode_image(kept, **LIMITS).astype(int) - decode_image(buf.getvalue(), **LIMITS)).mean() < 2

    text = PngImagePlugin.PngInfo()
    text.add_text("Location", "48.8566 N, 2.3522 E")
    png = io.BytesIO()
    Image.fromarray(img).save(png, "PNG", pnginfo=text)
    stripped = without_metadata(png.getvalue(), **LIMITS)
    with Image.open(io.BytesIO(stripped)) as out:
        assert out.format == "PNG" and not set(out.info) & {"Location"}
    assert np.array_equal(decode_image(stripped, **LIMITS), decode_image(png.getvalue(), **LIMITS))

    plain = io.BytesIO()
    Image.fromarray(img).save(plain, "JPEG")                        # a browser's canvas: JFIF only
    assert without_metadata(plain.getvalue(), **LIMITS) == plain.getvalue()
    with pytest.raises(UnreadableImage):
        without_metadata(b"\xff\xd8\xff garbage", **LIMITS)


def _app_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_a_jpegs_other_app_segments_and_bytes_after_its_end_are_not_kept():
    """What Pillow's ``info`` does not show is not kept either: an APPn segment of a maker's or an
    app's own (APP3 here) and bytes after the end-of-image marker (a phone's appended clip)."""
    from recognition.engine.decode import without_metadata

    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG")
    plain = buf.getvalue()
    app3 = plain[:2] + _app_segment(0xE3, b"GPS 48.8566 N") + plain[2:]
    trailer = plain + b"motion clip taken at 48.8566 N"
    thumbnail = plain[:2] + _app_segment(0xE0, b"JFXX\x00\x10 48.8566") + plain[2:]   # APP0, not JFIF
    filled = plain[:2] + b"\xff" + _app_segment(0xE3, b"GPS 48.8566 N") + plain[2:]    # a fill byte first
    for data in (app3, trailer, thumbnail, filled):
        assert Image.open(io.BytesIO(data)).info.keys() == Image.open(io.BytesIO(plain)).info.keys()
        kept = without_metadata(data, **LIMITS)
        assert b"48.8566" not in kept and kept.endswith(b"\xff\xd9")
        assert np.abs(decode_image(kept, **LIMITS).astype(int) - decode_image(plain, **LIMITS)).mean() < 2
    tagged = io.BytesIO()
    Image.fromarray(img).save(tagged, "JPEG", comment=b"GPS 48.8566 N")
    second = plain + tagged.getvalue()                  # ends in an end-of-image marker too
    first = 4 + int.from_bytes(plain[4:6], "big")      # after the JFIF segment
    junk = plain[:first] + b"\x00" + _app_segment(0xE3, b"GPS 48.8566 N") + plain[first:]   # Pillow skips the junk
    jfif = plain[:2] + _app_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x02" + b"48.8566 N ab") + plain[2:]
    for data in (second, junk, jfif):
        kept = without_metadata(data, **LIMITS)
        assert b"48.8566" not in kept
        assert np.abs(decode_image(kept, **LIMITS).astype(int) - decode_image(plain, **LIMITS)).mean() < 2
    icc = plain[:2] + _app_segment(0xE2, b"ICC_PROFILE\x00\x01\x01") + plain[2:] + b"\x00\x00"
    assert without_metadata(icc, **LIMITS) == icc      # a colour profile and zero padding say nothing
    # the whole file is walked: a progressive JPEG's several scans and a baseline one's restart
    # markers are pixels, kept as they are
    for options in ({"progressive": True}, {"restart_marker_blocks": 1}):
        other = io.BytesIO()
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(other, "JPEG",
                                                                                             **options)
        assert without_metadata(other.getvalue(), **LIMITS) == other.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import zlib

    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def test_a_png_or_webps_late_chunks_private_chunks_and_trailer_are_not_kept():
    """Pillow's ``info`` shows a PNG's chunks before its pixels only, and neither a private chunk
    nor bytes after the end: the whole file is walked; one with nothing else is kept as it is."""
    from recognition.engine.decode import without_metadata

    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = 255
    png = io.BytesIO()
    Image.fromarray(img).save(png, "PNG")
    plain = png.getvalue()
    end = plain.rindex(b"IEND") - 4
    late_text = plain[:end] + _png_chunk(b"tEXt", b"Location\x0048.8566 N") + plain[end:]
    private = plain[:end] + _png_chunk(b"prVt", b"48.8566 N") + plain[end:]
    trailer = plain + b"48.8566 N"
    webp = io.BytesIO()
    Image.fromarray(img).save(webp, "WEBP", lossless=True)
    riff = webp.getvalue()
    chunk = b"ABCD" + (10).to_bytes(4, "little") + b"48.8566 N\x00"
    webp_chunk = b"RIFF" + (len(riff) - 8 + len(chunk)).to_bytes(4, "little") + riff[8:] + chunk
    for data in (late_text, private, trailer):
        assert np.array_equal(decode_image(data, **LIMITS), img[:, :, ::-1])   # still readable
        kept = without_metadata(data, **LIMITS)
        assert b"48.8566" not in kept
        with Image.open(io.BytesIO(kept)) as out:
            assert out.format == "PNG"
        assert np.array_equal(decode_image(kept, **LIMITS), img[:, :, ::-1])   # lossless
    for data in (webp_chunk, riff + b"48.8566 N"):
        kept = without_metadata(data, **LIMITS)
        assert b"48.8566" not in kept and kept.startswith(b"\xff\xd8")    # a JPEG: a WebP is mostly lossy
        assert np.abs(decode_image(kept, **LIMITS).astype(int) - img[:, :, ::-1]).mean() < 2
    # nothing but the pixels (and their colours): kept byte for byte, not re-encoded (a WebP as a PNG
    # could be ten times its size)
    srgb = plain[:33] + _png_chunk(b"sRGB", b"\x00") + plain[33:]
    for data in (plain, srgb, riff):
        assert without_metadata(data, **LIMITS) == data


def test_walking_a_jpeg_padded_with_markers_stays_quick():
    """A scan's data is searched for the next marker by the regex engine: walked byte by byte in
    Python, 8 MiB of stuffed bytes took seconds of a core (the GIL: a web process's kiosks wait)."""
    import time

    from recognition.engine.decode import _jpeg_hides_more

    img = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img, "JPEG")
    plain = img.getvalue()
    for padding in (b"\xff\x00", b"\xff\xd0", b"\xff"):
        data = plain[:-2] + padding * (4 * 2**20 // len(padding)) + b"\xff\xd9"
        started = time.perf_counter()
        assert _jpeg_hides_more(data) is False
        assert time.perf_counter() - started < 1.0, padding


def test_a_jpeg_of_more_scans_than_encoders_write_is_refused_before_it_is_decoded():
    """The decoder passes over the whole picture once per scan and the format bounds their number
    by nothing: copies of one 12-byte refinement scan, 5,000 in a 72 KB file, took 5.6 s to decode
    at 1920x1080 (a kiosk frame's 512 KiB, an upload's 8 MiB: minutes of a core each)."""
    import time

    from recognition.engine.decode import MAX_JPEG_SCANS

    buf = io.BytesIO()
    Image.fromarray(np.full((1080, 1920, 3), 128, np.uint8)).save(buf, "JPEG", progressive=True)
    progressive = buf.getvalue()
    scans = progressive.count(b"\xff\xda")   # the entropy-coded data stuffs every 0xFF it holds
    last = progressive[progressive.rfind(b"\xff\xda"):-2]   # the last scan, up to the end of image

    def with_scans(total: int) -> bytes:
        return progressive[:-2] + last * (total - scans) + b"\xff\xd9"

    assert decode_image(with_scans(MAX_JPEG_SCANS), **LIMITS).shape == (1080, 1920, 3)   # at the limit
    for total in (MAX_JPEG_SCANS + 1, 5000):
        started = time.perf_counter()
        with pytest.raises(UnreadableImage, match=f"more than {MAX_JPEG_SCANS} scans"):
            decode_image(with_scans(total), **LIMITS)
        assert time.perf_counter() - started < 0.5, total


def _png_with_empty_chunks(plain: bytes, count: int, before_pixels: bool) -> bytes:
    """``plain`` (a PNG) with ``count`` empty private chunks after its header or before its end."""
    at = 33 if before_pixels else plain.rfind(b"IEND") - 4
    return plain[:at] + _png_chunk(b"prVt", b"") * count + plain[at:]


def test_files_of_more_markers_or_chunks_than_encoders_write_are_refused_before_pillow_reads_them():
    """Pillow reads a JPEG's markers, the fill or junk bytes before them and a PNG's chunks one at a
    time in Python, holding the GIL: 8 MiB of empty ones took 3 to 4.5 s to open and as long to decode,
    while the process's kiosk sockets and requests waited. Refused in a moment, as a damaged file."""
    import time

    from recognition.engine.decode import MAX_JPEG_MARKERS, MAX_PNG_CHUNKS, without_metadata

    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg, png = encode(rgb, "JPEG"), encode(rgb, "PNG")
    limits = {"max_bytes": 9 * 2**20, "max_pixels": LIMITS["max_pixels"]}
    # up to the limits, a file is read as before
    fine = [jpeg[:2] + b"\xff\xfe\x00\x02" * (MAX_JPEG_MARKERS - 20) + jpeg[2:],
            jpeg[:2] + b"\xff" * (MAX_JPEG_MARKERS - 20) + jpeg[2:],
            jpeg[:20] + b"\x00" * (MAX_JPEG_MARKERS - 20) + jpeg[20:],   # junk after the JFIF segment
            _png_with_empty_chunks(png, MAX_PNG_CHUNKS - 10, before_pixels=True)]
    for data in fine:
        assert decode_image(data, **limits).shape == (64, 64, 3)
        assert decode_image(without_metadata(data, **limits), **limits).shape == (64, 64, 3)
    costly = {"markers": jpeg[:2] + b"\xff\xfe\x00\x02" * (8 * 2**20 // 4) + jpeg[2:],
              "fill": jpeg[:2] + b"\xff" * (8 * 2**20) + jpeg[2:],
              "junk": jpeg[:20] + b"\x00" * (8 * 2**20) + jpeg[20:],
              "chunks before the pixels": _png_with_empty_chunks(png, 8 * 2**20 // 12, before_pixels=True),
              "chunks after the pixels": _png_with_empty_chunks(png, 8 * 2**20 // 12, before_pixels=False)}
    for what, data in costly.items():
        for read in (lambda d: decode_image(d, **limits), lambda d: without_metadata(d, **limits)):
            started = time.perf_counter()
            with pytest.raises(UnreadableImage, match="more than"):
                read(data)
            assert time.perf_counter() - started < 0.5, what


def test_a_photo_re_encoded_without_its_metadata_stays_under_the_size_limit():
    """A noisy photo saved at a low quality grows when saved again at 75: it is scaled down until it
    fits, never kept over the limit (a rebuild would refuse to read it)."""
    from recognition.engine.decode import without_metadata

    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=30, exif=exif.tobytes())
    limit = len(buf.getvalue()) + 100
    kept = without_metadata(buf.getvalue(), max_bytes=limit, max_pixels=LIMITS["max_pixels"])
    with Image.open(io.BytesIO(kept)) as out:
        assert len(kept) <= limit and out.format == "JPEG" and not out.getexif()
        assert 200 <= out.width < 400 and out.width == out.height     # scaled, its shape kept


def test_a_jpeg_may_be_decoded_at_a_reduced_scale_for_a_thumbnail():
    img = np.zeros((1200, 1600, 3), np.uint8)
    img[:, :800] = 255
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(img).save(jpeg, "JPEG")
    Image.fromarray(img).save(png, "PNG")
    small = decode_image(jpeg.getvalue(), **LIMITS, min_side=192)
    assert small.shape == (300, 400, 3)          # 1/4: the smallest scale with both sides >= 192
    assert small[:, :190].mean() > 250 and small[:, 210:].mean() < 5
    assert decode_image(png.getvalue(), **LIMITS, min_side=192).shape == (1200, 1600, 3)   # JPEG only


def _cut_out(width: int = 40, height: int = 30) -> Image.Image:
    """A photo whose right half was erased to transparency, its colours (a bystander) left in the file."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = (30, 120, 200)
    rgba[:, : width // 2, 3] = 255          # the kept half, opaque
    rgba[:, width // 2:, :3] = (200, 40, 40)  # the erased half: red under alpha 0
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_are_seen_as_a_browser_shows_them(mode):
    """``convert("RGB")`` dropped the alpha channel: an erased bystander was still a face to the
    engine ("more than one usable face"), in the thumbnail and in the stored file."""
    from recognition.engine.decode import without_metadata

    img, options = _cut_out(), {}
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":   # a palette with a transparent entry (the erased half's colour)
        img = img.convert("RGB").quantize(colors=4, method=Image.Quantize.FASTOCTREE)
        options = {"transparency": img.getpixel((39, 0))}
    buf = io.BytesIO()
    img.save(buf, format="PNG", **options)
    out = decode_image(buf.getvalue(), **LIMITS)
    assert out[0, -1].tolist() == [255, 255, 255], out[0, -1]      # erased: white, as shown
    assert out[0, 0].tolist() != [255, 255, 255]                    # kept: its own colour
    stored = without_metadata(buf.getvalue(), **LIMITS)             # flattened, nothing left under it
    with Image.open(io.BytesIO(stored)) as kept:
        assert kept.mode in ("RGB", "L") and "transparency" not in kept.info
        assert kept.convert("RGB").getpixel((39, 0)) == (255, 255, 255)


def test_a_photo_re_encoded_keeps_its_rgb_colour_profile():
    """A photo with EXIF is re-encoded without it; its colour profile (Adobe RGB, Display P3: how to
    show the same pixels) was dropped with it, and the stored photo's colours changed."""
    from PIL import ImageCms

    from recognition.engine.decode import without_metadata

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert profile[16:20] == b"RGB "
    img = Image.fromarray(np.full((24, 24, 3), 90, np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "A camera maker"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", icc_profile=profile, exif=exif)
    stored = without_metadata(buf.getvalue(), **LIMITS)
    with Image.open(io.BytesIO(stored)) as kept:
        assert "exif" not in kept.info and kept.info.get("icc_profile") == profile


def test_an_opaque_png_with_an_alpha_channel_is_kept_byte_for_byte():
    """Many exports write an alpha channel that is 255 everywhere: nothing is hidden under it, so the
    file is kept as uploaded (re-encoding took seconds for a large one and could turn it lossy)."""
    from recognition.engine.decode import without_metadata

    rgba = np.full((20, 30, 4), 255, np.uint8)
    rgba[..., :3] = (10, 120, 200)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    assert without_metadata(buf.getvalue(), **LIMITS) == buf.getvalue()


def _png16(samples: np.ndarray, key: tuple[int, ...], exif: bytes | None = None) -> bytes:
    """A 16-bit PNG (RGB, or grey for a 2-D array) whose ``tRNS`` chunk makes ``key`` transparent."""
    height, width = samples.shape[:2]
    colour_type = 2 if samples.ndim == 3 else 0
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
            + _png_chunk(b"tRNS", struct.pack(f">{len(key)}H", *key))
            + (_png_chunk(b"eXIf", exif) if exif else b"")
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("key", [(40000, 30000, 20000), (128, 128, 128)])
def test_a_sixteen_bit_pngs_transparent_colour_is_read_in_sixteen_bits(key):
    """Pillow reads a 16-bit PNG in 8 bits but keeps its ``tRNS`` key in 16: the transparent half was
    seen (and kept in the file) in its colour, and a near-black key (128, 128, 128) whitened every
    opaque mid-grey pixel (8-bit 128), in the stored file too. Found by a helper's review."""
    from recognition.engine.decode import without_metadata

    samples = np.full((6, 8, 3), 128 * 257, np.uint16)     # opaque mid-grey (8-bit 128)
    samples[:, :4] = key                                  # the left half: the transparent colour
    data = _png16(samples, key)
    out = decode_image(data, **LIMITS)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, -1].tolist() == [128, 128, 128], out[0]
    with Image.open(io.BytesIO(without_metadata(data, **LIMITS))) as kept:
        assert "transparency" not in kept.info
        assert kept.convert("RGB").getpixel((0, 0)) == (255, 255, 255)
        assert kept.convert("RGB").getpixel((7, 0)) == (128, 128, 128)


def test_a_sixteen_bit_grey_pngs_transparent_value_survives_the_scaling_to_eight_bits():
    from recognition.engine.decode import without_metadata

    samples = np.full((6, 8), 1000, np.uint16)
    samples[:, :4] = 40000
    data = _png16(samples, (40000,))
    out = decode_image(data, **LIMITS)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, -1].tolist() == [4, 4, 4], out[0]
    with Image.open(io.BytesIO(without_metadata(data, **LIMITS))) as kept:
        assert kept.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_a_sixteen_bit_png_with_a_key_is_still_turned_by_its_exif_orientation():
    samples = np.full((6, 8, 3), 128 * 257, np.uint16)
    samples[:, :4] = (40000, 30000, 20000)
    exif = Image.Exif()
    exif[0x0112] = 3   # upside down
    out = decode_image(_png16(samples, (40000, 30000, 20000), exif.tobytes()), **LIMITS)
    assert out[0, -1].tolist() == [255, 255, 255] and out[0, 0].tolist() == [128, 128, 128], out[0]
