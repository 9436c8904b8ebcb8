"""The EMA generator."""

from __future__ import annotations

import torch
from torch import nn

from pathsynth.training.ema import make_ema, update_ema


def test_ema_moves_a_fraction_toward_the_generator_and_copies_buffers() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = make_ema(net)
    with torch.no_grad():
        before = ema[0].weight.clone()
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(5.0)
    update_ema(ema, net, decay=0.9)
    assert torch.allclose(ema[0].weight, before + 0.1)
    assert torch.equal(ema[1].running_mean, torch.full((2,), 5.0))
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())


def test_zero_decay_copies_the_generator() -> None:
    net = nn.Linear(3, 1)
    ema = make_ema(net)
    with torch.no_grad():
        net.weight.mul_(-2.0)
    update_ema(ema, net, decay=0.0)
    assert torch.equal(ema.weight, net.weight)
