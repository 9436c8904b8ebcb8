"""Numbers on their way to the page: nothing that is not a finite number is ever shown as one."""

from __future__ import annotations

import math
from typing import Any

from pathsynth import timing
from pathsynth.config import sanitise

__all__ = [
    "NOT_AVAILABLE",
    "duration",
    "finite",
    "fmt",
    "interval",
    "p_value",
    "percent",
    "points",
    "sanitise",
]

NOT_AVAILABLE = "n/a"


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (bools excluded), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``n/a`` for None, NaN, infinities and non-numbers."""
    number = finite(value)
    if number is None:
        return NOT_AVAILABLE
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{number:.{digits}f}"


def percent(value: Any, digits: int = 1) -> str:
    """A proportion in [0, 1] as a percentage (``0.965`` -> ``96.5%``); ``n/a`` when not finite."""
    number = finite(value)
    return NOT_AVAILABLE if number is None else f"{100.0 * number:.{digits}f}%"


def points(value: Any, digits: int = 1) -> str:
    """A difference of proportions in signed percentage points (``0.012`` -> ``+1.2 pp``);
    ``n/a`` when not finite."""
    number = finite(value)
    return NOT_AVAILABLE if number is None else f"{100.0 * number:+.{digits}f} pp"


def p_value(value: Any) -> str:
    """A p-value, in scientific notation below 0.001; ``n/a`` when not finite."""
    number = finite(value)
    if number is None:
        return NOT_AVAILABLE
    return f"{number:.1e}" if number < 1e-3 else f"{number:.3f}"


WILCOXON_MIN_PAIRS = 6  # the exact two-sided test's smallest p is 2 / 2**n: 0.031 at n = 6


def wilcoxon_p(value: Any, pairs: int) -> str:
    """The Wilcoxon signed-rank p of ``pairs`` paired differences, where it could mean
    something: below :data:`WILCOXON_MIN_PAIRS` pairs the exact test's smallest p is
    ``2 / 2**n`` (0.25 at 3 seeds), above 0.05 whatever the differences, so the cell says
    ``n/a (n < 6)`` rather than a number that reads as evidence (``results.json`` keeps the
    computed value)."""
    if pairs < WILCOXON_MIN_PAIRS:
        return f"{NOT_AVAILABLE} (n < {WILCOXON_MIN_PAIRS})"
    return p_value(value)


def interval(summary: Any, as_percent: bool = True) -> str:
    """A mean with its interval (a :class:`~pathsynth.metrics.aggregate.MeanInterval`) as
    ``mean [low, high]``; ``n/a`` when absent."""
    if summary is None or finite(getattr(summary, "mean", None)) is None:
        return NOT_AVAILABLE
    show = percent if as_percent else fmt
    if finite(summary.low) is None or finite(summary.high) is None:
        return show(summary.mean)
    return f"{show(summary.mean)} [{show(summary.low)}, {show(summary.high)}]"


def duration(seconds: Any) -> str:
    """A wall time in the unit a reader takes in at once (:func:`pathsynth.timing.duration`);
    ``n/a`` when not a finite number."""
    number = finite(seconds)
    return NOT_AVAILABLE if number is None else timing.duration(number)
