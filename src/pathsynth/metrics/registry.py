"""The synthesis-quality metrics by name, each giving a flat dict of numbers for the report.

Every entry takes ``(real_features, synthetic_features, generator)`` and returns
``{metric_key: value}``; the report and the pipeline ask for metrics by these names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pathsynth.errors import ConfigError
from pathsynth.metrics.frechet import frechet_distance
from pathsynth.metrics.kid import kernel_inception_distance
from pathsynth.metrics.prdc import precision_recall_density_coverage

KID_SUBSET_SIZE = 1000  # the standard subset size (torchmetrics, clean-fid) for large sets

SynthesisMetric = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None], dict[str, float]]


def _kid(real: torch.Tensor, synthetic: torch.Tensor, generator: torch.Generator | None) -> dict:
    # Subsets of half the smaller set (at most the standard 1000): a subset covering a whole set
    # is the same every time, which would report a spread of 0 that means nothing.
    subset_size = min(KID_SUBSET_SIZE, max(2, min(len(real), len(synthetic)) // 2))
    result = kernel_inception_distance(
        real, synthetic, subset_size=subset_size, generator=generator
    )
    return {"kid_mean": result.mean, "kid_std": result.std, "kid_subset_size": result.subset_size}


def _fd(real: torch.Tensor, synthetic: torch.Tensor, generator: torch.Generator | None) -> dict:
    return {"frechet_distance": frechet_distance(real, synthetic)}


def _prdc(real: torch.Tensor, synthetic: torch.Tensor, generator: torch.Generator | None) -> dict:
    result = precision_recall_density_coverage(real, synthetic)
    return {
        "precision": result.precision,
        "recall": result.recall,
        "density": result.density,
        "coverage": result.coverage,
    }


SYNTHESIS_METRICS: dict[str, SynthesisMetric] = {
    "kid": _kid,  # kernel distance, unbiased; mean and std over subsets
    "fd": _fd,  # Frechet distance (FID on Inception features)
    "prdc": _prdc,  # precision, recall, density, coverage (k = 5)
}


def synthesis_quality(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    names: Sequence[str] = tuple(SYNTHESIS_METRICS),
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Compute the named synthesis-quality metrics on one pair of feature sets.

    Args:
        real: (m, d) features of real images.
        synthetic: (n, d) features of synthetic images from the same extractor.
        names: metric names from :data:`SYNTHESIS_METRICS`.
        generator: torch generator for the random parts (KID subsets).

    Returns:
        All metrics' numbers in one dict.

    Raises:
        ConfigError: an unknown metric name.
        DataError: features any metric refuses.
    """
    unknown = [name for name in names if name not in SYNTHESIS_METRICS]
    if unknown:
        raise ConfigError(
            f"unknown synthesis metric(s) {', '.join(unknown)}; "
            f"known: {', '.join(SYNTHESIS_METRICS)}"
        )
    numbers: dict[str, float] = {}
    for name in names:
        numbers.update(SYNTHESIS_METRICS[name](real, synthetic, generator))
    return numbers
