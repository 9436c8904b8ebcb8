"""Loading a GAN run's EMA generator for sampling (:mod:`pathsynth.generators.sampling` writes
the images) and the provenance the catalog stores with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pathsynth.errors import CheckpointError
from pathsynth.gan.architectures import build_generator
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.networks import ConditionalGenerator
from pathsynth.gan.presets import GAN
from pathsynth.training.checkpoint import load_run_checkpoint


@dataclass
class LoadedGenerator:
    """An EMA generator ready for sampling, with where it came from.

    Args:
        network: the generator in eval mode on its device.
        class_names: class name per label index.
        step: training step of the checkpoint.
        checkpoint: the checkpoint file.
        config: the run's resolved config.
    """

    network: ConditionalGenerator
    class_names: list[str]
    step: int
    checkpoint: Path
    config: TrainConfig


def load_generator(
    run_dir: Path, which: str = "best", device: torch.device | str = "cpu"
) -> LoadedGenerator:
    """The EMA generator of a run's checkpoint.

    Args:
        run_dir: the run folder.
        which: ``"best"`` (falls back to last when the run kept none), ``"last"`` or a step.
        device: where to put it.

    Raises:
        CheckpointError: no such run or checkpoint, or a corrupt one.
    """
    path, state, config = load_run_checkpoint(run_dir, which, GAN.read)
    class_names = list(state["class_names"])
    network = build_generator(config.model, config.data.resolution, len(class_names))
    try:
        network.load_state_dict(state["generator_ema"])
    except RuntimeError:
        raise CheckpointError(
            f"checkpoint {path} does not match its own config's generator"
        ) from None
    network = network.to(device).eval().requires_grad_(False)
    return LoadedGenerator(network, class_names, int(state["step"]), path, config)


def run_provenance(loaded: LoadedGenerator, run_dir: Path) -> dict[str, Any]:
    """The ``run`` dict the catalog stores with generated images."""
    return {
        "run_dir": str(run_dir.resolve()),
        "run_name": run_dir.name,
        "checkpoint_step": loaded.step,
        "config": loaded.config.to_dict(),
    }
