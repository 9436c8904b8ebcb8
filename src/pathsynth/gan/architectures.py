"""The generator and discriminator a config's ``model.arch`` names, built in one place.

``"dcgan"``: the paper's networks (:mod:`pathsynth.gan.networks`); ``"fastgan"``: Liu et al.
2021 (:mod:`pathsynth.gan.fastgan`). The trainer, sampling and the benchmarks build through
these functions, so a new architecture is added here once.
"""

from __future__ import annotations

from torch import nn

from pathsynth.errors import ConfigError
from pathsynth.gan.config import ModelConfig, TrainConfig
from pathsynth.gan.fastgan import FastGanDiscriminator, FastGanGenerator, fastgan_doublings
from pathsynth.gan.networks import (
    ConditionalGenerator,
    Discriminator,
    Generator,
    generator_stride2_layers,
)


def check_architecture(config: TrainConfig) -> None:
    """Refuse, before any data is read, an image size the networks cannot make and options the
    architecture does not have.

    Raises:
        ConfigError: the size and the sizes that work; ``loss.reconstruction_weight`` without
            ``model.arch`` fastgan (only its discriminator has decoders).
    """
    resolution = config.data.resolution
    if config.model.arch == "fastgan":
        fastgan_doublings(resolution)
    else:
        generator_stride2_layers(config.model, resolution)
        if config.loss.reconstruction_weight > 0:
            raise ConfigError(
                f"loss.reconstruction_weight needs model.arch fastgan (its discriminator has the "
                f"decoders), not {config.model.arch!r}"
            )


def build_generator(model: ModelConfig, resolution: int, num_classes: int) -> ConditionalGenerator:
    """The generator of ``model.arch`` (weights from torch's global RNG).

    Raises:
        ConfigError: a resolution it cannot make.
    """
    if model.arch == "fastgan":
        return FastGanGenerator(model, resolution, num_classes)
    return Generator(model, resolution, num_classes)


def build_discriminator(model: ModelConfig, resolution: int, num_classes: int) -> nn.Module:
    """The discriminator of ``model.arch`` (weights from torch's global RNG).

    Raises:
        ConfigError: a resolution it cannot take.
    """
    if model.arch == "fastgan":
        return FastGanDiscriminator(model, resolution, num_classes)
    return Discriminator(model, resolution, num_classes)
