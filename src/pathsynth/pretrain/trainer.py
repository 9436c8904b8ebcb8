"""The SimCLR training loop: one global batch per step, the pool on the device, exact resume.

Each step takes the next global batch of the pool (:class:`~pathsynth.training.sampler.EpochSampler`:
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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathsynth.backbones.load import load_backbone
from pathsynth.classify.recipe import learning_rate_factor
from pathsynth.errors import CheckpointError, DataError
from pathsynth.imaging.stain import fit_lab_statistics
from pathsynth.pretrain.config import PretrainConfig
from pathsynth.pretrain.loss import nt_xent
from pathsynth.pretrain.views import ViewMaker
from pathsynth.training.distributed import DistContext, convert_batchnorm
from pathsynth.training.loop import Trainer
from pathsynth.training.sampler import EpochSampler
from pathsynth.weights import load_torch_file

CHECKPOINT_FORMAT = 1
CHECKPOINT_KIND = "pretrain-simclr"


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


class SimclrTrainer(Trainer):
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

    progress_task = "SimCLR steps"

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
        super().__init__(config, run_dir, context, log)
        self.config = config
        self.sampler = EpochSampler(len(pool), config.optim.batch_size, config.run.seed)
        self.total_steps = config.optim.steps
        self.pool = pool.to(self.device)

        self.backbone = load_backbone(
            config.model.backbone, None, seed=config.run.seed, input_size=config.data.view_size
        )
        torch.manual_seed(config.run.seed + 1)  # the head's init
        self.network = (
            SimclrNetwork(
                self.backbone.model,
                self.backbone.dim,
                config.model.projection_hidden,
                config.model.projection_dim,
            )
            .to(self.device)
            .to(memory_format=self.memory_format)
        )
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
        # BatchNorm statistics are synced by the cross-rank BatchNorm; nothing else to sync.
        self.train_network = self.wrap("train_network", self.network, broadcast_buffers=False)

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

    # ----------------------------------------------------------------------------- one step

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the next global batch; returns this rank's loss (1 element)."""
        config = self.config
        index = self.sampler.next_batch()
        first, second = self.views(self.pool[index.to(self.device)])
        inputs = torch.cat([self.mine(first), self.mine(second)]).contiguous(
            memory_format=self.memory_format
        )
        factor = learning_rate_factor(
            self.step,
            config.optim.steps,
            config.optim.warmup_steps,
            "cosine",
            config.optim.final_lr_fraction,
        )
        for group in self.optimiser.param_groups:
            group["lr"] = config.optim.lr * factor
        self.network.train()
        with self.autocast():
            projections = self.train_network(inputs)
        n = self.local_batch
        loss = nt_xent(
            projections[:n],
            projections[n:],
            config.loss.temperature,
            self.context.rank,
            self.context.world_size,
        )
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.step += 1
        return loss.detach().reshape(1)

    def opening_line(self) -> str:
        """Which backbone, on how many images."""
        return f"pretraining {self.config.model.backbone} on a pool of {len(self.pool)}: " + (
            super().opening_line()
        )

    def window_fields(self, losses: dict[str, float]) -> tuple[dict[str, Any], str]:
        """The NT-Xent loss and the learning rate; the loss for the log line."""
        fields = {"loss": round(losses["loss"], 6), "lr": self.optimiser.param_groups[0]["lr"]}
        return fields, f"loss {losses['loss']:.4f}"
