"""Held-out predictions are averaged over the patches of each image."""

import pytest
import torch
from torch import nn

from pathsynth.classify.evaluate import aggregate_patches, evaluate_images, predict_probabilities
from pathsynth.errors import DataError
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.classification import classification_report


def test_patch_probabilities_are_averaged_per_image() -> None:
    probabilities = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])

    images = aggregate_patches(probabilities, labels, ["a", "a", "b", "b", "b"], ["x", "y"])

    assert images.image_ids == ["a", "b"]
    assert images.labels.tolist() == [0, 1]
    assert images.patches_per_image.tolist() == [2, 3]
    torch.testing.assert_close(
        images.probabilities, torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)
    )


def test_patches_of_one_image_with_different_labels_are_refused() -> None:
    with pytest.raises(DataError, match="different labels"):
        aggregate_patches(torch.full((2, 2), 0.5), torch.tensor([0, 1]), [7, 7], ["x", "y"])


class _RedDetector(nn.Module):
    """Predicts class 1 in proportion to how red an image is (a stand-in trained model)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        redness = images[:, 0].mean(dim=(1, 2))
        return torch.stack([-redness, redness], dim=1) * self.scale


def test_evaluation_feeds_per_image_metrics() -> None:
    red = torch.zeros(3, 8, 8, dtype=torch.uint8)
    red[0] = 255
    dark = torch.zeros(3, 8, 8, dtype=torch.uint8)
    dark_red = dark.clone()
    dark_red[0] = 100  # alone it reads "pale" (p(red) < 0.5); averaged with a red patch, "red"
    patches = torch.stack([red, red, dark, dark, red, dark_red])
    test_set = TensorImageSet(patches, torch.tensor([1, 1, 0, 0, 1, 1]), ["pale", "red"])

    images = evaluate_images(_RedDetector(), test_set, image_ids=torch.tensor([0, 0, 1, 1, 2, 2]))
    report = classification_report(
        images.labels.numpy(), images.probabilities.numpy(), images.class_names
    )

    assert images.labels.tolist() == [1, 0, 1]
    assert report.n_images == 3
    assert report.confusion_matrix == [[1, 0], [0, 2]]
    assert (
        predict_probabilities(_RedDetector(), patches)
        .sum(dim=1)
        .allclose(torch.ones(6, dtype=torch.float64))
    )


def test_test_time_augmentation_averages_the_eight_dihedral_views() -> None:
    from pathsynth.imaging.tensorset import to_signed_float

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    plain = predict_probabilities(model, images)
    averaged = predict_probabilities(model, images, batch_size=2, tta=True)
    views = [torch.rot90(images, k, dims=(2, 3)) for k in range(4)]
    views += [view.flip(3) for view in views]
    by_hand = torch.stack(
        [torch.softmax(model(to_signed_float(view)), 1).double() for view in views]
    ).mean(0)
    assert torch.allclose(averaged, by_hand.detach(), atol=1e-12)
    assert not torch.allclose(averaged, plain)  # a linear model sees the orientation
    turned = predict_probabilities(model, torch.rot90(images, 1, dims=(2, 3)), tta=True)
    assert torch.allclose(turned, averaged, atol=1e-9)  # the same for any orientation of the input


def test_a_crop_size_averages_each_image_over_its_grid_of_crops() -> None:
    from pathsynth.imaging.tensorset import to_signed_float

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    images = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8)
    averaged = predict_probabilities(model, images, batch_size=7, crop_size=8, crop_stride=4)
    corners = [(0, 0), (0, 4), (4, 0), (4, 4)]
    by_hand = torch.stack(
        [
            torch.softmax(model(to_signed_float(images[:, :, t : t + 8, c : c + 8])), 1).double()
            for t, c in corners
        ]
    ).mean(0)
    assert averaged.shape == (5, 3)
    assert torch.allclose(averaged, by_hand.detach(), atol=1e-12)
