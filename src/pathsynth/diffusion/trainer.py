"""The diffusion training loop: v-prediction MSE on one global batch per step, full resume.

Randomness: the global torch RNG (seeded identically on every rank) draws, in a fixed order per
step, the crop positions, the dihedral turns, the noise, the timesteps and the label-dropout mask,
each for the whole global batch and sliced per rank; the data order is a pure function of
``(seed, epoch)``. The RNG state, optimiser, learning-rate schedule and EMA are in the checkpoint,
so N steps straight and N/2 + resume + N/2 give the same weights on CPU, and two gloo ranks give
one process's result (up to the order of float sums).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.devices import compiled, use_bf16
from pathsynth.diffusion.config import DiffusionConfig
from pathsynth.diffusion.networks import build_unet, training_scheduler
from pathsynth.diffusion.sampling import denoise
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.files import write_atomic
from pathsynth.gan.data import EpochSampler
from pathsynth.gan.ema import make_ema, update_ema
from pathsynth.gan.sampling import image_grid
from pathsynth.gan.trainer import StopFlag, TrainingDiverged, TrainResult
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float, to_uint8
from pathsynth.training.checkpoint import (
    CHECKPOINT_FORMAT,
    list_checkpoints,
    restore_states,
    save_checkpoint,
)
from pathsynth.training.distributed import DistContext, all_reduce_sum


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


class DiffusionTrainer:
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

    def __init__(
        self,
        config: DiffusionConfig,
        dataset: TensorImageSet,
        run_dir: Path,
        context: DistContext | None = None,
        resume: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.context = context or DistContext()
        self.run_dir = run_dir
        self.log = log or (lambda line: None)
        self.device = self.context.compute_device(config.run.device)
        batch = config.optim.batch_size
        if batch % self.context.world_size:
            raise ConfigError(
                f"optim.batch_size {batch} does not split evenly over {self.context.world_size} ranks"
            )
        self.local_batch = batch // self.context.world_size
        self.offset = self.context.rank * self.local_batch
        if dataset.resolution != config.data.preprocess.size:
            raise ConfigError(
                f"data is {dataset.resolution}px but data.preprocess.size is "
                f"{config.data.preprocess.size}"
            )
        self.dataset = dataset.to(self.device)
        self.class_names = list(dataset.class_names)
        self.null_label = len(self.class_names)
        self.bf16 = use_bf16(config.run.amp, self.device)
        self.memory_format = (
            torch.channels_last if config.run.channels_last else torch.contiguous_format
        )
        self.noise_schedule = training_scheduler(config.schedule)

        torch.manual_seed(config.run.seed)
        self.unet = build_unet(config.model, config.data.resolution, len(self.class_names))
        self.unet.to(self.device).to(memory_format=self.memory_format)
        self.ema = make_ema(self.unet)
        fused = config.run.fused_adam and self.device.type in ("cuda", "cpu")
        self.opt = torch.optim.AdamW(
            self.unet.parameters(), lr=config.optim.lr,
            betas=(config.optim.beta1, config.optim.beta2),
            weight_decay=config.optim.weight_decay, fused=fused or None,
            foreach=None if fused else True,
        )  # fmt: skip
        warmup = config.optim.warmup_steps
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.sampler = EpochSampler(len(dataset), batch, config.run.seed)
        self.step = 0
        self.total_steps = total_steps(config, len(dataset))
        if resume is not None:
            self._load_state(resume)
        self.unet_train: nn.Module = self.unet
        if self.context.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.unet_train = DDP(self.unet, device_ids=ids)
        if config.run.compile:
            self.unet_train = compiled(self.unet_train, config.run.compile_mode)
        # the grid's fixed start noise comes from its own generator: drawing it never moves the
        # training RNG, so resume stays exact
        fixed = torch.Generator().manual_seed(config.run.seed + 1)
        k = config.run.samples_per_class
        side = config.data.resolution
        self.grid_labels = torch.arange(self.null_label).repeat_interleave(k)
        self.grid_noise = torch.randn(len(self.grid_labels), 3, side, side, generator=fixed)

    def release_process_group(self) -> None:
        """Drop the DDP wrapper once the run is over (:meth:`RunTrainer.release_process_group
        <pathsynth.training.runs.RunTrainer.release_process_group>`)."""
        self.unet_train = self.unet

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict (the GAN's keys where they mean the
        same: ``generator`` is the UNet, ``generator_ema`` its average)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "diffusion",
            "step": self.step,
            "sampler": self.sampler.state_dict(),
            "generator": self.unet.state_dict(),
            "generator_ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "rng": rng,
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
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)

    # ----------------------------------------------------------------------------- the step

    def _mine(self, full: torch.Tensor) -> torch.Tensor:
        return full[self.offset : self.offset + self.local_batch]

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next global batch: images in [-1, 1] and labels, with the
        null label where guidance dropout hit."""
        batch = self.config.optim.batch_size
        index = self._mine(self.sampler.next_batch()).to(self.device)
        images = self.dataset.images[index]
        if self.config.data.crop:  # every rank draws the global batch's positions, keeps its own
            full = torch.zeros(batch, *images.shape[1:], dtype=images.dtype, device=self.device)
            full[self.offset : self.offset + self.local_batch] = images
            images = self._mine(random_crops(full, self.config.data.crop))
        if self.config.augment.dihedral:
            turns = self._mine(torch.randint(0, 4, (batch,), device=self.device))
            flips = self._mine(torch.rand(batch, device=self.device) < 0.5)
            images = dihedral(images, turns, flips)
        drop = self._mine(
            torch.rand(batch, device=self.device) < self.config.guidance.label_dropout
        )
        labels = torch.where(drop, self.null_label, self.dataset.labels[index])
        x0 = to_signed_float(images).contiguous(memory_format=self.memory_format)
        return x0, labels

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (rank-local) loss."""
        if self.config.run.compile:  # CUDA graphs (reduce-overhead): earlier outputs are done
            torch.compiler.cudagraph_mark_step_begin()
        x0, labels = self._batch()
        batch = self.config.optim.batch_size
        noise = self._mine(torch.randn(batch, *x0.shape[1:], device=self.device))
        noise = noise.contiguous(memory_format=self.memory_format)
        steps = self.config.schedule.train_timesteps
        t = self._mine(torch.randint(0, steps, (batch,), device=self.device))
        noisy = self.noise_schedule.add_noise(x0, noise, t)
        if self.config.schedule.prediction == "v_prediction":
            target = self.noise_schedule.get_velocity(x0, noise, t)
        else:
            target = noise
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            prediction = self.unet_train(noisy, t, class_labels=labels).sample
        loss = F.mse_loss(prediction.float(), target.float())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.unet.parameters(), self.config.optim.grad_clip)
        self.opt.step()
        self.lr_schedule.step()
        self.step += 1
        ema = self.config.ema
        decay = 0.0 if self.step <= ema.start_step else ema.decay
        if ema.warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        update_ema(self.ema, self.unet, decay)
        return loss.detach()

    # ----------------------------------------------------------------------------- outputs

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The EMA UNet's images of the fixed grid noise (uint8 NCHW) and the grid's columns."""
        images = []
        for start in range(0, len(self.grid_noise), 64):
            noise = self.grid_noise[start : start + 64].to(self.device)
            labels = self.grid_labels[start : start + 64].to(self.device)
            made = denoise(
                self.ema, noise, labels, self.null_label, self.config.schedule,
                self.config.sampling, self.bf16,
            )  # fmt: skip
            images.append(to_uint8(made))
        return torch.cat(images), self.config.run.samples_per_class

    def _write_grid(self) -> None:
        images, columns = self.sample_grid()
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        write_atomic(
            folder / f"grid-step={self.step:08d}.png", encode_png(image_grid(images, columns))
        )

    # ----------------------------------------------------------------------------- the loop

    def train(self) -> TrainResult:
        """Train to ``total_steps``, writing stats, grids and checkpoints (rank 0).

        Returns:
            How the run ended (``interrupted`` after SIGINT/SIGTERM, with a checkpoint written).

        Raises:
            TrainingDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
        """
        stop = StopFlag()
        main = self.context.is_main
        if main:
            self.log(
                f"training {self.total_steps} steps of {self.config.optim.batch_size} images from "
                f"step {self.step} on {self.device} (bf16 {'on' if self.bf16 else 'off'}, "
                f"{self.context.world_size} rank(s))"
            )
        status = "finished"
        loss_sum = torch.zeros((), device=self.device)
        window_steps, started = 0, time.perf_counter()
        with stop.installed():
            while self.step < self.total_steps:
                loss_sum += self.train_step()
                window_steps += 1
                interrupted = self._agree(stop.raised)
                cfg = self.config.run
                done = self.step >= self.total_steps
                log_now = done or interrupted or self.step % cfg.log_every == 0
                if log_now:
                    self._log_window(loss_sum, window_steps, time.perf_counter() - started)
                    loss_sum.zero_()
                if main and (done or (cfg.sample_every and self.step % cfg.sample_every == 0)):
                    self._write_grid()
                ckpt_every = cfg.checkpoint_every
                if main and (done or interrupted or (ckpt_every and self.step % ckpt_every == 0)):
                    save_checkpoint(self.run_dir, "last", self.state_dict())
                if log_now:
                    window_steps, started = 0, time.perf_counter()
                if interrupted:
                    status = "interrupted"
                    break
        last = list_checkpoints(self.run_dir, "last") if main else []
        return TrainResult(self.run_dir, self.step, status, last[-1] if last else None, None, None)

    def _log_window(self, loss_sum: torch.Tensor, steps: int, elapsed: float) -> None:
        """One stats.jsonl line and log line for the window (mean loss over ranks).

        Raises:
            TrainingDiverged: the mean loss is NaN or infinite.
        """
        loss = loss_sum.clone()
        if self.context.enabled:
            all_reduce_sum(loss)
            loss /= self.context.world_size
        mean = float(loss) / max(steps, 1)
        if not torch.isfinite(torch.tensor(mean)):
            last = list_checkpoints(self.run_dir, "last")
            raise TrainingDiverged(
                f"loss became NaN or infinite by step {self.step}; last good checkpoint: "
                f"{last[-1] if last else 'none written yet'}"
            )
        if not self.context.is_main:
            return
        batch = self.config.optim.batch_size
        record = {
            "step": self.step,
            "epoch": self.sampler.epoch,
            "kimg": self.step * batch / 1000,
            "loss": round(mean, 6),
            "lr": self.lr_schedule.get_last_lr()[0],
            "sec_per_step": round(elapsed / max(steps, 1), 5),
            "images_per_s": round(steps * batch / max(elapsed, 1e-9), 2),
        }
        with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.log(
            f"step {self.step}/{self.total_steps} loss {record['loss']:.4f} "
            f"{record['images_per_s']:.1f} img/s"
        )

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank got a stop signal."""
        if not self.context.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        all_reduce_sum(value)
        return bool(value.item() > 0)
