"""The GAN training loop: one global batch per step, whole data set on the device, full resume.

One *step* is ``n_critic`` discriminator updates followed by one generator update. With
``n_critic == 1`` the generated batch is made once per step and used for both updates (the
PyTorch DCGAN example's order: D learns on it detached, then G learns through the updated D).

Randomness: the global torch RNG (seeded identically on every rank) draws noise, dropout masks and
augmentation; noise and augmentation are drawn for the global batch and sliced per rank, the data
order is a pure function of ``(seed, epoch)``. The RNG state, optimisers, EMA, ADA probability and
LeCam anchors are all in the checkpoint, so N steps straight and N/2 + resume + N/2 give the same
weights on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn

from pathsynth.devices import compiled, use_bf16
from pathsynth.errors import ConfigError, PathsynthError
from pathsynth.files import write_atomic
from pathsynth.gan.architectures import build_discriminator, build_generator, check_architecture
from pathsynth.gan.config import TrainConfig, augment_ops
from pathsynth.gan.data import EpochSampler
from pathsynth.gan.diffaug import AdaptiveProbability, augment
from pathsynth.gan.ema import make_ema, update_ema
from pathsynth.gan.losses import (
    LeCam,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from pathsynth.gan.networks import ConditionalGenerator
from pathsynth.gan.quality import kid, signal_features
from pathsynth.gan.sampling import image_grid
from pathsynth.imaging.augment import ColourAugment
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.stain import fit_lab_statistics
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float, to_uint8
from pathsynth.training.checkpoint import (
    CHECKPOINT_FORMAT,
    list_checkpoints,
    restore_states,
    save_checkpoint,
)
from pathsynth.training.distributed import DistContext, all_reduce_sum, convert_batchnorm


class TrainingDiverged(PathsynthError):
    """A loss became NaN or infinite; the last good checkpoint is left in place."""


@dataclass
class TrainResult:
    """How a training run ended.

    Args:
        run_dir: the run folder.
        step: generator steps done.
        status: ``"finished"`` or ``"interrupted"`` (SIGINT/SIGTERM; a checkpoint was written).
        last_checkpoint: the last checkpoint written, if any.
        best_checkpoint: the best checkpoint kept, if any.
        best_score: its quality signal (lower is better), if any.
    """

    run_dir: Path
    step: int
    status: str
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_score: float | None


def total_steps(config: TrainConfig, dataset_size: int) -> int:
    """Generator steps the run trains: ``optim.steps``, else epochs x batches / n_critic."""
    if config.optim.steps > 0:
        return config.optim.steps
    batches = dataset_size // config.optim.batch_size
    return max(1, config.optim.epochs * batches // config.optim.n_critic)


class StopFlag:
    """Set by SIGINT/SIGTERM while training; the loop checks it between steps."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.raised = True

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers, no clean stop
            pass
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class _LossWindow:
    """Loss sums and timing since the last stats line (stylegan2-ada's tick).

    Args:
        device: where the loss sums live.
        step: the step training starts from.
    """

    def __init__(self, device: torch.device, step: int) -> None:
        self.loss_sum = torch.zeros(2, device=device)  # D, G
        self.steps = 0
        self.started = time.perf_counter()
        self.checked_step = step  # the last step whose losses were found finite

    def add(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        """Count one step's losses."""
        self.loss_sum += torch.stack([loss_d, loss_g])
        self.steps += 1

    def restart(self) -> None:
        """Start timing a new window (the loss sums are zeroed where they are read)."""
        self.steps, self.started = 0, time.perf_counter()


class GanTrainer:
    """Trains the class-conditional GAN of a resolved config on one labelled image set.

    Args:
        config: the resolved config.
        dataset: the training images (any device; moved to the compute device).
        run_dir: the run folder (written by rank 0 only).
        context: the torchrun context (single process by default).
        resume: a checkpoint state to continue from.
        log: called with one line of progress text (rank 0).

    Raises:
        ConfigError: an image size the networks cannot make, or a batch that does not split
            evenly over the ranks.
        CheckpointError: a resume checkpoint whose classes or networks differ from this run's.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: TensorImageSet,
        run_dir: Path,
        context: DistContext | None = None,
        resume: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        check_architecture(config)
        self.config = config
        self.context = context or DistContext()
        self.run_dir = run_dir
        self.log = log or (lambda line: None)
        self.device = self.context.compute_device(config.run.device)
        self.local_batch = self._local_batch()
        self.offset = self.context.rank * self.local_batch
        if dataset.resolution != config.data.preprocess.size:
            raise ConfigError(
                f"data is {dataset.resolution}px but data.preprocess.size is "
                f"{config.data.preprocess.size}"
            )
        self.dataset = dataset.to(self.device)
        self.class_names = list(dataset.class_names)
        self.bf16 = use_bf16(config.run.amp, self.device)
        self.memory_format = (
            torch.channels_last if config.run.channels_last else torch.contiguous_format
        )
        self.ops = augment_ops(config.augment.policy)
        self.colour_generator = torch.Generator().manual_seed(config.run.seed + 3)
        self.colour = self._colour_augment()
        self.reconstruct = config.loss.reconstruction_weight > 0

        self.G, self.D, self.G_ema = self._seeded_networks(len(self.class_names))
        self.opt_g = self._adam(self.G, config.optim.g_lr)
        self.opt_d = self._adam(self.D, config.optim.d_lr)
        self.ada = AdaptiveProbability(
            config.augment.p, config.augment.target, config.augment.speed_kimg
        )
        self.lecam = LeCam(
            config.loss.lecam_decay, self._all_reduce_mean if self.context.enabled else None
        ).to(self.device)
        self.sampler = EpochSampler(len(dataset), config.optim.batch_size, config.run.seed)
        self.step = 0
        self.d_steps = 0
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.total_steps = total_steps(config, len(dataset))
        if resume is not None:
            self._load_state(resume)
        self.G_train, self.D_train = self._training_wrappers()

        self.grid_noise, self.grid_labels = self._grid_inputs()
        self.quality_features: nn.Module | None = None
        self.real_features: torch.Tensor | None = None
        self.quality_noise = torch.empty(0)
        self.quality_labels = torch.empty(0, dtype=torch.long)

    def _grid_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample grid's fixed noise and labels, ``run.samples_per_class`` per class."""
        # Own generator, so drawing them never moves the training RNG (resume stays exact); the
        # quality signal's noise comes from another one, drawn when it is first computed.
        fixed = torch.Generator().manual_seed(self.config.run.seed + 1)
        k = self.config.run.samples_per_class
        num_classes = len(self.class_names)
        noise = torch.randn(num_classes * k, self.config.model.noise_dim, generator=fixed)
        return noise, torch.arange(num_classes).repeat_interleave(k)

    def _local_batch(self) -> int:
        batch = self.config.optim.batch_size
        if batch % self.context.world_size:
            raise ConfigError(
                f"optim.batch_size {batch} does not split evenly over {self.context.world_size} ranks"
            )
        local_batch = batch // self.context.world_size
        group = self.config.model.d_minibatch_std_group
        if group and local_batch % group:
            raise ConfigError(
                f"the per-rank batch {local_batch} is not a multiple of "
                f"model.d_minibatch_std_group {group} (real and fake would share a group)"
            )
        return local_batch

    def _colour_augment(self) -> ColourAugment | None:
        """The classifier's colour augmentation for real images, if the config turns any on.

        Its draws come from a CPU generator of its own (checkpointed with the other RNG states);
        RandStainNA's LAB statistics are fitted on this run's training images.
        """
        colour = self.config.augment.colour
        if not colour.enabled:
            return None
        lab = fit_lab_statistics(self.dataset.images) if colour.randstain_p > 0 else None
        return ColourAugment(colour, self.colour_generator, lab)

    def _seeded_networks(
        self, num_classes: int
    ) -> tuple[ConditionalGenerator, nn.Module, nn.Module]:
        """G, D and the EMA copy of G, initialised from ``run.seed`` (the same on every rank)."""
        config = self.config
        torch.manual_seed(config.run.seed)
        G = build_generator(config.model, config.data.resolution, num_classes)
        D = build_discriminator(config.model, config.data.resolution, num_classes)
        G.to(self.device).to(memory_format=self.memory_format)
        D.to(self.device).to(memory_format=self.memory_format)
        if self.context.enabled:
            convert_batchnorm(G, self.device)
        return G, D, make_ema(G)

    def _training_wrappers(self) -> tuple[nn.Module, nn.Module]:
        """G and D as the steps call them: wrapped in DDP over ranks, compiled if asked."""
        G_train: nn.Module = self.G
        D_train: nn.Module = self.D
        if self.context.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # BatchNorm statistics are synced by the cross-rank BatchNorm; nothing else to sync.
            G_train = DDP(self.G, device_ids=ids, forward_sync_buffers=False)
            D_train = DDP(self.D, device_ids=ids, forward_sync_buffers=False)
        if self.config.run.compile:
            G_train = compiled(G_train, self.config.run.compile_mode)
            D_train = compiled(D_train, self.config.run.compile_mode)
        return G_train, D_train

    def release_process_group(self) -> None:
        """Drop the DDP wrappers once the run is over (:meth:`RunTrainer.release_process_group
        <pathsynth.training.runs.RunTrainer.release_process_group>`)."""
        self.G_train, self.D_train = self.G, self.D

    def _adam(self, module: nn.Module, lr: float) -> torch.optim.Adam:
        optim = self.config.optim
        # Fused kernels exist on CUDA and CPU; on the CPU they took Adam from 64 to 8 ms per step
        # for the paper's generator (25M parameters).
        fused = self.config.run.fused_adam and self.device.type in ("cuda", "cpu")
        return torch.optim.Adam(
            module.parameters(),
            lr=lr,
            betas=(optim.beta1, optim.beta2),
            weight_decay=optim.weight_decay,
            fused=fused or None,
            foreach=None if fused else True,
        )

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "colour": self.colour_generator.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "d_steps": self.d_steps,
            "sampler": self.sampler.state_dict(),
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "generator_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "ada": self.ada.state_dict(),
            "ada_pending": self._ada_pending(),
            "lecam": self.lecam.state_dict(),
            "rng": rng,
            "class_names": self.class_names,
            "resolution": self.config.data.resolution,
            "config": self.config.to_dict(),
            "best_score": self.best_score,
            "best_step": self.best_step,
            "world_size": self.context.world_size,
        }

    def _ada_pending(self) -> list[float]:
        total = 0.0 if self.ada.sign_sum is None else float(self.ada.sign_sum)
        return [total, float(self.ada.count)]

    def _load_state(self, state: dict[str, Any]) -> None:
        parts = {
            "generator": self.G,
            "discriminator": self.D,
            "generator_ema": self.G_ema,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "lecam": self.lecam,
        }
        restore_states(state, self.class_names, parts)
        self.ada.load_state_dict(state["ada"])
        pending_sum, pending_count = state.get("ada_pending", [0.0, 0.0])
        if pending_count:
            self.ada.sign_sum = torch.tensor(pending_sum, device=self.device)
            self.ada.count = int(pending_count)
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        self.d_steps = int(state.get("d_steps", self.step * self.config.optim.n_critic))
        self.best_score = state.get("best_score")
        self.best_step = state.get("best_step")
        torch.set_rng_state(state["rng"]["torch"])
        if "colour" in state["rng"]:  # checkpoints before colour augmentation have none
            self.colour_generator.set_state(state["rng"]["colour"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)

    # ----------------------------------------------------------------------------- the step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.sampler.next_batch()[self.offset : self.offset + self.local_batch]
        index = index.to(self.device)
        images = self.dataset.images[index]
        if self.config.data.crop:  # positions from the global RNG: checkpointed, so resumable
            images = random_crops(images, self.config.data.crop)
        if self.colour is not None:
            images = self._colour_augmented(images)
        images = to_signed_float(images).contiguous(memory_format=self.memory_format)
        return images, self.dataset.labels[index]

    def _colour_augmented(self, images: torch.Tensor) -> torch.Tensor:
        """This rank's uint8 images colour-augmented with the draws of their places in the global
        batch (the other places hold zeros): torchrun then augments as one process would, at the
        cost of augmenting ``world_size`` times the images."""
        assert self.colour is not None
        if not self.context.enabled:
            return self.colour(images)
        full = images.new_zeros((self.config.optim.batch_size, *images.shape[1:]))
        full[self.offset : self.offset + self.local_batch] = images
        return self.colour(full)[self.offset : self.offset + self.local_batch]

    def _noise(self) -> torch.Tensor:
        full = torch.randn(
            self.config.optim.batch_size, self.config.model.noise_dim, device=self.device
        )
        return full[self.offset : self.offset + self.local_batch]

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return augment(
            images,
            self.ops,
            self.ada.p,
            offset=self.offset,
            global_batch=self.config.optim.batch_size,
        )

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One generator step (after ``n_critic`` discriminator steps); returns both losses."""
        if self.config.run.compile:  # CUDA graphs (reduce-overhead): earlier outputs are done
            torch.compiler.cudagraph_mark_step_begin()
        reuse = self.config.optim.n_critic == 1
        for _ in range(self.config.optim.n_critic):  # at least 1: the config refuses fewer
            loss_d, fake, labels = self._discriminator_step(reuse)
        loss_g = self._generator_step(fake if reuse else None, labels)
        self.step += 1
        self._update_ema()
        self._update_augment_p()
        return loss_d.detach(), loss_g.detach()

    def _discriminator_step(self, reuse: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One D update on a real and a generated batch; returns the loss, the fakes, the labels.

        With ``reuse`` the fakes keep their graph, for the generator step to learn through.
        """
        real, labels = self._real_batch()
        noise = self._noise()
        with self._autocast():
            if reuse:
                fake = self.G_train(noise, labels)
            else:
                with torch.no_grad():
                    fake = self.G(noise, labels)
            seen = torch.cat([self._augment(real), self._augment(fake.detach())])
            if self.reconstruct:  # FastGAN: D also rebuilds the (augmented) real images
                logits, reconstruction = self.D_train(
                    seen, torch.cat([labels, labels]), reconstruct=self.local_batch
                )
            else:
                logits = self.D_train(seen, torch.cat([labels, labels]))
        real_logits, fake_logits = logits.float().split(self.local_batch)
        loss_d = discriminator_loss(self.config.loss.kind, real_logits, fake_logits)
        if self.reconstruct:
            loss_d = loss_d + self.config.loss.reconstruction_weight * reconstruction.float()
        loss_d = self._regularised(loss_d, real, fake, labels, real_logits, fake_logits)
        if self.config.augment.adaptive:
            self.ada.accumulate(real_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.d_steps += 1
        return loss_d, fake, labels

    def _regularised(
        self,
        loss_d: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor,
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
    ) -> torch.Tensor:
        """``loss_d`` plus the configured penalties: gradient penalty, lazy R1, LeCam."""
        cfg = self.config
        if cfg.loss.kind == "wgan-gp":
            mix = torch.rand(cfg.optim.batch_size, device=self.device)
            mix = mix[self.offset : self.offset + self.local_batch]
            with self._autocast():
                penalty = gradient_penalty(self.D, real, fake.detach(), labels, mix)
            loss_d = loss_d + cfg.loss.gp_weight * penalty
        if cfg.loss.r1_gamma > 0 and self.d_steps % cfg.loss.r1_interval == 0:
            with self._autocast():
                penalty = r1_penalty(self.D, self._augment(real), labels)
            loss_d = loss_d + cfg.loss.r1_gamma / 2 * cfg.loss.r1_interval * penalty
        if cfg.loss.lecam_weight > 0:
            loss_d = loss_d + cfg.loss.lecam_weight * self.lecam(real_logits, fake_logits)
        return loss_d

    def _generator_step(self, fake: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        """One G update through the frozen D, on ``fake`` or (``None``) on a new batch."""
        self.D.requires_grad_(False)
        if fake is None:
            noise = self._noise()
            with self._autocast():
                fake = self.G_train(noise, labels)
        with self._autocast():
            fake_logits = self.D(self._augment(fake), labels)
        loss_g = generator_loss(self.config.loss.kind, fake_logits.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss_g

    def _update_ema(self) -> None:
        ema = self.config.ema
        decay = 0.0 if self.step <= ema.start_step else ema.decay
        if ema.warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        update_ema(self.G_ema, self.G, decay)

    def _update_augment_p(self) -> None:
        augment = self.config.augment
        if augment.adaptive and self.step % augment.interval == 0:
            self.ada.update(all_reduce_sum if self.context.enabled else None)

    # ----------------------------------------------------------------------------- outputs

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The EMA generator's images of the fixed grid noise (uint8 NCHW) and grid columns."""
        images = []
        for start in range(0, len(self.grid_noise), 64):
            noise = self.grid_noise[start : start + 64].to(self.device)
            labels = self.grid_labels[start : start + 64].to(self.device)
            with self._autocast():
                images.append(to_uint8(self.G_ema(noise, labels).float()))
        return torch.cat(images), self.config.run.samples_per_class

    def _write_grid(self) -> None:
        images, columns = self.sample_grid()
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        write_atomic(
            folder / f"grid-step={self.step:08d}.png", encode_png(image_grid(images, columns))
        )

    @torch.no_grad()
    def quality_signal(self) -> float:
        """KID between EMA samples and real images on fixed features (lower is better): cheap
        random-conv ones, or ``run.quality_backbone``'s."""
        count = min(self.config.run.quality_samples, len(self.dataset))
        if self.quality_features is None:
            with torch.random.fork_rng(devices=[]):  # never move the training RNG
                run = self.config.run
                self.quality_features = signal_features(
                    run.quality_backbone, run.quality_backbone_weights, run.quality_backbone_size
                ).to(self.device)
            order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(7))
            real = self.dataset.images[order[:count].to(self.device)]
            if self.config.data.crop:  # fixed crops, so the signal compares like with like
                real = random_crops(real, self.config.data.crop, torch.Generator().manual_seed(8))
            self.real_features = self._features(to_signed_float(real))
            labels_gen = torch.Generator().manual_seed(self.config.run.seed + 2)
            self.quality_noise = torch.randn(
                count, self.config.model.noise_dim, generator=labels_gen
            )
            self.quality_labels = self.dataset.labels.cpu()[order[:count]]
        fakes = []
        for start in range(0, count, 64):
            noise = self.quality_noise[start : start + 64].to(self.device)
            labels = self.quality_labels[start : start + 64].to(self.device)
            with self._autocast():
                fakes.append(self.G_ema(noise, labels).float())
        assert self.real_features is not None
        return kid(self.real_features, self._features(torch.cat(fakes)))

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.quality_features is not None
        return torch.cat(
            [self.quality_features(images[i : i + 128]) for i in range(0, len(images), 128)]
        )

    def _stats_line(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _last_checkpoint(self) -> Path | None:
        found = list_checkpoints(self.run_dir, "last")
        return found[-1] if found else None

    def _best_checkpoint(self) -> Path | None:
        found = list_checkpoints(self.run_dir, "best")
        return found[-1] if found else None

    def _save(self, kind: str) -> Path | None:
        if not self.context.is_main:
            return None
        return save_checkpoint(self.run_dir, kind, self.state_dict())

    # ----------------------------------------------------------------------------- the loop

    def train(self) -> TrainResult:
        """Train to ``total_steps``, writing stats, grids and checkpoints (rank 0).

        Returns:
            How the run ended.

        Raises:
            TrainingDiverged: a loss became NaN or infinite (the last good checkpoint is kept).
        """
        stop = StopFlag()
        window = _LossWindow(self.device, self.step)
        if self.context.is_main:
            self.log(
                f"training {self.total_steps} steps of {self.config.optim.batch_size} images from "
                f"step {self.step} on {self.device} (bf16 {'on' if self.bf16 else 'off'}, "
                f"{self.context.world_size} rank(s))"
            )
        status = "finished"
        with stop.installed():
            while self.step < self.total_steps:
                window.add(*self.train_step())
                interrupted = self._agree(stop.raised)
                self._tick(window, interrupted)
                if interrupted:
                    status = "interrupted"
                    break
        main = self.context.is_main
        return TrainResult(
            self.run_dir,
            self.step,
            status,
            self._last_checkpoint() if main else None,
            self._best_checkpoint() if main else None,
            self.best_score,
        )

    def _tick(self, window: _LossWindow, interrupted: bool) -> None:
        """After a step: stats and log line, sample grid, quality signal and checkpoints when due.

        The run's last step and an interrupted one always log and checkpoint.
        """
        cfg = self.config.run
        main = self.context.is_main
        at = self.step
        done = at >= self.total_steps
        log_now = done or interrupted or at % cfg.log_every == 0
        ckpt_now = (
            done or interrupted or bool(cfg.checkpoint_every and at % cfg.checkpoint_every == 0)
        )
        if log_now or ckpt_now:
            losses = self._window_losses(window)
            if main and log_now:
                self._write_stats(losses, window)
            # Zeroed at a checkpoint between stats lines too, while window.steps runs on to the
            # next line, whose means then divide fewer steps' losses by all the window's steps
            # (kept as it was: only stats.jsonl and the log show it, training does not).
            window.loss_sum.zero_()
        if main and (done or (cfg.sample_every and at % cfg.sample_every == 0)):
            self._write_grid()
        if main and cfg.quality_every and (done or at % cfg.quality_every == 0):
            self._check_quality()
        if ckpt_now:
            self._save("last")
        if log_now:  # time the next window without the grids, signals and saves above
            window.restart()

    def _window_losses(self, window: _LossWindow) -> torch.Tensor:
        """Mean D and G loss of the window over all ranks.

        Raises:
            TrainingDiverged: either is NaN or infinite.
        """
        losses = window.loss_sum.clone()
        if self.context.enabled:
            all_reduce_sum(losses)
            losses /= self.context.world_size
        losses /= window.steps
        if not bool(torch.isfinite(losses).all()):
            last = self._last_checkpoint()
            raise TrainingDiverged(
                f"loss became NaN or infinite between steps {window.checked_step} and {self.step} "
                f"(D {losses[0].item():.4g}, G {losses[1].item():.4g}); last good "
                f"checkpoint: {last if last else 'none written yet'}"
            )
        window.checked_step = self.step
        return losses

    def _write_stats(self, losses: torch.Tensor, window: _LossWindow) -> None:
        """One stats.jsonl line and one log line for the window."""
        elapsed = time.perf_counter() - window.started
        batch = self.config.optim.batch_size
        record = {
            "step": self.step,
            "epoch": self.sampler.epoch,
            "kimg": self.step * batch * self.config.optim.n_critic / 1000,
            "loss_d": round(float(losses[0]), 6),
            "loss_g": round(float(losses[1]), 6),
            "augment_p": round(self.ada.p, 6),
            "ada_signal": round(self.ada.last_signal, 4),
            "sec_per_step": round(elapsed / window.steps, 5),
            "images_per_s": round(window.steps * batch / max(elapsed, 1e-9), 2),
        }
        self._stats_line(record)
        self.log(
            f"step {self.step}/{self.total_steps} D {record['loss_d']:.3f} "
            f"G {record['loss_g']:.3f} p {record['augment_p']:.3f} "
            f"{record['images_per_s']:.1f} img/s"
        )

    def _check_quality(self) -> None:
        """Log the quality signal; keep a 'best' checkpoint when it is the best yet."""
        score = self.quality_signal()
        self._stats_line({"step": self.step, "quality_kid": score})
        if math.isfinite(score) and (self.best_score is None or score < self.best_score):
            self.best_score, self.best_step = score, self.step
            self._save("best")

    def _all_reduce_mean(self, tensor: torch.Tensor) -> None:
        all_reduce_sum(tensor)
        tensor /= self.context.world_size

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank got a stop signal."""
        if not self.context.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        all_reduce_sum(value)
        return bool(value.item() > 0)
