"""A cheap quality signal for keeping the best checkpoint: KID on fixed features.

Not a metric to report (that is ``pathsynth.metrics``): it only has to rank checkpoints of one run
against the same real images, every few hundred steps, in well under a second. By default the
features are a 4x4 average-pooled colour layout plus the pooled outputs of a fixed, seeded random
conv net (which responds to texture and edges); with ``run.quality_backbone`` they are a timm
backbone's (:class:`BackboneSignal`: an SSL or foundation model's weights, the domain features
the experiment's quality stage reports on). The distance is the unbiased polynomial-kernel MMD^2
(KID).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.backbones.load import load_backbone
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


class BackboneSignal(nn.Module):
    """A frozen timm backbone's pooled features of images in [-1, 1], resized and normalised as
    its pretrained config asks.

    Args:
        name: the timm architecture or hf-hub id.
        weights: its weights file or hub id; ``None`` = random init (seeded, reproducible).
        input_size: the side it sees; 0 = its pretrained config's.

    Raises:
        ConfigError, CheckpointError: what :func:`~pathsynth.backbones.load.load_backbone`
            refuses.
    """

    mean: torch.Tensor  # the backbone's input normalisation, (1, 3, 1, 1) buffers
    std: torch.Tensor

    def __init__(self, name: str, weights: str | None = None, input_size: int = 0) -> None:
        super().__init__()
        backbone = load_backbone(name, weights, input_size=input_size or None)
        self.model = backbone.model.requires_grad_(False).eval()
        self.size = backbone.spec.size
        self.mode = "bicubic" if backbone.spec.interpolation == "bicubic" else "bilinear"
        self.register_buffer("mean", torch.tensor(backbone.spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(backbone.spec.std).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> BackboneSignal:
        """Always eval: the backbone is a fixed feature."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        if self.size and (x.shape[-1] != self.size or x.shape[-2] != self.size):  # as embed does
            x = F.interpolate(x, size=(self.size, self.size), mode=self.mode, align_corners=False)
            x = x.clamp(0.0, 1.0)
        return self.model((x - self.mean) / self.std).float()


def signal_features(name: str = "", weights: str | None = None, input_size: int = 0) -> nn.Module:
    """The checkpoint signal's features: :class:`CheapFeatures` without a backbone name, else
    :class:`BackboneSignal`."""
    return BackboneSignal(name, weights, input_size) if name else CheapFeatures()


def kid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (KID) between two feature sets.

    Args:
        real: (N, D) features of real images, N >= 2.
        fake: (M, D) features of generated images, M >= 2.

    Raises:
        DataError: what :func:`pathsynth.metrics.kid.mmd2_unbiased` refuses.
    """
    return mmd2_unbiased(real, fake)
