"""The class-conditional diffusion model as an :class:`~pathsynth.generators.base.ImageGenerator`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pathsynth.config import with_overrides
from pathsynth.devices import resolve_device, use_bf16
from pathsynth.diffusion.config import DiffusionConfig
from pathsynth.errors import ConfigError
from pathsynth.generators.base import GeneratorSummary, Samples, TrainedRun
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.runs import CONFIG_NAME, run_identity


class DiffusionGenerator:
    """Trains and samples the diffusion model of :mod:`pathsynth.diffusion`.

    Args:
        config: the resolved diffusion config (``None`` when only sampling existing runs).
        sampling: settings of the run's ``sampling`` group to change for :meth:`sample`
            (``sampler``, ``steps``, ``guidance``); the run's own by default.
    """

    kind = "diffusion"

    def __init__(
        self, config: DiffusionConfig | None = None, sampling: Mapping[str, Any] | None = None
    ) -> None:
        self.config = config
        self.sampling = dict(sampling or {})

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
        """Train (or continue) one diffusion run; see :func:`pathsynth.diffusion.run.train_run`.

        Raises:
            ConfigError: no config was given; what the run refuses.
        """
        from pathsynth.diffusion.run import train_run

        if self.config is None:
            raise ConfigError("a diffusion model is trained from a resolved config; none was given")
        result = train_run(self.config, images, runs, name, source, resume_dir, log, on_open)
        assert result is not None  # a single process is rank 0
        last = str(result.last_checkpoint) if result.last_checkpoint else None
        return TrainedRun(result.run_dir, result.status, result.step, {"last_checkpoint": last})

    def sample(
        self,
        run_dir: Path,
        per_class: int,
        seed: int,
        checkpoint: str = "best",
        device: str = "auto",
        batch_size: int = 64,
    ) -> Samples:
        """Images of the run's EMA UNet under classifier-free guidance; the sampler, step count
        and guidance scale go into every image's provenance. ``best`` means the last checkpoint
        (diffusion runs keep no other).

        Raises:
            CheckpointError: no such run or checkpoint, or not a diffusion run.
            ConfigError: a sampling setting the config refuses.
        """
        from pathsynth.diffusion.sampling import GuidedSampler, load_diffusion
        from pathsynth.generators.sampling import generate_images

        target = resolve_device(device)
        loaded = load_diffusion(run_dir, "last" if checkpoint == "best" else checkpoint, target)
        sampling = with_overrides(loaded.config.sampling, self.sampling, "sampling")
        sampler = GuidedSampler(
            loaded.unet,
            loaded.config,
            len(loaded.class_names),
            sampling,
            bf16=use_bf16(loaded.config.run.amp, target),
        )
        settings = sampler.provenance()
        identity = run_identity(run_dir)
        images = generate_images(
            sampler,
            loaded.class_names,
            per_class,
            seed,
            loaded.step,
            batch_size=batch_size,
            sampling=settings,
        )
        provenance = {
            "kind": self.kind,
            "run_id": identity.run_id,
            "run_name": identity.name,
            "run_dir": str(run_dir.resolve()),
            "checkpoint_step": loaded.step,
            "config": loaded.config.to_dict(),
            "sampling": settings,
        }
        return Samples(images, list(loaded.class_names), loaded.step, loaded.checkpoint, provenance)

    def describe(self, run_dir: Path) -> GeneratorSummary:
        """The run's identity, statistics file and config."""
        identity = run_identity(run_dir)
        config = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        return GeneratorSummary(
            self.kind, identity.run_id, str(run_dir), str(run_dir / "stats.jsonl"), config
        )
