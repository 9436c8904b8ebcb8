"""A labelled image set held as one uint8 tensor on the compute device.

The training sets pathsynth works with are tiny (1000 images of 128x128x3 are 49 MB), so both the
GAN and the classifiers keep the whole set on the device and draw batches by index: no DataLoader,
no host-to-device copy in the hot loop. Augmentation then runs on the device too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pathsynth.errors import DataError


@dataclass
class TensorImageSet:
    """Images as ``uint8`` NCHW plus integer labels and the class names they index.

    Args:
        images: ``uint8`` tensor of shape (N, C, H, W).
        labels: ``int64`` tensor of shape (N,), values in ``range(len(class_names))``.
        class_names: class name per label index, in label order.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            shape = tuple(self.images.shape)
            raise DataError(f"image tensor must be uint8 NCHW, got {self.images.dtype} {shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.labels.shape[0]} labels for {self.images.shape[0]} images")
        if len(self.images) and int(self.labels.max()) >= len(self.class_names):
            raise DataError(f"label {int(self.labels.max())} has no class name")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def resolution(self) -> int:
        """Side length in pixels (the sets are square)."""
        return int(self.images.shape[-1])

    def to(self, device: torch.device | str) -> TensorImageSet:
        """The same set on ``device``."""
        return TensorImageSet(self.images.to(device), self.labels.to(device), self.class_names)

    def subset(self, index: torch.Tensor) -> TensorImageSet:
        """The images at ``index`` (an index or boolean mask tensor)."""
        return TensorImageSet(self.images[index], self.labels[index], self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = torch.bincount(self.labels.cpu(), minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}

    def batches(
        self, batch_size: int, generator: torch.Generator, drop_last: bool = True
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled ``(uint8 images, labels)`` batches, drawn on the device.

        Args:
            batch_size: images per batch.
            generator: the torch generator that orders the epoch (seeded for reproducibility).
            drop_last: drop a final short batch (training) or keep it (evaluation).
        """
        order = torch.randperm(len(self), generator=generator).to(self.images.device)
        stop = len(self) - (len(self) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            yield self.images[index], self.labels[index]


def to_signed_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images in [0, 255] to floats in [-1, 1] (the range of a tanh generator)."""
    return images.to(dtype).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] to uint8 in [0, 255], rounded and clamped."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, columns: int) -> np.ndarray:
    """uint8 NCHW images tiled row by row into one HxWx3 array (N must be a multiple of columns)."""
    n, c, h, w = images.shape
    rows = n // columns
    grid = images.cpu().reshape(rows, columns, c, h, w).permute(0, 3, 1, 4, 2)
    return grid.reshape(rows * h, columns * w, c).contiguous().numpy()
