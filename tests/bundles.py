"""A small trained-looking classifier bundle and image files for the bundle and predict tests."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import write_image

from pathsynth.classify.bundle import Provenance, save_bundle
from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.networks import build_classifier
from pathsynth.imaging.patches import PreprocessConfig

CLASS_NAMES = ["benign", "insitu", "invasive"]
CONFIG = ClassifierConfig(width=4, blocks=2, epochs=1, patience=1, seed=3)
# 40x32 images cut into a 2x2 grid of 16 px tiles: four patches averaged per image
PREPROCESS = PreprocessConfig(mode="patches-grid", size=16, scale=1.0)
PROVENANCE = Provenance(
    experiment="bach-smoke",
    protocol="honest",
    condition="affine",
    seed=3,
    training_images=120,
    modality="histology",
    source="/data/bach",
    source_sha256=["ab" * 32],
)
METRICS = {"accuracy": 0.75, "balanced_accuracy": 0.7, "macro_f1": 0.68, "macro_auc": None}


def trained_model() -> torch.nn.Module:
    """A small CNN with non-trivial weights and batch-norm statistics (as after training)."""
    torch.manual_seed(5)
    model = build_classifier(CONFIG, len(CLASS_NAMES))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
        model.train()
        model(torch.rand(8, 3, 16, 16) * 2 - 1)  # moves the running statistics off their init
    return model.eval()


def make_bundle(path: Path) -> Path:
    """A bundle of :func:`trained_model` with the constants above."""
    return save_bundle(
        path, trained_model(), CONFIG, PREPROCESS, CLASS_NAMES, PROVENANCE, dict(METRICS)
    )


def image_folder(root: Path, count: int = 5) -> list[Path]:
    """``count`` different 40x32 PNG files in ``root/sub``, sorted."""
    return [write_image(root / "sub" / f"img{i}.png", seed=40 + i) for i in range(count)]
