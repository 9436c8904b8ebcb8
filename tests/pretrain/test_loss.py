"""NT-Xent against a plain per-row reference, and what it rewards."""

import math

import pytest
import torch
import torch.nn.functional as F

from pathsynth.errors import DataError
from pathsynth.pretrain.loss import nt_xent


def _reference(first: torch.Tensor, second: torch.Tensor, temperature: float) -> float:
    """SimCLR's definition, one anchor at a time (Chen et al. 2020, eq. 1)."""
    views = F.normalize(torch.cat([first, second]), dim=1)
    n = len(first)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        similarities = [
            math.exp(float(views[i] @ views[k]) / temperature) for k in range(2 * n) if k != i
        ]
        positive = math.exp(float(views[i] @ views[partner]) / temperature)
        total += -math.log(positive / sum(similarities))
    return total / (2 * n)


def test_nt_xent_matches_the_per_anchor_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(6, 5, generator=generator)
    second = torch.randn(6, 5, generator=generator)

    assert float(nt_xent(first, second, 0.3)) == pytest.approx(
        _reference(first, second, 0.3), rel=1e-5
    )


def test_matching_views_score_lower_than_unrelated_ones() -> None:
    generator = torch.Generator().manual_seed(1)
    first = torch.randn(8, 16, generator=generator)

    matched = nt_xent(first, first + 0.01 * torch.randn(8, 16, generator=generator), 0.2)
    unrelated = nt_xent(first, torch.randn(8, 16, generator=generator), 0.2)

    assert float(matched) < 0.5 < float(unrelated)


def test_views_of_different_shapes_are_refused() -> None:
    with pytest.raises(DataError, match="two"):
        nt_xent(torch.zeros(4, 3), torch.zeros(5, 3), 0.2)
