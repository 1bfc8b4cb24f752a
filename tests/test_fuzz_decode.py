"""Hostile image bytes: every input gets a typed answer, none crashes the decoder."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from recognition.engine.decode import decode_image
from recognition.engine.errors import FrameTooLarge, UnreadableImage

LIMITS = {"max_bytes": 512 * 1024, "max_pixels": 4096 * 4096}
FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP"]


def encoded(fmt: str, w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def png_claiming(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 128)) + chunk(b"IEND", b""))


def jpeg_claiming(w: int, h: int) -> bytes:
    """A real small JPEG whose SOF0 header is rewritten to claim ``w x h``."""
    data = bytearray(encoded("JPEG", 8, 8, 0))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@st.composite
def hostile(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "corrupted", "tiny", "huge_header", "valid"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=4096))
    if kind == "huge_header":
        w, h = draw(st.integers(20000, 65535)), draw(st.integers(20000, 65535))
        return draw(st.sampled_from([png_claiming(w, h), jpeg_claiming(w, h)]))
    fmt = draw(st.sampled_from(FORMATS))
    w, h = (1, 1) if kind == "tiny" else (draw(st.integers(2, 64)), draw(st.integers(2, 64)))
    data = encoded(fmt, w, h, draw(st.integers(0, 2**16)))
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "corrupted":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 20))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        return bytes(buf)
    return data


# issue 7: at least 10,000 generated frames to the decoder (about 20 s on 2 cores). 4,000 met every
# way Pillow failed in 10,000 (all by the 350th input), and the test sent 4,000 from 2026-12-05 to
# 2026-12-07: fewer than the issue asks for, for 12 s
INPUTS = 10_000
# what the run must have seen: each decodable format decoded, and every kind of refusal
KINDS = {"decoded JPEG", "decoded PNG", "decoded WEBP", "FrameTooLarge", "UnreadableImage: empty image",
         "UnreadableImage: cannot decode image: not a JPEG, PNG or WebP image",
         "UnreadableImage: cannot decode image: damaged or truncated"}


@pytest.mark.reliability
def test_decoder_answers_every_input_with_an_image_or_a_typed_error():
    seen: dict[str, int] = {}

    @settings(max_examples=INPUTS, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile())
    def one_input(data: bytes):
        try:
            img = decode_image(data, **LIMITS)
        except FrameTooLarge:
            kind = "FrameTooLarge"
        except UnreadableImage as exc:
            kind = f"UnreadableImage: {str(exc).split(' (')[0]}"   # without the error's class
        else:
            assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
            assert img.shape[0] * img.shape[1] <= LIMITS["max_pixels"]
            kind = f"decoded {Image.open(io.BytesIO(data)).format}"
        seen[kind] = seen.get(kind, 0) + 1

    one_input()
    assert sum(seen.values()) >= INPUTS and KINDS <= set(seen), seen


@pytest.mark.reliability
def test_decompression_bomb_headers_are_refused_before_decoding():
    for data in (png_claiming(30000, 30000), jpeg_claiming(40000, 40000)):
        with pytest.raises(FrameTooLarge):
            decode_image(data, **LIMITS)
