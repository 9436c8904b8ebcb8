"""Wall times as a reader takes them in at once: ``93.2 s``, ``12.5 min``, ``8.5 h``."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``seconds`` in seconds below 2 minutes, in minutes below 2 hours, else in hours."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
