"""The generator kinds by name: each kind's module is imported only when the kind is asked for, so
an experiment with one generator never loads the other's packages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pathsynth.errors import ConfigError
from pathsynth.generators.base import ImageGenerator


def _gan(config: Any) -> ImageGenerator:
    from pathsynth.generators.gan import GanGenerator

    return GanGenerator(config)


def _diffusion(config: Any) -> ImageGenerator:
    from pathsynth.generators.diffusion import DiffusionGenerator

    return DiffusionGenerator(config)


# kind -> factory taking that kind's config (None: a generator that only samples existing runs)
GENERATORS: dict[str, Callable[[Any], ImageGenerator]] = {"gan": _gan, "diffusion": _diffusion}


def generator_for(kind: str, config: Any = None) -> ImageGenerator:
    """The generator of ``kind`` with its config.

    Raises:
        ConfigError: an unknown kind (the message lists the known ones).
    """
    if kind not in GENERATORS:
        raise ConfigError(f"unknown generator {kind!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[kind](config)
