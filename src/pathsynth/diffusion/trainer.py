"""The diffusion training loop: v-prediction MSE on one global batch per step, full resume.

Randomness: the global torch RNG (seeded identically on every rank) draws, in a fixed order per
step, the crop positions, the dihedral turns, the noise, the timesteps and the label-dropout mask,
each for the whole global batch and sliced per rank; the data order is a pure function of
``(seed, epoch)``. The RNG state, optimiser, learning-rate schedule and EMA are in the checkpoint,
so N steps straight and N/2 + resume + N/2 give the same weights on CPU, and two gloo ranks give
one process's result (up to the order of float sums).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.diffusion.config import DiffusionConfig
from pathsynth.diffusion.networks import build_unet, training_scheduler
from pathsynth.diffusion.sampling import denoise
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float, to_uint8
from pathsynth.training.checkpoint import CHECKPOINT_FORMAT, restore_states
from pathsynth.training.distributed import DistContext
from pathsynth.training.ema import ema_decay, make_ema, update_ema
from pathsynth.training.loop import Cadence, Trainer
from pathsynth.training.sampler import EpochSampler


def total_steps(config: DiffusionConfig, dataset_size: int) -> int:
    """Optimiser steps the run trains: ``optim.steps``, else epochs x batches per epoch."""
    if config.optim.steps > 0:
        return config.optim.steps
    return max(1, config.optim.epochs * (dataset_size // config.optim.batch_size))


def dihedral(images: torch.Tensor, turns: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Each image turned by ``turns[i]`` quarter turns and mirrored where ``flips[i]``."""
    out = images.clone()
    for k in range(1, 4):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return torch.where(flips.view(-1, 1, 1, 1), out.flip(3), out)


class DiffusionTrainer(Trainer):
    """Trains the class-conditional UNet of a resolved config on one labelled image set.

    Args:
        config: the resolved config.
        dataset: the training images, at ``data.preprocess.size`` (any device).
        run_dir: the run folder (written by rank 0 only).
        context: the torchrun context (single process by default).
        resume: a checkpoint state to continue from.
        log: called with one line of progress text (rank 0).

    Raises:
        ConfigError: images of another size than the config's, or a batch that does not split
            evenly over the ranks.
        CheckpointError: a resume checkpoint whose classes or network differ from this run's.
    """

    progress_task = "diffusion steps"

    def __init__(
        self,
        config: DiffusionConfig,
        dataset: TensorImageSet,
        run_dir: Path,
        context: DistContext | None = None,
        resume: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, run_dir, context, log)
        self.config = config
        run = config.run
        self.cadence = Cadence(run.log_every, run.checkpoint_every, run.sample_every)
        if dataset.resolution != config.data.preprocess.size:
            raise ConfigError(
                f"data is {dataset.resolution}px but data.preprocess.size is "
                f"{config.data.preprocess.size}"
            )
        self.dataset = dataset.to(self.device)
        self.class_names = list(dataset.class_names)
        self.null_label = len(self.class_names)
        self.noise_schedule = training_scheduler(config.schedule)

        torch.manual_seed(config.run.seed)
        self.unet = build_unet(config.model, config.data.resolution, len(self.class_names))
        self.unet.to(self.device).to(memory_format=self.memory_format)
        self.ema = make_ema(self.unet)
        optim = config.optim
        self.opt = self.adam(
            torch.optim.AdamW,
            self.unet,
            optim.lr,
            (optim.beta1, optim.beta2),
            optim.weight_decay,
            run.fused_adam,
        )
        warmup = config.optim.warmup_steps
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.sampler = EpochSampler(len(dataset), optim.batch_size, run.seed)
        self.step = 0
        self.total_steps = total_steps(config, len(dataset))
        if resume is not None:
            self._load_state(resume)
        self.unet_train = self.wrap(
            "unet_train", self.unet, run.compile_mode if run.compile else None
        )
        # the grid's fixed start noise comes from its own generator: drawing it never moves the
        # training RNG, so resume stays exact
        fixed = torch.Generator().manual_seed(config.run.seed + 1)
        k = config.run.samples_per_class
        side = config.data.resolution
        self.grid_labels = torch.arange(self.null_label).repeat_interleave(k)
        self.grid_noise = torch.randn(len(self.grid_labels), 3, side, side, generator=fixed)

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict (the GAN's keys where they mean the
        same: ``generator`` is the UNet, ``generator_ema`` its average)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "diffusion",
            "step": self.step,
            "sampler": self.sampler.state_dict(),
            "generator": self.unet.state_dict(),
            "generator_ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "rng": self.rng_state(),
            "class_names": self.class_names,
            "resolution": self.config.data.resolution,
            "config": self.config.to_dict(),
            "best_score": None,
            "best_step": None,
            "world_size": self.context.world_size,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "diffusion":
            raise CheckpointError("the checkpoint to resume is not a diffusion run's")
        parts = {
            "generator": self.unet,
            "generator_ema": self.ema,
            "optimizer": self.opt,
            "lr_schedule": self.lr_schedule,
        }
        restore_states(state, self.class_names, parts)
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        self.load_rng_state(state["rng"])

    # ----------------------------------------------------------------------------- the step

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next global batch: images in [-1, 1] and labels, with the
        null label where guidance dropout hit."""
        batch = self.config.optim.batch_size
        index = self.mine(self.sampler.next_batch()).to(self.device)
        images = self.dataset.images[index]
        if self.config.data.crop:  # every rank draws the global batch's positions, keeps its own
            images = self.mine(random_crops(self.spread(images), self.config.data.crop))
        if self.config.augment.dihedral:
            turns = self.mine(torch.randint(0, 4, (batch,), device=self.device))
            flips = self.mine(torch.rand(batch, device=self.device) < 0.5)
            images = dihedral(images, turns, flips)
        drop = self.mine(torch.rand(batch, device=self.device) < self.config.guidance.label_dropout)
        labels = torch.where(drop, self.null_label, self.dataset.labels[index])
        x0 = to_signed_float(images).contiguous(memory_format=self.memory_format)
        return x0, labels

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (rank-local) loss, as a 1-element tensor."""
        if self.config.run.compile:  # CUDA graphs (reduce-overhead): earlier outputs are done
            torch.compiler.cudagraph_mark_step_begin()
        x0, labels = self._batch()
        batch = self.config.optim.batch_size
        noise = self.mine(torch.randn(batch, *x0.shape[1:], device=self.device))
        noise = noise.contiguous(memory_format=self.memory_format)
        steps = self.config.schedule.train_timesteps
        t = self.mine(torch.randint(0, steps, (batch,), device=self.device))
        noisy = self.noise_schedule.add_noise(x0, noise, t)
        if self.config.schedule.prediction == "v_prediction":
            target = self.noise_schedule.get_velocity(x0, noise, t)
        else:
            target = noise
        with self.autocast():
            prediction = self.unet_train(noisy, t, class_labels=labels).sample
        loss = F.mse_loss(prediction.float(), target.float())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.unet.parameters(), self.config.optim.grad_clip)
        self.opt.step()
        self.lr_schedule.step()
        self.step += 1
        update_ema(self.ema, self.unet, ema_decay(self.config.ema, self.step))
        return loss.detach().reshape(1)

    # ----------------------------------------------------------------------------- outputs

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The EMA UNet's images of the fixed grid noise (uint8 NCHW) and the grid's columns."""
        images = []
        for start in range(0, len(self.grid_noise), 64):
            noise = self.grid_noise[start : start + 64].to(self.device)
            labels = self.grid_labels[start : start + 64].to(self.device)
            made = denoise(
                self.ema,
                noise,
                labels,
                self.null_label,
                self.config.schedule,
                self.config.sampling,
                self.bf16,
            )
            images.append(to_uint8(made))
        return torch.cat(images), self.config.run.samples_per_class

    def window_fields(self, losses: dict[str, float]) -> tuple[dict[str, Any], str]:
        """kimg, the loss and the learning rate; the loss for the log line."""
        fields = {
            "kimg": self.step * self.config.optim.batch_size / 1000,
            "loss": round(losses["loss"], 6),
            "lr": self.lr_schedule.get_last_lr()[0],
        }
        return fields, f"loss {fields['loss']:.4f}"
