"""Named presets over a config dataclass: defaults, then the preset, then the user's overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from pathsynth.errors import ConfigError

Config = TypeVar("Config")


def resolve_preset(
    config_type: type[Config],
    presets: Mapping[str, Mapping[str, Any]],
    preset: str,
    overrides: Mapping[str, Any],
    what: str,
) -> Config:
    """``config_type`` built from its defaults, the named preset's fields and ``overrides``.

    Args:
        config_type: a dataclass whose ``__post_init__`` validates its values.
        presets: field values per preset name.
        preset: the chosen name.
        overrides: field values that replace the preset's.
        what: the concern, named in error messages (``classifier``, ``preprocess``).

    Raises:
        ConfigError: an unknown preset, an unknown field (the message lists the valid ones), or a
            value the config refuses.
    """
    if preset not in presets:
        raise ConfigError(f"unknown {what} preset {preset!r}; known: {', '.join(presets)}")
    fields = {field.name for field in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"unknown {what} setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}"
        )
    return config_type(**{**presets[preset], **overrides})
