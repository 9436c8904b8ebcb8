"""Precision, recall, density and coverage (Naeem et al. 2020) from k-nearest-neighbour balls.

Each real feature vector gets a ball whose radius is the distance to its k-th nearest other real
vector (and likewise each synthetic vector among the synthetic ones, for recall):

- precision: fraction of synthetic samples inside at least one real ball (fidelity);
- recall: fraction of real samples inside at least one synthetic ball (diversity);
- density: mean number of real balls containing a synthetic sample, divided by k (about 1 when the
  two sets match; above 1 when synthetic samples crowd dense real regions);
- coverage: fraction of real balls that hold at least one synthetic sample (diversity robust to
  outliers among the synthetic samples).

Distances are Euclidean, in float64. This follows the reference implementation (clovaai/prdc).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pathsynth.errors import DataError
from pathsynth.metrics._checks import feature_pair


@dataclass
class PrdcResult:
    """Precision, recall, density and coverage with the neighbourhood size used.

    Args:
        precision: in [0, 1].
        recall: in [0, 1].
        density: >= 0, about 1 for matching sets.
        coverage: in [0, 1].
        nearest_k: the k of the k-NN radii.
    """

    precision: float
    recall: float
    density: float
    coverage: float
    nearest_k: int


def kth_neighbour_radii(features: torch.Tensor, nearest_k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest *other* row (float64 (n, d) input)."""
    distances = torch.cdist(features, features)
    # The smallest distance in each row is the row to itself (0), hence k + 1.
    return distances.kthvalue(nearest_k + 1, dim=1).values


def precision_recall_density_coverage(
    real: torch.Tensor, synthetic: torch.Tensor, nearest_k: int = 5
) -> PrdcResult:
    """Precision, recall, density and coverage of synthetic features against real ones.

    Args:
        real: (m, d) features of real images.
        synthetic: (n, d) features of synthetic images from the same extractor.
        nearest_k: neighbourhood size for the radii (5 in the paper).

    Returns:
        The four numbers.

    Raises:
        DataError: a set with ``nearest_k`` images or fewer, widths that differ, non-finite
            features, or ``nearest_k < 1``.
    """
    if nearest_k < 1:
        raise DataError(f"nearest_k must be at least 1, got {nearest_k}")
    x, y = feature_pair(real, synthetic, min_rows=nearest_k + 1)
    real_radii = kth_neighbour_radii(x, nearest_k)
    synthetic_radii = kth_neighbour_radii(y, nearest_k)
    real_to_synthetic = torch.cdist(x, y)  # (m, n)
    inside_real_ball = real_to_synthetic <= real_radii[:, None]
    inside_synthetic_ball = real_to_synthetic <= synthetic_radii[None, :]
    return PrdcResult(
        precision=float(inside_real_ball.any(dim=0).double().mean()),
        recall=float(inside_synthetic_ball.any(dim=1).double().mean()),
        density=float(inside_real_ball.double().sum(dim=0).mean() / nearest_k),
        coverage=float((real_to_synthetic.min(dim=1).values <= real_radii).double().mean()),
        nearest_k=nearest_k,
    )
