"""Feature extractors: a classifier's hooked layer, and Inception only from a local weights file."""

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import inception_v3

from pathsynth.errors import CheckpointError, ConfigError, DataError
from pathsynth.imaging.tensorset import to_signed_float
from pathsynth.metrics.features import ClassifierFeatures, InceptionFeatures, load_inception


def _tiny_classifier() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def _images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


def test_default_hook_takes_the_input_of_the_last_linear_layer() -> None:
    model = _tiny_classifier()
    images = _images(5)

    features = ClassifierFeatures(model, batch_size=2)(images)

    with torch.no_grad():
        expected = model[:6](to_signed_float(images))
    assert features.shape == (5, 16)
    torch.testing.assert_close(features, expected)


def test_named_convolution_layer_is_averaged_over_space() -> None:
    model = _tiny_classifier()
    images = _images(3)

    features = ClassifierFeatures(model, layer="1")(images)

    with torch.no_grad():
        expected = model[:2](to_signed_float(images)).mean(dim=(2, 3))
    torch.testing.assert_close(features, expected)


def test_extraction_leaves_the_model_in_its_training_mode() -> None:
    model = _tiny_classifier().train()

    ClassifierFeatures(model)(_images(2))

    assert model.training


def test_unknown_layer_and_float_images_are_refused() -> None:
    model = _tiny_classifier()

    with pytest.raises(ConfigError, match="no layer named 'head'"):
        ClassifierFeatures(model, layer="head")
    with pytest.raises(DataError, match="uint8"):
        ClassifierFeatures(model)(_images(2).float())


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict of a randomly initialised Inception-v3, saved by the test (no download)."""
    torch.manual_seed(0)
    # With the auxiliary head, as torchvision's ImageNet weights have it; 10 classes to show the
    # head size is read from the file.
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, num_classes=10)
    path = tmp_path_factory.mktemp("weights") / "inception.pt"
    torch.save(model.state_dict(), path)
    return path


def test_inception_features_from_a_local_weights_file(inception_weights: Path) -> None:
    extractor = InceptionFeatures(inception_weights, batch_size=2)

    features = extractor(_images(3, size=48))

    assert features.shape == (3, 2048)
    assert torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])


def test_missing_weights_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_inception(tmp_path / "absent.pt")


def test_corrupt_weights_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint")

    with pytest.raises(CheckpointError, match="cannot be read"):
        load_inception(path)


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    torch.save(_tiny_classifier().state_dict(), path)

    with pytest.raises(CheckpointError, match="not an Inception-v3"):
        load_inception(path)


def test_mis_shaped_inception_weights_are_refused(inception_weights: Path, tmp_path: Path) -> None:
    state = torch.load(inception_weights, weights_only=True)
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(4, 3, 3, 3)
    path = tmp_path / "mismatched.pt"
    torch.save(state, path)

    with pytest.raises(CheckpointError, match="does not match Inception-v3"):
        load_inception(path)
