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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathsynth.errors import ConfigError
from pathsynth.gan.architectures import build_discriminator, build_generator, check_architecture
from pathsynth.gan.config import TrainConfig, augment_ops
from pathsynth.gan.diffaug import AdaptiveProbability, augment
from pathsynth.gan.losses import (
    LeCam,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from pathsynth.gan.networks import ConditionalGenerator
from pathsynth.gan.quality import kid, signal_features
from pathsynth.imaging.augment import ColourAugment
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.stain import fit_lab_statistics
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float, to_uint8
from pathsynth.training.checkpoint import CHECKPOINT_FORMAT, restore_states
from pathsynth.training.distributed import DistContext, all_reduce_sum, convert_batchnorm
from pathsynth.training.ema import ema_decay, make_ema, update_ema
from pathsynth.training.loop import Cadence, Trainer
from pathsynth.training.sampler import EpochSampler


def total_steps(config: TrainConfig, dataset_size: int) -> int:
    """Generator steps the run trains: ``optim.steps``, else epochs x batches / n_critic."""
    if config.optim.steps > 0:
        return config.optim.steps
    batches = dataset_size // config.optim.batch_size
    return max(1, config.optim.epochs * batches // config.optim.n_critic)


class GanTrainer(Trainer):
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
        super().__init__(config, run_dir, context, log)
        self.config = config
        self._check_minibatch_groups()
        run = config.run
        self.cadence = Cadence(
            run.log_every, run.checkpoint_every, run.sample_every, run.quality_every
        )
        if dataset.resolution != config.data.preprocess.size:
            raise ConfigError(
                f"data is {dataset.resolution}px but data.preprocess.size is "
                f"{config.data.preprocess.size}"
            )
        self.dataset = dataset.to(self.device)
        self.class_names = list(dataset.class_names)
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
        self.total_steps = total_steps(config, len(dataset))
        if resume is not None:
            self._load_state(resume)
        # BatchNorm statistics are synced by the cross-rank BatchNorm; nothing else to sync.
        compile_mode = config.run.compile_mode if config.run.compile else None
        self.G_train = self.wrap("G_train", self.G, compile_mode, forward_sync_buffers=False)
        self.D_train = self.wrap("D_train", self.D, compile_mode, forward_sync_buffers=False)

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

    def _check_minibatch_groups(self) -> None:
        group = self.config.model.d_minibatch_std_group
        if group and self.local_batch % group:
            raise ConfigError(
                f"the per-rank batch {self.local_batch} is not a multiple of "
                f"model.d_minibatch_std_group {group} (real and fake would share a group)"
            )

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

    def _adam(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        optim = self.config.optim
        return self.adam(
            torch.optim.Adam,
            module,
            lr,
            (optim.beta1, optim.beta2),
            optim.weight_decay,
            self.config.run.fused_adam,
        )

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict."""
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
            "rng": self.rng_state(colour=self.colour_generator.get_state()),
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
        self.load_rng_state(state["rng"])
        self.colour_generator.set_state(state["rng"]["colour"])

    # ----------------------------------------------------------------------------- the step

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.mine(self.sampler.next_batch()).to(self.device)
        images = self.dataset.images[index]
        if self.config.data.crop:  # positions from the global RNG: checkpointed, so resumable
            images = random_crops(images, self.config.data.crop)
        if self.colour is not None:
            images = self._colour_augmented(images)
        images = to_signed_float(images).contiguous(memory_format=self.memory_format)
        return images, self.dataset.labels[index]

    def _colour_augmented(self, images: torch.Tensor) -> torch.Tensor:
        """This rank's uint8 images colour-augmented with the draws of their places in the global
        batch (:meth:`~pathsynth.training.loop.Trainer.spread`)."""
        assert self.colour is not None
        return self.mine(self.colour(self.spread(images)))

    def _noise(self) -> torch.Tensor:
        return self.mine(
            torch.randn(
                self.config.optim.batch_size, self.config.model.noise_dim, device=self.device
            )
        )

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return augment(
            images,
            self.ops,
            self.ada.p,
            offset=self.offset,
            global_batch=self.config.optim.batch_size,
        )

    loss_names = ("loss_d", "loss_g")
    progress_task = "GAN steps"

    def train_step(self) -> torch.Tensor:
        """One generator step (after ``n_critic`` discriminator steps); returns D's and G's loss."""
        if self.config.run.compile:  # CUDA graphs (reduce-overhead): earlier outputs are done
            torch.compiler.cudagraph_mark_step_begin()
        reuse = self.config.optim.n_critic == 1
        for _ in range(self.config.optim.n_critic):  # at least 1: the config refuses fewer
            loss_d, fake, labels = self._discriminator_step(reuse)
        loss_g = self._generator_step(fake if reuse else None, labels)
        self.step += 1
        self._update_ema()
        self._update_augment_p()
        return torch.stack([loss_d.detach(), loss_g.detach()])

    def _discriminator_step(self, reuse: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One D update on a real and a generated batch; returns the loss, the fakes, the labels.

        With ``reuse`` the fakes keep their graph, for the generator step to learn through.
        """
        real, labels = self._real_batch()
        noise = self._noise()
        with self.autocast():
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
            mix = self.mine(torch.rand(cfg.optim.batch_size, device=self.device))
            with self.autocast():
                penalty = gradient_penalty(self.D, real, fake.detach(), labels, mix)
            loss_d = loss_d + cfg.loss.gp_weight * penalty
        if cfg.loss.r1_gamma > 0 and self.d_steps % cfg.loss.r1_interval == 0:
            with self.autocast():
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
            with self.autocast():
                fake = self.G_train(noise, labels)
        with self.autocast():
            fake_logits = self.D(self._augment(fake), labels)
        loss_g = generator_loss(self.config.loss.kind, fake_logits.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss_g

    def _update_ema(self) -> None:
        update_ema(self.G_ema, self.G, ema_decay(self.config.ema, self.step))

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
            with self.autocast():
                images.append(to_uint8(self.G_ema(noise, labels).float()))
        return torch.cat(images), self.config.run.samples_per_class

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
            with self.autocast():
                fakes.append(self.G_ema(noise, labels).float())
        assert self.real_features is not None
        return kid(self.real_features, self._features(torch.cat(fakes)))

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        assert self.quality_features is not None
        return torch.cat(
            [self.quality_features(images[i : i + 128]) for i in range(0, len(images), 128)]
        )

    def window_fields(self, losses: dict[str, float]) -> tuple[dict[str, Any], str]:
        """kimg, the losses, ADA's probability and signal; D, G and p for the log line."""
        optim = self.config.optim
        fields = {
            "kimg": self.step * optim.batch_size * optim.n_critic / 1000,
            **{name: round(value, 6) for name, value in losses.items()},
            "augment_p": round(self.ada.p, 6),
            "ada_signal": round(self.ada.last_signal, 4),
        }
        text = f"D {fields['loss_d']:.3f} G {fields['loss_g']:.3f} p {fields['augment_p']:.3f}"
        return fields, text

    def _all_reduce_mean(self, tensor: torch.Tensor) -> None:
        all_reduce_sum(tensor)
        tensor /= self.context.world_size
