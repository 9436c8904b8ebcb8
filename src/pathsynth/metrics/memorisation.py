"""Memorisation check: is a synthetic image a near-copy of a real training image?

A GAN trained on a few dozen patients' images can reproduce one of them, which leaks that patient's
image into every set built from the generator. For every synthetic image this module finds its
nearest real training image, in pixel space (images area-downsampled to ``pixel_size`` so that
sub-pixel noise and resampling do not hide a copy) and, when features are given, in feature space.

A raw distance means little on its own, so each is divided by the *median real-to-real
nearest-neighbour distance* in the same space: how close two distinct real training images
typically get. A synthetic image is flagged as a near-copy when that ratio is below
``near_copy_ratio`` (default 0.25) in either space: closer to a training image than a quarter of the
typical distance between distinct training images. An exact copy has ratio 0; an independent sample
of the same distribution has a ratio around 1. The report also gives the fraction of real training
images that would themselves be flagged against the rest of the real set (``real_flag_rate``): if
that is not near 0, the threshold is too loose for this data (or the real set holds duplicates).

Pass the original real training images, not their affine children: a shifted copy of one original
sits close to it and shrinks the real-to-real distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pathsynth.errors import DataError
from pathsynth.metrics._checks import feature_pair

NEAR_COPY_RATIO = 0.25  # flag below a quarter of the median real-to-real nearest-neighbour distance
# Direct differences, not the |a|^2 + |b|^2 - 2ab shortcut: an exact copy must measure exactly 0.
_EXACT = "donot_use_mm_for_euclid_dist"


@dataclass
class NearestRealNeighbours:
    """Nearest real training image of every synthetic image in one space (pixel or feature).

    Args:
        space: ``"pixel"`` or ``"feature"``.
        distance: (n_synthetic,) Euclidean distance to the nearest real image.
        real_index: (n_synthetic,) index of that real image in the real set.
        ratio: (n_synthetic,) ``distance / real_median_distance``.
        real_median_distance: median distance of a real image to its nearest other real image.
        real_flag_rate: fraction of real images whose own ratio is below the threshold.
        flagged: (n_synthetic,) bool, ratio below the threshold.
    """

    space: str
    distance: torch.Tensor
    real_index: torch.Tensor
    ratio: torch.Tensor
    real_median_distance: float
    real_flag_rate: float
    flagged: torch.Tensor


@dataclass
class MemorisationReport:
    """Outcome of :func:`memorisation_check`.

    Args:
        pixel: nearest neighbours in downsampled pixel space.
        feature: nearest neighbours in feature space; ``None`` when no features were given.
        near_copy: (n_synthetic,) bool, flagged in either space.
        near_copy_ratio: the threshold used.
    """

    pixel: NearestRealNeighbours
    feature: NearestRealNeighbours | None
    near_copy: torch.Tensor
    near_copy_ratio: float

    @property
    def n_near_copies(self) -> int:
        """How many synthetic images were flagged."""
        return int(self.near_copy.sum())


def downsampled_pixels(images: torch.Tensor, pixel_size: int) -> torch.Tensor:
    """NCHW images (uint8, or floats in [-1, 1]) as (N, C*s*s) float64 rows in [0, 1].

    Area interpolation averages blocks of pixels, so noise and resampling jitter shrink.
    """
    if images.ndim != 4:
        raise DataError(f"images must be NCHW, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        scaled = images.to(torch.float64) / 255.0
    else:
        scaled = (images.to(torch.float64) + 1.0) / 2.0
    small = F.interpolate(scaled.cpu(), size=(pixel_size, pixel_size), mode="area")
    return small.flatten(start_dim=1)


def nearest_real_neighbours(
    synthetic: torch.Tensor,
    real: torch.Tensor,
    space: str,
    near_copy_ratio: float = NEAR_COPY_RATIO,
) -> NearestRealNeighbours:
    """Nearest real row of every synthetic row, scaled by the real-to-real nearest-neighbour median.

    Args:
        synthetic: (n, d) synthetic vectors.
        real: (m, d) real training vectors, m >= 2.
        space: name of the space, for the report.
        near_copy_ratio: flag threshold on the ratio.

    Returns:
        Distances, indices, ratios and flags.

    Raises:
        DataError: fewer than 2 real rows, no synthetic row, widths that differ, non-finite values,
            or real rows that all coincide with another real row (median distance 0).
    """
    real_matrix, synthetic_matrix = feature_pair(real, synthetic, min_rows=1)
    if real_matrix.shape[0] < 2:
        raise DataError("the memorisation check needs at least 2 real training images")
    real_to_real = torch.cdist(real_matrix, real_matrix, compute_mode=_EXACT)
    real_to_real.fill_diagonal_(float("inf"))
    real_nearest = real_to_real.min(dim=1).values
    median = float(real_nearest.median())
    if median == 0.0:
        raise DataError(
            f"most real training images have an exact duplicate in {space} space; "
            "deduplicate them before checking memorisation"
        )
    distance, real_index = torch.cdist(synthetic_matrix, real_matrix, compute_mode=_EXACT).min(
        dim=1
    )
    ratio = distance / median
    return NearestRealNeighbours(
        space=space,
        distance=distance,
        real_index=real_index,
        ratio=ratio,
        real_median_distance=median,
        real_flag_rate=float((real_nearest / median < near_copy_ratio).double().mean()),
        flagged=ratio < near_copy_ratio,
    )


def memorisation_check(
    synthetic_images: torch.Tensor,
    real_images: torch.Tensor,
    synthetic_features: torch.Tensor | None = None,
    real_features: torch.Tensor | None = None,
    pixel_size: int = 32,
    near_copy_ratio: float = NEAR_COPY_RATIO,
) -> MemorisationReport:
    """Find every synthetic image's nearest real training image and flag near-copies.

    Args:
        synthetic_images: (n, C, H, W) synthetic images, uint8 or floats in [-1, 1].
        real_images: (m, C, H', W') real training images (the originals), same convention.
        synthetic_features: optional (n, d) features of the synthetic images.
        real_features: optional (m, d) features of the real images, same extractor.
        pixel_size: side of the downsampled images compared in pixel space.
        near_copy_ratio: flag when distance / median real-to-real NN distance is below this.

    Returns:
        Per-space nearest neighbours and the combined near-copy flag.

    Raises:
        DataError: channel counts that differ, only one of the two feature sets, feature counts that
            do not match the image counts, or any refusal of :func:`nearest_real_neighbours`.
    """
    if synthetic_images.ndim != 4 or real_images.ndim != 4:
        raise DataError("synthetic and real images must both be NCHW")
    if synthetic_images.shape[1] != real_images.shape[1]:
        raise DataError(
            f"synthetic images have {synthetic_images.shape[1]} channels, "
            f"real images {real_images.shape[1]}"
        )
    if (synthetic_features is None) != (real_features is None):
        raise DataError("pass features for both the synthetic and the real images, or neither")
    pixel = nearest_real_neighbours(
        downsampled_pixels(synthetic_images, pixel_size),
        downsampled_pixels(real_images, pixel_size),
        space="pixel",
        near_copy_ratio=near_copy_ratio,
    )
    feature = None
    near_copy = pixel.flagged
    if synthetic_features is not None and real_features is not None:
        if len(synthetic_features) != len(synthetic_images) or len(real_features) != len(
            real_images
        ):
            raise DataError("one feature vector per image is needed, for both sets")
        feature = nearest_real_neighbours(
            synthetic_features, real_features, space="feature", near_copy_ratio=near_copy_ratio
        )
        near_copy = near_copy | feature.flagged
    return MemorisationReport(
        pixel=pixel, feature=feature, near_copy=near_copy, near_copy_ratio=near_copy_ratio
    )
