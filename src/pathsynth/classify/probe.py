"""Frozen-feature classifiers, the eva protocol: a linear head on a frozen backbone's embeddings.

The backbone (:mod:`pathsynth.backbones`) turns each image into one vector (its patches'
features averaged); only a linear layer is trained, on those vectors, with AdamW, class-weighted
cross-entropy and the same early stopping on validation patients as fine-tuning
(:class:`~pathsynth.classify.history.EarlyStopping`). Because the vectors are computed once and
the head is tiny, a probe trains in seconds on the CPU whatever the backbone's size.

:class:`FrozenFeatureClassifier` joins backbone and head into one network that takes images like
every other classifier (uint8 turned to [-1, 1]), so bundles, ``predict`` and the test-time
evaluation treat a probe like a fine-tuned network.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from pathsynth.backbones.embed import normalise
from pathsynth.backbones.load import Backbone, load_backbone
from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.history import EarlyStopping, EpochRecord, TrainingResult
from pathsynth.errors import DataError
from pathsynth.imaging.tensorset import to_uint8


class FrozenFeatureClassifier(nn.Module):
    """A frozen backbone and a trainable linear head.

    Args:
        backbone: the feature extractor (its weights are frozen here).
        num_classes: number of output logits.
    """

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone.model
        self.spec = backbone.spec
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.head = nn.Linear(backbone.dim, num_classes)

    def train(self, mode: bool = True) -> FrozenFeatureClassifier:
        """Only the head changes mode; the backbone stays in eval (frozen batch-norm statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, dim) features of images (N, 3, H, W) in [-1, 1]."""
        with torch.no_grad():
            return self.backbone(normalise(to_uint8(images), self.spec)).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of images (N, 3, H, W) in [-1, 1]."""
        return self.head(self.features(images))


def probe_backbone(config: ClassifierConfig, weights: bool = True) -> Backbone:
    """The backbone a linear-probe config names.

    Args:
        config: the classifier config (``backbone``, ``backbone_weights``,
            ``backbone_input_size``).
        weights: load ``backbone_weights``; False builds the architecture only (a bundle's state
            dict then supplies every tensor), except for hub ids, whose architecture is in the hub.

    Raises:
        ConfigError, CheckpointError: what :func:`~pathsynth.backbones.load.load_backbone` refuses.
    """
    hub = config.backbone_weights if (config.backbone_weights or "").startswith("hf-hub:") else None
    return load_backbone(
        config.backbone,
        config.backbone_weights if weights else hub,
        seed=config.seed,
        input_size=config.backbone_input_size or None,
    )


@dataclass(frozen=True)
class FeatureSet:
    """One vector per image with its class.

    Attributes:
        features: ``float32`` (N, dim).
        labels: ``int64`` (N,) class index.
    """

    features: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise DataError("features must be (N, dim) with one label per row")


def check_features(
    model: FrozenFeatureClassifier, train: FeatureSet, validation: FeatureSet, what: str
) -> None:
    """Refuse what no head can be fitted on.

    Raises:
        DataError: fewer than 2 training vectors, an empty validation set, or features whose size
            is not the head's input.
    """
    if len(train.features) < 2 or len(validation.features) == 0:
        raise DataError(f"{what} needs at least 2 training and 1 validation images")
    if train.features.shape[1] != model.head.in_features:
        raise DataError(
            f"features of {train.features.shape[1]} dims for a head of {model.head.in_features}"
        )


def train_linear_probe(
    model: FrozenFeatureClassifier,
    train: FeatureSet,
    validation: FeatureSet,
    class_names: list[str],
    config: ClassifierConfig,
) -> TrainingResult:
    """Train ``model``'s head on precomputed features, early stopping on the validation set.

    Args:
        model: the classifier whose head is trained (the backbone computed the features).
        train: training vectors and labels.
        validation: validation vectors (images of other patients) and labels.
        class_names: class name per label index.
        config: epochs, batch size, learning rate, weight decay, class weighting, monitor,
            patience, min_epochs and seed are used; augmentation and recipe options are not
            (the features are fixed).

    Returns:
        The result with the best epoch's head restored.

    Raises:
        DataError: fewer than 2 training vectors, empty validation, or features whose size is not
            the head's input.
    """
    check_features(model, train, validation, "a linear probe")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model.head.reset_parameters()
    counts = torch.bincount(train.labels, minlength=len(class_names)).float()
    weights = counts.sum() / (counts.clamp_min(1) * len(class_names))
    criterion = nn.CrossEntropyLoss(weight=weights if config.class_weighted_loss else None)
    optimiser = torch.optim.AdamW(
        model.head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    stopping = EarlyStopping(config)
    history: list[EpochRecord] = []
    stopped = False
    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        model.head.train()
        order = torch.randperm(len(train.labels), generator=generator)
        total, correct = _train_epoch(
            model.head, train, order, config.batch_size, criterion, optimiser
        )
        record = _validated(
            model.head, validation, epoch, total / len(order), correct / len(order), began
        )
        history.append(record)
        if stopping.should_stop(record, model.head):
            stopped = True
            break
    best = stopping.restore_best(model.head)
    model.eval()
    return TrainingResult(
        model=model, config=config, class_names=list(class_names), history=history,
        best_epoch=best, stopped_early=stopped, train_size=len(train.labels),
        validation_size=len(validation.labels), seconds=time.perf_counter() - start,
    )  # fmt: skip


def _train_epoch(
    head: nn.Module,
    train: FeatureSet,
    order: torch.Tensor,
    batch_size: int,
    criterion: nn.Module,
    optimiser: torch.optim.Optimizer,
) -> tuple[float, int]:
    """One pass over ``train`` in ``order``: the summed loss and the number right."""
    total, correct = 0.0, 0
    for first in range(0, len(order), batch_size):
        batch = order[first : first + batch_size]
        logits = head(train.features[batch])
        loss = criterion(logits, train.labels[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(batch)
        correct += int((logits.argmax(1) == train.labels[batch]).sum())
    return total, correct


def _validated(
    head: nn.Module, validation: FeatureSet, epoch: int, loss: float, accuracy: float, began: float
) -> EpochRecord:
    """The epoch's record: its training loss and accuracy, and the head on the validation set."""
    head.eval()
    with torch.no_grad():
        logits = head(validation.features)
    predicted = logits.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class absent from validation
        balanced = balanced_accuracy_score(validation.labels.numpy(), predicted.numpy())
    return EpochRecord(
        epoch=epoch,
        train_loss=loss,
        train_accuracy=accuracy,
        validation_loss=float(F.cross_entropy(logits, validation.labels)),
        validation_accuracy=float((predicted == validation.labels).float().mean()),
        validation_balanced_accuracy=float(balanced),
        seconds=time.perf_counter() - began,
    )
