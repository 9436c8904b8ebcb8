"""The small-data recipe: schedule values, EMA arithmetic, mixup/cutmix targets, balanced batches,
label smoothing and class weights as the training loss sees them, and the recipe preset learning."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.recipe import (
    WeightEMA,
    balanced_batches,
    learning_rate_factor,
    mix_batch,
    step_scheduler,
)
from pathsynth.classify.trainer import train_classifier
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float

from .shapes import draw_shapes

RECIPE_OFF = {
    "schedule": "constant",
    "warmup_fraction": 0.0,
    "label_smoothing": 0.0,
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
    "ema_decay": 0.0,
    "sampler": "shuffle",
}


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
def test_existing_presets_keep_every_recipe_option_off(preset: str) -> None:
    config = CLASSIFIER.resolve(preset)

    assert {name: getattr(config, name) for name in RECIPE_OFF} == RECIPE_OFF
    assert config.class_weighted_loss


@pytest.mark.parametrize(
    ("step", "schedule", "final", "factor"),
    [
        (0, "cosine", 0.0, 0.1),  # first warm-up step: 1/10 of the rate, never 0
        (4, "cosine", 0.0, 0.5),
        (9, "cosine", 0.0, 1.0),  # last warm-up step reaches the full rate
        (10, "cosine", 0.0, 1.0),  # the cosine starts at the full rate
        (55, "cosine", 0.0, 0.5),  # halfway through the 90 decay steps
        (55, "cosine", 0.2, 0.6),
        (100, "cosine", 0.2, 0.2),  # the end of the plan, and past it
        (150, "cosine", 0.0, 0.0),
        (4, "constant", 0.0, 0.5),
        (99, "constant", 0.0, 1.0),
    ],
)
def test_schedule_factor_at_known_steps(
    step: int, schedule: str, final: float, factor: float
) -> None:
    assert learning_rate_factor(step, 100, 10, schedule, final) == pytest.approx(factor)


def test_optimiser_rate_follows_the_schedule_step_by_step() -> None:
    config = CLASSIFIER.resolve(
        "smoke", {"learning_rate": 0.01, "schedule": "cosine", "warmup_fraction": 0.25, "epochs": 2}
    )
    parameter = nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.AdamW([parameter], lr=config.learning_rate)
    scheduler = step_scheduler(optimiser, config, steps_per_epoch=4)  # 8 steps, 2 of warm-up
    assert scheduler is not None

    rates = []
    for _ in range(8):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()

    cosine = [0.005 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert rates == pytest.approx([0.005, 0.01, *cosine])


def test_constant_rate_without_warm_up_makes_no_scheduler() -> None:
    optimiser = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=0.01)

    assert step_scheduler(optimiser, CLASSIFIER.resolve("quick"), steps_per_epoch=5) is None


def test_ema_weights_equal_the_hand_computed_average() -> None:
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = WeightEMA(model, decay=0.3)  # warm-up: updates 1, 2, 3 use min(0.3, 2/11, 3/12, 4/13)
    for new in ([[3.0, 2.0]], [[5.0, -2.0]], [[0.0, 0.0]]):
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor(new))
        model[1].num_batches_tracked += 1
        model[1].running_mean += 4.0
        ema.update(model)

    # first weight: 1 -> 2/11 + 27/11 = 29/11 -> 29/44 + 15/4 = 97/22 -> 0.3 * 97/22 = 1.322727
    # second: 2 -> 4/11 + 18/11 = 2 -> 0.5 - 1.5 = -1 -> -0.3
    assert torch.allclose(ema.module[0].weight, torch.tensor([[0.3 * 97 / 22, -0.3]]))
    # running means 4, 8, 12 averaged from 0: 36/11, 9/11 + 6 = 75/11, 0.3 * 75/11 + 8.4
    assert torch.allclose(ema.module[1].running_mean, torch.tensor([0.3 * 75 / 11 + 8.4]))
    assert int(ema.module[1].num_batches_tracked) == 3
    assert not any(parameter.requires_grad for parameter in ema.module.parameters())


def test_training_with_ema_validates_and_returns_the_average() -> None:
    config = CLASSIFIER.resolve("smoke", {"width": 8, "epochs": 4, "patience": 4, "ema_decay": 0.9})
    validation = draw_shapes(10, seed=2)

    result = train_classifier(draw_shapes(30, seed=1), config, validation_set=validation)

    probabilities = evaluate_images(result.model, validation).probabilities
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), validation.labels)
    best = result.history[result.best_epoch - 1]
    assert float(loss) == pytest.approx(best.validation_loss, rel=1e-4)
    plain = train_classifier(
        draw_shapes(30, seed=1),
        CLASSIFIER.resolve("smoke", {"width": 8, "epochs": 4, "patience": 4}),
        validation_set=validation,
    )
    assert [r.validation_loss for r in plain.history] != [r.validation_loss for r in result.history]


def _constant_images(labels: list[int], size: int = 8) -> TensorImageSet:
    """Image i filled with the value 10 * (i + 1), so each pixel says whose image it came from."""
    values = torch.tensor([10 * (i + 1) for i in range(len(labels))], dtype=torch.uint8)
    images = values.view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()
    return TensorImageSet(images, torch.tensor(labels), [f"c{i}" for i in range(4)])


@pytest.mark.parametrize(
    "options",
    [{"mixup_alpha": 0.4}, {"cutmix_alpha": 1.0}, {"mixup_alpha": 0.4, "cutmix_alpha": 1.0}],
)
def test_mixed_targets_sum_to_one_match_the_pixels_and_repeat_for_a_seed(options: dict) -> None:
    config = CLASSIFIER.resolve("smoke", options)
    batch = _constant_images([0, 1, 2, 3])

    rng, again = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):
        images, targets = mix_batch(batch.images, batch.labels, 4, config, rng)
        images_again, targets_again = mix_batch(batch.images, batch.labels, 4, config, again)

        assert torch.equal(images, images_again) and torch.equal(targets, targets_again)
        assert torch.allclose(targets.sum(dim=1), torch.ones(4))
        own_value = batch.images[:, :1, :1, :1].float()
        if images.dtype == torch.uint8:  # cutmix: the own-class target is the uncovered share
            own_share = (images.float() == own_value).float().mean(dim=(1, 2, 3))
            assert torch.allclose(targets.diagonal(), own_share)
        else:  # mixup: every pixel is the targets' blend of the two images' values
            blended = targets @ (10.0 * torch.arange(1, 5).float())
            assert torch.allclose(images[:, 0, 0, 0], blended)


def test_unmixed_batches_keep_images_and_get_one_hot_targets() -> None:
    config = CLASSIFIER.resolve("smoke", {"mixup_alpha": 0.4, "mix_probability": 0.0})
    batch = _constant_images([0, 1, 2, 3])

    images, targets = mix_batch(batch.images, batch.labels, 4, config, np.random.default_rng(0))

    assert images is batch.images
    assert torch.equal(targets, torch.eye(4))


def test_balanced_batches_draw_classes_about_equally_from_an_imbalanced_set() -> None:
    labels = torch.tensor([0] * 40 + [1] * 8 + [2] * 2)
    generator = torch.Generator().manual_seed(0)

    drawn = torch.cat(
        [index for _ in range(40) for index in balanced_batches(labels, 10, generator)]
    )

    counts = torch.bincount(labels[drawn], minlength=3).tolist()
    assert len(drawn) == 40 * 50  # as many draws as a shuffled epoch, 5 batches of 10
    assert counts == [674, 688, 638]
    assert all(abs(count - 2000 / 3) < 0.05 * 2000 for count in counts)  # shuffled: 1600/320/80


def test_balanced_batches_keep_a_short_last_batch_when_asked() -> None:
    generator = torch.Generator().manual_seed(0)

    sizes = [len(index) for index in balanced_batches(torch.arange(23) % 2, 10, generator, False)]

    assert sizes == [10, 10, 3]


def _first_batch_loss(train_set: TensorImageSet, index: torch.Tensor, **options: object) -> tuple:
    """The recorded first-epoch training loss of a one-batch run, and the logits it was taken on."""
    config = CLASSIFIER.resolve(
        "smoke",
        {"dropout": 0.0, "augment": False, "epochs": 1, "batch_size": len(train_set), **options},
    )
    result = train_classifier(train_set, config, validation_set=draw_shapes(2, seed=9))
    torch.manual_seed(config.seed)
    model = build_classifier(config, 2, in_channels=3).train()
    with torch.no_grad():
        logits = model(to_signed_float(train_set.images[index]))
    return result.history[0].train_loss, logits


def test_label_smoothing_changes_the_training_loss_as_torch_does() -> None:
    shapes = draw_shapes(6, seed=1)
    everything = torch.arange(len(shapes))

    loss, logits = _first_batch_loss(
        shapes, everything, label_smoothing=0.2, class_weighted_loss=False
    )
    plain, _ = _first_batch_loss(shapes, everything, class_weighted_loss=False)

    smoothed = F.cross_entropy(logits, shapes.labels, label_smoothing=0.2)
    assert loss == pytest.approx(float(smoothed), rel=1e-5)
    assert plain == pytest.approx(float(F.cross_entropy(logits, shapes.labels)), rel=1e-5)
    assert loss != pytest.approx(plain, rel=1e-5)


def test_balanced_sampling_replaces_the_class_weighted_loss() -> None:
    shapes = draw_shapes(6, seed=1)
    imbalanced = shapes.subset(torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]))  # 6 squares, 2 circles
    drawn = next(balanced_batches(imbalanced.labels, 8, torch.Generator().manual_seed(1), False))

    loss, logits = _first_batch_loss(imbalanced, drawn, sampler="balanced")

    assert imbalanced.class_counts() == {"square": 6, "circle": 2}
    assert loss == pytest.approx(float(F.cross_entropy(logits, imbalanced.labels[drawn])), rel=1e-5)


def test_recipe_preset_learns_squares_from_circles() -> None:
    config = CLASSIFIER.resolve(
        "recipe",
        {"width": 8, "blocks": 3, "batch_size": 16, "min_epochs": 0, "epochs": 12, "patience": 12},
    )

    result = train_classifier(draw_shapes(60, seed=1), config)
    predictions = evaluate_images(result.model, draw_shapes(30, seed=3))

    accuracy = float((predictions.probabilities.argmax(dim=1) == predictions.labels).float().mean())
    assert accuracy >= 0.85  # chance is 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule": "linear"}, r"schedule must be one of constant, cosine, got 'linear'"),
        ({"sampler": "weighted"}, r"sampler must be one of shuffle, balanced, got 'weighted'"),
        ({"warmup_fraction": 1.0}, r"warmup_fraction must be in \[0, 1\), got 1.0"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\), got -0.1"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\), got 1.0"),
        ({"final_lr_fraction": 1.5}, r"final_lr_fraction must be in \[0, 1\], got 1.5"),
        ({"mix_probability": 2}, r"mix_probability must be in \[0, 1\], got 2.0"),
        ({"mixup_alpha": -1}, r"mixup_alpha must be >= 0 \(0 = off\), got -1.0"),
        ({"cutmix_alpha": "none"}, r"classifier setting 'cutmix_alpha' wants a float"),
    ],
)
def test_bad_recipe_options_are_refused_by_name(overrides: dict, message: str) -> None:
    from pathsynth.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        CLASSIFIER.resolve("quick", overrides)
