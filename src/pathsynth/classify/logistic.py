"""Logistic regression on frozen embeddings (``classifier.kind=logistic``), the eva protocol's
other head: scikit-learn's ``LogisticRegression`` (L2, lbfgs, multinomial), its inverse
regularisation strength C chosen on the validation patients alone.

Every C of ``classifier.logistic_c`` is fitted on the training vectors (standardised with the
training vectors' mean and std) and scored on the validation vectors; the best balanced accuracy
wins, ties going to the lower validation log-loss and then to the smaller C (stronger
regularisation). The chosen model is written into the linear head of a
:class:`~pathsynth.classify.probe.FrozenFeatureClassifier` (standardisation folded into its weights,
a binary model as the two logits ``0`` and ``w.x + b``), so its softmax is exactly
``predict_proba``, and bundles, ``predict`` and the tests treat it as any probe. The training
record has one entry per C tried, in the order tried; ``best_epoch`` is the chosen one's.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, log_loss

from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.history import EpochRecord, TrainingResult
from pathsynth.classify.probe import FeatureSet, FrozenFeatureClassifier, check_features
from pathsynth.errors import DataError

MAX_ITERATIONS = 2000  # lbfgs iterations per fit (standardised features converge well before)


def _fit(
    features: np.ndarray, labels: np.ndarray, c: float, config: ClassifierConfig
) -> LogisticRegression:
    model = LogisticRegression(
        C=c,
        max_iter=MAX_ITERATIONS,
        class_weight="balanced" if config.class_weighted_loss else None,
        random_state=config.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the chosen C is what counts
        return model.fit(features, labels)


def _logits_weights(
    model: LogisticRegression, mean: np.ndarray, scale: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (classes, dim) weight and (classes,) bias whose softmax on raw features is
    ``model.predict_proba`` on standardised ones."""
    coef = model.coef_ / scale
    bias = model.intercept_ - coef @ mean
    if coef.shape[0] == 1:  # binary: sigmoid(z) = softmax([0, z])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        bias = np.concatenate([[0.0], bias])
    return torch.from_numpy(coef).float(), torch.from_numpy(bias).float()


def train_logistic(
    model: FrozenFeatureClassifier,
    train: FeatureSet,
    validation: FeatureSet,
    class_names: list[str],
    config: ClassifierConfig,
) -> TrainingResult:
    """Fit logistic regression on ``train`` for every C of ``config.logistic_c``, keep the one
    best on ``validation``, and load it into ``model``'s head.

    Args:
        model: the classifier whose head receives the chosen weights.
        train: training vectors and labels.
        validation: validation vectors (images of other patients) and labels.
        class_names: class name per label index.
        config: ``logistic_c``, ``class_weighted_loss`` (balanced class weights) and ``seed``
            are used.

    Returns:
        The result with one record per C tried (``epoch`` = its 1-based position) and the
        chosen C's position as ``best_epoch``.

    Raises:
        DataError: fewer than 2 training vectors, empty validation, a class without training
            vectors, or features whose size is not the head's input.
    """
    check_features(model, train, validation, "logistic regression")
    counts = torch.bincount(train.labels, minlength=len(class_names))
    absent = [name for name, count in zip(class_names, counts.tolist(), strict=True) if not count]
    if absent:
        raise DataError(f"no training image of class(es) {', '.join(absent)}")
    start = time.perf_counter()
    x = train.features.double().numpy()
    y = train.labels.numpy()
    mean, scale = _standardiser(x)
    xv = (validation.features.double().numpy() - mean) / scale
    yv = validation.labels.numpy()
    labels = list(range(len(class_names)))
    history: list[EpochRecord] = []
    best: tuple[float, float, int, LogisticRegression] | None = None
    for position, c in enumerate(sorted(config.logistic_c), start=1):
        began = time.perf_counter()
        fitted = _fit((x - mean) / scale, y, c, config)
        record = _scored(fitted, position, ((x - mean) / scale, y), (xv, yv), labels, began)
        history.append(record)
        balanced, loss = record.validation_balanced_accuracy, record.validation_loss
        # sorted ascending, so a tie keeps the smaller C (the stronger regularisation)
        if best is None or (balanced, -loss) > (best[0], -best[1]):
            best = (balanced, loss, position, fitted)
    assert best is not None  # logistic_c is never empty (the config refuses that)
    weight, bias = _logits_weights(best[3], mean, scale)
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
    model.eval()
    return TrainingResult(
        model=model, config=config, class_names=list(class_names), history=history,
        best_epoch=best[2], stopped_early=False, train_size=len(train.labels),
        validation_size=len(validation.labels), seconds=time.perf_counter() - start,
    )  # fmt: skip


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and standard deviation (1 for a constant feature: left unscaled)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def _scored(
    fitted: LogisticRegression,
    position: int,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    labels: list[int],
    began: float,
) -> EpochRecord:
    """One C's record: log loss and accuracy on the (standardised) training and validation
    vectors, and the validation balanced accuracy."""
    (x, y), (xv, yv) = train, validation
    train_probabilities = fitted.predict_proba(x)
    probabilities = fitted.predict_proba(xv)
    predicted = probabilities.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class absent from validation
        balanced = float(balanced_accuracy_score(yv, predicted))
    return EpochRecord(
        epoch=position,
        train_loss=float(log_loss(y, train_probabilities, labels=labels)),
        train_accuracy=float((train_probabilities.argmax(axis=1) == y).mean()),
        validation_loss=float(log_loss(yv, probabilities, labels=labels)),
        validation_accuracy=float((predicted == yv).mean()),
        validation_balanced_accuracy=balanced,
        seconds=time.perf_counter() - began,
    )


def chosen_c(result: TrainingResult) -> float:
    """The C that :func:`train_logistic` kept."""
    return sorted(result.config.logistic_c)[result.best_epoch - 1]
