"""Diffusion training configuration: one frozen dataclass per concern, presets as overrides.

The data, EMA and run groups are every generator trainer's (:mod:`pathsynth.training.config`), so both generators
read images, average weights and keep run folders alike; the groups here are what only diffusion
has: the UNet's shape, the noise schedule, classifier-free guidance and the sampler.

Why v-prediction on diffusers' DDPM schedule rather than EDM preconditioning: diffusers'
``DDPMScheduler`` trains it natively (``add_noise``, ``get_velocity``) and its DDIM and
DPM-Solver++ schedulers sample it from the same config, so no solver is written here;
v-prediction keeps the target's scale the same at every noise level (Salimans & Ho 2022),
which is most of what EDM's preconditioning buys, and works with the cosine schedule whose
terminal SNR is close to zero.

Presets:

``smoke``  32 px, two tiny UNet levels, 4 steps: tests.
``quick``  64 px for the 2-core CPU: four levels (16, 32, 64, 128 channels), one ResNet block
           per level, attention at 8 px, batch 32: about 3 GFLOP per image for a training step
           (forward and backward), against 9 for (32, 64, 128, 128) with attention at 16 px too,
           and 1.2 for the quick GAN's G and D.
``gpu``    128 px for one GPU: five levels (32, 64, 128, 256, 256), two blocks per level,
           attention at 16 and 8 px, batch 256, bf16: about 69 GFLOP per image for a training
           step (205 for 64 channels at the top): 1,022 images/s eager and 1,783 compiled
           (``run.compile=true``) on an H200 (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pathsynth.config import Presets, to_json, to_plain
from pathsynth.errors import ConfigError
from pathsynth.training.config import DataConfig, EmaConfig, RunConfig

SAMPLERS = ("ddim", "dpm++")
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")
PREDICTIONS = ("v_prediction", "epsilon")


@dataclass(frozen=True)
class UNetConfig:
    """The diffusers ``UNet2DModel``: one level per entry of ``channels``, halving the side."""

    channels: tuple[int, ...] = (64, 128, 256, 256)  # output channels of each level
    layers_per_block: int = 2  # ResNet blocks per level
    attention_levels: tuple[int, ...] = (2, 3)  # levels (0 = full size) with self-attention
    attention_head_dim: int = 32  # channels per attention head
    norm_groups: int = 32  # GroupNorm groups (must divide every level's channels)
    dropout: float = 0.0  # dropout in the ResNet blocks

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"model.channels must be positive widths, got {self.channels}")
        if self.layers_per_block < 1 or self.attention_head_dim < 1 or self.norm_groups < 1:
            raise ConfigError(
                "model.layers_per_block, model.attention_head_dim and model.norm_groups must be "
                "at least 1"
            )
        bad = [c for c in self.channels if c % self.norm_groups]
        if bad:
            raise ConfigError(
                f"model.norm_groups {self.norm_groups} does not divide model.channels {list(bad)}"
            )
        outside = [i for i in self.attention_levels if not 0 <= i < len(self.channels)]
        if outside:
            raise ConfigError(
                f"model.attention_levels {outside} are not levels 0..{len(self.channels) - 1}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ScheduleConfig:
    """The forward noising process and what the network predicts."""

    train_timesteps: int = 1000  # discrete noise levels of training
    beta_schedule: str = (
        "squaredcos_cap_v2"  # "squaredcos_cap_v2" (cosine) | "linear" | "scaled_linear"
    )
    prediction: str = "v_prediction"  # "v_prediction" | "epsilon"

    def __post_init__(self) -> None:
        if self.train_timesteps < 2:
            raise ConfigError(
                f"schedule.train_timesteps must be at least 2, got {self.train_timesteps}"
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(
                f"schedule.beta_schedule {self.beta_schedule!r} is not one of {', '.join(BETA_SCHEDULES)}"
            )
        if self.prediction not in PREDICTIONS:
            raise ConfigError(
                f"schedule.prediction {self.prediction!r} is not one of {', '.join(PREDICTIONS)}"
            )


@dataclass(frozen=True)
class GuidanceConfig:
    """Classifier-free guidance in training: the label embedding table has one extra row, the
    null class (index = number of classes), which replaces a label with this probability."""

    label_dropout: float = 0.1  # probability a training image is shown with the null label

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError(f"guidance.label_dropout must be in [0, 1), got {self.label_dropout}")


@dataclass(frozen=True)
class SamplingConfig:
    """How images are drawn from the EMA network (grids, ``generate``, the experiment)."""

    sampler: str = "dpm++"  # "dpm++" (DPM-Solver++ 2M) | "ddim" (eta 0)
    steps: int = 25  # solver steps
    guidance: float = 2.0  # classifier-free guidance scale: 1 = conditional only, 0 = unconditional
    guidance_interval: tuple[float, ...] = (0.0, 1.0)  # guide only where the noise level t / T
    #   lies in [lo, hi], conditional pass alone elsewhere (Kynkaanniemi et al. 2024): fewer passes
    compile: bool = False  # torch.compile the UNet (same bytes run to run, not eager's)

    def __post_init__(self) -> None:
        interval = self.guidance_interval
        if len(interval) != 2 or not 0.0 <= interval[0] <= interval[1] <= 1.0:
            raise ConfigError(
                f"sampling.guidance_interval must be lo,hi with 0 <= lo <= hi <= 1, got {interval}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"sampling.sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}"
            )
        if self.steps < 1:
            raise ConfigError(f"sampling.steps must be at least 1, got {self.steps}")
        if self.guidance < 0.0:
            raise ConfigError(f"sampling.guidance must be >= 0, got {self.guidance}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the schedule."""

    batch_size: int = 32  # global batch (split over ranks under torchrun)
    lr: float = 2e-4  # peak AdamW learning rate
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.999  # AdamW beta2
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up from 0
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    epochs: int = 100  # passes over the data; used when steps == 0
    steps: int = 0  # optimiser steps to train; 0 = derive from epochs

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("optim.batch_size must be at least 1")
        if self.lr <= 0.0 or self.weight_decay < 0.0 or self.grad_clip < 0.0:
            raise ConfigError("optim.lr must be > 0, optim.weight_decay and optim.grad_clip >= 0")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ConfigError("optim.beta1 and optim.beta2 must be in [0, 1)")
        if self.steps < 0 or self.epochs < 1 or self.warmup_steps < 0:
            raise ConfigError(
                "optim.steps and optim.warmup_steps must be >= 0 and optim.epochs >= 1, got "
                f"{self.steps}, {self.warmup_steps} and {self.epochs}"
            )


@dataclass(frozen=True)
class AugmentConfig:
    """Label-preserving augmentation of the training images (tissue and cells have no up)."""

    dihedral: bool = True  # random flips and 90-degree turns of every training image

    def __post_init__(self) -> None:
        pass


def _run_defaults() -> RunConfig:
    # no 'best' checkpoint: a quality signal would need a full sampling pass per check.
    # NCHW: diffusers' UNet (GroupNorm) trained 39% faster than channels_last on an H100 in
    # bf16 (890 vs 642 images/s, gpu preset, bench/generators.py --synthetic)
    return RunConfig(
        quality_every=0,
        sample_every=1000,
        checkpoint_every=500,
        log_every=50,
        samples_per_class=4,
        channels_last=False,
    )


@dataclass(frozen=True)
class DiffusionConfig:
    """The whole resolved configuration of a diffusion training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    ema: EmaConfig = field(default_factory=lambda: EmaConfig(decay=0.999))
    run: RunConfig = field(default_factory=_run_defaults)
    preset: str = "quick"  # the preset it was resolved from (informational)

    def __post_init__(self) -> None:
        if self.run.quality_every:
            raise ConfigError(
                "run.quality_every must be 0 for diffusion runs: they keep no 'best' checkpoint "
                "(sampling uses the last one's EMA weights)"
            )
        check_resolution(self.model, self.data.resolution)

    def to_dict(self) -> dict[str, Any]:
        """The config as nested plain data (what ``config.json`` holds)."""
        return to_plain(self)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return to_json(self)


def check_resolution(model: UNetConfig, resolution: int) -> None:
    """Refuse an image side the UNet's levels cannot halve down to at least 4 pixels.

    Raises:
        ConfigError: the side and what would work.
    """
    factor = 2 ** (len(model.channels) - 1)
    if resolution % factor or resolution // factor < 4:
        raise ConfigError(
            f"a {len(model.channels)}-level UNet needs an image side that is a multiple of "
            f"{factor} and at least {4 * factor} px, got {resolution}"
        )


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data.preprocess.size": 32,
        "model.norm_groups": 8,
        "model.attention_levels": (1,),
        "model.channels": (16, 32),
        "model.layers_per_block": 1,
        "model.attention_head_dim": 8,
        "optim.batch_size": 8,
        "optim.steps": 4,
        "optim.warmup_steps": 2,
        "sampling.steps": 4,
        "run.sample_every": 2,
        "run.checkpoint_every": 2,
        "run.log_every": 1,
        "run.samples_per_class": 2,
    },
    "quick": {
        "data.preprocess.size": 64,
        "model.norm_groups": 8,
        "model.attention_levels": (3,),
        "model.channels": (16, 32, 64, 128),
        "model.layers_per_block": 1,
        "optim.batch_size": 32,
        "optim.lr": 3e-4,
        "optim.steps": 3000,
        "run.sample_every": 500,
        "run.checkpoint_every": 250,
    },
    "gpu": {
        "data.preprocess.size": 128,
        "model.channels": (32, 64, 128, 256, 256),
        "model.layers_per_block": 2,
        "model.attention_levels": (3, 4),
        "optim.batch_size": 256,
        "optim.lr": 2e-4,
        "optim.steps": 20000,
        "optim.warmup_steps": 500,
        "ema.decay": 0.9995,
        "run.sample_every": 2000,
        "run.checkpoint_every": 1000,
    },
}


DIFFUSION: Presets[DiffusionConfig] = Presets(DiffusionConfig, PRESETS, "diffusion")
"""The diffusion model's configs (see :class:`~pathsynth.config.Presets`)."""
