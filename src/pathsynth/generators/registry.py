"""The generator kinds by name: each kind's module is imported only when the kind is asked for, so
an experiment with one generator never loads the other's packages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pathsynth.errors import ConfigError
from pathsynth.generators.base import ImageGenerator

Factory = Callable[[Any, Mapping[str, Any]], ImageGenerator]


def _gan(config: Any, sampling: Mapping[str, Any]) -> ImageGenerator:
    from pathsynth.generators.gan import GanGenerator

    return GanGenerator(config, sampling)


def _diffusion(config: Any, sampling: Mapping[str, Any]) -> ImageGenerator:
    from pathsynth.generators.diffusion import DiffusionGenerator

    return DiffusionGenerator(config, sampling)


# kind -> factory taking that kind's config (None: a generator that only samples existing runs)
# and the sampling settings to change from the run's own
GENERATORS: dict[str, Factory] = {"gan": _gan, "diffusion": _diffusion}


def generator_for(
    kind: str, config: Any = None, sampling: Mapping[str, Any] | None = None
) -> ImageGenerator:
    """The generator of ``kind`` with its config and sampling settings.

    Raises:
        ConfigError: an unknown kind (the message lists the known ones), or sampling settings
            the kind does not have.
    """
    if kind not in GENERATORS:
        raise ConfigError(f"unknown generator {kind!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[kind](config, sampling or {})
