"""A cheap quality signal for keeping the best checkpoint: KID on fixed random-conv features.

Not a metric to report (that is ``pathsynth.metrics``): it only has to rank checkpoints of one run
against the same real images, every few hundred steps, in well under a second. Features are a
4x4 average-pooled colour layout plus the pooled outputs of a fixed, seeded random conv net (which
responds to texture and edges); the distance is the unbiased polynomial-kernel MMD^2 (KID).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.metrics.kid import mmd2_unbiased


class CheapFeatures(nn.Module):
    """Fixed random features of images in [-1, 1]; the same ``seed`` gives the same features.

    Args:
        seed: seeds the random convolution weights.
    """

    def __init__(self, seed: int = 1234) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        channels = 3
        for out_channels in (32, 64, 64):
            conv = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1, bias=False)
            with torch.no_grad():
                conv.weight.normal_(0.0, (2.0 / (channels * 9)) ** 0.5, generator=generator)
            self.convs.append(conv)
            channels = out_channels
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (
            F.interpolate(images.float(), size=64, mode="area")
            if images.shape[-1] != 64
            else images.float()
        )
        parts = [F.adaptive_avg_pool2d(x, 4).flatten(1)]
        for conv in self.convs:
            x = F.relu(conv(x))
            parts.append(x.mean(dim=(2, 3)))
        return torch.cat(parts, dim=1)


def kid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (KID) between two feature sets.

    Args:
        real: (N, D) features of real images, N >= 2.
        fake: (M, D) features of generated images, M >= 2.

    Raises:
        DataError: what :func:`pathsynth.metrics.kid.mmd2_unbiased` refuses.
    """
    return mmd2_unbiased(real, fake)
