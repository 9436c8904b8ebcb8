"""Wilson intervals and Fleiss' kappa against references."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from pathsynth.metrics.agreement import fleiss_kappa, wilson

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters,
# 5 categories; P-bar = 0.378, P-bar-e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]  # fmt: skip


def test_fleiss_kappa_matches_the_published_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_is_one_for_perfect_agreement_and_refuses_uneven_rows():
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only: chance is everything
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 0], [1, 2]])
    with pytest.raises(ValueError, match="two raters"):
        fleiss_kappa([[1, 0]])


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (17, 40), (1, 1), (250, 500)])
def test_wilson_interval_matches_scipy(k, n):
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    p = wilson(k, n)
    assert p.value == pytest.approx(k / n)
    assert (p.low, p.high) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_wilson_of_nothing_is_nan_and_impossible_counts_are_refused():
    assert math.isnan(wilson(0, 0).value)
    with pytest.raises(ValueError, match="3 successes out of 2"):
        wilson(3, 2)
