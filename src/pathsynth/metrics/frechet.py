"""Frechet distance between Gaussians fitted to two feature sets (FID on Inception features).

``FD = |mu_r - mu_s|^2 + tr(S_r) + tr(S_s) - 2 tr((S_r S_s)^(1/2))``.

Numerical care: everything is float64. The trace of the matrix square root is computed as
``sum(sqrt(eig(A S_s A)))`` with ``A = S_r^(1/2)``: ``A S_s A`` is similar to ``S_r S_s`` (same
eigenvalues) but symmetric positive semi-definite, so ``eigh`` gives real eigenvalues, and the tiny
negative ones that rounding produces are clipped to zero. That avoids the complex results and the
failures of ``scipy.linalg.sqrtm`` on the singular covariances one gets with fewer images than
feature dimensions (the normal case here: say 60 images, 512 features). With so few
images FD is strongly biased upward; prefer KID for comparisons across set sizes. On singular
covariances the square roots of the near-zero eigenvalues amplify rounding, so the result is good to
about 1e-5 absolute (as torchmetrics' is); a slightly negative result is reported as 0.
"""

from __future__ import annotations

import torch

from pathsynth.metrics._checks import feature_pair


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    roots = eigenvalues.clamp(min=0.0).sqrt()
    return (eigenvectors * roots) @ eigenvectors.T


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (ddof=1) of an (n, d) float64 feature matrix."""
    mean = features.mean(dim=0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def frechet_distance(real: torch.Tensor, synthetic: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to real and synthetic features.

    Args:
        real: (m, d) features of real images.
        synthetic: (n, d) features of synthetic images from the same extractor.

    Returns:
        The distance, >= 0.

    Raises:
        DataError: fewer than 2 rows in a set, widths that differ, or non-finite features.
    """
    x, y = feature_pair(real, synthetic)
    mean_real, cov_real = gaussian_statistics(x)
    mean_synthetic, cov_synthetic = gaussian_statistics(y)
    root_real = _psd_sqrt(cov_real)
    product = root_real @ cov_synthetic @ root_real
    product = (product + product.T) / 2.0  # symmetric by construction; remove rounding asymmetry
    trace_sqrt = torch.linalg.eigvalsh(product).clamp(min=0.0).sqrt().sum()
    squared_mean_gap = (mean_real - mean_synthetic).square().sum()
    distance = squared_mean_gap + cov_real.trace() + cov_synthetic.trace() - 2.0 * trace_sqrt
    return max(0.0, float(distance))
