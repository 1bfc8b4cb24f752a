"""Decoding untrusted image bytes with limits checked before the pixels are decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FrameTooLarge, UnreadableImage


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG/WebP/BMP/GIF bytes into an ``HxWx3`` uint8 **BGR** array.

    The header is read first: images over ``max_bytes`` bytes or ``max_pixels``
    pixels raise :class:`FrameTooLarge` without being decoded (decompression bombs
    included). Empty, truncated or unknown data raises :class:`UnreadableImage`.
    EXIF orientation is applied.
    """
    if not data:
        raise UnreadableImage("empty image")
    if len(data) > max_bytes:
        raise FrameTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise FrameTooLarge(f"image is {w}x{h} pixels; the limit is {max_pixels} pixels")
            if w < 1 or h < 1:
                raise UnreadableImage("image has no pixels")
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = img.convert("RGB")
    except FrameTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FrameTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(f"cannot decode image: {exc}") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])
