"""Typed errors on bad image bytes, checked before any pixel is decoded."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from recognition.engine.decode import decode_image
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


def test_too_many_bytes():
    with pytest.raises(FrameTooLarge):
        decode_image(b"\xff" * 100, max_bytes=50, max_pixels=100)
