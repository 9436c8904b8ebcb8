"""KID equals torchmetrics' on the same feature tensors and separates different distributions."""

import warnings

import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from pathsynth.errors import DataError
from pathsynth.metrics.kid import kernel_inception_distance, mmd2_unbiased

from .torchmetrics_reference import PrecomputedFeatures


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) + shift


def test_mmd2_matches_torchmetrics_poly_mmd() -> None:
    real, synthetic = _features(40, 16, seed=0), _features(40, 16, seed=1, shift=0.3)

    ours = mmd2_unbiased(real, synthetic)

    assert ours == pytest.approx(float(poly_mmd(real, synthetic)), rel=1e-10)


def test_kid_matches_torchmetrics_kernel_inception_distance() -> None:
    real, synthetic = _features(30, 8, seed=2), _features(30, 8, seed=3, shift=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        reference = KernelInceptionDistance(
            feature=PrecomputedFeatures(8), subsets=3, subset_size=30
        )
    reference.update(real, real=True)
    reference.update(synthetic, real=False)
    reference_mean, reference_std = reference.compute()

    # With subsets as large as the sets every subset is the whole set, so both are deterministic.
    ours = kernel_inception_distance(real, synthetic, subsets=3, subset_size=30)

    assert ours.mean == pytest.approx(float(reference_mean), rel=1e-10)
    assert ours.std == pytest.approx(float(reference_std), abs=1e-12)
    assert ours.mean > 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shifted_one() -> None:
    real = _features(200, 16, seed=4)
    same = _features(200, 16, seed=5)
    shifted = _features(200, 16, seed=6, shift=1.0)
    generator = torch.Generator().manual_seed(0)

    kid_same = kernel_inception_distance(
        real, same, subsets=20, subset_size=100, generator=generator
    )
    kid_shifted = kernel_inception_distance(
        real, shifted, subsets=20, subset_size=100, generator=generator
    )

    assert abs(kid_same.mean) < 3 * kid_same.std + 1e-3
    assert kid_shifted.mean > 10 * max(abs(kid_same.mean), kid_same.std)


def test_kid_subsets_shrink_to_the_smaller_set() -> None:
    result = kernel_inception_distance(_features(12, 4, 0), _features(20, 4, 1), subset_size=1000)

    assert result.subset_size == 12


def test_kid_refuses_features_of_different_width() -> None:
    with pytest.raises(DataError, match="differ in width"):
        kernel_inception_distance(_features(10, 4, 0), _features(10, 5, 1))
