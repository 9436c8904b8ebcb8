"""Two random views of each image, made on the training device from one seeded generator.

A view is a random resized crop of the stored input (``torchvision.ops.roi_align`` cuts and
resizes every image's own box in one call), one of the eight flips/rotations of the square and
the classifier's colour and stain jitter (:class:`pathsynth.imaging.augment.ColourAugment`),
then normalised as the backbone expects. Every draw comes from one ``torch.Generator`` in a fixed
order, so a seed and a batch give the same views every time (what exact resume needs).
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align

from pathsynth.backbones.load import InputSpec
from pathsynth.errors import DataError
from pathsynth.imaging.augment import ColourAugment, random_dihedral
from pathsynth.imaging.stain import LabStatistics
from pathsynth.pretrain.config import PretrainConfig


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    draw = torch.rand(n, generator=generator, device=generator.device)
    return low + (high - low) * draw


def random_resized_crops(
    images: torch.Tensor,
    size: int,
    min_scale: float,
    max_aspect: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Each image's own random box (area share in [min_scale, 1], aspect in [1/max, max]),
    resized to ``size`` (torchvision's ``RandomResizedCrop`` without its retries; a box wider or
    taller than the image is clamped to it).

    Args:
        images: float (N, C, H, W).
        size: the output side.
        min_scale: smallest share of the image's area a box covers.
        max_aspect: largest width/height ratio (and its inverse the smallest).
        generator: draws the boxes.

    Returns:
        float (N, C, size, size) on the images' device.

    Raises:
        DataError: not a float NCHW batch.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise DataError(f"expected float (N, C, H, W) images, got {images.dtype} {images.shape}")
    n, _, height, width = images.shape
    area = _uniform(n, min_scale, 1.0, generator) * height * width
    log_ratio = _uniform(n, -math.log(max_aspect), math.log(max_aspect), generator)
    ratio = torch.exp(log_ratio)
    box_w = torch.sqrt(area * ratio).clamp(max=width)
    box_h = torch.sqrt(area / ratio).clamp(max=height)
    left = _uniform(n, 0.0, 1.0, generator) * (width - box_w)
    top = _uniform(n, 0.0, 1.0, generator) * (height - box_h)
    index = torch.arange(n, device=generator.device, dtype=left.dtype)
    boxes = torch.stack([index, left, top, left + box_w, top + box_h], dim=1)
    # sampling_ratio 0: ceil(box side / size) samples per output pixel, averaged (one, plain
    # bilinear, when not shrinking; more as a box filter when shrinking, like antialiasing)
    return roi_align(
        images, boxes.to(images.device, images.dtype), (size, size), 1.0, 0, aligned=True
    )


class ViewMaker:
    """Two augmented, normalised views of every image of a batch.

    Args:
        config: the run's config (``data`` crops, ``colour`` jitter).
        spec: the backbone's normalisation (its size is ignored: views are ``data.view_size``).
        generator: every draw of every view.
        lab_statistics: the pool's LAB statistics when ``colour.randstain_p > 0``.
    """

    def __init__(
        self,
        config: PretrainConfig,
        spec: InputSpec,
        generator: torch.Generator,
        lab_statistics: LabStatistics | None,
    ) -> None:
        self.data = config.data
        self.generator = generator
        self.colour = ColourAugment(config.colour, generator, lab_statistics)
        device = generator.device
        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)

    def one_view(self, images: torch.Tensor) -> torch.Tensor:
        """One random view of each ``uint8`` (N, 3, S, S) image, as normalised float."""
        x = images.to(self.generator.device).float() / 255.0
        x = random_resized_crops(
            x, self.data.view_size, self.data.min_scale, self.data.max_aspect, self.generator
        )
        x = random_dihedral(x, self.generator)
        x = self.colour(x.clamp(0.0, 1.0))
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views of each image (the first for every image, then the second)."""
        return self.one_view(images), self.one_view(images)
