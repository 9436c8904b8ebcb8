"""One GAN training run from start to end: the entry point ``train-gan`` and ``reproduce`` share.

The run folder, its identity, resume and the torchrun hand-off are every trainer's
(:mod:`pathsynth.training.runs`); this module puts :class:`~pathsynth.gan.trainer.GanTrainer` in
them and reads a GAN run's config back for ``--resume``.

Nothing here touches the catalog: the GAN runs on machines without any SQL package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pathsynth.gan.architectures import check_architecture
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.trainer import GanTrainer
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.distributed import DistContext
from pathsynth.training.loop import TrainResult
from pathsynth.training.runs import check_batch, run_training


def train_run(
    config: TrainConfig,
    dataset: TensorImageSet,
    runs: Path,
    name: str,
    source: str,
    resume_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    on_open: Callable[[Path], None] | None = None,
    data: Mapping[str, str] | None = None,
) -> TrainResult | None:
    """Train one GAN run, as a single process or as one rank of torchrun (DDP).

    Args:
        config: the resolved config.
        dataset: the training images, already at ``config.data.resolution``.
        runs: folder of the numbered run folders.
        name: the new folder's name after its number.
        source: where the images came from (recorded in ``run.json``).
        resume_dir: continue this run folder instead of making a new one.
        log: called with progress lines (rank 0 only).
        on_open: called with the run folder once it exists, before training (rank 0 only), so a
            caller can record it and continue it after a kill.
        data: where the images came from, recorded so ``--resume`` can find them again.

    Returns:
        How the run ended (``interrupted`` after SIGINT/SIGTERM, with a checkpoint written), on
        rank 0; ``None`` on the other ranks.

    Raises:
        DataError: fewer images than one batch.
        ConfigError, CheckpointError: what :func:`~pathsynth.training.runs.open_run` and the trainer refuse.
    """
    check_architecture(config)
    check_batch(dataset, config.optim.batch_size, source)

    def make(run_dir: Path, context: DistContext, resume: dict[str, Any] | None) -> GanTrainer:
        return GanTrainer(
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
    )
    return None if done is None else done[1]
