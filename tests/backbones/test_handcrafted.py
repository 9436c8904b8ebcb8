"""The handcrafted backbone: stain, texture and nuclei features that mean what they say, used by the
frozen-feature classifiers like any network, and refused where they cannot serve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathsynth.backbones import embed_inputs, load_backbone
from pathsynth.backbones.handcrafted import (
    DIM,
    LBP_SCALES,
    HandcraftedFeatures,
    _nuclei,
    square_features,
)
from pathsynth.classify.bundle import Provenance, load_bundle, save_bundle
from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.finetune import BackboneClassifier
from pathsynth.classify.probe import FrozenFeatureClassifier
from pathsynth.errors import ConfigError
from pathsynth.imaging.patches import PreprocessConfig

PINK = (0.93, 0.70, 0.82)  # eosin-stained stroma
PURPLE = (0.30, 0.18, 0.50)  # haematoxylin-stained nucleus


def _field(nuclei: int, radius: int, side: int = 96, seed: int = 0) -> np.ndarray:
    """A pink square with ``nuclei`` purple discs of ``radius`` pixels that do not touch."""
    rng = np.random.default_rng(seed)
    image = np.empty((side, side, 3))
    image[:] = PINK
    image += rng.normal(0.0, 0.01, image.shape)
    rows, cols = np.indices((side, side))
    placed: list[tuple[int, int]] = []
    while len(placed) < nuclei:
        r, c = rng.integers(radius + 1, side - radius - 1, 2)
        if all((r - r0) ** 2 + (c - c0) ** 2 > (2 * radius + 3) ** 2 for r0, c0 in placed):
            placed.append((int(r), int(c)))
            image[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = PURPLE
    return image.clip(0.0, 1.0)


def _nuclei_of(image: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2hed

    return _nuclei(rgb2hed(image)[..., 0])


def test_nuclei_are_counted_and_measured_as_drawn():
    few, many = _nuclei_of(_field(4, 5)), _nuclei_of(_field(12, 5))
    side = 96 * 96
    assert few[1] == pytest.approx(4 / side * 1e4) and many[1] == pytest.approx(12 / side * 1e4)
    disc = float(np.sum(np.add.outer(np.arange(-5, 6) ** 2, np.arange(-5, 6) ** 2) <= 25))
    assert few[2] == pytest.approx(disc) and few[4] == pytest.approx(0.0)  # equal discs
    assert many[0] == pytest.approx(12 * disc / side)
    assert few[5] < 0.2  # round
    assert _nuclei_of(_field(6, 3))[2] < few[2]  # smaller nuclei, smaller median area


def test_eccentricity_is_skimages_on_elongated_objects():
    from skimage.measure import label, regionprops

    h = np.zeros((64, 64))
    h[5:9, 5:40] = 1.0  # a rod
    h[30:45, 30:36] = 1.0  # a fat bar
    h[50:53, 50:53] = 1.0  # 9 pixels: kept
    h[60, 60] = 1.0  # 1 pixel: too small to be a nucleus
    expected = [p for p in regionprops(label(h > 0.5, connectivity=1)) if p.area >= 8]
    found = _nuclei(h)
    assert found[1] == pytest.approx(3 / h.size * 1e4)
    assert found[5] == pytest.approx(np.mean([p.eccentricity for p in expected]))


def test_a_flat_square_has_no_nuclei_and_well_formed_histograms():
    flat = np.full((64, 64, 3), 0.8)
    features = square_features(flat)
    assert features.shape == (DIM,) and np.isfinite(features).all()
    assert (features[-6:] == 0).all()
    start = 18
    for points, _ in LBP_SCALES:
        assert features[start : start + points + 2].sum() == pytest.approx(1.0)
        start += points + 2


def test_the_stain_features_see_haematoxylin():
    pink, crowded = square_features(_field(0, 5)), square_features(_field(14, 6))
    assert crowded[4] > pink[4]  # the 95th percentile of haematoxylin density
    assert crowded[5] > pink[5]  # and its spread


def test_the_backbone_takes_inputs_as_they_come_and_averages_an_images_inputs():
    backbone = load_backbone("handcrafted")
    assert backbone.dim == DIM and backbone.spec.size == 0
    assert backbone.weights_sha256 == load_backbone("handcrafted").weights_sha256
    squares = [_field(3, 4, 64, seed=s) for s in range(3)]
    inputs = torch.from_numpy((np.stack(squares) * 255).round().astype(np.uint8)).permute(
        0, 3, 1, 2
    )
    vectors = embed_inputs(backbone, inputs, torch.tensor([0, 0, 1]))
    one = [square_features(inputs[k].permute(1, 2, 0).numpy() / 255.0) for k in range(3)]
    assert torch.allclose(vectors[0], torch.tensor((one[0] + one[1]) / 2, dtype=torch.float32))
    assert torch.allclose(vectors[1], torch.tensor(one[2], dtype=torch.float32))
    # a size asked for is honoured: 64 px inputs seen at 32 px give other texture numbers
    small = embed_inputs(load_backbone("handcrafted", input_size=32), inputs[:1])
    assert not torch.allclose(small[0], torch.tensor(one[0], dtype=torch.float32))


def test_weights_and_fine_tuning_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="has no weights"):
        load_backbone("handcrafted", weights="lab.safetensors")
    with pytest.raises(ConfigError, match=r"nothing to fine-tune.*logistic"):
        BackboneClassifier(load_backbone("handcrafted"), 2)


def test_a_logistic_bundle_on_handcrafted_features_predicts_as_trained(tmp_path):
    config = CLASSIFIER.resolve("quick", {"kind": "logistic", "backbone": "handcrafted"})
    model = FrozenFeatureClassifier(load_backbone("handcrafted"), 2).eval()
    with torch.no_grad():
        model.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    path = tmp_path / "handcrafted.bundle"
    save_bundle(path, model, config, PreprocessConfig(size=48), ["a", "b"],
                Provenance(experiment=None, protocol="honest", condition="original", seed=0,
                           training_images=4, modality="histology", source="x"), {})  # fmt: skip
    images = torch.from_numpy(np.stack([_field(2, 4, 48), _field(6, 3, 48)])).permute(0, 3, 1, 2)
    images = images.float() * 2 - 1
    loaded = load_bundle(path)
    assert isinstance(loaded.model.backbone, HandcraftedFeatures)
    with torch.no_grad():
        assert torch.allclose(loaded.model(images), model(images), atol=1e-5)
