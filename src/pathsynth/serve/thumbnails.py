"""Thumbnails and screen-sized views of catalog images, made on demand and cached on disk.

A cached file is named by the image's SHA-256 and the size (``<sha256>-<side>.jpg``), so a file
that changes gets a new name, and written atomically, so a reader never sees half of one. Each is
re-encoded from pixels (no EXIF, no comments, no colour profile of the source file). The id ->
file mapping of files already made is kept in memory, so a cached thumbnail costs one small read.

Memory is bounded whatever the requests: one file at one size is made once while other requests
for it wait and then read the cache (eight browsers asking for an 81 MP image's thumbnail decoded
it eight times at once), and images over :data:`LARGE_PIXELS` are decoded one at a time.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from pathsynth.catalog.api import CatalogReader
from pathsynth.files import write_atomic

THUMB_SIDE = 256
VIEW_SIDE = 1024
MEMORY_ENTRIES = 200_000  # id -> cached path entries kept in memory (about 30 MB at most)
LARGE_PIXELS = 16_000_000  # decoded one at a time: an 81 MP RGB image is 243 MB of pixels
_LARGE_DECODES = threading.BoundedSemaphore(1)
_STRIPES = 64  # locks that make each (file, size) once: requests for one file share a stripe


class ThumbnailCache:
    """Makes and keeps downsized JPEG copies of catalog images.

    Args:
        reader: the catalog reader (image id -> store file, hash).
        folder: the cache folder (created when first written).
    """

    def __init__(self, reader: CatalogReader, folder: Path) -> None:
        self.reader = reader
        self.folder = folder
        self._known: OrderedDict[tuple[int, int], Path] = OrderedDict()
        self._lock = threading.Lock()
        self._making = [threading.Lock() for _ in range(_STRIPES)]

    def cached(self, image_id: int, side: int) -> Path | None:
        """The cache file of an image at ``side`` if it is known to exist (no database access)."""
        with self._lock:
            path = self._known.get((image_id, side))
        return path

    def path(self, image_id: int, side: int) -> Path | None:
        """The cache file of image ``image_id`` at ``side`` pixels, made if missing.

        Returns:
            The file, or None when the catalog has no such image or its store file is missing or
            cannot be decoded.
        """
        found = self.reader.image_file(image_id)
        if found is None:
            return None
        source, digest = found
        target = self.made(f"{digest}-{side}.jpg", lambda: downsized_jpeg(source, side))
        if target is None:
            return None
        with self._lock:
            self._known[(image_id, side)] = target
            if len(self._known) > MEMORY_ENTRIES:
                self._known.popitem(last=False)
        return target

    def made(self, name: str, make: Callable[[], bytes | None]) -> Path | None:
        """The cache file ``name`` (a name that changes with what it is made from), made by
        ``make`` if missing: by the first request only, the others waiting for it and then
        reading it. None when ``make`` returns None (nothing is cached then)."""
        target = self.folder / name
        with self._making[hash(name) % _STRIPES]:
            if not target.is_file():
                data = make()
                if data is None:
                    return None
                write_atomic(target, data)
        return target


def downsized_jpeg(source: Path, side: int) -> bytes | None:
    """A JPEG of the image at ``source`` fitting in ``side`` x ``side``, or None when the file is
    missing or not an image."""
    try:
        with Image.open(source) as image:
            large = image.width * image.height > LARGE_PIXELS
            with _LARGE_DECODES if large else contextlib.nullcontext():
                return _downsized(image, side)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _downsized(image: Image.Image, side: int) -> bytes:
    """The opened ``image`` decoded (at a reduced scale where the format allows), fitted in
    ``side`` x ``side`` and re-encoded as JPEG without any metadata."""
    image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale, far faster
    shown = ImageOps.exif_transpose(image).convert("RGB")
    shown.thumbnail((side, side), Image.Resampling.LANCZOS)
    clean = Image.frombytes("RGB", shown.size, shown.tobytes())  # drops every metadata
    buffer = io.BytesIO()
    clean.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()
