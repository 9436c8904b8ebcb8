"""Training data for the GAN: class folders or catalog file lists into a :class:`TensorImageSet`.

Images are decoded as at ingest (:mod:`pathsynth.imaging.decode`), fitted to the network's square by
:func:`pathsynth.imaging.preprocess.fit_square` and stacked into one uint8 tensor; the sampler
draws batches from it by index, on the device, with an order that is a pure function of
``(seed, epoch)`` so that resuming mid-epoch needs only two counters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pathsynth.errors import DataError, ImageRefused
from pathsynth.imaging.decode import decode_file
from pathsynth.imaging.preprocess import fit_square
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
                files.append((path, class_dir.name))
    return files


def load_image_set(
    files: list[tuple[Path, str]],
    resolution: int,
    fit: str = "pad",
    fill: str = "border",
    source: str = "data",
) -> TensorImageSet:
    """Decode, fit and stack labelled images.

    Args:
        files: ``(path, class name)`` pairs.
        resolution: square side of the result.
        fit: ``"pad"``, ``"crop"`` or ``"stretch"`` (see :func:`fit_square`).
        fill: canvas colour for ``fit="pad"``.
        source: how to name the data in error messages.

    Returns:
        The set, classes sorted by name.

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
    index = {name: i for i, name in enumerate(class_names)}
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            rgb = decode_file(path).rgb  # converted exactly as at ingest (16-bit, RGBA, ...)
        except ImageRefused as error:
            raise DataError(f"cannot decode {path}: {error}") from None
        fitted = fit_square(rgb, resolution, fit=fit, fill=fill)
        images[i] = np.asarray(fitted).transpose(2, 0, 1)
    labels = torch.tensor([index[label] for _, label in files], dtype=torch.int64)
    return TensorImageSet(torch.from_numpy(images), labels, class_names)


class EpochSampler:
    """Global batches of indices for one rank, resumable from ``(epoch, position)``.

    Each epoch's order is ``randperm`` from a generator seeded with ``seed`` and the epoch, so
    the order needs no saved generator state; a short final batch is dropped.

    Args:
        size: images in the set.
        batch_size: global batch size.
        seed: the run seed.
    """

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < batch_size:
            raise DataError(f"{size} images are fewer than one batch of {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.batches_per_epoch = size // batch_size
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(self.size, generator=generator)
        return self._order

    def next_batch(self) -> torch.Tensor:
        """Indices of the next global batch (CPU int64)."""
        start = self.position * self.batch_size
        batch = self._epoch_order()[start : start + self.batch_size]
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict[str, int]:
        """Counters to checkpoint."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
