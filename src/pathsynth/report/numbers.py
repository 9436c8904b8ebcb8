"""Numbers on their way to the page: nothing that is not a finite number is ever shown as one."""

from __future__ import annotations

import math
from typing import Any

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


def p_value(value: Any) -> str:
    """A p-value, in scientific notation below 0.001; ``n/a`` when not finite."""
    number = finite(value)
    if number is None:
        return NOT_AVAILABLE
    return f"{number:.1e}" if number < 1e-3 else f"{number:.3f}"


def interval(summary: Any, as_percent: bool = True) -> str:
    """A summary dict ``{"mean", "low", "high"}`` as ``mean [low, high]``; ``n/a`` when absent."""
    if not isinstance(summary, dict) or finite(summary.get("mean")) is None:
        return NOT_AVAILABLE
    show = percent if as_percent else fmt
    low, high = summary.get("low"), summary.get("high")
    if finite(low) is None or finite(high) is None:
        return show(summary["mean"])
    return f"{show(summary['mean'])} [{show(low)}, {show(high)}]"


def sanitise(value: Any) -> Any:
    """A JSON-able copy with every NaN or infinity replaced by ``None`` (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(key): sanitise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [sanitise(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
