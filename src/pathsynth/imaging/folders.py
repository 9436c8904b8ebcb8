"""Training data for a generator: class folders or catalog file lists into a :class:`TensorImageSet`.

Images are decoded as at ingest and made network inputs by :mod:`pathsynth.imaging.patches`, the
one preparation path ``reproduce`` uses too, then stacked into one uint8 tensor that the
trainers' :class:`~pathsynth.training.sampler.EpochSampler` draws batches from by index.
"""

from __future__ import annotations

from pathlib import Path

from pathsynth.errors import DataError, ImageRefused
from pathsynth.files import label_from_folder
from pathsynth.imaging.cache import load_preprocessed
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import TensorImageSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def folder_files(folder: Path) -> list[tuple[Path, str]]:
    """``(image path, class name)`` for every image in ``folder/<class>/``.

    Raises:
        DataError: the folder does not exist.
    """
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    files = []
    for class_dir in sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                files.append((path, label_from_folder(class_dir.name)))
    return files


def load_image_set(
    files: list[tuple[Path, str]],
    preprocess: PreprocessConfig,
    source: str = "data",
    cache_dir: Path | None = None,
) -> TensorImageSet:
    """Decode labelled images and make them network inputs, exactly as ``reproduce`` does.

    Args:
        files: ``(path, class name)`` pairs.
        preprocess: how images become squares (:mod:`pathsynth.imaging.patches`); its ``size``
            is the GAN's resolution.
        source: how to name the data in error messages.
        cache_dir: preprocessing cache folder (``None``: no cache).

    Returns:
        The set, classes sorted by name (several rows per image in the patch modes).

    Raises:
        DataError: no images, fewer than two classes, or a file that cannot be decoded.
    """
    if not files:
        raise DataError(f"{source} has no images (expected class folders <class>/<image>)")
    class_names = sorted({label for _, label in files})
    if len(class_names) < 2:
        raise DataError(
            f"{source} has one class ({class_names[0]}); a class-conditional GAN needs at least two"
        )
    try:
        images, _ = load_preprocessed(files, class_names, preprocess, cache_dir)
    except ImageRefused as error:
        raise DataError(f"cannot decode {error}") from None
    return images
