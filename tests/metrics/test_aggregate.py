"""Mean, confidence interval and paired tests over seeds: the arithmetic and the edge cases."""

import math

import numpy as np
import pytest
from scipy import stats

from pathsynth.errors import DataError
from pathsynth.metrics.aggregate import (
    mean_confidence_interval,
    paired_comparison,
    summarise_over_seeds,
)

T_975_DF4 = 2.7764451051977987  # 97.5% quantile of Student's t with 4 degrees of freedom


def test_confidence_interval_is_mean_plus_minus_t_times_standard_error() -> None:
    values = [0.80, 0.82, 0.85, 0.79, 0.84]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)

    interval = mean_confidence_interval(values)

    assert interval.mean == pytest.approx(mean)
    assert interval.std == pytest.approx(std)
    assert interval.low == pytest.approx(mean - T_975_DF4 * std / math.sqrt(5))
    assert interval.high == pytest.approx(mean + T_975_DF4 * std / math.sqrt(5))
    assert interval.n == 5


def test_single_seed_has_a_mean_but_no_interval() -> None:
    interval = mean_confidence_interval([0.9])

    assert interval.mean == 0.9
    assert interval.low is None and interval.high is None and interval.std is None


def test_nan_values_are_refused() -> None:
    with pytest.raises(DataError, match="NaN"):
        mean_confidence_interval([0.8, float("nan")])


def test_paired_comparison_matches_scipy_and_the_difference_interval() -> None:
    original = np.array([0.70, 0.74, 0.68, 0.72, 0.71, 0.69])
    synthetic = np.array([0.75, 0.76, 0.70, 0.78, 0.72, 0.74])

    comparison = paired_comparison(original, synthetic)

    expected_t = stats.ttest_rel(synthetic, original)
    assert comparison.t_statistic == pytest.approx(expected_t.statistic)
    assert comparison.t_p_value == pytest.approx(expected_t.pvalue)
    assert comparison.difference.mean == pytest.approx(float(np.mean(synthetic - original)))
    # All six differences positive: the exact two-sided Wilcoxon p is 2 / 2**6.
    assert comparison.wilcoxon_p_value == pytest.approx(2 / 2**6)
    assert comparison.n == 6


def test_five_seeds_cannot_reach_wilcoxon_significance() -> None:
    comparison = paired_comparison([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0])

    assert comparison.wilcoxon_p_value == pytest.approx(0.0625)


def test_identical_conditions_give_p_one_not_nan() -> None:
    comparison = paired_comparison([0.8, 0.9, 0.7], [0.8, 0.9, 0.7])

    assert comparison.t_p_value == 1.0
    assert comparison.wilcoxon_p_value == 1.0
    assert comparison.difference.mean == 0.0


def test_constant_nonzero_difference_leaves_t_test_undefined() -> None:
    comparison = paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])

    assert comparison.t_statistic is None and comparison.t_p_value is None
    assert comparison.difference.mean == pytest.approx(0.1)


def test_unpaired_lengths_are_refused() -> None:
    with pytest.raises(DataError, match="one value per seed"):
        paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7])


def test_summaries_over_seeds_average_each_number_and_keep_undefined_ones_undefined() -> None:
    per_seed: list[dict[str, float | None]] = [
        {"accuracy": 0.8, "auc[in_situ]": 0.9},
        {"accuracy": 0.9, "auc[in_situ]": None},
        {"accuracy": 0.7, "auc[in_situ]": 0.8},
    ]

    summary = summarise_over_seeds(per_seed)

    accuracy = summary["accuracy"]
    assert accuracy is not None and accuracy.mean == pytest.approx(0.8) and accuracy.n == 3
    assert summary["auc[in_situ]"] is None
