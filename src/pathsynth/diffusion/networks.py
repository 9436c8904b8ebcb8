"""The class-conditional UNet and its noise schedulers, built from the config (never downloaded).

The UNet is diffusers' ``UNet2DModel`` with a label embedding of ``classes + 1`` rows: the last
row is the null class of classifier-free guidance. Schedulers are made from the run's schedule
config: ``DDPMScheduler`` for training, ``DDIMScheduler`` / ``DPMSolverMultistepScheduler`` for
sampling, with trailing timestep spacing (the last step starts from pure noise, which the
few-step solvers need; Lin et al. 2024).
"""

from __future__ import annotations

from typing import Any

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from pathsynth.diffusion.config import ScheduleConfig, UNetConfig, check_resolution
from pathsynth.errors import ConfigError


def build_unet(model: UNetConfig, resolution: int, num_classes: int) -> UNet2DModel:
    """The UNet for ``num_classes`` classes at ``resolution`` px, freshly initialised.

    Label ``num_classes`` is the null class (classifier-free guidance).

    Raises:
        ConfigError: a side the levels cannot halve, or fewer than one class.
    """
    check_resolution(model, resolution)
    if num_classes < 1:
        raise ConfigError("a class-conditional UNet needs at least one class")
    attention = set(model.attention_levels)
    down = tuple(
        "AttnDownBlock2D" if level in attention else "DownBlock2D"
        for level in range(len(model.channels))
    )
    up = tuple(name.replace("Down", "Up") for name in reversed(down))
    return UNet2DModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=3,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(model.channels),
        layers_per_block=model.layers_per_block,
        attention_head_dim=model.attention_head_dim,
        norm_num_groups=model.norm_groups,
        dropout=model.dropout,
        num_class_embeds=num_classes + 1,
    )


def _scheduler_config(schedule: ScheduleConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": schedule.train_timesteps,
        "beta_schedule": schedule.beta_schedule,
        "prediction_type": schedule.prediction,
    }


def training_scheduler(schedule: ScheduleConfig) -> DDPMScheduler:
    """The forward process: ``add_noise`` and ``get_velocity`` for the training targets."""
    return DDPMScheduler(**_scheduler_config(schedule), clip_sample=False)


def sampling_scheduler(
    schedule: ScheduleConfig, sampler: str
) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """A fresh solver (they keep per-run state) for ``sampler``: ``ddim`` (eta 0) or ``dpm++``
    (DPM-Solver++ 2M, deterministic).

    Raises:
        ConfigError: an unknown sampler.
    """
    common = {**_scheduler_config(schedule), "timestep_spacing": "trailing"}
    if sampler == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    if sampler == "dpm++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    raise ConfigError(f"unknown sampler {sampler!r}; choose ddim or dpm++")
