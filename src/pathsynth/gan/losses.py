"""Adversarial losses and the regularisers on the discriminator.

Every function takes logits (raw D outputs) and returns a scalar tensor to minimise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def discriminator_loss(
    kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """The discriminator's adversarial loss.

    Args:
        kind: ``"bce"`` (sigmoid cross-entropy on logits), ``"wgan-gp"`` (critic difference; the
            gradient penalty is added separately) or ``"hinge"``.
        real_logits: D's outputs on real images.
        fake_logits: D's outputs on generated images.

    Raises:
        ValueError: an unknown kind (the config validation refuses it earlier).
    """
    if kind == "bce":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss (non-saturating for ``bce``).

    Raises:
        ValueError: an unknown kind.
    """
    if kind == "bce":
        return F.softplus(-fake_logits).mean()
    if kind in ("wgan-gp", "hinge"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor,
    mix: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP: mean of ``(|grad D(x_hat)| - 1)^2`` on random mixes of real and fake.

    Args:
        discriminator: the critic (unwrapped; called directly).
        real: real images.
        fake: generated images (detached).
        labels: class labels of the pairs.
        mix: per-image mixing weights in [0, 1], shape (N,).
    """
    alpha = mix.view(-1, 1, 1, 1).to(real.dtype)
    mixed = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    logits = discriminator(mixed, labels)
    (grad,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
    return ((grad.float().flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean of ``|grad D(x_real)|^2`` (multiply by gamma / 2)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real, labels)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1).mean()


class LeCam(nn.Module):
    """LeCam regulariser (Tseng et al. 2021) with EMA anchors of D's real and fake outputs.

    ``reg = mean(relu(D(real) - anchor_fake)^2) + mean(relu(anchor_real - D(fake))^2)``. The
    anchors are buffers so they are saved and resumed with the trainer state.

    Args:
        decay: EMA decay of the anchors.
        all_reduce_mean: optional function averaging a tensor over ranks in place (torchrun), so
            every rank moves the anchors by the global batch's means.
    """

    anchor_real: torch.Tensor
    anchor_fake: torch.Tensor

    def __init__(
        self, decay: float, all_reduce_mean: Callable[[torch.Tensor], None] | None = None
    ) -> None:
        super().__init__()
        self.decay = decay
        self.all_reduce_mean = all_reduce_mean
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_fake", torch.zeros(()))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            means = torch.stack([real_logits.float().mean(), fake_logits.float().mean()])
            if self.all_reduce_mean is not None:
                self.all_reduce_mean(means)
            self.anchor_real.lerp_(means[0], 1.0 - self.decay)
            self.anchor_fake.lerp_(means[1], 1.0 - self.decay)
        return (
            F.relu(real_logits.float() - self.anchor_fake).square().mean()
            + F.relu(self.anchor_real - fake_logits.float()).square().mean()
        )
