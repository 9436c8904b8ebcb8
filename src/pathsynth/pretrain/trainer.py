"""The SimCLR training loop: one global batch per step, the pool on the device, exact resume.

Each step takes the next global batch of the pool (:class:`~pathsynth.gan.data.EpochSampler`:
the order is a pure function of seed and epoch), makes two views of every image of it from the
run's view generator (every rank draws the whole batch's views, then keeps its slice, so one
process and N ranks see the same views), embeds both views in one forward pass through backbone
and projection head, and takes one AdamW step on NT-Xent. Weights, optimiser, sampler counters
and the view generator's state are in every checkpoint, so N steps straight and N/2 + resume +
N/2 give the same weights on the CPU.

Under torchrun the network is wrapped in DDP with its BatchNorm layers made cross-rank
(:func:`~pathsynth.training.distributed.convert_batchnorm`) and NT-Xent gathers every rank's
projections (:mod:`pathsynth.pretrain.loss`), so the negatives are the whole global batch.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathsynth.backbones.load import Backbone, load_backbone
from pathsynth.classify.recipe import learning_rate_factor
from pathsynth.devices import use_bf16
from pathsynth.errors import CheckpointError, ConfigError, DataError, PathsynthError
from pathsynth.gan.data import EpochSampler
from pathsynth.gan.trainer import StopFlag
from pathsynth.imaging.stain import fit_lab_statistics
from pathsynth.pretrain.config import PretrainConfig
from pathsynth.pretrain.loss import nt_xent
from pathsynth.pretrain.views import ViewMaker
from pathsynth.training.checkpoint import list_checkpoints, save_checkpoint
from pathsynth.training.distributed import DistContext, all_reduce_sum, convert_batchnorm
from pathsynth.weights import load_torch_file

CHECKPOINT_FORMAT = 1
CHECKPOINT_KIND = "pretrain-simclr"
STATS_NAME = "stats.jsonl"


class PretrainDiverged(PathsynthError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


@dataclass
class PretrainResult:
    """How a pretraining run ended.

    Args:
        run_dir: the run folder.
        step: optimiser steps done.
        status: ``"finished"`` or ``"interrupted"`` (SIGINT/SIGTERM; a checkpoint was written).
        last_checkpoint: the last checkpoint written.
        loss: the mean loss of the last logged window.
    """

    run_dir: Path
    step: int
    status: str
    last_checkpoint: Path | None
    loss: float


class SimclrNetwork(nn.Module):
    """Backbone (pooled features) and the projection head NT-Xent sees.

    Args:
        backbone: the timm feature extractor (``num_classes=0``).
        dim: its feature dimension.
        hidden, out: the head's hidden and output widths.
    """

    def __init__(self, backbone: nn.Module, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def load_pretrain_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint this trainer wrote.

    Raises:
        CheckpointError: missing, unreadable, not a pretraining checkpoint or of another format.
    """
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"checkpoint {path} is not a pathsynth pretraining checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state.get('format')}, this version reads "
            f"{CHECKPOINT_FORMAT}"
        )
    return state


class SimclrTrainer:
    """SimCLR on a pool of ``uint8`` images, as one process or one rank of torchrun.

    Args:
        config: the resolved config.
        pool: ``uint8`` (N, 3, S, S) inputs (all on every rank).
        run_dir: where checkpoints and ``stats.jsonl`` go (rank 0 writes).
        context: this process's place in the job.
        resume: a checkpoint's state to continue from.
        log: progress lines (rank 0).

    Raises:
        DataError: fewer images than one batch, or a pool that is not uint8 RGB squares.
        ConfigError: a batch that does not split evenly over the ranks, an unknown backbone.
        CheckpointError: a resume checkpoint of another backbone or batch layout.
    """

    def __init__(
        self,
        config: PretrainConfig,
        pool: torch.Tensor,
        run_dir: Path,
        context: DistContext | None = None,
        resume: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if pool.dtype != torch.uint8 or pool.ndim != 4 or pool.shape[1] != 3:
            raise DataError(
                f"the pretraining pool must be uint8 (N, 3, S, S), got {pool.dtype} {tuple(pool.shape)}"
            )
        self.config = config
        self.context = context or DistContext()
        self.run_dir = run_dir
        self.log = log or (lambda line: None)
        self.device = self.context.compute_device(config.run.device)
        world = self.context.world_size
        if config.optim.batch_size % world:
            raise ConfigError(
                f"optim.batch_size {config.optim.batch_size} does not split evenly over {world} ranks"
            )
        self.local_batch = config.optim.batch_size // world
        self.offset = self.context.rank * self.local_batch
        self.sampler = EpochSampler(len(pool), config.optim.batch_size, config.run.seed)
        self.pool = pool.to(self.device)
        self.bf16 = use_bf16(config.run.amp, self.device)
        self.layout = torch.channels_last if config.run.channels_last else torch.contiguous_format

        self.backbone = load_backbone(
            config.model.backbone, None, seed=config.run.seed, input_size=config.data.view_size
        )
        torch.manual_seed(config.run.seed + 1)  # the head's init
        self.network = SimclrNetwork(
            self.backbone.model, self.backbone.dim, config.model.projection_hidden,
            config.model.projection_dim,
        ).to(self.device).to(memory_format=self.layout)  # fmt: skip
        if self.context.enabled:
            convert_batchnorm(self.network, self.device)
        self.optimiser = torch.optim.AdamW(
            self.network.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )
        self.generator = torch.Generator(self.device).manual_seed(config.run.seed + 2)
        stats = (
            fit_lab_statistics(self.pool[: min(len(self.pool), 512)])
            if config.colour.randstain_p > 0.0
            else None
        )
        self.views = ViewMaker(config, self.backbone.spec, self.generator, stats)
        self.step = 0
        if resume is not None:
            self._load_state(resume)
        self.train_network: nn.Module = self.network
        if self.context.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # BatchNorm statistics are synced by the cross-rank BatchNorm; nothing else to sync.
            self.train_network = DDP(self.network, device_ids=ids, broadcast_buffers=False)

    def release_process_group(self) -> None:
        """Drop the DDP wrapper once the run is over (:meth:`RunTrainer.release_process_group
        <pathsynth.training.runs.RunTrainer.release_process_group>`)."""
        self.train_network = self.network

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict."""
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": CHECKPOINT_KIND,
            "step": self.step,
            "backbone_name": self.config.model.backbone,
            "network": self.network.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "sampler": self.sampler.state_dict(),
            "view_rng": self.generator.get_state(),
            "config": self.config.to_dict(),
            "world_size": self.context.world_size,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("backbone_name") != self.config.model.backbone:
            raise CheckpointError(
                f"checkpoint holds a {state.get('backbone_name')}, this run trains a "
                f"{self.config.model.backbone}"
            )
        try:
            self.network.load_state_dict(state["network"])
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0][:160]
            raise CheckpointError(f"checkpoint does not fit this run's network: {first}") from None
        self.optimiser.load_state_dict(state["optimiser"])
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["view_rng"].to("cpu"))
        self.step = int(state["step"])

    def exported_backbone(self) -> Backbone:
        """The backbone being trained (its tensors are the network's, in eval mode when read)."""
        return self.backbone

    # ----------------------------------------------------------------------------- one step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the next global batch; returns this rank's loss share."""
        config = self.config
        index = self.sampler.next_batch()
        first, second = self.views(self.pool[index.to(self.device)])
        local = slice(self.offset, self.offset + self.local_batch)
        inputs = torch.cat([first[local], second[local]]).contiguous(memory_format=self.layout)
        factor = learning_rate_factor(
            self.step, config.optim.steps, config.optim.warmup_steps, "cosine",
            config.optim.final_lr_fraction,
        )  # fmt: skip
        for group in self.optimiser.param_groups:
            group["lr"] = config.optim.lr * factor
        self.network.train()
        with self._autocast():
            projections = self.train_network(inputs)
        n = self.local_batch
        loss = nt_xent(
            projections[:n], projections[n:], config.loss.temperature,
            self.context.rank, self.context.world_size,
        )  # fmt: skip
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.step += 1
        return loss.detach() / self.context.world_size

    # ----------------------------------------------------------------------------- the loop

    def train(self) -> PretrainResult:
        """Train to ``optim.steps``, writing stats and checkpoints (rank 0).

        Raises:
            PretrainDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
        """
        config = self.config
        stop = StopFlag()
        window_loss = torch.zeros((), device=self.device)
        window_steps, started = 0, time.perf_counter()
        last_loss = float("nan")
        self.log(
            f"pretraining {config.model.backbone} for {config.optim.steps} steps of "
            f"{config.optim.batch_size} images (pool {len(self.pool)}) from step {self.step} on "
            f"{self.device} (bf16 {'on' if self.bf16 else 'off'}, {self.context.world_size} rank(s))"
        )
        status = "finished"
        with stop.installed():
            while self.step < config.optim.steps:
                window_loss += self.train_step()
                window_steps += 1
                interrupted = self._agree(stop.raised)
                done = self.step >= config.optim.steps
                if done or interrupted or self.step % config.run.log_every == 0:
                    last_loss = self._log_window(window_loss, window_steps, started)
                    window_loss.zero_()
                    window_steps, started = 0, time.perf_counter()
                every = config.run.checkpoint_every
                if done or interrupted or (every and self.step % every == 0):
                    self._save()
                if interrupted:
                    status = "interrupted"
                    break
        last = list_checkpoints(self.run_dir, "last") if self.context.is_main else []
        return PretrainResult(
            self.run_dir, self.step, status, last[-1] if last else None, last_loss
        )

    def _save(self) -> None:
        if self.context.is_main:
            save_checkpoint(self.run_dir, "last", self.state_dict())

    def _log_window(self, loss_sum: torch.Tensor, steps: int, started: float) -> float:
        total = loss_sum.detach().clone()
        if self.context.enabled:
            all_reduce_sum(total)
        loss = float(total) / steps
        if not torch.isfinite(torch.tensor(loss)):
            last = list_checkpoints(self.run_dir, "last")
            raise PretrainDiverged(
                f"NT-Xent loss became NaN or infinite by step {self.step}; last good checkpoint: "
                f"{last[-1] if last else 'none written yet'}"
            )
        elapsed = time.perf_counter() - started
        record = {
            "step": self.step,
            "epoch": self.sampler.epoch,
            "loss": round(loss, 6),
            "lr": self.optimiser.param_groups[0]["lr"],
            "sec_per_step": round(elapsed / steps, 5),
            "images_per_s": round(steps * self.config.optim.batch_size / max(elapsed, 1e-9), 2),
        }
        if self.context.is_main:
            with (self.run_dir / STATS_NAME).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            self.log(
                f"step {self.step}/{self.config.optim.steps} loss {loss:.4f} "
                f"{record['images_per_s']:.1f} img/s"
            )
        return loss

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank got a stop signal."""
        if not self.context.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        all_reduce_sum(value)
        return bool(value.item() > 0)
