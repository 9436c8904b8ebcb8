"""Losses against their textbook formulas, and the regularisers' gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.gan.losses import (
    LeCam,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)


def test_bce_is_sigmoid_cross_entropy_on_logits() -> None:
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = F.binary_cross_entropy(torch.sigmoid(real), torch.ones(2)) + F.binary_cross_entropy(
        torch.sigmoid(fake), torch.zeros(2)
    )
    assert torch.allclose(discriminator_loss("bce", real, fake), expected)
    assert torch.allclose(
        generator_loss("bce", fake), F.binary_cross_entropy(torch.sigmoid(fake), torch.ones(2))
    )


def test_hinge_and_wasserstein_losses() -> None:
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(
        (0 + 1) / 2 + (0 + 1.5) / 2
    )
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-0.75 - 1.0)
    assert generator_loss("hinge", fake).item() == pytest.approx(0.75)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic() -> None:
    class Slope(nn.Module):
        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return x[:, 0, 0, 0]  # gradient norm exactly 1 everywhere

    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    penalty = gradient_penalty(Slope(), real, fake, torch.zeros(4, dtype=torch.long), torch.rand(4))
    assert penalty.item() == pytest.approx(0.0)


def test_r1_is_the_squared_gradient_norm() -> None:
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return 3.0 * x.flatten(1).sum(1)

    penalty = r1_penalty(Scale(), torch.randn(2, 1, 2, 2), torch.zeros(2, dtype=torch.long))
    assert penalty.item() == pytest.approx(9.0 * 4)


def test_lecam_is_zero_when_outputs_sit_on_their_anchors_and_grows_otherwise() -> None:
    lecam = LeCam(decay=0.0)
    assert lecam(torch.zeros(3), torch.zeros(3)).item() == 0.0
    lecam = LeCam(decay=1.0)  # anchors stay at zero
    assert lecam(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(4.0 + 1.0)
