"""Hostile photo uploads for the admin and API upload fuzz tests (issue 7).

The file contents are the decoder fuzz's generator (:func:`tests.test_fuzz_decode.hostile`: random
bytes, truncated and corrupted JPEG/PNG/GIF/WebP/BMP, 1x1 images, headers claiming 20000x20000 and
more), plus real decompression bombs (complete, valid streams of a few kB that decode to more
pixels than ``MASKNET_MAX_PIXELS``), files over the size limit, empty files, text and SVG; each
sent under a drawn file name and content type, often wrong ones.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import struct
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

from hypothesis import example
from hypothesis import strategies as st

from enrollment.services import REFUSALS
from recognition.engine import EngineConfig, NoFaceFound
from recognition.engine.decode import decode_image

from .test_fuzz_decode import hostile, jpeg_claiming, png_claiming

MAX_PHOTO_BYTES = 64 * 1024     # the tests lower MASKNET_MAX_PHOTO_BYTES so oversized files stay cheap
HEAP_GROWTH_LIMIT = 8 * 1024 * 1024

NAMES = ["photo.jpg", "photo.JPEG", "photo.png", "photo.webp", "photo.gif", "photo.bmp", "notes.txt", "noext",
         "photo.jpg.exe", "../../../etc/passwd", "éèà 照片.jpg", "a" * 200 + ".png", ".jpg", "photo.svg"]
CONTENT_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif", "application/octet-stream", "text/plain",
                 "image/svg+xml", "application/x-msdownload", ""]


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid greyscale PNG of ``width x height`` black pixels: a few kB that would
    decode to ``width * height`` bytes (and three times that as RGB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # each row is a filter byte (0) and its black pixels: the whole stream is zeros
    compressor, raw, block = zlib.compressobj(9), (width + 1) * height, b"\0" * (1 << 20)
    body = b"".join(compressor.compress(block[:min(len(block), raw - i)]) for i in range(0, raw, len(block)))
    body += compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@functools.cache
def bombs() -> tuple[bytes, ...]:
    """Real decompression bombs just over, and far over, the pixel limit (built once)."""
    return (png_bomb(4097, 4097), png_bomb(20000, 1000), png_bomb(1, 17_000_000))


@dataclass(frozen=True)
class Upload:
    """One generated upload: the bytes, the file name and the declared content type."""

    data: bytes
    name: str
    content_type: str

    def __repr__(self) -> str:   # hypothesis prints failing examples: keep them short
        return f"Upload({len(self.data)} bytes {self.data[:12]!r}..., {self.name[:40]!r}, {self.content_type!r})"


@functools.cache
def pixel_bombs() -> frozenset[bytes]:
    """The real bombs and headers claiming 30000x30000 and 40000x40000 pixels."""
    return frozenset([*bombs(), png_claiming(30000, 30000), jpeg_claiming(40000, 40000)])


def must_be_too_large(data: bytes) -> bool:
    """Whether ``data`` must be refused as too large (bytes over the limit, or a pixel bomb)."""
    return len(data) > MAX_PHOTO_BYTES or data in pixel_bombs()


def must_refuse() -> list[Upload]:
    """Uploads every run sends besides the generated ones: the pixel bombs, an empty file, a file
    just over the size limit."""
    return [Upload(data, name, "image/png") for data, name in
            [*((b, "bomb.png") for b in sorted(pixel_bombs())), (b"", "empty.jpg"),
             (b"\xff\xd8\xff" + b"\0" * MAX_PHOTO_BYTES, "big.jpg")]]


def with_fixed_examples(test):
    """Decorates a hypothesis test of one :class:`Upload` with :func:`must_refuse`'s uploads."""
    for upload in must_refuse():
        test = example(upload)(test)
    return test


def contents() -> st.SearchStrategy[bytes]:
    """Hostile file contents (weighted towards the decoder fuzz's images)."""
    oversized = st.integers(MAX_PHOTO_BYTES + 1, 3 * MAX_PHOTO_BYTES).map(
        lambda n: b"\xff\xd8\xff\xe0" + b"\0" * (n - 4))
    text = st.sampled_from([b"", b"hello", b"<svg xmlns='http://www.w3.org/2000/svg' width='20000' height='20000'/>",
                            b"GIF89a" + b"\0" * 32, b"RIFF\0\0\0\0WEBPVP8 ", b"\x89PNG\r\n\x1a\n"])
    return st.one_of(hostile(), hostile(), hostile(), hostile(), oversized, text,
                     st.sampled_from(range(3)).map(lambda i: bombs()[i]))


def uploads() -> st.SearchStrategy[Upload]:
    """Hostile uploads: contents under a drawn (often wrong) file name and content type."""
    return st.builds(Upload, contents(), st.sampled_from(NAMES), st.sampled_from(CONTENT_TYPES))


class NoFaceEngine:
    """The engine behind ``photo_add`` when the models are not needed: the product's own decoder
    with the engine's limits, then nobody found in what decoded."""

    config = EngineConfig()

    def decode(self, data: bytes):
        return decode_image(data, max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_pixels)

    def analyze(self, image, **kwargs):
        assert image.ndim == 3 and image.shape[2] == 3
        raise NoFaceFound("no face")


def media_files(media_root: Path) -> list[Path]:
    """Every file under the media folder (nothing may be stored for a refused photo)."""
    return [p for p in Path(media_root).rglob("*") if p.is_file()] if Path(media_root).exists() else []


# What hypothesis allocates while generating examples (it keeps some of them) is left out of the
# heap figures: it is not the site's memory.
GENERATION = [tracemalloc.Filter(False, pattern) for pattern in
              ("*/hypothesis/*", "*/sortedcontainers/*", "*/tests/upload_fuzz.py", "*/tests/test_fuzz_decode.py",
               "<string>", "*/tracemalloc.py")]
MAX_RISE = 64 * 1024 * 1024     # during one upload; a decoded bomb would be hundreds of MB


class HeapWatch:
    """tracemalloc around a fuzz run: the heap once warm and at the end (less what example
    generation allocated), and the largest rise while one upload was handled."""

    def __init__(self, warm_after: int) -> None:
        self.warm_after, self.count, self.max_rise = warm_after, 0, 0
        self.warm: tracemalloc.Snapshot | None = None
        self.end: tracemalloc.Snapshot | None = None

    def __enter__(self) -> HeapWatch:
        tracemalloc.start()
        return self

    def __exit__(self, *exc) -> None:
        self.end = self._heap()
        tracemalloc.stop()

    @staticmethod
    def _heap() -> tracemalloc.Snapshot:
        gc.collect()   # requests that ended in an exception are reference cycles: garbage, not kept
        return tracemalloc.take_snapshot().filter_traces(GENERATION)

    @staticmethod
    def _size(snapshot: tracemalloc.Snapshot) -> int:
        return sum(stat.size for stat in snapshot.statistics("filename"))

    @contextlib.contextmanager
    def one(self):
        """Around the handling of one upload."""
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        yield
        self.max_rise = max(self.max_rise, tracemalloc.get_traced_memory()[1] - before)
        self.count += 1
        if self.count == self.warm_after:
            self.warm = self._heap()

    def check(self) -> None:
        """The heap did not grow with the number of uploads and no upload made it balloon."""
        mib = 1024 * 1024
        warm, end = self._size(self.warm), self._size(self.end)
        top = ", ".join(f"{stat.traceback[0].filename.rsplit('/', 2)[-1]} {stat.size_diff / 1024:+.0f} kB"
                        for stat in self.end.compare_to(self.warm, "filename")[:3])
        print(f"\n{self.count} uploads: heap {warm / mib:.2f} MiB after {self.warm_after}, {end / mib:.2f} MiB at "
              f"the end (most: {top}); largest rise during one upload {self.max_rise / mib:.2f} MiB")
        assert end - warm < HEAP_GROWTH_LIMIT, (warm, end)
        assert self.max_rise < MAX_RISE, self.max_rise


REFUSAL_CODES = set(REFUSALS)
