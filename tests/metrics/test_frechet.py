"""Frechet distance equals torchmetrics' FID computation and the closed form on the same features."""

import numpy as np
import pytest
import torch
from scipy import linalg
from torchmetrics.image.fid import FrechetInceptionDistance

from pathsynth.errors import DataError
from pathsynth.metrics.frechet import frechet_distance

from .torchmetrics_reference import PrecomputedFeatures


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=generator, dtype=torch.float64) / d**0.5
    return torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing


def _torchmetrics_fid(real: torch.Tensor, synthetic: torch.Tensor) -> float:
    reference = FrechetInceptionDistance(feature=PrecomputedFeatures(real.shape[1]))
    reference.update(real, real=True)
    reference.update(synthetic, real=False)
    return float(reference.compute())


@pytest.mark.parametrize(("n", "d"), [(200, 16), (30, 64)])  # more and fewer images than features
def test_frechet_distance_matches_torchmetrics(n: int, d: int) -> None:
    real, synthetic = _features(n, d, seed=0), _features(n, d, seed=1) + 0.2

    assert frechet_distance(real, synthetic) == pytest.approx(
        _torchmetrics_fid(real, synthetic), rel=1e-6
    )


def test_frechet_distance_matches_scipy_sqrtm_formula() -> None:
    real, synthetic = _features(300, 8, seed=2), _features(300, 8, seed=3) * 1.5
    x, y = real.numpy(), synthetic.numpy()
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = np.sum((mu_x - mu_y) ** 2) + np.trace(
        cov_x + cov_y - 2 * linalg.sqrtm(cov_x @ cov_y).real
    )

    assert frechet_distance(real, synthetic) == pytest.approx(expected, rel=1e-8)


def test_a_pure_shift_costs_its_squared_length() -> None:
    real = _features(50, 100, seed=4)  # singular covariance: 50 images, 100 features
    shift = torch.full((100,), 0.1, dtype=torch.float64)

    assert frechet_distance(real, real + shift) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= frechet_distance(real, real) < 1e-5


def test_frechet_distance_refuses_a_single_image() -> None:
    with pytest.raises(DataError, match="at least 2 rows"):
        frechet_distance(_features(10, 4, 0), _features(1, 4, 1))
