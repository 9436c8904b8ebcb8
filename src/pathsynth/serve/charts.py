"""Small horizontal bar charts as inline SVG (no script, no inline style: the page's content
security policy allows neither)."""

from __future__ import annotations

from dataclasses import dataclass

ROW_HEIGHT = 22
LABEL_WIDTH = 150
BAR_WIDTH = 260
COLOURS = {"real": "#2f6f9f", "affine": "#8aa936", "synthetic": "#c0504d"}


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value, width in pixels, y position and fill colour."""

    label: str
    value: int
    width: float
    y: int
    colour: str


@dataclass(frozen=True)
class BarChart:
    """What the ``bar_chart`` template macro draws."""

    title: str
    bars: list[Bar]
    height: int
    label_width: int = LABEL_WIDTH
    bar_width: int = BAR_WIDTH


def bar_chart(title: str, values: dict[str, int], colour: str = "#2f6f9f") -> BarChart:
    """Bars for ``values`` (label -> count), longest for the largest count; origins keep their
    own colours."""
    top = max(values.values(), default=0) or 1
    bars = [
        Bar(label, count, BAR_WIDTH * count / top, i * ROW_HEIGHT, COLOURS.get(label, colour))
        for i, (label, count) in enumerate(values.items())
    ]
    return BarChart(title, bars, max(1, len(bars)) * ROW_HEIGHT)
