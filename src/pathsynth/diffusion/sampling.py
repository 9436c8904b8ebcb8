"""Sampling a diffusion run: classifier-free guided DDIM / DPM-Solver++ from its EMA UNet.

:class:`GuidedSampler` makes the diffusion model look like the GAN's generator to
:func:`pathsynth.generators.sampling.generate_images` (noise and labels in, images in [-1, 1] out): its
"noise" is the flattened starting image, drawn per class from ``(seed, class)`` exactly as the
GAN's noise is, and both solvers are deterministic from there, so a seed and a batch size always
give the same bytes on the same machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from torch import nn

from pathsynth.devices import compiled
from pathsynth.diffusion.config import DIFFUSION, DiffusionConfig, SamplingConfig, ScheduleConfig
from pathsynth.diffusion.networks import build_unet, sampling_scheduler
from pathsynth.errors import CheckpointError
from pathsynth.training.checkpoint import load_run_checkpoint


@torch.no_grad()
def denoise(
    unet: nn.Module,
    start: torch.Tensor,
    labels: torch.Tensor,
    null_label: int,
    schedule: ScheduleConfig,
    sampling: SamplingConfig,
    bf16: bool = False,
) -> torch.Tensor:
    """Run the solver from ``start`` (unit Gaussian images) to images in [-1, 1].

    Classifier-free guidance: ``out = uncond + guidance * (cond - uncond)`` on the network's
    prediction; scale 1 runs the conditional pass only and 0 the unconditional (null label) only.
    Outside ``sampling.guidance_interval`` (noise level ``t / T``) the conditional pass runs alone.

    Args:
        unet: the (EMA) UNet in eval mode.
        start: (N, 3, H, W) float32 starting noise on the UNet's device.
        labels: (N,) class indices.
        null_label: the null class index (the number of classes).
        schedule: the run's noise schedule.
        sampling: sampler, steps and guidance scale.
        bf16: run the UNet under bf16 autocast.
    """
    scheduler = sampling_scheduler(schedule, sampling.sampler)
    scheduler.set_timesteps(sampling.steps, device=start.device)
    guidance = sampling.guidance
    null = torch.full_like(labels, null_label)
    if guidance == 0.0:
        labels = null
    mixing = guidance not in (0.0, 1.0)
    lo, hi = sampling.guidance_interval
    last = schedule.train_timesteps - 1
    x = start * scheduler.init_noise_sigma
    autocast = torch.autocast(start.device.type, dtype=torch.bfloat16, enabled=bf16)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        with autocast:
            if mixing and lo <= float(t) / last <= hi:
                out = unet(
                    torch.cat([model_in, model_in]), t, class_labels=torch.cat([labels, null])
                )
                cond, uncond = out.sample.float().chunk(2)
                prediction = uncond + guidance * (cond - uncond)
            else:
                prediction = unet(model_in, t, class_labels=labels).sample.float()
        x = scheduler.step(prediction, t, x).prev_sample
    return x.clamp(-1.0, 1.0)


class GuidedSampler(nn.Module):
    """A diffusion UNet and its sampler settings as a noise-to-image function.

    Args:
        unet: the (EMA) UNet, in eval mode.
        config: the run's config (schedule and image size).
        num_classes: number of real classes (the null class comes after them).
        sampling: sampler, steps and guidance (the run's ``sampling`` group by default).
        bf16: run the UNet under bf16 autocast.
    """

    def __init__(
        self,
        unet: UNet2DModel,
        config: DiffusionConfig,
        num_classes: int,
        sampling: SamplingConfig | None = None,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        self.sampling = sampling or config.sampling
        self.unet: nn.Module = compiled(unet, "default") if self.sampling.compile else unet
        self.schedule = config.schedule
        self.resolution = config.data.resolution
        self.num_classes = num_classes
        self.bf16 = bf16
        self.channels_last = config.run.channels_last
        self.noise_dim = 3 * self.resolution * self.resolution

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from flattened starting noise ``(N, 3*H*W)`` and labels ``(N,)``."""
        start = noise.float().view(-1, 3, self.resolution, self.resolution)
        if self.channels_last:
            start = start.contiguous(memory_format=torch.channels_last)
        return denoise(
            self.unet, start, labels, self.num_classes, self.schedule, self.sampling, self.bf16
        )

    def provenance(self) -> dict[str, Any]:
        """The settings recorded with every image it makes."""
        return {
            "sampler": self.sampling.sampler,
            "sampling_steps": self.sampling.steps,
            "guidance": self.sampling.guidance,
            "guidance_interval": list(self.sampling.guidance_interval),
            "compiled": self.sampling.compile,
        }


@dataclass
class LoadedDiffusion:
    """A diffusion run's EMA UNet ready for sampling, with where it came from.

    Args:
        unet: the EMA UNet in eval mode on its device.
        class_names: class name per label index.
        step: training step of the checkpoint.
        checkpoint: the checkpoint file.
        config: the run's resolved config.
    """

    unet: UNet2DModel
    class_names: list[str]
    step: int
    checkpoint: Path
    config: DiffusionConfig


def load_diffusion(
    run_dir: Path, which: str = "last", device: torch.device | str = "cpu"
) -> LoadedDiffusion:
    """The EMA UNet of a diffusion run's checkpoint (``best`` is the last: none is kept).

    Raises:
        CheckpointError: no such run or checkpoint, a corrupt one, or one of a GAN run.
    """
    path, state, config = load_run_checkpoint(run_dir, which, DIFFUSION.read, kind="diffusion")
    class_names = list(state["class_names"])
    unet = build_unet(config.model, config.data.resolution, len(class_names))
    try:
        unet.load_state_dict(state["generator_ema"])
    except RuntimeError:
        raise CheckpointError(f"checkpoint {path} does not match its own config's UNet") from None
    layout = torch.channels_last if config.run.channels_last else torch.contiguous_format
    unet = unet.to(device).to(memory_format=layout).eval().requires_grad_(False)
    return LoadedDiffusion(unet, class_names, int(state["step"]), path, config)
