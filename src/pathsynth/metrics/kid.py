"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, over random subsets.

KID (Binkowski et al. 2018) is unbiased, so unlike the Frechet distance it does not drift with the
number of images, which matters with the tens of images per class pathsynth works with. As in
torchmetrics, torch-fidelity and clean-fid, the kernel is ``k(x, y) = (x.y / d + 1) ** 3`` and the
score is the mean (and population std) of the MMD^2 estimate over ``subsets`` random subsets of
``subset_size`` images drawn without replacement from each set. When a set is smaller than
``subset_size`` the subsets shrink to the smaller set (as clean-fid does) and the result says so;
a subset that covers a whole set is the same every time, so the std is then 0 and says nothing
(``registry`` therefore uses half the smaller set for small sets).
Everything is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pathsynth.metrics._checks import feature_pair


@dataclass
class KidResult:
    """KID over subsets.

    Args:
        mean: mean MMD^2 over the subsets (can be slightly negative: the estimate is unbiased).
        std: population standard deviation over the subsets (as torchmetrics reports it).
        subsets: number of subsets drawn.
        subset_size: images per subset actually used (shrunk to the smaller set if needed).
    """

    mean: float
    std: float
    subsets: int
    subset_size: int


def polynomial_kernel(
    x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> torch.Tensor:
    """The kernel matrix ``(gamma * x @ y.T + coef) ** degree``; ``gamma`` defaults to ``1 / d``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> float:
    """Unbiased estimate of the squared MMD between two feature sets with a polynomial kernel.

    The within-set terms leave out the diagonal (``k(x, x)``), which is what makes the estimate
    unbiased; the sets may differ in size.

    Args:
        real: (m, d) features.
        synthetic: (n, d) features.
        degree: kernel degree.
        gamma: kernel scale; ``None`` is ``1 / d``.
        coef: kernel offset.

    Returns:
        The MMD^2 estimate.

    Raises:
        DataError: fewer than 2 rows in a set, widths that differ, or non-finite features.
    """
    x, y = feature_pair(real, synthetic)
    m, n = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)
    within_real = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_synthetic = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_real + within_synthetic - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> KidResult:
    """KID between real and synthetic features: mean and std of MMD^2 over random subsets.

    Args:
        real: (m, d) features of real images (any extractor, see ``pathsynth.metrics.features``).
        synthetic: (n, d) features of synthetic images from the same extractor.
        subsets: number of random subsets.
        subset_size: images per subset; shrunk to ``min(m, n)`` when a set is smaller.
        generator: torch generator that draws the subsets (seed it for a reproducible number).
        degree: kernel degree (3 for KID).
        gamma: kernel scale; ``None`` is ``1 / d``.
        coef: kernel offset.

    Returns:
        The mean and std over subsets and the subset size actually used.

    Raises:
        DataError: fewer than 2 images in a set, widths that differ, or non-finite features.
        ValueError: ``subsets`` or ``subset_size`` below 1 / 2 (a programming error).
    """
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    x, y = feature_pair(real, synthetic)
    size = min(subset_size, x.shape[0], y.shape[0])
    scores = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        real_pick = torch.randperm(x.shape[0], generator=generator)[:size]
        synthetic_pick = torch.randperm(y.shape[0], generator=generator)[:size]
        scores[i] = mmd2_unbiased(x[real_pick], y[synthetic_pick], degree, gamma, coef)
    return KidResult(
        mean=float(scores.mean()),
        std=float(scores.std(unbiased=False)),
        subsets=subsets,
        subset_size=size,
    )
