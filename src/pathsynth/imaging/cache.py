"""An on-disk cache of preprocessed images, so a rerun loads tensors instead of decoding files.

Layout: ``cache_dir/<params key>/<file sha256>.pt``, one ``uint8`` (P, 3, S, S) tensor per image
file, and ``params.json`` beside them naming the settings. The params key hashes the
:class:`~pathsynth.imaging.patches.PreprocessConfig` and :data:`CACHE_VERSION`, so any changed
setting (or a change to the preprocessing code that bumps the version) misses the old entries.
Entries are written to a temporary file and moved into place with ``os.replace``, so a killed run
never leaves a half-written entry; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pathsynth.errors import DataError, ImageRefused
from pathsynth.files import atomic_path, write_text_atomic
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image
from pathsynth.imaging.tensorset import TensorImageSet

CACHE_VERSION = 1  # bump when preprocessing changes its output for the same settings


def params_key(config: PreprocessConfig) -> str:
    """A short hash of the settings and the cache version: the folder of their entries."""
    text = json.dumps({"version": CACHE_VERSION, **config.as_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (the same digest the catalog stores at ingest).

    Raises:
        DataError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror})") from None
    return digest.hexdigest()


def load_preprocessed(
    files: Sequence[tuple[Path, str]],
    class_names: Sequence[str],
    config: PreprocessConfig,
    cache_dir: Path | None,
    workers: int = 2,
    pixel_sizes: Sequence[float | None] | None = None,
) -> tuple[TensorImageSet, torch.Tensor]:
    """Image files as preprocessed network inputs, from the cache where possible.

    Args:
        files: ``(path, class name)`` per image file.
        class_names: class name per label index; every file's class must be among them.
        config: how to preprocess.
        cache_dir: folder of the cache (created if missing); ``None`` computes without caching.
        workers: threads that hash, decode and preprocess (decoding releases the GIL).
        pixel_sizes: recorded micrometres per pixel of each file (``None`` entries: unknown);
            needed when ``config.pixel_size_um`` sets a magnification.

    Returns:
        The inputs as a :class:`TensorImageSet` (several rows per file in the patch modes) and an
        ``int64`` tensor giving, for each row, the index in ``files`` of the image it came from.

    Raises:
        DataError: no files, a class not in ``class_names``, pixel sizes of another length, an
            unreadable file, or what
            :func:`~pathsynth.imaging.patches.preprocess_image` refuses.
        ImageRefused: a file that does not decode (the message names it).
    """
    if not files:
        raise DataError("no image files to preprocess")
    names = list(class_names)
    unknown = sorted({label for _, label in files} - set(names))
    if unknown:
        raise DataError(f"classes {', '.join(unknown)} are not among {', '.join(names)}")
    sizes = list(pixel_sizes) if pixel_sizes is not None else [None] * len(files)
    if len(sizes) != len(files):
        raise DataError(f"{len(sizes)} pixel sizes for {len(files)} files")
    folder = None
    if cache_dir is not None:
        folder = Path(cache_dir) / params_key(config)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "params.json", json.dumps(config.as_dict(), indent=2))

    def one(item: tuple[Path, float | None]) -> torch.Tensor:
        return _load_one(Path(item[0]), config, folder, item[1])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        parts = list(
            pool.map(one, [(path, size) for (path, _), size in zip(files, sizes, strict=True)])
        )
    images = torch.cat(parts)
    index = torch.cat([torch.full((len(p),), i, dtype=torch.int64) for i, p in enumerate(parts)])
    labels = torch.tensor([names.index(label) for _, label in files], dtype=torch.int64)[index]
    return TensorImageSet(images, labels, names), index


def _load_one(
    path: Path, config: PreprocessConfig, folder: Path | None, pixel_size_um: float | None
) -> torch.Tensor:
    sha = file_sha256(path)
    # with a magnification the inputs depend on the file's recorded pixel size too
    name = f"{sha}-{pixel_size_um:g}um" if config.pixel_size_um and pixel_size_um else sha
    entry = folder / f"{name}.pt" if folder is not None else None
    if entry is not None and entry.exists():
        try:
            cached = torch.load(entry, weights_only=True)
            if isinstance(cached, torch.Tensor) and cached.dtype == torch.uint8:
                return cached
        except Exception:  # a damaged entry (killed writer, disk error) is recomputed
            pass
    try:
        rgb = load_rgb(path)
    except ImageRefused as error:
        raise ImageRefused(f"{path}: {error}") from None
    try:
        tensor = preprocess_image(rgb, config, sha, pixel_size_um)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    if entry is not None:
        with atomic_path(entry) as tmp:
            torch.save(tensor.contiguous(), tmp)
    return tensor
