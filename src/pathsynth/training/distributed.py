"""torchrun / DistributedDataParallel helpers.

Under ``torchrun`` every rank runs the same command; :func:`init_distributed` reads the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the process group:
NCCL on CUDA, gloo on CPU. Each rank takes its slice of every global batch; rank 0 alone writes.

BatchNorm under DDP would otherwise normalise with per-rank statistics, so the generator's
BatchNorm layers are made cross-rank: torch's SyncBatchNorm on CUDA, and on CPU (where
SyncBatchNorm refuses to run) :class:`CrossRankBatchNorm2d`, which all-reduces the sums.
"""

from __future__ import annotations

import gc
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from pathsynth.devices import resolve_device

# The autograd-aware all_reduce below is the one torch offers for this; its successor in
# _functional_collectives has no backward for all_reduce yet.
warnings.filterwarnings(
    "ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated"
)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job.

    Args:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when running as part of a multi-process job."""
        return self.world_size > 1

    def compute_device(self, name: str) -> torch.device:
        """The device a config's ``run.device`` means for this rank: under torchrun, CUDA is this
        machine's GPU number ``local_rank`` (made the current one).

        Raises:
            ConfigError: CUDA asked for but not available, or a name torch does not know.
        """
        device = resolve_device(name)
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device


def init_distributed(device: torch.device) -> DistContext:
    """Join the torchrun process group if this process was launched by torchrun.

    Args:
        device: the compute device; CUDA selects NCCL, anything else gloo.

    Returns:
        The context (a single-process one when not under torchrun).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank)


def shutdown_distributed(context: DistContext) -> None:
    """Leave the process group (no-op for a single process).

    Whatever still holds the group must be dropped first (the trainers'
    ``release_process_group``): the unreachable DDP wrappers are collected here, while Python
    runs. A gloo group freed only at interpreter exit aborts the process now and then
    ("terminate called without an active exception", about 1 run in 10 on a 2-core CPU).
    """
    if context.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> None:
    """Sum ``tensor`` over ranks in place (no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch, on any device.

    Per channel it all-reduces the count, sum and sum of squares with the autograd-aware
    ``torch.distributed.nn.functional.all_reduce``, so gradients also flow across ranks exactly as
    a single process with the whole batch would compute them. Outside a process group, or in eval
    mode, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.shape[1], device=x.device, dtype=torch.float32)
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)), count])
        stats = all_reduce(stats)
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean.square()).clamp_min(0.0)
        if (
            self.track_running_stats
            and self.running_mean is not None
            and self.running_var is not None
        ):
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        y = (xf - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm2d made cross-rank (SyncBatchNorm on CUDA).

    Weights and running statistics are kept; call before wrapping in DDP.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, CrossRankBatchNorm2d):
            replacement = CrossRankBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            ).to(device)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            convert_batchnorm(child, device)
    return module
