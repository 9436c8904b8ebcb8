"""The sets whose synthesis-quality ranking issue 9 asks for, made from real Herlev cells: shared by
``tests/metrics/test_domain_quality.py`` (a test-sized budget) and ``bench/ranking.py`` (larger).

Herlev's cells are dealt by slide group into three disjoint parts (:func:`slide_group_parts`):
the reference part (the "training fold": SimCLR and the GAN learn from it, and every set is
compared with it), the held-out real part, and the source of the degraded set. Every image is the
cell resized whole to one side (aspect not kept), as ``PreprocessConfig(mode="resize")`` makes it.
Pretraining, GAN training and sampling go through the product's own entry points
(:func:`~pathsynth.pretrain.run.train_pretrain_run`, which ``pathsynth pretrain`` calls;
:class:`~pathsynth.generators.gan.GanGenerator`, which ``reproduce`` and ``generate`` use), and
the backbone is read back from its exported file by
:func:`~pathsynth.backbones.load_backbone`, as ``--backbone-weights`` reads it.

Nothing made here may be committed: it derives from licensed data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from pathsynth.gan.presets import GAN
from pathsynth.generators.gan import GanGenerator
from pathsynth.imaging.folders import load_image_set
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.features import FeatureExtractor
from pathsynth.metrics.registry import synthesis_quality
from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.run import train_pretrain_run

DROPPED = "severe_dysplastic"  # the class (mode) the degraded set lacks
BLUR_SIGMA = 2.5 / 64  # Gaussian blur sigma as a share of the side (2.5 px at 64 px)
CAST = 0.25  # colour cast: red gain 1 + CAST plus 40 * CAST, blue gain 1 - CAST
GAN_PRESET = "fastgan-64"  # FastGAN at the CPU widths (batch 32); trained at the sets' side
SSL_PRESET = "quick"  # pathsynth pretrain's CPU preset, views at the sets' side
SETS = ("held-out real", "GAN", "degraded")  # best to worst, as the metrics should rank them


def slide_group_parts(herlev: Path, parts: int = 3) -> list[list[tuple[Path, str]]]:
    """``(path, label)`` of Herlev's cells dealt into ``parts`` parts by slide group (groups
    sorted, dealt round-robin), so no slide has cells in two parts."""
    with (herlev / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    groups = sorted({row["slide_group"] for row in rows})
    dealt: list[list[tuple[Path, str]]] = [[] for _ in range(parts)]
    for k, group in enumerate(groups):
        dealt[k % parts].extend(
            (herlev / row["path"], row["label"]) for row in rows if row["slide_group"] == group
        )
    return dealt


def load_parts(herlev: Path, side: int) -> list[TensorImageSet]:
    """The reference, held-out and degraded-source parts as ``side`` px uint8 image sets."""
    preprocess = PreprocessConfig(mode="resize", size=side)
    return [
        load_image_set(files, preprocess, f"herlev part {k}")
        for k, files in enumerate(slide_group_parts(herlev))
    ]


def pick(images: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` of ``images`` drawn without replacement (seeded).

    Raises:
        ValueError: fewer than ``count`` images.
    """
    if len(images) < count:
        raise ValueError(f"only {len(images)} images to pick {count} from")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:count]]


def blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """uint8 NCHW ``images`` under a Gaussian blur of ``sigma`` x their side."""
    pixels = sigma * images.shape[-1]
    kernel = 2 * int(3 * pixels) + 1
    blurred = TF.gaussian_blur(images.float(), [kernel, kernel], [pixels, pixels])
    return blurred.round().clamp(0, 255).to(torch.uint8)


def colour_cast(images: torch.Tensor, strength: float = CAST) -> torch.Tensor:
    """uint8 NCHW ``images`` with red raised and blue lowered by ``strength``."""
    gain = torch.tensor([1.0 + strength, 1.0, 1.0 - strength]).view(1, 3, 1, 1)
    offset = torch.tensor([40.0 * strength, 0.0, 0.0]).view(1, 3, 1, 1)
    return (images.float() * gain + offset).round().clamp(0, 255).to(torch.uint8)


def without_class(data: TensorImageSet, dropped: str = DROPPED) -> torch.Tensor:
    """The images of ``data`` not labelled ``dropped``.

    Raises:
        ValueError: ``data`` has no class ``dropped`` (nothing would be dropped).
    """
    if dropped not in data.class_names:
        raise ValueError(f"no class {dropped!r} to drop in {data.class_names}")
    return data.images[data.labels != data.class_names.index(dropped)]


def class_quota(counts: Mapping[str, int], total: int) -> dict[str, int]:
    """``total`` split over classes in proportion to ``counts`` (largest remainders)."""
    whole = sum(counts.values())
    exact = {name: total * n / whole for name, n in counts.items()}
    quota = {name: int(share) for name, share in exact.items()}
    by_remainder = sorted(exact, key=lambda name: quota[name] - exact[name])
    for name in by_remainder[: total - sum(quota.values())]:
        quota[name] += 1
    return quota


def pretrain_backbone(
    reference: TensorImageSet, runs: Path, steps: int, seed: int = 0, batch_size: int = 64
) -> Path:
    """SimCLR (``pathsynth pretrain``'s run, :data:`SSL_PRESET` with views at the images' side)
    on ``reference``; returns the exported ``backbone.safetensors``."""
    side = reference.resolution
    config = PRETRAIN.resolve(
        SSL_PRESET,
        {
            "data.preprocess": PreprocessConfig(mode="resize", size=side),
            "data.view_size": side,
            "optim.steps": steps,
            "optim.batch_size": batch_size,
            "optim.warmup_steps": max(1, steps // 10),
            "run.checkpoint_every": 0,
            "run.log_every": max(1, steps // 4),
            "run.device": "cpu",
            "run.seed": seed,
        },
    )
    outcome = train_pretrain_run(config, reference.images, runs, "ranking", "herlev reference part")
    assert outcome is not None and outcome.backbone_file is not None  # one finished process
    return outcome.backbone_file


def train_gan(
    reference: TensorImageSet,
    runs: Path,
    steps: int,
    seed: int = 0,
    preset: str = GAN_PRESET,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """The GAN ``preset`` trained ``steps`` steps on ``reference`` at its side; returns the run
    folder."""
    config = GAN.resolve(
        preset,
        {
            "data.preprocess": PreprocessConfig(mode="resize", size=reference.resolution),
            "optim.steps": steps,
            "run.device": "cpu",
            "run.seed": seed,
            "run.sample_every": 0,
            "run.checkpoint_every": 0,
            "run.quality_every": 0,
            "run.log_every": max(1, steps // 4),
            **(overrides or {}),
        },
    )
    return GanGenerator(config).train(reference, runs, "ranking", "herlev reference part").run_dir


def gan_images(run_dir: Path, counts: Mapping[str, int], seed: int = 0) -> torch.Tensor:
    """uint8 NCHW images of the run's EMA generator (last checkpoint), ``counts[c]`` of class
    ``c``: sampled and PNG-encoded as ``pathsynth generate`` makes them, then decoded."""
    samples = GanGenerator().sample(run_dir, max(counts.values()), seed, "last", "cpu")
    taken = dict.fromkeys(counts, 0)
    images = []
    for image in samples.images:
        if taken[image.class_name] < counts[image.class_name]:
            taken[image.class_name] += 1
            with Image.open(io.BytesIO(image.png)) as decoded:
                images.append(np.asarray(decoded.convert("RGB")))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def compared_sets(
    parts: list[TensorImageSet], per_set: int, gan: Callable[[TensorImageSet], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The three compared sets of ``per_set`` images each (:data:`SETS`), from the parts of
    :func:`load_parts`; ``gan`` makes the GAN's set from the reference part."""
    reference, held, degraded_source = parts
    kept = without_class(degraded_source)
    return {
        "held-out real": pick(held.images, per_set, 1),
        "GAN": gan(reference),
        "degraded": colour_cast(blur(pick(kept, per_set, 2))),
    }


def scores(
    features: FeatureExtractor, reference: torch.Tensor, sets: Mapping[str, torch.Tensor]
) -> dict[str, dict[str, float]]:
    """Each set's synthesis-quality metrics against ``reference`` on ``features`` (KID subsets
    seeded the same for every set)."""
    real = features(reference)
    return {
        name: synthesis_quality(real, features(images), generator=torch.Generator().manual_seed(0))
        for name, images in sets.items()
    }
