"""The paper's class-conditional generator and discriminator, sized by :class:`ModelConfig`.

Generator: noise + class embedding -> fully connected -> ``g_layers`` transposed convolutions.
The stride-1 ones come first, at the FC side; the stride-2 ones then double the side up to the
resolution. Discriminator: ``d_layers`` convolutions (the first ``d_stride2_layers`` stride 2),
LeakyReLU then dropout after each, a one-logit linear head plus a class projection.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pathsynth.errors import ConfigError
from pathsynth.gan.config import ModelConfig


def channel_width(base: int, cap: int, side: int) -> int:
    """Channels of a layer working at ``side`` pixels: ``min(cap, base // side)``, at least 1."""
    return max(1, min(cap, base // side))


def generator_stride2_layers(model: ModelConfig, resolution: int) -> int:
    """How many stride-2 transposed convolutions take the FC map to ``resolution``.

    Raises:
        ConfigError: a resolution the generator cannot make (not ``g_fc_side`` times a power of
            two, or needing more doublings than it has layers) or the discriminator cannot take.
    """
    ratio = resolution / model.g_fc_side
    doublings = round(math.log2(ratio)) if ratio >= 1 else -1
    if doublings < 1 or model.g_fc_side * 2**doublings != resolution:
        raise ConfigError(
            f"image size {resolution} cannot be made: the generator doubles a "
            f"{model.g_fc_side}x{model.g_fc_side} map, so sizes are {model.g_fc_side} x 2^k "
            f"(e.g. 32, 64, 128, 256)"
        )
    if doublings > model.g_layers:
        raise ConfigError(
            f"image size {resolution} needs {doublings} stride-2 layers but the generator has "
            f"{model.g_layers} (model.g_layers)"
        )
    if resolution % 2**model.d_stride2_layers:
        raise ConfigError(
            f"image size {resolution} is not divisible by 2^{model.d_stride2_layers} "
            f"(the discriminator's stride-2 layers); use a multiple of {2**model.d_stride2_layers}"
        )
    if model.d_stride2_layers > model.d_layers:
        raise ConfigError("model.d_stride2_layers cannot exceed model.d_layers")
    return doublings


class ConditionalGenerator(nn.Module):
    """What every generator architecture offers sampling: ``forward(noise, labels)`` returns
    images in [-1, 1] of side ``resolution``, from ``noise_dim`` numbers per image and a class
    index below ``num_classes``."""

    noise_dim: int
    num_classes: int
    resolution: int


class Generator(ConditionalGenerator):
    """Class-conditional generator; ``forward(noise, labels)`` returns images in [-1, 1].

    Args:
        model: network shape settings.
        resolution: output side in pixels.
        num_classes: number of classes the labels index.

    Raises:
        ConfigError: a resolution this shape cannot make.
    """

    def __init__(self, model: ModelConfig, resolution: int, num_classes: int) -> None:
        super().__init__()
        doublings = generator_stride2_layers(model, resolution)
        self.noise_dim = model.noise_dim
        self.num_classes = num_classes
        self.resolution = resolution
        pad = model.kernel // 2
        side = model.g_fc_side
        channels = channel_width(model.g_channel_base, model.g_channel_max, side)
        self.class_embed = nn.Embedding(num_classes, model.class_embed_dim)
        self.fc = nn.Linear(model.noise_dim + model.class_embed_dim, channels * side * side)
        self.fc_post = nn.Sequential(
            nn.Dropout(model.g_dropout),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(model.leaky_slope),
        )
        self.fc_shape = (channels, side, side)
        layers: list[nn.Module] = []
        strides = [1] * (model.g_layers - doublings) + [2] * doublings
        for index, stride in enumerate(strides):
            last = index == len(strides) - 1
            out_side = side * stride
            out_channels = (
                3 if last else channel_width(model.g_channel_base, model.g_channel_max, out_side)
            )
            conv = nn.ConvTranspose2d(
                channels,
                out_channels,
                model.kernel,
                stride=stride,
                padding=pad,
                output_padding=stride - 1,
            )
            if last:
                # RGB out: no dropout or batch norm (they would fight the colour statistics).
                layers += [conv, nn.Tanh()]
            else:
                layers += [
                    conv,
                    nn.Dropout(model.g_dropout),
                    nn.BatchNorm2d(out_channels),
                    nn.LeakyReLU(model.leaky_slope),
                ]
            channels, side = out_channels, out_side
        self.body = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.class_embed(labels)], dim=1)
        x = self.fc(x).view(-1, *self.fc_shape)
        first_conv: nn.ConvTranspose2d = self.body[0]  # type: ignore[assignment]
        if first_conv.weight.is_contiguous(memory_format=torch.channels_last):
            # the module was put in channels_last: feed the convolutions NHWC from the start
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(self.fc_post(x))


class Discriminator(nn.Module):
    """Class-conditional discriminator; ``forward(images, labels)`` returns one logit per image.

    Args:
        model: network shape settings.
        resolution: input side in pixels.
        num_classes: number of classes the labels index.

    Raises:
        ConfigError: a resolution this shape cannot take.
    """

    def __init__(self, model: ModelConfig, resolution: int, num_classes: int) -> None:
        super().__init__()
        generator_stride2_layers(model, resolution)
        norm = nn.utils.spectral_norm if model.spectral_norm else (lambda m: m)
        pad = model.kernel // 2
        layers: list[nn.Module] = []
        channels, side = 3, resolution
        for index in range(model.d_layers):
            stride = 2 if index < model.d_stride2_layers else 1
            side //= stride
            out_channels = channel_width(model.d_channel_base, model.d_channel_max, side)
            layers += [
                norm(nn.Conv2d(channels, out_channels, model.kernel, stride=stride, padding=pad)),
                nn.LeakyReLU(model.leaky_slope),
                nn.Dropout(model.d_dropout),
            ]
            channels = out_channels
        self.body = nn.Sequential(*layers)
        self.minibatch_std_group = model.d_minibatch_std_group
        features = (channels + (1 if self.minibatch_std_group else 0)) * side * side
        self.head = norm(nn.Linear(features, 1))
        # Projection discriminator: the class enters as <embed(y), features>.
        self.class_projection = norm(nn.Embedding(num_classes, features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(images)
        if self.minibatch_std_group:
            h = minibatch_std(h, self.minibatch_std_group)
        h = h.flatten(1)
        return self.head(h).squeeze(1) + (self.class_projection(labels) * h).sum(dim=1)


def minibatch_std(features: torch.Tensor, group: int) -> torch.Tensor:
    """``features`` plus one channel: the mean standard deviation over a group of images.

    Groups are *contiguous* runs of ``group`` images (StyleGAN strides them instead), so a batch
    made of real images followed by as many fakes never mixes the two in a group as long as the
    per-rank batch is a multiple of ``group`` (the trainer checks). It lets D see a batch's
    diversity, which counters the per-class mode collapse seen on herlev without it.

    Args:
        features: (N, C, H, W) activations.
        group: group size; ``gcd(N, group)`` is used so any N works.
    """
    n, _, h, w = features.shape
    size = math.gcd(n, group)
    if size <= 1:
        return torch.cat([features, features.new_zeros(n, 1, h, w)], dim=1)
    grouped = features.float().reshape(n // size, size, -1)
    spread = (grouped.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=1)
    channel = spread.repeat_interleave(size).view(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([features, channel.to(features.dtype)], dim=1)
