"""Training learns a learnable set, stops early on a hopeless one and keeps its best weights."""

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.trainer import train_classifier, validation_split
from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.tensorset import TensorImageSet

from .shapes import draw_shapes

QUICK_TEST = {"width": 8, "blocks": 3, "batch_size": 16, "epochs": 12, "patience": 12}


def test_classifier_learns_squares_from_circles_on_held_out_images() -> None:
    config = CLASSIFIER.resolve("smoke", QUICK_TEST)

    result = train_classifier(draw_shapes(60, seed=1), config)
    predictions = evaluate_images(result.model, draw_shapes(30, seed=3))

    accuracy = float((predictions.probabilities.argmax(dim=1) == predictions.labels).float().mean())
    assert accuracy >= 0.85  # chance is 0.5
    assert len(result.history) == 12 and 1 <= result.best_epoch <= 12
    assert result.train_size + result.validation_size == 120
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_best_epoch_weights_are_restored() -> None:
    config = CLASSIFIER.resolve("smoke", {**QUICK_TEST, "epochs": 6})
    validation = draw_shapes(10, seed=2)

    result = train_classifier(draw_shapes(30, seed=1), config, validation_set=validation)

    predictions = evaluate_images(result.model, validation)
    balanced = balanced_accuracy_score(predictions.labels, predictions.probabilities.argmax(dim=1))
    best = result.history[result.best_epoch - 1]
    assert balanced == pytest.approx(best.validation_balanced_accuracy)
    assert best.validation_balanced_accuracy == max(
        record.validation_balanced_accuracy for record in result.history
    )


def test_training_stops_after_patience_epochs_without_improvement() -> None:
    shapes = draw_shapes(20, seed=4)
    shuffled = torch.randperm(len(shapes), generator=torch.Generator().manual_seed(0))
    hopeless = TensorImageSet(shapes.images, shapes.labels[shuffled], shapes.class_names)
    config = CLASSIFIER.resolve(
        "smoke", {**{**QUICK_TEST, "epochs": 40, "patience": 2}, "monitor": "loss"}
    )

    result = train_classifier(hopeless, config, validation_set=draw_shapes(5, seed=5))

    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2 < 40


def test_early_stopping_waits_for_min_epochs() -> None:
    shapes = draw_shapes(20, seed=4)
    shuffled = torch.randperm(len(shapes), generator=torch.Generator().manual_seed(0))
    hopeless = TensorImageSet(shapes.images, shapes.labels[shuffled], shapes.class_names)
    config = CLASSIFIER.resolve(
        "smoke", {**{**QUICK_TEST, "epochs": 40, "patience": 2, "min_epochs": 7}, "monitor": "loss"}
    )

    result = train_classifier(hopeless, config, validation_set=draw_shapes(5, seed=5))

    assert result.stopped_early
    assert 7 <= len(result.history) < 40


def test_same_seed_trains_the_same_network() -> None:
    config = CLASSIFIER.resolve("smoke", {**QUICK_TEST, "epochs": 2})
    shapes = draw_shapes(12, seed=6)

    first = train_classifier(shapes, config)
    second = train_classifier(shapes, config)

    assert first.curves()["train_loss"] == second.curves()["train_loss"]


def test_validation_split_keeps_groups_together_and_holds_out_every_class() -> None:
    labels = torch.tensor([0] * 12 + [1] * 8)
    groups = torch.arange(20) // 2  # two patches per image

    train_index, validation_index = validation_split(
        labels, 0.25, torch.Generator().manual_seed(0), groups
    )

    assert sorted(torch.cat([train_index, validation_index]).tolist()) == list(range(20))
    assert not set(groups[train_index].tolist()) & set(groups[validation_index].tolist())
    assert set(labels[validation_index].tolist()) == {0, 1}
    # round(0.25 * 6) = 2 images of class 0, round(0.25 * 4) = 1 image of class 1, 2 patches each.
    assert len(validation_index) == 6


def test_a_class_without_training_images_is_refused() -> None:
    shapes = draw_shapes(6, seed=7)
    only_squares = shapes.subset(shapes.labels == 0)
    config = CLASSIFIER.resolve("smoke")

    with pytest.raises(DataError, match="no training image of class"):
        train_classifier(only_squares, config, validation_set=shapes)


def test_resnet18_trains_through_the_same_path() -> None:
    config = CLASSIFIER.resolve("smoke", {"network": "resnet18", "epochs": 1, "batch_size": 8})

    result = train_classifier(draw_shapes(8, seed=8), config)

    assert len(result.history) == 1 and result.best_epoch == 1
    assert result.model.fc.out_features == 2  # type: ignore[union-attr]


def test_with_a_crop_size_training_sees_random_crops_and_validation_a_grid() -> None:
    config = CLASSIFIER.resolve(
        "smoke",
        {**{**QUICK_TEST, "epochs": 2, "patience": 2}, "crop_size": 24, "crops_per_image": 3},
    )
    seen: list[tuple[bool, tuple[int, ...]]] = []
    model = build_classifier(config, 2)
    model.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, args[0].shape))
    )
    train, validation = draw_shapes(20, seed=1), draw_shapes(5, seed=2)

    result = train_classifier(train, config, validation_set=validation, model=model)

    training = [shape for is_training, shape in seen if is_training]
    evaluating = [shape for is_training, shape in seen if not is_training]
    assert {shape[-2:] for shape in training} == {(24, 24)}
    # 40 inputs x 3 draws per epoch in batches of 16 (short batch dropped): 7 steps an epoch
    assert len(training) == 2 * (40 * 3 // 16)
    # validation: 10 inputs x a 2x2 grid of 24 px crops 12 px apart (the second row flush at 8)
    assert sum(shape[0] for shape in evaluating) == 2 * 10 * 4
    assert result.history[-1].validation_loss > 0


def test_a_crop_larger_than_the_inputs_is_refused_with_the_key() -> None:
    config = CLASSIFIER.resolve("smoke", {**QUICK_TEST, "crop_size": 48})
    with pytest.raises(ConfigError, match="crop_size 48 is larger than the 32x32 inputs"):
        train_classifier(draw_shapes(10, seed=1), config)
