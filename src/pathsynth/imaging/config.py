"""The imaging operations' configs, without torch: affine expansion (:class:`AffineConfig`),
colour and stain augmentation (:class:`ColourAugmentConfig` and its presets) and the stain
normalisation methods.

Configs are read by every command, the web app included, so they load nothing heavy; the
operations themselves are in :mod:`pathsynth.imaging.affine` and :mod:`pathsynth.imaging.augment`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from pathsynth.errors import ConfigError

STAIN_METHODS = ("macenko", "reinhard")  # stain normalisation (pathsynth.imaging.stain)


@dataclass(frozen=True)
class ColourAugmentConfig:
    """Colour and stain augmentation of training batches, on the device (all off by default).

    Each operation is applied to each image independently with its own probability ``*_p``, in
    this order: RandStainNA statistics, HED jitter, hue, saturation, brightness, contrast, gamma,
    blur, noise. Intensities are for RGB in [0, 1]. See :class:`ColourAugment`.

    Args: see the comment on each field.
    """

    randstain_p: float = 0.0  # RandStainNA: per-image LAB mean/std drawn from the training set's
    randstain_spread: float = 1.0  # scales the spread of the drawn LAB statistics (> 0)
    hed_p: float = 0.0  # Tellez et al. 2019 HED jitter: h' = alpha * h + beta per stain channel
    hed_alpha: float = 0.05  # alpha ~ U(1 - hed_alpha, 1 + hed_alpha), in [0, 1)
    hed_beta: float = 0.01  # beta ~ U(-hed_beta, hed_beta), in skimage's density units (>= 0)
    hue_p: float = 0.0  # hue rotation
    hue: float = 0.02  # shift ~ U(-hue, hue), in turns, in [0, 0.5]
    saturation_p: float = 0.0  # saturation scaling
    saturation: float = 0.2  # factor ~ U(1 - saturation, 1 + saturation), in [0, 1)
    brightness_p: float = 0.0  # additive brightness
    brightness: float = 0.1  # offset ~ U(-brightness, brightness), in [0, 1]
    contrast_p: float = 0.0  # contrast about each image's mean grey level
    contrast: float = 0.2  # factor ~ U(1 - contrast, 1 + contrast), in [0, 1)
    gamma_p: float = 0.0  # gamma curve
    gamma: float = 0.2  # gamma = exp(U(-gamma, gamma)), >= 0
    blur_p: float = 0.0  # Gaussian blur (reflected borders)
    blur_sigma: float = 1.0  # sigma ~ U(0.1, blur_sigma) pixels, in [0.1, 10]
    noise_p: float = 0.0  # additive Gaussian noise
    noise_std: float = 0.03  # per-image std ~ U(0, noise_std), in [0, 1]

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value) or value < 0.0:
                raise ConfigError(f"colour.{item.name} must be a finite number >= 0, got {value}")
            if item.name.endswith("_p") and value > 1.0:
                raise ConfigError(f"colour.{item.name} is a probability in [0, 1], got {value}")
        upper = {
            "hed_alpha": (1.0, False),
            "hue": (0.5, True),
            "saturation": (1.0, False),
            "brightness": (1.0, True),
            "contrast": (1.0, False),
            "noise_std": (1.0, True),
            "blur_sigma": (10.0, True),
        }
        for name, (limit, inclusive) in upper.items():
            value = getattr(self, name)
            if value > limit or (value == limit and not inclusive):
                bound = "<=" if inclusive else "<"
                raise ConfigError(f"colour.{name} must be {bound} {limit}, got {value}")
        if self.blur_sigma < 0.1:
            raise ConfigError(f"colour.blur_sigma must be >= 0.1, got {self.blur_sigma}")
        if self.randstain_spread == 0.0:
            raise ConfigError("colour.randstain_spread must be > 0")

    @property
    def enabled(self) -> bool:
        """True when any operation has a probability above zero."""
        return any(
            getattr(self, item.name) > 0.0 for item in fields(self) if item.name.endswith("_p")
        )


# A histology (H&E) leaning setting: stain variation first (RandStainNA, HED), light photometric
# jitter, rare mild blur and noise. Use as ``CLASSIFIER.resolve(..., {"colour": COLOUR_PRESETS[...]})``.
COLOUR_PRESETS: dict[str, ColourAugmentConfig] = {
    "off": ColourAugmentConfig(),
    "histology": ColourAugmentConfig(
        randstain_p=0.5,
        hed_p=0.5,
        hed_alpha=0.05,
        hed_beta=0.01,
        hue_p=0.3,
        hue=0.02,
        saturation_p=0.5,
        saturation=0.2,
        brightness_p=0.5,
        brightness=0.08,
        contrast_p=0.5,
        contrast=0.2,
        gamma_p=0.3,
        gamma=0.2,
        blur_p=0.1,
        blur_sigma=1.0,
        noise_p=0.1,
        noise_std=0.02,
    ),
}


@dataclass(frozen=True)
class AffineConfig:
    """Ranges the random affine parameters are drawn from, uniformly.

    Microscopy has no "up": a slide goes under the objective in any orientation and either side
    up, so full rotations and both reflections keep the label. Shift and zoom stay small (the
    paper's kind of expansion) because zooming changes the apparent size of nuclei, which is itself
    a diagnostic cue in cytology.

    Args: see the comment on each field.
    """

    max_shift: float = 0.10  # |dx|, |dy| <= this fraction of width / height (reflect-padded)
    min_zoom: float = 0.9  # smallest scale factor (content shrinks, reflected border shows)
    max_zoom: float = 1.1  # largest scale factor (content magnified, edges cut)
    max_rotation: float = 180.0  # |angle| <= this, degrees; 180 = any orientation
    hflip_probability: float = 0.5  # chance of a left-right mirror
    vflip_probability: float = 0.5  # chance of a top-bottom mirror

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_shift < 1.0:
            raise ConfigError(f"max_shift must be in [0, 1), got {self.max_shift}")
        if not 0.0 < self.min_zoom <= self.max_zoom:
            raise ConfigError(
                f"zoom range must satisfy 0 < min_zoom <= max_zoom, got {self.min_zoom}..{self.max_zoom}"
            )
        if not 0.0 <= self.max_rotation <= 180.0:
            raise ConfigError(f"max_rotation must be in [0, 180] degrees, got {self.max_rotation}")
        for name in ("hflip_probability", "vflip_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def as_dict(self) -> dict[str, float]:
        """The configuration as a JSON-able dict (saved with every run)."""
        return dataclasses.asdict(self)
