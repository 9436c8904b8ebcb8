"""NT-Xent, SimCLR's loss (Chen et al. 2020), with negatives from every rank's views.

Under DDP each rank embeds its slice of the global batch; the projections of all ranks are
gathered (:func:`gather_rows`, whose backward sums the gradients of every rank and keeps this
rank's rows), so every view is contrasted with all ``2N - 2`` other views of the global batch,
exactly as one process holding the whole batch would. Each rank's loss covers its own rows and is
scaled so that DDP's gradient averaging gives the gradient of the global mean.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pathsynth.errors import DataError


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 whose backward all-reduces the gradient and keeps this rank's rows.

    Written here because torch's autograd all_gather reduces with reduce_scatter in its backward,
    which gloo (the CPU backend the tests run on) does not have.
    """

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous())
        ctx.rows, ctx.rank = local.shape[0], rank
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Every rank's ``local`` rows in rank order (``local`` itself outside a process group);
    gradients flow back to each rank's own rows."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    gathered: torch.Tensor = _GatherRows.apply(local)
    return gathered


def nt_xent(
    first: torch.Tensor, second: torch.Tensor, temperature: float, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """NT-Xent of this rank's two views' projections against the global batch.

    Args:
        first, second: (n, d) projections of the two views of this rank's n images.
        temperature: the softmax temperature.
        rank, world: this rank and the number of ranks (the global batch is ``world * n``).

    Returns:
        A scalar: this rank's share of the global mean loss, times ``world`` (so that DDP's
        averaging of gradients gives the gradient of the global mean; with one process it is
        the mean itself).

    Raises:
        DataError: the two views differ in shape or hold fewer than one image.
    """
    if first.shape != second.shape or first.ndim != 2 or first.shape[0] < 1:
        raise DataError(f"NT-Xent needs two (n, d) views, got {first.shape} and {second.shape}")
    n = first.shape[0]
    every = F.normalize(torch.cat([gather_rows(first), gather_rows(second)]).float(), dim=1)
    total = every.shape[0] // 2  # images in the global batch
    mine = torch.arange(rank * n, (rank + 1) * n, device=first.device)
    rows = torch.cat([mine, mine + total])  # this rank's views among all 2 * total
    partners = torch.cat([mine + total, mine])
    logits = every[rows] @ every.T / temperature
    itself = torch.zeros_like(logits, dtype=torch.bool)
    itself[torch.arange(2 * n, device=first.device), rows] = True
    logits = logits.masked_fill(itself, float("-inf"))  # a view is not its own partner
    loss = F.cross_entropy(logits, partners, reduction="sum")
    return loss * world / (2 * total)
