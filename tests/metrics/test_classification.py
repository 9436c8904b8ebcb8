"""Classification metrics agree with scikit-learn and never report NaN for an absent class."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from pathsynth.errors import DataError
from pathsynth.metrics.classification import classification_report

CLASS_NAMES = ["benign", "in_situ", "invasive", "normal"]


def _fixed_predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 0, 1, 2, 3, 2])
    logits = rng.normal(size=(len(y_true), 4)) + 1.5 * np.eye(4)[y_true]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probabilities


def test_scalar_metrics_match_scikit_learn() -> None:
    y_true, probabilities = _fixed_predictions()
    y_pred = probabilities.argmax(axis=1)

    report = classification_report(y_true, probabilities, CLASS_NAMES)

    assert report.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert report.macro_f1 == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert report.confusion_matrix == skm.confusion_matrix(y_true, y_pred).tolist()
    assert report.n_images == 20


def test_roc_aucs_match_scikit_learn_per_class_micro_and_macro() -> None:
    y_true, probabilities = _fixed_predictions()
    one_hot = np.eye(4)[y_true]

    report = classification_report(y_true, probabilities, CLASS_NAMES)

    for index, name in enumerate(CLASS_NAMES):
        curve = report.roc_per_class[name]
        assert curve is not None
        assert curve.auc == pytest.approx(
            skm.roc_auc_score(one_hot[:, index], probabilities[:, index])
        )
        assert curve.false_positive_rate[0] == 0.0 and curve.false_positive_rate[-1] == 1.0
    assert report.macro_auc == pytest.approx(
        skm.roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro")
    )
    assert report.roc_micro.auc == pytest.approx(
        skm.roc_auc_score(one_hot, probabilities, average="micro")
    )


def test_macro_average_curve_is_the_mean_interpolated_true_positive_rate() -> None:
    y_true, probabilities = _fixed_predictions()
    one_hot = np.eye(4)[y_true]
    per_class = [skm.roc_curve(one_hot[:, i], probabilities[:, i]) for i in range(4)]
    grid = np.unique(np.concatenate([fpr for fpr, _, _ in per_class]))
    mean_tpr = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr, _ in per_class], axis=0)

    report = classification_report(y_true, probabilities, CLASS_NAMES)

    assert report.roc_macro is not None
    np.testing.assert_allclose(report.roc_macro.true_positive_rate, mean_tpr)
    assert report.roc_macro.auc == pytest.approx(skm.auc(grid, mean_tpr))
    assert report.roc_macro.true_positive_rate[-1] == pytest.approx(1.0)


def test_two_class_report_has_a_curve_per_class() -> None:
    y_true = np.array([0, 0, 1, 1, 1, 0])
    p_positive = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.2])
    probabilities = np.stack([1 - p_positive, p_positive], axis=1)

    report = classification_report(y_true, probabilities, ["benign", "malignant"])

    malignant = report.roc_per_class["malignant"]
    assert malignant is not None
    assert malignant.auc == pytest.approx(skm.roc_auc_score(y_true, p_positive))
    assert report.accuracy == pytest.approx(5 / 6)


def test_class_absent_from_y_true_gives_none_not_nan() -> None:
    y_true, probabilities = _fixed_predictions()
    keep = y_true != 1  # no "in_situ" image left

    report = classification_report(y_true[keep], probabilities[keep], CLASS_NAMES)

    assert report.absent_classes == ["in_situ"]
    assert report.roc_per_class["in_situ"] is None
    assert report.macro_auc is None and report.roc_macro is None
    numbers = [value for value in report.summary().values() if value is not None]
    assert all(math.isfinite(value) for value in numbers)
    assert report.summary()["auc[in_situ]"] is None
    assert report.confusion_matrix[1] == [0, 0, 0, 0]


def test_absent_class_is_refused_when_all_classes_are_required() -> None:
    y_true, probabilities = _fixed_predictions()
    keep = y_true != 1

    with pytest.raises(DataError, match="in_situ"):
        classification_report(
            y_true[keep], probabilities[keep], CLASS_NAMES, require_all_classes=True
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p * 3.0, "sum to 1"),
        (lambda p: np.where(np.arange(p.size).reshape(p.shape) == 5, np.nan, p), "NaN"),
        (lambda p: p[:, :3], "shape"),
    ],
)
def test_bad_probabilities_are_refused(change, message: str) -> None:
    y_true, probabilities = _fixed_predictions()

    with pytest.raises(DataError, match=message):
        classification_report(y_true, change(probabilities), CLASS_NAMES)


def test_single_class_test_set_is_refused() -> None:
    probabilities = np.full((3, 4), 0.25)

    with pytest.raises(DataError, match="only class 'normal'"):
        classification_report(np.array([3, 3, 3]), probabilities, CLASS_NAMES)
