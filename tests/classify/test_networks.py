"""The classifier networks: shapes, and local weights loaded or refused (never downloaded)."""

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18 as torchvision_resnet18

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.networks import SmallCNN, build_classifier, resnet18
from pathsynth.errors import CheckpointError, ConfigError


@pytest.mark.parametrize("size", [32, 128])
def test_small_cnn_gives_one_logit_per_class_at_any_input_size(size: int) -> None:
    model = SmallCNN(num_classes=5, width=8, blocks=4).eval()

    logits = model(torch.zeros(2, 3, size, size))

    assert logits.shape == (2, 5)


def test_resnet18_has_the_requested_number_of_classes() -> None:
    model = resnet18(num_classes=4).eval()

    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


@pytest.fixture(scope="module")
def imagenet_shaped_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1000-class ResNet-18 state dict saved by the test, standing in for ImageNet weights."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision_resnet18(weights=None).state_dict(), path)
    return path


def test_local_weights_load_into_the_body_and_the_head_is_adapted(
    imagenet_shaped_weights: Path,
) -> None:
    saved = torch.load(imagenet_shaped_weights, weights_only=True)

    model = resnet18(num_classes=3, weights_path=imagenet_shaped_weights)

    torch.testing.assert_close(model.conv1.weight, saved["conv1.weight"])
    torch.testing.assert_close(model.layer4[1].bn2.running_var, saved["layer4.1.bn2.running_var"])
    assert model.fc.weight.shape == (3, 512)


def test_weights_with_the_same_class_count_load_the_head_too(tmp_path: Path) -> None:
    source = torchvision_resnet18(weights=None, num_classes=3)
    path = tmp_path / "three.pt"
    torch.save({"state_dict": source.state_dict()}, path)

    model = resnet18(num_classes=3, weights_path=path)

    torch.testing.assert_close(model.fc.weight, source.fc.weight)


def test_bad_weights_files_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    other_network = tmp_path / "small_cnn.pt"
    torch.save(SmallCNN(num_classes=3).state_dict(), other_network)

    with pytest.raises(CheckpointError, match="does not exist"):
        resnet18(3, tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        resnet18(3, corrupt)
    with pytest.raises(CheckpointError, match="does not match ResNet-18"):
        resnet18(3, other_network)


def test_weights_path_with_the_small_cnn_is_a_config_error(tmp_path: Path) -> None:
    config = CLASSIFIER.resolve("smoke", {"weights_path": str(tmp_path / "w.pt")})

    with pytest.raises(ConfigError, match="only used with network='resnet18'"):
        build_classifier(config, num_classes=3)
