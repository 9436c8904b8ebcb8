"""Summaries over repeated runs: mean with a t confidence interval, and a paired comparison.

Each condition of an experiment (original, affine, synthetic, ...) is trained and tested once per
seed; for one seed every condition sees the same split, so two conditions are compared as *paired*
samples (one difference per seed), which removes the split-to-split variation they share.

The paired test: a paired t-test is the primary one and the Wilcoxon signed-rank test is reported
beside it. With the default 5 seeds the Wilcoxon test cannot reach p < 0.05 at all (its smallest
two-sided p with n=5 is 2/2^5 = 0.0625), so on its own it would never call a difference; the t-test
assumes roughly normal differences, which is reasonable for accuracies away from 0 and 1, and the
Wilcoxon p-value shows whether that assumption carries the conclusion (from about 6 seeds on).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pathsynth.errors import DataError

_EQUAL = 1e-9  # differences closer than this are rounding noise (metrics live in [0, 1])


@dataclass
class MeanInterval:
    """Mean of repeated measurements with a two-sided t confidence interval.

    Args:
        mean: sample mean.
        std: sample standard deviation (ddof=1); ``None`` for a single value.
        low: lower end of the interval; ``None`` for a single value (no interval exists).
        high: upper end of the interval; ``None`` for a single value.
        n: number of values.
        confidence: the interval's confidence level.
    """

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float


@dataclass
class PairedComparison:
    """Two conditions measured on the same splits (one value per seed, in the same order).

    Args:
        difference: mean and interval of ``b - a`` per seed.
        t_statistic: paired t statistic; ``None`` where undefined (all differences equal, within
            1e-9 of rounding).
        t_p_value: two-sided paired t-test p-value; ``1.0`` when all differences are zero,
            ``None`` when they are equal but not zero (zero variance, the test is undefined).
        wilcoxon_statistic: Wilcoxon signed-rank statistic; ``None`` when all differences are zero.
        wilcoxon_p_value: two-sided Wilcoxon p-value (exact for small n); ``1.0`` when all
            differences are zero.
        n: number of pairs.
    """

    difference: MeanInterval
    t_statistic: float | None
    t_p_value: float | None
    wilcoxon_statistic: float | None
    wilcoxon_p_value: float | None
    n: int


def _as_finite_array(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise DataError(f"{what} must be a non-empty list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return array


def mean_confidence_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> MeanInterval:
    """Mean and two-sided t-distribution confidence interval of repeated measurements.

    Args:
        values: one number per seed.
        confidence: confidence level in (0, 1).

    Returns:
        The mean and interval; the interval and std are ``None`` for a single value.

    Raises:
        DataError: no values, or a NaN / infinite value.
        ValueError: ``confidence`` outside (0, 1) (a programming error).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    array = _as_finite_array(values, "values")
    n = len(array)
    mean = float(array.mean())
    if n == 1:
        return MeanInterval(mean, None, None, None, 1, confidence)
    std = float(array.std(ddof=1))
    from scipy import stats  # here, not at import: the records' readers (web app) skip it

    half_width = float(stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)) * std / math.sqrt(n)
    return MeanInterval(mean, std, mean - half_width, mean + half_width, n, confidence)


def paired_comparison(
    condition_a: Sequence[float] | np.ndarray,
    condition_b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare two conditions evaluated on the same splits: paired t-test and Wilcoxon test.

    Args:
        condition_a: one value per seed (e.g. balanced accuracy trained on originals).
        condition_b: the other condition's value for the same seeds, in the same order.
        confidence: confidence level of the interval on the mean difference ``b - a``.

    Returns:
        The mean difference with its interval and both tests' statistics and p-values.

    Raises:
        DataError: lists of different lengths, fewer than 2 pairs, or NaN / infinite values.
    """
    a = _as_finite_array(condition_a, "condition_a")
    b = _as_finite_array(condition_b, "condition_b")
    if a.shape != b.shape:
        raise DataError(f"paired conditions need one value per seed, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise DataError("a paired comparison needs at least 2 seeds")
    from scipy import stats

    differences = b - a
    interval = mean_confidence_interval(differences, confidence)
    if np.all(np.abs(differences) <= _EQUAL):
        return PairedComparison(interval, None, 1.0, None, 1.0, len(a))
    if np.ptp(differences) <= _EQUAL:
        t_statistic = t_p_value = None
    else:
        t_result = stats.ttest_rel(b, a)
        t_statistic, t_p_value = float(t_result.statistic), float(t_result.pvalue)
    w_result = stats.wilcoxon(differences)
    return PairedComparison(
        difference=interval,
        t_statistic=t_statistic,
        t_p_value=t_p_value,
        wilcoxon_statistic=float(w_result.statistic),
        wilcoxon_p_value=float(w_result.pvalue),
        n=len(a),
    )


def summarise_over_seeds(
    per_seed: Sequence[Mapping[str, float | None]],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, MeanInterval | None]:
    """Mean and interval of every number of a condition's per-seed summaries.

    Args:
        per_seed: one ``{name: value}`` dict per seed, e.g. ``ClassificationReport.summary()``.
        confidence: confidence level of the intervals.
        bounds: the range the numbers can take (``(0, 1)`` for fractions); interval ends beyond
            it, which a t-interval over few seeds can reach, are clipped to it.

    Returns:
        ``{name: interval}``; ``None`` for a name whose value is ``None`` (undefined, such as the
        AUC of an absent class) in any seed, so an undefined number is never averaged away.

    Raises:
        DataError: no seeds, summaries with different names, or a NaN / infinite value.
    """
    if not per_seed:
        raise DataError("no per-seed results to summarise")
    names = list(per_seed[0])
    if any(set(summary) != set(names) for summary in per_seed):
        raise DataError("per-seed summaries report different numbers")
    summary: dict[str, MeanInterval | None] = {}
    for name in names:
        values = [seed_summary[name] for seed_summary in per_seed]
        defined = [value for value in values if value is not None]
        if len(defined) < len(values):
            summary[name] = None
            continue
        interval = mean_confidence_interval(defined, confidence)
        if bounds is not None:
            interval = clipped(interval, bounds)
        summary[name] = interval
    return summary


def clipped(interval: MeanInterval, bounds: tuple[float, float]) -> MeanInterval:
    """``interval`` with its ends clipped to ``bounds``."""
    low, high = bounds
    return dataclasses.replace(
        interval,
        low=None if interval.low is None else min(high, max(low, interval.low)),
        high=None if interval.high is None else min(high, max(low, interval.high)),
    )
