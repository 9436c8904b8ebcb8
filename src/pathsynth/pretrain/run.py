"""One pretraining run from start to end: folder, identity, resume, torchrun, exported backbone.

The run folder is every trainer's (:mod:`pathsynth.training.runs`): ``runs/NNNNN-name`` claimed safely,
``config.json``, ``run.json`` (a unique id and where the images came from, so ``--resume`` finds
them again), ``stats.jsonl`` trimmed to the checkpoint a killed run resumes from, and atomic
``last-step=NNNNNNNN.pt`` checkpoints (:mod:`pathsynth.training.checkpoint`). A finished run also
holds :data:`BACKBONE_NAME`: the backbone's tensors under timm's own names, as safetensors, which
``embed``, ``classify --set classifier.backbone_weights=...`` and ``reproduce`` load as
``--backbone-weights``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pathsynth.errors import CheckpointError
from pathsynth.files import atomic_path
from pathsynth.pretrain.config import PretrainConfig
from pathsynth.pretrain.trainer import SimclrTrainer, load_pretrain_checkpoint
from pathsynth.training.checkpoint import find_checkpoint, list_checkpoints
from pathsynth.training.distributed import DistContext
from pathsynth.training.loop import TrainResult
from pathsynth.training.runs import IDENTITY_NAME, run_training, trim_stats

BACKBONE_NAME = "backbone.safetensors"
KIND = "pretrain"  # run.json's kind: no generator, so ``generate`` refuses the run in one line


@dataclass
class PretrainOutcome:
    """What a run left: how training ended and the exported backbone (finished runs only)."""

    result: TrainResult
    backbone_file: Path | None


def recorded_data(run_dir: Path) -> dict[str, str]:
    """Where a run's images came from, as ``run.json`` records it.

    Raises:
        CheckpointError: no ``run.json`` or one that names no images.
    """
    path = run_dir / IDENTITY_NAME
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {IDENTITY_NAME}: it is not a pretraining run")
    data = json.loads(path.read_text(encoding="utf-8")).get("data") or {}
    if not data:
        raise CheckpointError(f"run {run_dir} does not say where its images came from")
    return {str(k): str(v) for k, v in data.items()}


def export_backbone(trainer: SimclrTrainer, path: Path, run_id: str) -> Path:
    """Write the trained backbone's tensors (timm's names) to ``path`` as safetensors, atomically.

    The metadata names the architecture, the step and the run, so a file says what it is.
    """
    from safetensors.torch import save_file

    model = trainer.network.backbone
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = {
        "format": "pathsynth-pretrain",
        "backbone": trainer.config.model.backbone,
        "step": str(trainer.step),
        "run_id": run_id,
        "method": "simclr",
    }
    with atomic_path(path, durable=True) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def train_pretrain_run(
    config: PretrainConfig,
    pool: torch.Tensor,
    runs: Path,
    name: str,
    source: str,
    resume_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    on_open: Callable[[Path], None] | None = None,
    data: Mapping[str, str] | None = None,
) -> PretrainOutcome | None:
    """Pretrain one backbone, as a single process or as one rank of torchrun (DDP).

    Args:
        config: the resolved config.
        pool: ``uint8`` (N, 3, S, S) inputs, S = ``config.data.preprocess.size``.
        runs: folder of the numbered run folders.
        name: the new folder's name after its number.
        source: where the images came from, for people (``run.json``).
        resume_dir: continue this run folder from its last checkpoint.
        log: progress lines (rank 0).
        on_open: called with the run folder once it exists (rank 0).
        data: where the images came from, so ``--resume`` can load them again.

    Returns:
        How the run ended and the backbone file (``None`` when interrupted), on rank 0;
        ``None`` on the other ranks.

    Raises:
        DataError, ConfigError, CheckpointError: what :class:`SimclrTrainer` refuses.
    """

    def make(run_dir: Path, context: DistContext, resume: dict[str, Any] | None) -> SimclrTrainer:
        return SimclrTrainer(
            config, pool, run_dir, context, resume, log if context.is_main else None
        )

    done = run_training(
        config,
        config.run.device,
        make,
        runs,
        name,
        source,
        resume_dir=resume_dir,
        on_open=on_open,
        data=data,
        kind=KIND,
        reopen=_reopen,
    )
    if done is None:  # not rank 0
        return None
    trainer, result, run_dir = done
    backbone_file = None
    if result.status == "finished":
        identity = json.loads((run_dir / IDENTITY_NAME).read_text(encoding="utf-8"))
        backbone_file = export_backbone(trainer, run_dir / BACKBONE_NAME, identity["run_id"])
    return PretrainOutcome(result, backbone_file)


def _reopen(run_dir: Path, is_main: bool) -> dict[str, Any] | None:
    """The last checkpoint's state of a pretraining run to continue (``None``: step 0); rank 0
    drops the statistics lines after it and a backbone file (made again when the run ends)."""
    resume = None
    if list_checkpoints(run_dir, "last"):
        resume = load_pretrain_checkpoint(find_checkpoint(run_dir, "last"))
    if is_main:
        trim_stats(run_dir, int(resume["step"]) if resume else 0)
        (run_dir / BACKBONE_NAME).unlink(missing_ok=True)
    return resume
