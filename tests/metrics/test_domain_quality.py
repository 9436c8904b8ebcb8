"""Synthesis-quality metrics on a backbone's features rank image sets by how far they are from
real ones, on real Herlev cells read in place: the cheap check, on random-init features and real
cells only. Issue 9's target itself (SSL features, a trained GAN's images) is
``test_ssl_gan_ranking.py``.

The backbone is a random-init timm ResNet-18 (:func:`~pathsynth.backbones.load.load_backbone`,
seeded); no network is trained. What this shows: random convolutional features already separate
blur, a colour shift and a dropped class from held-out real images, and the FD, KID and coverage
computed on them order the sets as intended. What it does not show: anything about a trained
backbone or a GAN's samples: the middle set is real held-out cells mildly degraded (JPEG quality
30 and a slight blur), standing in for "generated-like" images. On these random-init features a
short GAN's images are not reliably ranked between real and degraded sets (``bench/ranking.py``
prints both), which is why the GAN test uses an SSL backbone.

Slide groups are split into four disjoint parts: the reference set (the "training fold"), the
held-out real set, and the sources of the middle and the degraded sets, so no cell or slide is in
two sets, and every compared set has the same number of images (FD depends on set size).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from pathsynth.backbones import load_backbone
from pathsynth.metrics.features import BackboneFeatures
from pathsynth.metrics.registry import synthesis_quality

SIDE = 64  # cells resized to 64 x 64 (absolute size does not matter for this comparison)
PER_SET = 120  # images in each compared set
DROPPED = "severe_dysplastic"  # the class (mode) the degraded set lacks


def _rows(herlev: Path) -> list[dict[str, str]]:
    with (herlev / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _parts(rows: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Four parts by slide group (sorted, dealt round-robin), so slides never straddle parts."""
    groups = sorted({row["slide_group"] for row in rows})
    parts: list[list[dict[str, str]]] = [[], [], [], []]
    for k, group in enumerate(groups):
        parts[k % 4].extend(row for row in rows if row["slide_group"] == group)
    return parts


def _pick(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    order = np.random.default_rng(seed).permutation(len(rows))[:n]
    assert len(order) == n, f"only {len(rows)} cells to pick {n} from"
    return [rows[i] for i in order]


def _load(herlev: Path, row: dict[str, str]) -> Image.Image:
    return Image.open(herlev / row["path"]).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)


def _cast(image: Image.Image, blur: float, strength: float) -> Image.Image:
    """Gaussian blur of ``blur`` pixels and a colour cast (red up, blue down) of ``strength``."""
    array = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
    gain = np.array([1.0 + strength, 1.0, 1.0 - strength], dtype=np.float32)
    array = array * gain + np.array([40.0 * strength, 0.0, 0.0], dtype=np.float32)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def _mild(image: Image.Image) -> Image.Image:
    """Generated-like: JPEG artefacts, a slight blur and a faint cast, every class present."""
    buffer = io.BytesIO()
    _cast(image, 1.0, 0.08).save(buffer, format="JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _degraded(image: Image.Image) -> Image.Image:
    """Strong blur and a strong colour cast."""
    return _cast(image, 2.5, 0.25)


def _tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def scores(herlev: Path) -> dict[str, dict[str, float]]:
    rows = _rows(herlev)
    reference, held, middle_source, degraded_source = _parts(rows)
    kept = [row for row in degraded_source if row["label"] != DROPPED]
    sets = {
        "held-out real": [_load(herlev, row) for row in _pick(held, PER_SET, 1)],
        "generated-like": [_mild(_load(herlev, row)) for row in _pick(middle_source, PER_SET, 2)],
        "degraded": [_degraded(_load(herlev, row)) for row in _pick(kept, PER_SET, 3)],
    }
    torch.manual_seed(0)
    features = BackboneFeatures(load_backbone("resnet18", seed=0, input_size=SIDE))
    real = features(_tensor([_load(herlev, row) for row in _pick(reference, PER_SET, 0)]))
    return {
        name: synthesis_quality(
            real, features(_tensor(images)), generator=torch.Generator().manual_seed(0)
        )
        for name, images in sets.items()
    }


def test_frechet_distance_ranks_degraded_above_generated_like_above_real(scores):
    fd = {name: numbers["frechet_distance"] for name, numbers in scores.items()}
    assert fd["held-out real"] < fd["generated-like"] < fd["degraded"], fd
    # not a near tie: each step is a clear fraction of the distance below it
    assert fd["generated-like"] > 1.2 * fd["held-out real"], fd
    assert fd["degraded"] > 1.5 * fd["generated-like"], fd


def test_kid_ranks_the_sets_the_same_way_beyond_its_spread(scores):
    kid = {name: numbers["kid_mean"] for name, numbers in scores.items()}
    spread = {name: numbers["kid_std"] for name, numbers in scores.items()}
    assert kid["held-out real"] < kid["generated-like"] < kid["degraded"], kid
    assert kid["degraded"] - kid["generated-like"] > spread["degraded"], (kid, spread)


def test_coverage_falls_with_degradation_and_a_dropped_class(scores):
    coverage = {name: numbers["coverage"] for name, numbers in scores.items()}
    assert coverage["held-out real"] > coverage["generated-like"] > coverage["degraded"], coverage
