"""Proportions with confidence intervals and agreement between raters, for the visual Turing test.

Plain Python on counts: no tensors, no network, so the CLI and the web app compute the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``total`` with its Wilson score interval.

    Attributes:
        successes, total: the counts.
        value: ``successes / total`` (NaN when ``total`` is 0).
        low, high: the interval's ends (NaN when ``total`` is 0).
    """

    successes: int
    total: int
    value: float
    low: float
    high: float


def wilson(successes: int, total: int, z: float = Z_95) -> Proportion:
    """A proportion and its Wilson score interval (95% by default).

    The Wilson interval keeps inside [0, 1] and stays honest for small counts and proportions near
    0 or 1, where the normal (Wald) interval collapses.

    Raises:
        ValueError: negative counts or more successes than trials.
    """
    if successes < 0 or total < 0 or successes > total:
        raise ValueError(f"cannot have {successes} successes out of {total}")
    if total == 0:
        return Proportion(0, 0, math.nan, math.nan, math.nan)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Proportion(successes, total, p, max(0.0, centre - half), min(1.0, centre + half))


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa for items each rated by the same number of raters.

    Args:
        counts: one row per item, one column per category: how many raters put the item in it.

    Returns:
        Kappa; NaN when chance agreement is complete (every rating in one category).

    Raises:
        ValueError: no items, fewer than two raters per item, or rows with different totals.
    """
    if not counts:
        raise ValueError("Fleiss' kappa needs at least one item")
    raters = sum(counts[0])
    if raters < 2:
        raise ValueError("Fleiss' kappa needs at least two raters per item")
    if any(sum(row) != raters for row in counts):
        raise ValueError("every item must be rated by the same number of raters")
    items = len(counts)
    categories = len(counts[0])
    p_category = [sum(row[j] for row in counts) / (items * raters) for j in range(categories)]
    p_items = [(sum(n * n for n in row) - raters) / (raters * (raters - 1)) for row in counts]
    observed = sum(p_items) / items
    expected = sum(p * p for p in p_category)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1 - expected)
