"""Selective synthesis criteria on small tensors, against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pathsynth.errors import ConfigError, DataError
from pathsynth.selection.config import SELECTION
from pathsynth.selection.criteria import (
    ClassThresholds,
    SelectionScores,
    class_thresholds,
    decide,
    distances_to_class,
    real_reference_distances,
    score_images,
)


def _brute_mean_of_nearest(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    distances = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return np.sort(distances, axis=1)[:, :k].mean(axis=1)


def test_distance_to_class_is_the_mean_of_the_k_nearest_real_images_of_the_intended_class():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 5))
    real_labels = np.repeat([0, 1, 2], 10)
    fake = rng.normal(size=(12, 5))
    labels = np.array([0, 1, 2] * 4)
    got = distances_to_class(
        torch.from_numpy(fake), torch.from_numpy(labels), torch.from_numpy(real),
        torch.from_numpy(real_labels), k=3,
    )  # fmt: skip
    for i, c in enumerate(labels):
        expected = _brute_mean_of_nearest(fake[i : i + 1], real[real_labels == c], 3)[0]
        assert got[i].item() == pytest.approx(expected, rel=1e-9)


def test_real_reference_distances_never_count_another_crop_of_the_same_image():
    # two crops of image 1 coincide; image 2 is 5 away: the neighbour must be image 2
    features = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    labels = torch.tensor([0, 0, 0])
    ids = torch.tensor([1, 1, 2])
    got = real_reference_distances(features, labels, ids, k=1)
    assert got.tolist() == [5.0, 5.0, 5.0]
    with pytest.raises(DataError, match="one image only"):
        real_reference_distances(features[:2], labels[:2], ids[:2], k=1)


def test_quantile_thresholds_are_the_per_class_quantiles_of_the_real_training_fold():
    config = SELECTION.resolve("default", {"confidence_quantile": 0.25, "distance_quantile": 0.75})
    real_distances = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0], dtype=torch.float64)
    real_labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    validation = torch.tensor([0.2, 0.4, 0.6, 0.8, 0.9], dtype=torch.float64)
    validation_labels = torch.tensor([0, 0, 0, 0, 0])  # class 1 has no validation image
    got = class_thresholds(config, 2, real_distances, real_labels, validation, validation_labels)
    assert got.max_distance == pytest.approx(
        [np.quantile([1, 2, 3, 4], 0.75), np.quantile([10, 20, 30, 40], 0.75)]
    )
    assert got.min_confidence[0] == pytest.approx(np.quantile([0.2, 0.4, 0.6, 0.8, 0.9], 0.25))
    assert got.confidence_from == ["validation", "fixed"]
    assert got.min_confidence[1] == config.min_confidence


def test_fixed_thresholds_scale_each_class_median_distance():
    config = SELECTION.resolve("fixed", {"min_confidence": 0.7, "max_distance_ratio": 2.0})
    distances = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    got = class_thresholds(config, 2, distances, labels, torch.ones(2), torch.tensor([0, 1]))
    assert got.max_distance == [4.0, 40.0]
    assert got.min_confidence == [0.7, 0.7]
    assert got.confidence_from == ["fixed", "fixed"]


def _scores(confidence, distance, near_copy):
    n = len(confidence)
    return SelectionScores(
        torch.tensor(confidence, dtype=torch.float64), torch.tensor(distance, dtype=torch.float64),
        torch.ones(n, dtype=torch.float64), torch.tensor(near_copy),
    )  # fmt: skip


def test_an_image_is_kept_only_when_every_criterion_accepts_it_and_the_reasons_say_which_failed():
    thresholds = ClassThresholds([0.5], [1.0], ["fixed"])
    scores = _scores([0.9, 0.1, 0.9, 0.9, 0.1], [0.5, 0.5, 2.0, 0.5, 2.0],
                     [False, False, False, True, True])  # fmt: skip
    decision = decide(scores, torch.zeros(5, dtype=torch.int64), thresholds, keep_floor=0.0)
    assert decision.kept.tolist() == [True, False, False, False, False]
    assert decision.reasons == [
        "kept", "confidence", "distance", "near-copy", "near-copy+confidence+distance"
    ]  # fmt: skip


def test_the_floor_keeps_the_best_ranked_rejected_images_but_never_a_near_copy():
    thresholds = ClassThresholds([0.99, 0.99], [0.0, 0.0], ["fixed", "fixed"])  # all fail
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    scores = _scores(
        [0.9, 0.8, 0.1, 0.95, 0.5, 0.6],
        [0.1, 0.2, 0.9, 0.05, 0.3, 0.3],
        [False, False, False, True, True, True],
    )
    decision = decide(scores, labels, thresholds, keep_floor=0.5)
    # class 0: 2 of 4 wanted; the near-copy (best scores) stays out; image 0 and 1 rank best
    assert decision.kept.tolist() == [True, True, False, False, False, False]
    assert decision.reasons[:2] == ["kept:floor", "kept:floor"]
    assert decision.kept_per_class(labels, 2) == [(2, 4), (0, 2)]


def test_an_exact_copy_of_a_real_training_image_is_flagged_and_rejected():
    generator = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (12, 3, 16, 16), generator=generator, dtype=torch.uint8)
    real_labels = torch.tensor([0, 1] * 6)
    fake = torch.randint(0, 256, (4, 3, 16, 16), generator=generator, dtype=torch.uint8)
    fake[0] = real[3]  # a copy of a class-1 image, generated as class 1
    labels = torch.tensor([1, 0, 1, 0])
    features = lambda x: x.float().flatten(1)[:, :32]  # noqa: E731
    config = SELECTION.resolve("default", {"keep_floor": 1.0})
    scores = score_images(
        torch.full((4, 2), 0.5), labels, fake, features(fake), real, features(real), real_labels,
        config,
    )  # fmt: skip
    assert scores.near_copy.tolist() == [True, False, False, False]
    assert scores.copy_ratio[0].item() == 0.0
    assert scores.confidence.tolist() == [0.5] * 4
    thresholds = ClassThresholds([0.0, 0.0], [math.inf, math.inf], ["fixed", "fixed"])
    decision = decide(scores, labels, thresholds, config.keep_floor)
    assert decision.kept.tolist() == [False, True, True, True]  # even a floor of 1.0


def test_selection_settings_out_of_range_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"selection\.keep_floor"):
        SELECTION.resolve("default", {"keep_floor": 1.5})
    with pytest.raises(ConfigError, match="quantile or fixed"):
        SELECTION.resolve("default", {"threshold": "median"})
    with pytest.raises(ConfigError, match="unknown selection preset"):
        SELECTION.resolve("loose")
