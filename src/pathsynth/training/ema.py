"""The exponential moving average of a trained network (the generator, the UNet) that samples and
generation use."""

from __future__ import annotations

import copy

import torch
from torch import nn

from pathsynth.training.config import EmaConfig


def make_ema(generator: nn.Module) -> nn.Module:
    """A frozen copy of ``generator`` in eval mode, to be updated with :func:`update_ema`."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * generator`` for parameters; buffers are copied.

    Copying buffers (BatchNorm running statistics) follows StyleGAN2-ADA: the running statistics
    already average over recent steps.

    Args:
        ema: the EMA copy (same architecture as ``generator``).
        generator: the trained generator (unwrapped).
        decay: 0 copies ``generator`` outright.
    """
    ema_params: list[torch.Tensor] = list(ema.parameters())
    params: list[torch.Tensor] = [p.detach() for p in generator.parameters()]
    if decay == 0.0:
        torch._foreach_copy_(ema_params, params)
    else:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), generator.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def ema_decay(config: EmaConfig, step: int) -> float:
    """The decay after ``step`` steps: 0 (a plain copy) up to ``start_step``, then ``decay``,
    capped by ``(1 + step) / (10 + step)`` with ``warmup`` so the early average is not stuck at
    the initial weights."""
    decay = 0.0 if step <= config.start_step else config.decay
    if config.warmup:
        decay = min(decay, (1 + step) / (10 + step))
    return decay
