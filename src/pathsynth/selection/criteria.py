"""The criteria of selective synthesis, on tensors: scores of each generated image, per-class
thresholds from the real training fold, and the keep/reject decision.

Every function here takes the real images, features and confidences it is given and nothing else;
the caller decides they come from the training fold (the experiment's ``select`` stage passes the
real training fold only, never the test fold or an external set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pathsynth.errors import DataError
from pathsynth.metrics.memorisation import memorisation_check
from pathsynth.selection.config import SelectionConfig


@dataclass
class SelectionScores:
    """What the criteria measured for each generated image.

    Attributes:
        confidence: (n,) the real-trained classifier's probability of the intended class.
        distance: (n,) mean feature distance to the nearest real training images of the class.
        copy_ratio: (n,) nearest-real distance over the real-to-real median, the smaller of the
            pixel and feature spaces (the memorisation check's ratio).
        near_copy: (n,) bool, flagged by the memorisation check.
    """

    confidence: torch.Tensor
    distance: torch.Tensor
    copy_ratio: torch.Tensor
    near_copy: torch.Tensor


@dataclass
class ClassThresholds:
    """Per class: the least confidence and the largest distance a kept image may have, and where
    each confidence threshold came from (``validation``, or ``fixed`` when the validation part
    has no image of the class or the mode is fixed)."""

    min_confidence: list[float]
    max_distance: list[float]
    confidence_from: list[str]


@dataclass
class SelectionDecision:
    """Keep or reject for each generated image, and why.

    Attributes:
        kept: (n,) bool.
        reasons: per image, ``kept``, ``kept:floor`` or the failed criteria joined by ``+``
            (``near-copy``, ``confidence``, ``distance``).
    """

    kept: torch.Tensor
    reasons: list[str]

    def kept_per_class(self, labels: torch.Tensor, n_classes: int) -> list[tuple[int, int]]:
        """``(kept, generated)`` per class index."""
        return [
            (int(self.kept[labels == c].sum()), int((labels == c).sum())) for c in range(n_classes)
        ]


def _mean_of_nearest(distances: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise mean of the ``k`` smallest finite entries (fewer where a row has fewer)."""
    available = torch.isfinite(distances).sum(dim=1)
    k_used = min(k, distances.shape[1])
    nearest = torch.topk(distances, k_used, dim=1, largest=False).values
    counted = torch.clamp(available, max=k_used)
    finite = torch.where(torch.isfinite(nearest), nearest, torch.zeros_like(nearest))
    return finite.sum(dim=1) / counted.clamp(min=1)


def real_reference_distances(
    features: torch.Tensor, labels: torch.Tensor, image_ids: torch.Tensor, k: int
) -> torch.Tensor:
    """Each real row's mean distance to its ``k`` nearest real rows of its class that come from
    another image (tiles or crops of one image are not each other's neighbours).

    Args:
        features: (m, d) features of real training rows.
        labels: (m,) class index per row.
        image_ids: (m,) catalog image id per row.
        k: neighbours averaged.

    Returns:
        (m,) float64 distances.

    Raises:
        DataError: a class whose rows all come from one image (no neighbour to measure).
    """
    features = features.double()
    out = torch.empty(len(features), dtype=torch.float64)
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c).flatten()
        distances = torch.cdist(features[rows], features[rows])
        same = image_ids[rows][:, None] == image_ids[rows][None, :]
        distances[same] = math.inf
        if not torch.isfinite(distances).any(dim=1).all():
            raise DataError(f"class index {c} has real training rows of one image only")
        out[rows] = _mean_of_nearest(distances, k)
    return out


def distances_to_class(
    features: torch.Tensor,
    labels: torch.Tensor,
    real_features: torch.Tensor,
    real_labels: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """Each row's mean distance to its ``k`` nearest real rows of its own (intended) class.

    Raises:
        DataError: a class of ``labels`` with no real row.
    """
    features, real_features = features.double(), real_features.double()
    out = torch.empty(len(features), dtype=torch.float64)
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c).flatten()
        real = real_features[real_labels == c]
        if len(real) == 0:
            raise DataError(f"class index {c} has no real training image to measure distance to")
        out[rows] = _mean_of_nearest(torch.cdist(features[rows], real), k)
    return out


def score_images(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    images: torch.Tensor,
    features: torch.Tensor,
    real_images: torch.Tensor,
    real_features: torch.Tensor,
    real_labels: torch.Tensor,
    config: SelectionConfig,
) -> SelectionScores:
    """The scores of generated images against the real training fold.

    Args:
        probabilities: (n, classes) the real-trained classifier's probabilities per image.
        labels: (n,) intended class per image.
        images: (n, C, H, W) uint8 generated images.
        features: (n, d) their features.
        real_images: (m, C, H', W') uint8 real training images (or crops of them).
        real_features: (m, d) their features, same extractor.
        real_labels: (m,) their classes.
        config: ``neighbours`` and ``near_copy_ratio`` are used.

    Raises:
        DataError: lengths that differ, or what :func:`distances_to_class` and
            :func:`~pathsynth.metrics.memorisation.memorisation_check` refuse.
    """
    if not len(probabilities) == len(labels) == len(images) == len(features):
        raise DataError("one probability row, label, image and feature row per generated image")
    confidence = probabilities.double()[torch.arange(len(labels)), labels]
    distance = distances_to_class(features, labels, real_features, real_labels, config.neighbours)
    memorised = memorisation_check(
        images, real_images, features, real_features, near_copy_ratio=config.near_copy_ratio
    )
    ratio = memorised.pixel.ratio
    if memorised.feature is not None:
        ratio = torch.minimum(ratio, memorised.feature.ratio)
    return SelectionScores(confidence, distance, ratio.double(), memorised.near_copy)


def class_thresholds(
    config: SelectionConfig,
    n_classes: int,
    real_distances: torch.Tensor,
    real_labels: torch.Tensor,
    validation_confidence: torch.Tensor,
    validation_labels: torch.Tensor,
) -> ClassThresholds:
    """Per-class thresholds from the real training fold (see :mod:`pathsynth.selection.config`).

    Args:
        config: the mode and its quantiles or fixed values.
        n_classes: classes.
        real_distances: (m,) :func:`real_reference_distances` of the real training rows.
        real_labels: (m,) their classes.
        validation_confidence: (v,) the classifier's confidence in the true class of each real
            validation image (training fold, held out from the classifier's training).
        validation_labels: (v,) their classes.

    Raises:
        DataError: a class with no real training row.
    """
    min_confidence, max_distance, source = [], [], []
    for c in range(n_classes):
        distances = real_distances[real_labels == c].double()
        if len(distances) == 0:
            raise DataError(f"class index {c} has no real training image to set thresholds from")
        confidences = validation_confidence[validation_labels == c].double()
        if config.threshold == "quantile":
            max_distance.append(float(torch.quantile(distances, config.distance_quantile)))
            if len(confidences):
                min_confidence.append(
                    float(torch.quantile(confidences, config.confidence_quantile))
                )
                source.append("validation")
                continue
        else:
            max_distance.append(config.max_distance_ratio * float(distances.median()))
        min_confidence.append(config.min_confidence)
        source.append("fixed")
    return ClassThresholds(min_confidence, max_distance, source)


def decide(
    scores: SelectionScores,
    labels: torch.Tensor,
    thresholds: ClassThresholds,
    keep_floor: float,
) -> SelectionDecision:
    """Keep an image that is no near-copy, confident enough and close enough to its class; then,
    per class, keep the best-ranked rejected non-copies until ``keep_floor`` of it is kept.

    The rank of a rejected image is the sum of its confidence rank (highest first) and its
    distance rank (nearest first) within the class.
    """
    minimum = torch.tensor(thresholds.min_confidence, dtype=torch.float64)[labels]
    maximum = torch.tensor(thresholds.max_distance, dtype=torch.float64)[labels]
    confident = scores.confidence >= minimum
    close = scores.distance <= maximum
    kept = confident & close & ~scores.near_copy
    reasons = []
    for i in range(len(labels)):
        failed = [
            name
            for name, bad in (
                ("near-copy", bool(scores.near_copy[i])),
                ("confidence", not bool(confident[i])),
                ("distance", not bool(close[i])),
            )
            if bad
        ]
        reasons.append("+".join(failed) if failed else "kept")
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        wanted = math.ceil(keep_floor * len(members)) - int(kept[members].sum())
        candidates = members[~kept[members] & ~scores.near_copy[members]]
        if wanted <= 0 or len(candidates) == 0:
            continue
        confidence_rank = _ranks(-scores.confidence[candidates])
        distance_rank = _ranks(scores.distance[candidates])
        order = torch.argsort(confidence_rank + distance_rank, stable=True)
        for index in candidates[order[:wanted]].tolist():
            kept[index] = True
            reasons[index] = "kept:floor"
    return SelectionDecision(kept, reasons)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """0 for the smallest value, 1 for the next, ... (ties by position)."""
    ranks = torch.empty(len(values), dtype=torch.int64)
    ranks[torch.argsort(values, stable=True)] = torch.arange(len(values))
    return ranks
