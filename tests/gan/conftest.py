"""GAN test fixtures: one thread (shared 2-core machine), tiny class folders, smoke configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pathsynth.gan.config import TrainConfig
from pathsynth.gan.presets import GAN

torch.set_num_threads(1)

# Equivalence tests compare float32 runs: no dropout masks (per-rank RNG) and no bf16 rounding.
EXACT = {"model.g_dropout": 0.0, "model.d_dropout": 0.0, "run.amp": "off"}


def write_class_folders(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.png`` small non-square images, each class its own colour."""
    rng = np.random.default_rng(seed)
    for c, (name, count) in enumerate(classes.items()):
        colour = np.array([(80 * c) % 256, 255 - (60 * c) % 256, (40 + 90 * c) % 256])
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            noise = rng.integers(-30, 30, size=(24 + i % 5, 30, 3))
            pixels = np.clip(colour[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of eight images: enough for batches of eight."""
    return write_class_folders(tmp_path_factory.mktemp("data"), {"alpha": 8, "beta": 8, "gamma": 8})


def smoke_config(**overrides: object) -> TrainConfig:
    """The smoke preset on CPU with grids/quality/checkpoints only where a test asks."""
    base: dict[str, object] = {"run.device": "cpu", "run.quality_every": 0, "run.sample_every": 0}
    base.update({key.replace("__", "."): value for key, value in overrides.items()})
    return GAN.resolve("smoke", base)
