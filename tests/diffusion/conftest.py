"""Diffusion test fixtures: one thread (shared 2-core machine), tiny class folders, smoke configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gan.conftest import write_class_folders

from pathsynth.diffusion.config import DIFFUSION, DiffusionConfig
from pathsynth.imaging.tensorset import TensorImageSet

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of eight images: enough for batches of eight."""
    return write_class_folders(tmp_path_factory.mktemp("data"), {"alpha": 8, "beta": 8, "gamma": 8})


def smoke_config(**overrides: object) -> DiffusionConfig:
    """The smoke preset on CPU in float32, without sample grids unless a test asks."""
    base: dict[str, object] = {"run.device": "cpu", "run.sample_every": 0, "run.amp": "off"}
    base.update({key.replace("__", "."): value for key, value in overrides.items()})
    return DIFFUSION.resolve("smoke", base)


def tiny_set(count_per_class: int = 8, side: int = 32) -> TensorImageSet:
    """Three classes of flat colour images with noise, uint8, ``side`` px."""
    generator = torch.Generator().manual_seed(0)
    colours = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200]], dtype=torch.float32)
    images = colours.repeat_interleave(count_per_class, 0)[:, :, None, None]
    noise = torch.randn(len(images), 3, side, side, generator=generator) * 20
    pixels = (images + noise).clamp(0, 255).to(torch.uint8)
    labels = torch.arange(3).repeat_interleave(count_per_class)
    return TensorImageSet(pixels, labels, ["alpha", "beta", "gamma"])
