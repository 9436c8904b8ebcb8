"""One diffusion training run from start to end, in the run folders every trainer shares.

The numbered folder, ``run.json`` (with ``kind: diffusion``, which ``generate`` reads), the saved
``config.json``, resume from the last checkpoint and the torchrun hand-off are
:mod:`pathsynth.training.runs`'s; this module only puts the diffusion trainer in them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pathsynth.diffusion.config import DiffusionConfig
from pathsynth.diffusion.trainer import DiffusionTrainer
from pathsynth.errors import CheckpointError
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.checkpoint import load_checkpoint
from pathsynth.training.distributed import DistContext
from pathsynth.training.loop import TrainResult
from pathsynth.training.runs import check_batch, run_training

KIND = "diffusion"


def train_run(
    config: DiffusionConfig,
    dataset: TensorImageSet,
    runs: Path,
    name: str,
    source: str,
    resume_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    on_open: Callable[[Path], None] | None = None,
    data: Mapping[str, str] | None = None,
) -> TrainResult | None:
    """Train one diffusion run, as a single process or as one rank of torchrun (DDP).

    Args: as :func:`pathsynth.gan.run.train_run`.

    Returns:
        How the run ended, on rank 0; ``None`` on the other ranks.

    Raises:
        DataError: fewer images than one batch.
        ConfigError, CheckpointError: what the run folder and the trainer refuse.
    """
    check_batch(dataset, config.optim.batch_size, source)

    def make(
        run_dir: Path, context: DistContext, resume: dict[str, Any] | None
    ) -> DiffusionTrainer:
        return DiffusionTrainer(
            config,
            dataset,
            run_dir,
            context=context,
            resume=resume,
            log=log if context.is_main else None,
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
    )
    return None if done is None else done[1]


def load_diffusion_checkpoint(path: Path) -> dict[str, Any]:
    """A diffusion run's checkpoint state.

    Raises:
        CheckpointError: what :func:`~pathsynth.training.checkpoint.load_checkpoint` refuses, or
            a GAN run's checkpoint.
    """
    state = load_checkpoint(path)
    if state.get("kind") != KIND:
        raise CheckpointError(
            f"{path} is not a diffusion run's checkpoint (resume it with train-gan)"
        )
    return state
