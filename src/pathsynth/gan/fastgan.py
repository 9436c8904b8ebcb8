"""FastGAN's generator and discriminator (Liu et al. 2021), class-conditional as the paper's nets.

Liu, Zhu, Song, Elgammal, *Towards Faster and Stabilized GAN Training for High-fidelity Few-shot
Image Synthesis* (ICLR 2021), made for sets of about 100 images and a few GPU-hours:

- **Generator**: noise + class embedding -> 4x4 transposed convolution -> upsampling blocks
  (nearest upsampling, 3x3 convolution, batch norm, GLU; two convolutions at 8, 32, 128 px as in
  the paper's ``UpBlockComp``) to the resolution, then a 3x3 convolution to RGB and tanh.
  **Skip-layer excitation** (SLE): the 4x4 map gates the channels of the 64x64 one and the 8x8
  map those of the 128x128 one (pool to 4x4, 4x4 convolution, swish, 1x1 convolution, sigmoid),
  a cheap long skip that carries the coarse layout to the fine layers.
- **Discriminator**: a stride-2 stem, residual down blocks (strided 4x4 + 3x3 convolutions beside
  average pooling + 1x1 convolution) to 8x8, an SLE from the stem's map to the 8x8 one, then a
  1x1 convolution, sum pooling, a one-logit head and a class projection (the paper's nets'
  conditioning: :class:`pathsynth.gan.networks.Discriminator`).
  **Self-supervised reconstruction**: two small decoders rebuild, from the 8x8 map, the whole real
  image at half its side, and, from a random quarter of the 16x16 map, that quarter of the real
  image at full resolution. Their L1 loss (real images only) makes D keep a description of the
  whole image instead of the few features that separate real from fake on a small set.

Where we differ from the paper, and why:

- **No noise injection** in G: per-pixel noise would come from the global RNG per rank, so a run
  under torchrun would no longer match one process, and generation would no longer be a function
  of the seed's noise alone; the paper's ablation credits SLE and the decoders, not the noise.
- **L1 instead of LPIPS** for the reconstruction: LPIPS needs downloaded VGG/AlexNet weights,
  which this project never fetches.
- **No batch norm in D or its decoders** (spectral norm, ``model.spectral_norm``, instead, as the
  paper also has): a batch norm in D would see each rank's part of the batch only, and a run
  under torchrun would differ from one process.
- **No small-image branch** in D (the paper's second 128-px path): half the D cost on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.errors import ConfigError
from pathsynth.gan.config import ModelConfig
from pathsynth.gan.networks import ConditionalGenerator, channel_width

SLE_PAIRS = ((4, 64), (8, 128), (16, 256), (32, 512))  # (gating side, gated side), the paper's
MIN_SIDE, MAX_SIDE = 32, 1024  # D reaches 8x8 after the stem and needs a 16x16 map before it
Wrap = Callable[[nn.Module], nn.Module]  # a weight normaliser (spectral norm) or the identity


def fastgan_doublings(resolution: int) -> int:
    """How many 2x upsamplings take G's 4x4 map to ``resolution``.

    Raises:
        ConfigError: a resolution that is not a power of two in [32, 1024].
    """
    doublings = round(math.log2(resolution)) - 2 if resolution > 0 else 0
    if not MIN_SIDE <= resolution <= MAX_SIDE or 4 * 2**doublings != resolution:
        raise ConfigError(
            f"image size {resolution} cannot be made by model.arch fastgan: it needs a power of "
            f"two from {MIN_SIDE} to {MAX_SIDE} (e.g. 32, 64, 128, 256)"
        )
    return doublings


class SkipLayerExcitation(nn.Module):
    """SLE: channel gates for a large map computed from a small one.

    Args:
        small_channels: channels of the gating (small) map.
        large_channels: channels of the gated (large) map.
        wrap: a weight normaliser applied to the convolutions (spectral norm in D).
    """

    def __init__(self, small_channels: int, large_channels: int, wrap: Wrap | None = None) -> None:
        super().__init__()
        norm = wrap if wrap is not None else _identity
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            norm(nn.Conv2d(small_channels, large_channels, 4)),
            nn.SiLU(),  # swish, as in the paper
            norm(nn.Conv2d(large_channels, large_channels, 1)),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        return large * self.gate(small)


def _identity(module: nn.Module) -> nn.Module:
    return module


def _up_block(in_channels: int, out_channels: int, convolutions: int) -> nn.Sequential:
    """Nearest 2x upsampling, then ``convolutions`` x (3x3 conv, batch norm, GLU)."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
    channels = in_channels
    for _ in range(convolutions):
        layers += [
            nn.Conv2d(channels, 2 * out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * out_channels),
            nn.GLU(dim=1),
        ]
        channels = out_channels
    return nn.Sequential(*layers)


class FastGanGenerator(ConditionalGenerator):
    """FastGAN generator; ``forward(noise, labels)`` returns images in [-1, 1].

    Args:
        model: network shape settings (noise and embedding sizes, ``g_channel_base/max``).
        resolution: output side in pixels.
        num_classes: number of classes the labels index.

    Raises:
        ConfigError: a resolution it cannot make (see :func:`fastgan_doublings`).
    """

    def __init__(self, model: ModelConfig, resolution: int, num_classes: int) -> None:
        super().__init__()
        doublings = fastgan_doublings(resolution)
        self.noise_dim = model.noise_dim
        self.num_classes = num_classes
        self.resolution = resolution

        def width(side: int) -> int:
            return channel_width(model.g_channel_base, model.g_channel_max, side)

        self.class_embed = nn.Embedding(num_classes, model.class_embed_dim)
        self.initial = nn.Sequential(
            # no bias: the batch norm after it removes any (the paper's has none either), and a
            # bias with a zero gradient is moved by Adam on float noise alone
            nn.ConvTranspose2d(
                model.noise_dim + model.class_embed_dim, 2 * width(4), 4, bias=False
            ),
            nn.BatchNorm2d(2 * width(4)),
            nn.GLU(dim=1),
        )
        self.sides = [4 * 2**k for k in range(1, doublings + 1)]
        self.up = nn.ModuleList(
            _up_block(width(side // 2), width(side), 2 if math.log2(side) % 2 else 1)
            for side in self.sides
        )
        self.excitation_sources = {
            large: small for small, large in SLE_PAIRS if large <= resolution
        }
        self.excite = nn.ModuleDict(
            {
                str(large): SkipLayerExcitation(width(small), width(large))
                for large, small in self.excitation_sources.items()
            }
        )
        self.rgb = nn.Conv2d(width(resolution), 3, 3, padding=1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.class_embed(labels)], dim=1)[:, :, None, None]
        if self.rgb.weight.is_contiguous(memory_format=torch.channels_last):
            # the module was put in channels_last: feed the convolutions NHWC from the start
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.initial(x)
        kept = {4: x}
        for side, block in zip(self.sides, self.up, strict=True):
            x = block(x)
            if side in self.excitation_sources:
                x = self.excite[str(side)](kept[self.excitation_sources[side]], x)
            kept[side] = x
        return torch.tanh(self.rgb(x))


class _DownBlock(nn.Module):
    """The paper's ``DownBlockComp`` without batch norm: mean of a strided conv path and a pooled
    1x1 path, each followed by LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, slope: float, wrap: Wrap) -> None:
        super().__init__()
        self.main = nn.Sequential(
            wrap(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)),
            nn.LeakyReLU(slope),
            wrap(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
            nn.LeakyReLU(slope),
        )
        self.direct = nn.Sequential(
            nn.AvgPool2d(2), wrap(nn.Conv2d(in_channels, out_channels, 1)), nn.LeakyReLU(slope)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def _decoder(in_channels: int, out_side: int, base: int, cap: int) -> nn.Sequential:
    """An 8x8 map -> an RGB image of side ``out_side`` (upsample, 3x3 conv, GLU per doubling)."""
    layers: list[nn.Module] = []
    channels, side = in_channels, 8
    while side < out_side:
        side *= 2
        out_channels = max(8, channel_width(base, cap, side) // 2)
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, 2 * out_channels, 3, padding=1),
            nn.GLU(dim=1),
        ]
        channels = out_channels
    layers += [nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh()]
    return nn.Sequential(*layers)


class FastGanDiscriminator(nn.Module):
    """FastGAN discriminator with a class projection and the reconstruction decoders.

    ``forward(images, labels)`` returns one logit per image; ``forward(images, labels,
    reconstruct=n)`` returns ``(logits, loss)``, the loss being the mean L1 error of the decoders'
    reconstructions of the first ``n`` images (the real ones: the trainer puts them first). The
    quarter of the 16x16 map to decode is drawn from torch's global RNG, one per batch, so every
    rank under torchrun draws the same one and a resume continues the same draws.

    Args:
        model: network shape settings (``d_channel_base/max``, ``leaky_slope``,
            ``spectral_norm``, ``class_embed_dim`` is not used: the projection has the features'
            width).
        resolution: input side in pixels.
        num_classes: number of classes the labels index.

    Raises:
        ConfigError: a resolution it cannot take (see :func:`fastgan_doublings`).
    """

    def __init__(self, model: ModelConfig, resolution: int, num_classes: int) -> None:
        super().__init__()
        fastgan_doublings(resolution)
        wrap: Wrap = nn.utils.spectral_norm if model.spectral_norm else _identity
        slope = model.leaky_slope
        self.resolution = resolution

        def width(side: int) -> int:
            return channel_width(model.d_channel_base, model.d_channel_max, side)

        stem_side = resolution // 2
        self.stem = nn.Sequential(
            wrap(nn.Conv2d(3, width(stem_side), 4, stride=2, padding=1)), nn.LeakyReLU(slope)
        )
        self.down_sides = [
            stem_side // 2**k for k in range(1, round(math.log2(stem_side // 8)) + 1)
        ]
        self.down = nn.ModuleList(
            _DownBlock(width(side * 2), width(side), slope, wrap) for side in self.down_sides
        )
        self.excite = SkipLayerExcitation(width(stem_side), width(8), wrap)
        self.head = nn.Sequential(wrap(nn.Conv2d(width(8), width(8), 1)), nn.LeakyReLU(slope))
        self.logit = wrap(nn.Linear(width(8), 1))
        # Projection discriminator: the class enters as <embed(y), pooled features>.
        self.class_projection = wrap(nn.Embedding(num_classes, width(8)))
        base, cap = model.d_channel_base, model.d_channel_max
        self.decode_whole = _decoder(width(8), stem_side, base, cap)
        self.decode_quarter = _decoder(width(16), stem_side, base, cap)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, reconstruct: int = 0
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(images)
        stem, map16 = x, x
        for side, block in zip(self.down_sides, self.down, strict=True):
            x = block(x)
            if side == 16:
                map16 = x
        x = self.excite(stem, x)
        pooled = self.head(x).sum(dim=(2, 3))
        logits = self.logit(pooled).squeeze(1) + (self.class_projection(labels) * pooled).sum(1)
        if not reconstruct:
            return logits
        return logits, self._reconstruction_loss(images[:reconstruct], x, map16, reconstruct)

    def _reconstruction_loss(
        self, real: torch.Tensor, map8: torch.Tensor, map16: torch.Tensor, count: int
    ) -> torch.Tensor:
        half = self.resolution // 2
        quarter = int(torch.randint(4, (1,)).item())
        row, col = divmod(quarter, 2)
        whole = self.decode_whole(map8[:count])
        target_whole = F.avg_pool2d(real, 2)
        piece = self.decode_quarter(map16[:count, :, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8])
        target_piece = real[:, :, row * half : (row + 1) * half, col * half : (col + 1) * half]
        return F.l1_loss(whole.float(), target_whole.float()) + F.l1_loss(
            piece.float(), target_piece.float()
        )
