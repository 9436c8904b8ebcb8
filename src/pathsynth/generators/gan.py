"""The class-conditional GAN as an :class:`~pathsynth.generators.base.ImageGenerator`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pathsynth.devices import resolve_device, use_bf16
from pathsynth.errors import ConfigError
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.run import train_run
from pathsynth.gan.sampling import load_generator
from pathsynth.generators.base import GeneratorSummary, Samples, TrainedRun
from pathsynth.generators.sampling import generate_images
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.runs import CONFIG_NAME, run_identity


class GanGenerator:
    """Trains and samples the class-conditional GAN of :mod:`pathsynth.gan`.

    Args:
        config: the resolved GAN config (``None`` when only sampling existing runs).
        sampling: must be empty: a GAN samples in one pass and has no sampling settings.

    Raises:
        ConfigError: sampling settings were given.
    """

    kind = "gan"

    def __init__(
        self, config: TrainConfig | None = None, sampling: Mapping[str, Any] | None = None
    ) -> None:
        if sampling:
            raise ConfigError(
                f"sampling settings ({', '.join(sampling)}) are for diffusion runs; this is a "
                f"{self.kind} run, which has none"
            )
        self.config = config

    def train(
        self,
        images: TensorImageSet,
        runs: Path,
        name: str,
        source: str,
        resume_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
        on_open: Callable[[Path], None] | None = None,
    ) -> TrainedRun:
        """Train (or continue) one GAN run; see :func:`pathsynth.gan.run.train_run`.

        Raises:
            ConfigError: no config was given; what the run refuses.
        """
        if self.config is None:
            raise ConfigError("a GAN is trained from a resolved config; none was given")
        result = train_run(self.config, images, runs, name, source, resume_dir, log, on_open)
        assert result is not None  # a single process is rank 0
        return TrainedRun(
            result.run_dir,
            result.status,
            result.step,
            {
                "best_score": result.best_score,
                "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
            },
        )

    def sample(
        self,
        run_dir: Path,
        per_class: int,
        seed: int,
        checkpoint: str = "best",
        device: str = "auto",
        batch_size: int = 64,
    ) -> Samples:
        """Images of the run's EMA generator; see :func:`pathsynth.generators.sampling.generate_images`.

        Raises:
            CheckpointError: no such run or checkpoint.
        """
        target = resolve_device(device)
        loaded = load_generator(run_dir, checkpoint, target)
        identity = run_identity(run_dir)
        images = generate_images(
            loaded.network,
            loaded.class_names,
            per_class,
            seed,
            loaded.step,
            batch_size=batch_size,
            amp=use_bf16(loaded.config.run.amp, target),
        )
        provenance = {
            "kind": self.kind,
            "run_id": identity.run_id,
            "run_name": identity.name,
            "run_dir": str(run_dir.resolve()),
            "checkpoint_step": loaded.step,
            "config": loaded.config.to_dict(),
        }
        return Samples(images, list(loaded.class_names), loaded.step, loaded.checkpoint, provenance)

    def describe(self, run_dir: Path) -> GeneratorSummary:
        """The run's identity, statistics file and config."""
        identity = run_identity(run_dir)
        config = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        return GeneratorSummary(
            self.kind, identity.run_id, str(run_dir), str(run_dir / "stats.jsonl"), config
        )
