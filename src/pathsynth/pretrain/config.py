"""The configuration of a self-supervised pretraining run (SimCLR), with its presets.

One frozen dataclass per concern, resolved as ``defaults <- preset <- --set overrides`` by
:func:`pathsynth.config.resolve`; the resolved config is saved as the run's ``config.json`` and in
every checkpoint.

Presets:

``smoke``
    Tests: 32 px views of 48 px inputs, a handful of steps.
``quick``
    Two CPU cores, a budget like the ``quick`` GAN stage's (7.6 to 28 minutes in BENCHMARKS.md):
    64 px views, batch 64, 80 steps (about 10 minutes on the shared 2-core machine).
``gpu``
    One GPU: 128 px views, batch 256, 3000 steps, bf16.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pathsynth.config import Presets, to_json, to_plain
from pathsynth.errors import ConfigError
from pathsynth.imaging.config import COLOUR_PRESETS, ColourAugmentConfig
from pathsynth.imaging.patches import PreprocessConfig

AMP_MODES = ("auto", "bf16", "off")

# SimCLR's ablation (Chen et al. 2020, fig. 5) found strong colour distortion the augmentation
# contrastive learning needs most; in H&E the colour that varies is the stain's, so the views
# take the classifier's histology stain/colour jitter with every operation more likely.
SSL_COLOUR = dataclasses.replace(
    COLOUR_PRESETS["histology"],
    randstain_p=0.8,
    hed_p=0.8,
    hue_p=0.5,
    saturation_p=0.8,
    brightness_p=0.8,
    contrast_p=0.8,
    gamma_p=0.5,
    blur_p=0.3,
    noise_p=0.2,
)


@dataclass(frozen=True)
class DataConfig:
    """How catalog images become the pool views are cut from."""

    preprocess: PreprocessConfig = field(
        default_factory=lambda: PreprocessConfig(mode="resize", size=128)
    )  # each image (or its patches) as stored inputs; patches all join the pool
    view_size: int = 64  # side of each view (the backbone's input side), pixels
    min_scale: float = 0.25  # random resized crop: smallest share of the input's area, in (0, 1]
    max_aspect: float = 4.0 / 3.0  # random resized crop: aspect ratio in [1/max, max]

    def __post_init__(self) -> None:
        if self.view_size < 16:
            raise ConfigError(f"data.view_size must be at least 16 pixels, got {self.view_size}")
        if not 0.0 < self.min_scale <= 1.0:
            raise ConfigError(f"data.min_scale must be in (0, 1], got {self.min_scale}")
        if not (math.isfinite(self.max_aspect) and self.max_aspect >= 1.0):
            raise ConfigError(f"data.max_aspect must be >= 1, got {self.max_aspect}")


@dataclass(frozen=True)
class ModelConfig:
    """The backbone being pretrained and the projection head the loss sees."""

    backbone: str = "resnet18"  # any timm architecture (random init, seeded by run.seed)
    projection_hidden: int = 512  # width of the head's hidden layer
    projection_dim: int = 128  # dimension the NT-Xent loss compares

    def __post_init__(self) -> None:
        if not self.backbone:
            raise ConfigError("model.backbone must name a timm architecture")
        for name in ("projection_hidden", "projection_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class LossConfig:
    """NT-Xent (SimCLR): each view's partner against every other view of the global batch."""

    temperature: float = 0.2  # softmax temperature of the cosine similarities, > 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ConfigError(f"loss.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and a cosine decay."""

    steps: int = 80  # optimiser steps of the whole run
    batch_size: int = 64  # images per global batch (two views each), split over ranks
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    warmup_steps: int = 8  # linear warm-up steps
    final_lr_fraction: float = 0.01  # the cosine's end as a share of lr

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"optim.steps must be at least 1, got {self.steps}")
        if self.batch_size < 2:
            raise ConfigError(f"optim.batch_size must be at least 2, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0.0):
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0.0):
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ConfigError(
                f"optim.final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}"
            )


@dataclass(frozen=True)
class RunConfig:
    """Run bookkeeping and the speed options."""

    seed: int = 0  # seeds the weights, the data order and every augmentation draw
    checkpoint_every: int = 20  # steps between 'last' checkpoints (0 = only at the end)
    log_every: int = 5  # steps between JSONL stats lines
    device: str = "auto"  # "auto" (cuda if present) | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"  # "auto" (bf16 on CUDA and CPUs with native bf16) | "bf16" | "off"
    channels_last: bool = True  # NHWC memory format for convolutions

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ConfigError(f"run.amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"run.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.log_every < 1:
            raise ConfigError(f"run.log_every must be at least 1, got {self.log_every}")


@dataclass(frozen=True)
class PretrainConfig:
    """The whole resolved configuration of a pretraining run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    colour: ColourAugmentConfig = field(default_factory=lambda: SSL_COLOUR)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = "quick"  # the preset it was resolved from (informational)

    def to_dict(self) -> dict[str, Any]:
        """The config as nested plain data (what ``config.json`` holds)."""
        return to_plain(self)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return to_json(self)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data.preprocess": PreprocessConfig(mode="resize", size=48),
        "data.view_size": 32,
        "model.projection_hidden": 32,
        "model.projection_dim": 16,
        "optim.steps": 6,
        "optim.batch_size": 8,
        "optim.warmup_steps": 2,
        "run.checkpoint_every": 3,
        "run.log_every": 1,
        "run.amp": "off",
    },
    "quick": {},
    "gpu": {
        "data.preprocess": PreprocessConfig(mode="resize", size=256),
        "data.view_size": 128,
        "optim.steps": 3000,
        "optim.batch_size": 256,
        "optim.lr": 2e-3,
        "optim.warmup_steps": 100,
        "run.checkpoint_every": 500,
        "run.log_every": 50,
        "run.amp": "bf16",
    },
}


PRETRAIN: Presets[PretrainConfig] = Presets(PretrainConfig, PRESETS, "pretrain")
"""Self-supervised pretraining's configs (see :class:`~pathsynth.config.Presets`)."""
