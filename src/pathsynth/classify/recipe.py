"""The modern small-data recipe's parts: step schedule, weight EMA, mixup/cutmix, balanced batches.

Each part is off unless the classifier config turns it on, and each is a small piece the trainer
calls per optimiser step (schedule, EMA), per batch (mixup/cutmix) or per epoch (batch order):

- **schedule**: linear warm-up over the first ``warmup_fraction`` of the planned optimiser steps,
  then constant or cosine decay to ``final_lr_fraction`` of the learning rate. The plan is
  ``epochs`` full epochs; early stopping may end training before the decay finishes.
- **weight EMA**: an exponential moving average of every floating-point weight and buffer (batch
  norm statistics included), updated after each optimiser step; validation, early stopping and the
  returned model use the average. A small set gives few steps (a hundred or two in a whole run), so
  the decay warms up as TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` does: update
  ``t`` uses ``min(ema_decay, (1 + t) / (10 + t))``, and the random initial weights fade quickly.
- **mixup / cutmix** (Zhang et al. 2018; Yun et al. 2019): a batch is blended with a seeded
  permutation of itself and the loss sees the matching soft targets, whose rows sum to 1.
- **balanced batches**: every batch is drawn with replacement with inverse-class-frequency weights,
  so each class is equally likely at every draw. It replaces ``class_weighted_loss``: the loss's
  class weights follow the classes the batches hold, which are then uniform, so none apply and
  rare classes are not up-weighted twice. Rare images recur within an epoch (with replacement).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.classify.config import ClassifierConfig

SEED_OFFSET_MIX = 4  # the mixup/cutmix generator is seeded with config.seed + this


def learning_rate_factor(
    step: int, total_steps: int, warmup_steps: int, schedule: str, final_fraction: float = 0.0
) -> float:
    """The learning-rate multiplier for the optimiser step numbered ``step`` (0-based).

    Warm-up rises linearly, ``(step + 1) / warmup_steps``, so the first step is not taken at rate
    0 and step ``warmup_steps - 1`` reaches the full rate. Afterwards ``"constant"`` stays at 1 and
    ``"cosine"`` falls from 1 at step ``warmup_steps`` along half a cosine towards
    ``final_fraction`` at ``total_steps``; steps past the plan stay at ``final_fraction``.

    Args:
        step: optimiser steps already taken.
        total_steps: steps planned (``epochs * steps per epoch``), at least 1.
        warmup_steps: steps of linear warm-up, 0 for none.
        schedule: ``"constant"`` or ``"cosine"``.
        final_fraction: the cosine's end as a share of the full rate, in [0, 1].

    Raises:
        ValueError: an unknown schedule.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_scheduler(
    optimiser: torch.optim.Optimizer, config: ClassifierConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A per-optimiser-step scheduler for ``config``'s schedule; ``None`` when the rate is constant.

    Args:
        optimiser: the optimiser whose rate is scheduled (call ``.step()`` after each of its steps).
        config: its ``schedule``, ``warmup_fraction``, ``final_lr_fraction`` and ``epochs``.
        steps_per_epoch: optimiser steps in one epoch.
    """
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup_steps = round(config.warmup_fraction * total_steps)
    if config.schedule == "constant" and warmup_steps == 0:
        return None  # keeps the default path free of any scheduler arithmetic
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: learning_rate_factor(
            step, total_steps, warmup_steps, config.schedule, config.final_lr_fraction
        ),
    )


class WeightEMA:
    """An exponential moving average of a model: ``average = d * average + (1 - d) * now``.

    Update ``t`` (counted from 1) uses ``d = min(decay, (1 + t) / (10 + t))``, a warm-up that keeps
    the early average close to the trained weights. Floating-point parameters and buffers are
    averaged; integer buffers (batch norm's ``num_batches_tracked``) are copied. The average starts
    as a copy of the model.

    Args:
        model: the network being trained.
        decay: the most weight the old average keeps per update, in (0, 1).

    Raises:
        ValueError: a decay outside (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for key, average in self.module.state_dict().items():
            if average.is_floating_point():
                average.mul_(decay).add_(current[key].detach(), alpha=1.0 - decay)
            else:
                average.copy_(current[key])


def _cutmix_box(height: int, width: int, area: float, rng: np.random.Generator) -> tuple[int, ...]:
    """A box of about ``area`` share of the image, centred uniformly, clipped to the image."""
    cut_h, cut_w = int(height * math.sqrt(area)), int(width * math.sqrt(area))
    centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(centre_y - cut_h // 2, 0), min(centre_y + cut_h // 2, height)
    left, right = max(centre_x - cut_w // 2, 0), min(centre_x + cut_w // 2, width)
    return top, bottom, left, right


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: ClassifierConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix one batch with a random permutation of itself, and its soft targets.

    With probability ``config.mix_probability`` the batch is mixed; when both ``mixup_alpha`` and
    ``cutmix_alpha`` are on, each is chosen half the time. The share ``lam`` of the original image
    is drawn from Beta(alpha, alpha); cutmix pastes one box of the partner over every image and
    sets ``lam`` to the share left uncovered. Mixup turns uint8 images into float32 in [0, 255]
    (the trainer's input mapping accepts both); cutmix keeps the dtype.

    Args:
        images: (N, C, H, W) batch on any device.
        labels: (N,) class indices on the same device.
        num_classes: width of the targets.
        config: its ``mixup_alpha``, ``cutmix_alpha`` and ``mix_probability``.
        rng: NumPy generator drawing whether, how and whom to mix (seeded by the caller).

    Returns:
        ``(images, targets)``: the (possibly) mixed batch and (N, num_classes) float targets whose
        rows sum to 1 (one-hot when the batch was left unmixed).
    """
    targets = F.one_hot(labels, num_classes).float()
    modes = [alpha for alpha in (config.mixup_alpha, config.cutmix_alpha) if alpha > 0]
    if not modes or rng.random() >= config.mix_probability:
        return images, targets
    use_cutmix = config.cutmix_alpha > 0 and (config.mixup_alpha == 0 or rng.random() < 0.5)
    alpha = config.cutmix_alpha if use_cutmix else config.mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    partner = torch.from_numpy(rng.permutation(len(labels))).to(labels.device)
    if use_cutmix:
        height, width = images.shape[-2:]
        top, bottom, left, right = _cutmix_box(height, width, 1.0 - lam, rng)
        images = images.clone()
        images[..., top:bottom, left:right] = images[partner][..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    else:
        floats = images.float()
        images = floats.mul(lam).add_(floats[partner], alpha=1.0 - lam)
    return images, targets.mul(lam).add_(targets[partner], alpha=1.0 - lam)


def inverse_frequency_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-item sampling weights ``1 / count(class of item)``: every class sums to 1."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


def balanced_batches(
    labels: torch.Tensor, batch_size: int, generator: torch.Generator, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """One epoch of class-balanced batch indices, drawn with replacement.

    The epoch has as many batches as a shuffled epoch of the same set (``len // batch_size``, plus
    a short one when ``drop_last`` is false and there is a remainder); every index is drawn with
    inverse-class-frequency weight, so each present class is equally likely at each draw.

    Args:
        labels: (N,) class indices (any device; the indices come back on it).
        batch_size: indices per batch.
        generator: CPU torch generator drawing the indices (seeded for reproducibility).
        drop_last: drop the final short batch.
    """
    weights = inverse_frequency_weights(labels.cpu())
    sizes = [batch_size] * (len(labels) // batch_size)
    if not drop_last and len(labels) % batch_size:
        sizes.append(len(labels) % batch_size)
    for size in sizes:
        yield torch.multinomial(weights, size, replacement=True, generator=generator).to(
            labels.device
        )


class RecipeSteps:
    """The recipe parts one training run uses, called by the trainer per batch and per step.

    Args:
        config: the run's configuration.
        model: the network being trained (copied for the EMA when ``ema_decay`` > 0).
        optimiser: its optimiser (scheduled when the schedule is not a plain constant rate).
        num_classes: classes of the targets.
        steps_per_epoch: optimiser steps in one epoch.
    """

    def __init__(
        self,
        config: ClassifierConfig,
        model: nn.Module,
        optimiser: torch.optim.Optimizer,
        num_classes: int,
        steps_per_epoch: int,
    ) -> None:
        self.config = config
        self.num_classes = num_classes
        self.scheduler = step_scheduler(optimiser, config, steps_per_epoch)
        self.ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
        mixes = config.mixup_alpha > 0 or config.cutmix_alpha > 0
        self.mix_rng = np.random.default_rng(config.seed + SEED_OFFSET_MIX) if mixes else None

    def mix(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, loss targets)``: mixed with soft targets when mixing is on, else unchanged."""
        if self.mix_rng is None:
            return images, labels
        return mix_batch(images, labels, self.num_classes, self.config, self.mix_rng)

    def after_step(self, model: nn.Module) -> None:
        """Advance the schedule and the weight average after one optimiser step."""
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(model)

    def scored_model(self, model: nn.Module) -> nn.Module:
        """The network to validate and keep: the weight average when on, else ``model``."""
        return self.ema.module if self.ema is not None else model
