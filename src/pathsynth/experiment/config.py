"""The experiment's configuration: one dataclass per concern of the run, presets as overrides.

``smoke`` is for tests (under a minute on 2 CPU cores); ``quick`` finishes on 2 CPU cores in about
20 minutes per modality and shows real, if modest, results; ``paper`` is the reference work's full
schedule (128x128, 3000 GAN epochs over a 1000-image expansion, 5 seeds) and wants a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pathsynth.errors import ConfigError
from pathsynth.experiment.protocols import CONDITIONS, PROTOCOLS
from pathsynth.imaging.affine import AffineConfig
from pathsynth.imaging.patches import PreprocessConfig, preprocess_preset
from pathsynth.presets import resolve_preset


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one ``reproduce`` run does, resolved and saved with its results.

    Args: see the comment on each field.
    """

    preset: str = "quick"  # the named preset this was resolved from
    test_fraction: float = 0.3  # real images held out per class (the paper's 7:3)
    split_seed: int = 0  # seeds the patient-aware split of the real images
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)  # network inputs
    affine: AffineConfig = field(default_factory=AffineConfig)  # expansion ranges
    affine_per_class: int = 250  # training images per class after expansion (originals included)
    gan_preset: str = "modern"  # pathsynth.gan preset the GAN starts from
    gan_overrides: dict[str, Any] = field(default_factory=dict)  # dotted GAN config keys
    synthetic_per_class: int = 250  # GAN images generated per class
    generate_seed: int = 0  # seed of the generation noise
    classifier_preset: str = "quick"  # pathsynth.classify preset
    classifier_overrides: dict[str, Any] = field(default_factory=dict)  # its fields
    protocols: tuple[str, ...] = PROTOCOLS  # "honest" | "paper"
    conditions: tuple[str, ...] = CONDITIONS  # training sets compared
    seeds: int = 5  # classifier runs per condition (paired across conditions)
    validation_fraction: float = 0.15  # real training groups held out for early stopping
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda"
    inception_weights: str | None = None  # local Inception-v3 state dict: adds standard FID/KID

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown:
            raise ConfigError(
                f"unknown protocol(s) {', '.join(sorted(unknown))}; known: {PROTOCOLS}"
            )
        unknown = set(self.conditions) - set(CONDITIONS)
        if unknown:
            raise ConfigError(
                f"unknown condition(s) {', '.join(sorted(unknown))}; known: {', '.join(CONDITIONS)}"
            )
        if self.seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {self.seeds}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (saved with the results)."""
        return dataclasses.asdict(self)


# Per modality, the network input of each preset (see pathsynth.imaging.patches for the reasons).
_INPUTS = {
    ("histology", "smoke"): preprocess_preset("histology", size=32, scale=8.0, patches_per_image=2),
    ("histology", "quick"): preprocess_preset("histology", size=64, scale=4.0, patches_per_image=2),
    ("histology", "paper"): preprocess_preset("histology-whole", size=128),
    ("cytology", "smoke"): preprocess_preset("cytology", size=32, scale=8.0),
    ("cytology", "quick"): preprocess_preset("cytology", size=64, scale=4.0),
    ("cytology", "paper"): preprocess_preset("cytology-resize", size=128),
}

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "affine_per_class": 150,
        "synthetic_per_class": 8,
        "gan_preset": "smoke",
        "gan_overrides": {
            "optim.steps": 6,
            "run.quality_every": 3,
            "run.sample_every": 3,
            "run.checkpoint_every": 3,
        },
        "classifier_preset": "smoke",
        "seeds": 2,
    },
    "quick": {
        "affine_per_class": 200,
        "synthetic_per_class": 150,
        "gan_preset": "modern",
        "gan_overrides": {
            "data.resolution": 64,
            "model.g_channel_base": 2048,
            "model.g_channel_max": 128,
            "model.d_channel_base": 2048,
            "model.d_channel_max": 128,
            "optim.batch_size": 32,
            "optim.steps": 3000,
            "run.quality_every": 500,
            "run.sample_every": 500,
            "run.checkpoint_every": 500,
            "run.log_every": 50,
        },
        "classifier_preset": "quick",
        "classifier_overrides": {"epochs": 12, "patience": 3, "min_epochs": 8, "batch_size": 64},
        "seeds": 3,
    },
    "paper": {
        "affine_per_class": 250,  # 4 classes x 250 = the paper's 1000-image expansion
        "synthetic_per_class": 400,  # the paper generated about 320-475 per class
        "gan_preset": "paper",
        "gan_overrides": {"optim.epochs": 3000},
        "classifier_preset": "paper",
        "seeds": 5,
    },
}


def experiment_config(preset: str, modality: str, **overrides: Any) -> ExperimentConfig:
    """The named preset for a modality, with field overrides.

    Raises:
        ConfigError: an unknown preset, modality or field.
    """
    if (modality, preset) not in _INPUTS and preset in PRESETS:
        raise ConfigError(f"unknown modality {modality!r}; choose histology or cytology")
    presets = {
        name: {"preset": name, "preprocess": _INPUTS.get((modality, name)), **values}
        for name, values in PRESETS.items()
    }
    chosen = {key: value for key, value in overrides.items() if value is not None}
    return resolve_preset(ExperimentConfig, presets, preset, chosen, "experiment")
