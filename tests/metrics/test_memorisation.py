"""The memorisation check flags copies of training images and leaves distinct images alone."""

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.metrics.memorisation import memorisation_check


def _smooth_images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    """Blurry random colour fields (closer to tissue than pixel noise), uint8 NCHW."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=generator)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    return (fine * 255).round().to(torch.uint8)


def test_exact_and_noisy_copies_are_flagged_and_distinct_images_are_not() -> None:
    real = _smooth_images(30, seed=0)
    generator = torch.Generator().manual_seed(1)
    noise = torch.randint(-6, 7, real[7].shape, generator=generator)
    noisy_copy = (real[7].int() + noise).clamp(0, 255).to(torch.uint8)
    fresh = _smooth_images(10, seed=2)
    synthetic = torch.cat([real[3:4], noisy_copy[None], fresh])

    report = memorisation_check(synthetic, real)

    assert report.near_copy.tolist() == [True, True] + [False] * 10
    assert report.pixel.real_index[:2].tolist() == [3, 7]
    assert report.pixel.distance[0] == 0.0
    assert report.pixel.ratio[0] == 0.0
    assert report.pixel.ratio[2:].min() > report.near_copy_ratio
    assert report.pixel.real_flag_rate == 0.0
    assert report.n_near_copies == 2
    assert report.feature is None


def test_features_add_a_second_space_and_either_space_flags() -> None:
    real = _smooth_images(20, seed=3)
    synthetic = _smooth_images(4, seed=4)
    generator = torch.Generator().manual_seed(5)
    real_features = torch.randn(20, 16, generator=generator)
    # Synthetic image 2 has the features of real image 11 (a copy in feature space only).
    synthetic_features = torch.randn(4, 16, generator=generator)
    synthetic_features[2] = real_features[11]

    report = memorisation_check(synthetic, real, synthetic_features, real_features)

    assert report.feature is not None
    assert report.feature.flagged.tolist() == [False, False, True, False]
    assert report.feature.real_index[2] == 11
    assert not report.pixel.flagged.any()
    assert report.near_copy.tolist() == [False, False, True, False]


def test_float_images_in_signed_range_compare_like_uint8() -> None:
    real = _smooth_images(10, seed=6)
    signed = real.float() / 127.5 - 1.0

    report = memorisation_check(signed[:2], real)

    assert report.near_copy.tolist() == [True, True]


def test_features_for_only_one_set_are_refused() -> None:
    real = _smooth_images(5, seed=7)

    with pytest.raises(DataError, match="both"):
        memorisation_check(real, real, synthetic_features=torch.randn(5, 4))


def test_duplicated_real_set_is_refused() -> None:
    real = _smooth_images(4, seed=8)

    with pytest.raises(DataError, match="duplicate"):
        memorisation_check(real[:1], torch.cat([real, real]))
