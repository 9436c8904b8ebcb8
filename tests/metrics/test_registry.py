"""The metric registry computes the named metrics and refuses unknown names."""

import pytest
import torch

from pathsynth.errors import ConfigError
from pathsynth.metrics.frechet import frechet_distance
from pathsynth.metrics.registry import synthesis_quality


def test_all_registered_metrics_report_their_numbers() -> None:
    generator = torch.Generator().manual_seed(0)
    real, synthetic = (
        torch.randn(30, 8, generator=generator),
        torch.randn(30, 8, generator=generator),
    )

    numbers = synthesis_quality(real, synthetic, generator=generator)

    assert set(numbers) == {
        "kid_mean", "kid_std", "kid_subset_size", "frechet_distance",
        "precision", "recall", "density", "coverage",
    }  # fmt: skip
    assert numbers["frechet_distance"] == pytest.approx(frechet_distance(real, synthetic))


def test_unknown_metric_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown synthesis metric"):
        synthesis_quality(torch.randn(5, 2), torch.randn(5, 2), names=["fid", "kid"])


def test_small_sets_get_half_size_kid_subsets_so_the_spread_means_something() -> None:
    generator = torch.Generator().manual_seed(1)
    real, synthetic = (
        torch.randn(40, 4, generator=generator),
        torch.randn(30, 4, generator=generator),
    )

    numbers = synthesis_quality(real, synthetic, names=["kid"], generator=generator)

    assert numbers["kid_subset_size"] == 15
    assert numbers["kid_std"] > 0.0
