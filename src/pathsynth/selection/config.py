"""Thresholds of selective synthesis: one dataclass, every field commented, presets as overrides.

Two ways to set the thresholds, per class:

- ``quantile`` (default): from the real training fold itself. A generated image of class c needs
  at least the confidence the real-trained classifier gives the ``confidence_quantile`` quantile
  of class c's real validation images (held out from that classifier's training, never the test
  fold), and at most the feature distance the ``distance_quantile`` quantile of class c's real
  training images has to its own nearest real images of class c (other images only).
- ``fixed``: ``min_confidence`` for every class, and at most ``max_distance_ratio`` times the
  median real-to-real distance of the class.

Near-copies of a real training image (the memorisation check) are always rejected. When fewer than
``keep_floor`` of a class's generated images pass, the best-ranked rejected ones that are not
near-copies are kept up to that fraction, so no class loses all its generated images to a noisy
threshold (their reason says ``floor``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from pathsynth.config import Presets
from pathsynth.errors import ConfigError

THRESHOLDS = ("quantile", "fixed")


@dataclass(frozen=True)
class SelectionConfig:
    """How generated images are selected (see the module docstring).

    Args: see the comment on each field.
    """

    preset: str = "none"  # the named preset this was resolved from
    enabled: bool = False  # compare a ":selected" variant of every condition with generated images
    threshold: str = "quantile"  # "quantile" | "fixed": where each class's thresholds come from
    confidence_quantile: float = 0.1  # quantile mode: of real validation images' confidence, [0, 1]
    distance_quantile: float = 0.9  # quantile mode: of real images' distance to their class, [0, 1]
    min_confidence: float = 0.5  # fixed mode: probability of the intended class, [0, 1]
    max_distance_ratio: float = 1.5  # fixed mode: times the class's median real distance, > 0
    neighbours: int = 3  # nearest real images of the class averaged into a distance, >= 1
    near_copy_ratio: float = 0.25  # memorisation: below this ratio an image is a near-copy, > 0
    keep_floor: float = 0.2  # per class at least this fraction kept (never near-copies), [0, 1]

    def __post_init__(self) -> None:
        if self.threshold not in THRESHOLDS:
            raise ConfigError(
                f"selection.threshold {self.threshold!r} is unknown; choose quantile or fixed"
            )
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"selection.{item.name} must be finite, got {value}")
        for name in ("confidence_quantile", "distance_quantile", "min_confidence", "keep_floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"selection.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_distance_ratio <= 0 or self.near_copy_ratio <= 0:
            raise ConfigError("selection.max_distance_ratio and near_copy_ratio must be above 0")
        if self.neighbours < 1:
            raise ConfigError(f"selection.neighbours must be at least 1, got {self.neighbours}")


SELECTION_PRESETS: dict[str, dict[str, Any]] = {
    "none": {},  # no selected conditions
    "lenient": {
        "enabled": True,
        "confidence_quantile": 0.05,
        "distance_quantile": 0.95,
        "keep_floor": 0.3,
    },
    "default": {"enabled": True},
    "strict": {
        "enabled": True,
        "confidence_quantile": 0.25,
        "distance_quantile": 0.75,
        "keep_floor": 0.1,
    },
    "fixed": {"enabled": True, "threshold": "fixed"},
}


SELECTION: Presets[SelectionConfig] = Presets(SelectionConfig, SELECTION_PRESETS, "selection")
"""Selective synthesis's configs (see :class:`~pathsynth.config.Presets`)."""
