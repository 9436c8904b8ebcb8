"""Precision, recall, density and coverage agree with a brute-force reference."""

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.metrics.prdc import precision_recall_density_coverage


def _brute_force_prdc(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, ...]:
    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).sum().sqrt())

    def radius(points: torch.Tensor, i: int) -> float:
        others = sorted(distance(points[i], points[j]) for j in range(len(points)) if j != i)
        return others[k - 1]

    real_radius = [radius(real, i) for i in range(len(real))]
    fake_radius = [radius(fake, j) for j in range(len(fake))]
    precision = sum(
        any(distance(f, real[i]) <= real_radius[i] for i in range(len(real))) for f in fake
    ) / len(fake)
    recall = sum(
        any(distance(r, fake[j]) <= fake_radius[j] for j in range(len(fake))) for r in real
    ) / len(real)
    density = sum(
        sum(distance(f, real[i]) <= real_radius[i] for i in range(len(real))) for f in fake
    ) / (k * len(fake))
    coverage = sum(
        min(distance(real[i], f) for f in fake) <= real_radius[i] for i in range(len(real))
    ) / len(real)
    return precision, recall, density, coverage


def test_prdc_matches_brute_force_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(25, 3, generator=generator, dtype=torch.float64)
    fake = torch.randn(20, 3, generator=generator, dtype=torch.float64) * 1.3 + 0.4

    result = precision_recall_density_coverage(real, fake, nearest_k=3)

    precision, recall, density, coverage = _brute_force_prdc(real, fake, k=3)
    assert result.precision == pytest.approx(precision)
    assert result.recall == pytest.approx(recall)
    assert result.density == pytest.approx(density)
    assert result.coverage == pytest.approx(coverage)


def test_far_away_synthetic_set_scores_zero() -> None:
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(15, 4, generator=generator)

    result = precision_recall_density_coverage(real, real + 100.0, nearest_k=3)

    assert (result.precision, result.recall, result.density, result.coverage) == (0, 0, 0, 0)


def test_prdc_refuses_sets_not_larger_than_k() -> None:
    with pytest.raises(DataError, match="at least 6 rows"):
        precision_recall_density_coverage(torch.randn(5, 2), torch.randn(10, 2), nearest_k=5)
