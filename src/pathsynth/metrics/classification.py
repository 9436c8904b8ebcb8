"""Classification metrics for one evaluated condition, computed by scikit-learn.

Everything is per image: when a held-out image was cut into patches, aggregate the patch
probabilities first (``pathsynth.classify.evaluate.aggregate_patches``) and pass the per-image
result.

A class that has no image in ``y_true`` has no one-vs-rest ROC curve (there are no positives); its
curve and AUC are ``None`` and it is named in ``absent_classes``, never reported as NaN. Balanced
accuracy and macro F1 are then taken over the classes that are present, as scikit-learn's balanced
accuracy does; pass ``require_all_classes=True`` to refuse such a test set instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm

from pathsynth.errors import DataError

_PROBABILITY_SUM_TOLERANCE = 1e-3  # rows of a softmax in float32 sum to 1 within this


@dataclass
class RocCurve:
    """A one-vs-rest (or micro-averaged) ROC curve.

    Args:
        false_positive_rate: x coordinates, increasing from 0 to 1.
        true_positive_rate: y coordinates.
        thresholds: score threshold at each point (the first is ``inf``, as scikit-learn gives it);
            empty for the macro-averaged curve, which has no single threshold per point.
        auc: area under the curve.
    """

    false_positive_rate: list[float]
    true_positive_rate: list[float]
    thresholds: list[float]
    auc: float


@dataclass
class ClassificationReport:
    """Every classification number for one condition on one test set.

    Args:
        class_names: class name per label index.
        n_images: number of evaluated images.
        accuracy: fraction of images whose arg-max class is right.
        balanced_accuracy: mean recall over the classes present in ``y_true``.
        macro_f1: unweighted mean F1 over the classes present in ``y_true``.
        confusion_matrix: counts, row = true class, column = predicted class, in label order.
        roc_per_class: one-vs-rest curve per class name; ``None`` for a class absent from
            ``y_true``.
        roc_micro: micro-averaged curve (all one-vs-rest decisions pooled).
        roc_macro: macro-averaged curve (per-class true positive rates interpolated onto the union
            of their false positive rates and averaged, as in scikit-learn's ROC example); its
            area can differ slightly from ``macro_auc``. ``None`` when any class is absent.
        macro_auc: mean of the per-class AUCs; ``None`` when any class is absent.
        absent_classes: classes with no image in ``y_true``.
    """

    class_names: list[str]
    n_images: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    confusion_matrix: list[list[int]]
    roc_per_class: dict[str, RocCurve | None]
    roc_micro: RocCurve
    roc_macro: RocCurve | None
    macro_auc: float | None
    absent_classes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        """The scalar numbers, keyed by name (for tables and JSON)."""
        per_class = {
            f"auc[{name}]": (curve.auc if curve is not None else None)
            for name, curve in self.roc_per_class.items()
        }
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
            "micro_auc": self.roc_micro.auc,
            "macro_auc": self.macro_auc,
            **per_class,
        }


def _roc(is_positive: np.ndarray, score: np.ndarray) -> RocCurve:
    fpr, tpr, thresholds = skm.roc_curve(is_positive, score)
    return RocCurve(
        false_positive_rate=fpr.tolist(),
        true_positive_rate=tpr.tolist(),
        thresholds=thresholds.tolist(),
        auc=float(skm.auc(fpr, tpr)),
    )


def _macro_average(curves: list[RocCurve]) -> RocCurve:
    grid = np.unique(np.concatenate([curve.false_positive_rate for curve in curves]))
    mean_tpr = np.mean(
        [np.interp(grid, curve.false_positive_rate, curve.true_positive_rate) for curve in curves],
        axis=0,
    )
    return RocCurve(grid.tolist(), mean_tpr.tolist(), [], float(skm.auc(grid, mean_tpr)))


def _checked_inputs(
    y_true: np.ndarray | list[int], probabilities: np.ndarray, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true)
    scores = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(class_names)
    if n_classes < 2:
        raise DataError(f"classification metrics need at least 2 classes, got {n_classes}")
    if labels.ndim != 1 or len(labels) == 0:
        raise DataError(f"y_true must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"y_true must hold integer class indices, got {labels.dtype}")
    if scores.shape != (len(labels), n_classes):
        raise DataError(
            f"probabilities must have shape ({len(labels)}, {n_classes}), got {scores.shape}"
        )
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"y_true holds a class index outside 0..{n_classes - 1}")
    if not np.isfinite(scores).all():
        raise DataError("probabilities hold NaN or infinite values")
    if np.abs(scores.sum(axis=1) - 1.0).max() > _PROBABILITY_SUM_TOLERANCE:
        raise DataError("probabilities must sum to 1 per image (pass softmax output, not logits)")
    return labels, scores


def _present_classes(
    labels: np.ndarray, class_names: list[str], require_all: bool
) -> tuple[list[int], list[str]]:
    """The class indices the test set holds and the names of those it lacks.

    Raises:
        DataError: one class only, or (with ``require_all``) a class with no image.
    """
    present = sorted(set(labels.tolist()))
    absent = [name for i, name in enumerate(class_names) if i not in present]
    if len(present) < 2:
        raise DataError(
            f"the test set holds only class {class_names[present[0]]!r}: no ROC curve is defined"
        )
    if absent and require_all:
        raise DataError(f"the test set has no image of class(es) {', '.join(absent)}")
    return present, absent


def balanced_accuracy_of(confusion_matrix: np.ndarray | list[list[int]]) -> float:
    """Mean recall over the classes with test images, from a confusion matrix (rows true,
    columns predicted): what ``balanced_accuracy`` is for the predictions it counts.

    Raises:
        DataError: a matrix that is not square or counts no image.
    """
    matrix = np.asarray(confusion_matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.sum() <= 0:
        raise DataError(f"a confusion matrix must be square and count images, got {matrix.shape}")
    support = matrix.sum(axis=1)
    tested = support > 0
    return float((np.diag(matrix)[tested] / support[tested]).mean())


def classification_report(
    y_true: np.ndarray | list[int],
    probabilities: np.ndarray,
    class_names: list[str],
    require_all_classes: bool = False,
) -> ClassificationReport:
    """Accuracy, balanced accuracy, macro F1, confusion matrix and ROC curves for one test set.

    The predicted class is the arg-max of ``probabilities``; the ROC curves use the probability of
    each class as its one-vs-rest score.

    Args:
        y_true: true class index per image.
        probabilities: (n_images, n_classes) class probabilities per image, rows summing to 1.
        class_names: class name per label index.
        require_all_classes: refuse a test set in which a class has no image.

    Returns:
        The report; per-class ROC and macro AUC are ``None`` where a class is absent.

    Raises:
        DataError: fewer than 2 classes, shapes that disagree, labels out of range, non-finite
            probabilities or rows that do not sum to 1, a test set of one class only, or (with
            ``require_all_classes``) a class with no image.
    """
    labels, scores = _checked_inputs(y_true, probabilities, class_names)
    n_classes = len(class_names)
    predicted = scores.argmax(axis=1)
    present, absent = _present_classes(labels, class_names, require_all_classes)
    one_hot = np.eye(n_classes, dtype=np.int64)[labels]
    roc_per_class: dict[str, RocCurve | None] = {
        name: (_roc(one_hot[:, i], scores[:, i]) if i in present else None)
        for i, name in enumerate(class_names)
    }
    defined_curves = [curve for curve in roc_per_class.values() if curve is not None]
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected when a class is absent, handled above.
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(labels, predicted)
    return ClassificationReport(
        class_names=list(class_names),
        n_images=len(labels),
        accuracy=float(skm.accuracy_score(labels, predicted)),
        balanced_accuracy=float(balanced),
        macro_f1=float(
            skm.f1_score(labels, predicted, labels=present, average="macro", zero_division=0)
        ),
        confusion_matrix=skm.confusion_matrix(labels, predicted, labels=range(n_classes)).tolist(),
        roc_per_class=roc_per_class,
        roc_micro=_roc(one_hot.ravel(), scores.ravel()),
        roc_macro=None if absent else _macro_average(defined_curves),
        macro_auc=None if absent else float(np.mean([curve.auc for curve in defined_curves])),
        absent_classes=absent,
    )


def patient_bootstrap_interval(
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    patients: Sequence[int] | np.ndarray,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of balanced accuracy with whole patients resampled.

    Test images of one patient are not independent, so an interval over images (or over seeds)
    is too narrow for "a new patient": here each resample draws the patients with replacement,
    within each class (a patient's class: its images' most common label), and scores every image
    of every drawn patient.

    Raises:
        DataError: inputs of different lengths or no images.
    """
    truth, guess, unit = (np.asarray(x) for x in (labels, predicted, patients))
    if not (len(truth) == len(guess) == len(unit)) or not len(truth):
        raise DataError("labels, predictions and patients must be as many, and not none")
    units, inverse = np.unique(unit, return_inverse=True)
    classes = int(max(truth.max(), guess.max())) + 1
    # per patient: its (true, predicted) counts, flattened, and its class
    counts = np.zeros((len(units), classes * classes), dtype=np.int64)
    np.add.at(counts, (inverse, truth * classes + guess), 1)
    majority = counts.reshape(len(units), classes, classes).sum(axis=2).argmax(axis=1)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(majority == c) for c in np.unique(majority)]
    scores = np.empty(resamples)
    for r in range(resamples):
        drawn = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
        scores[r] = balanced_accuracy_of(counts[drawn].sum(axis=0).reshape(classes, classes))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(scores, [tail, 100.0 - tail])
    return float(low), float(high)
