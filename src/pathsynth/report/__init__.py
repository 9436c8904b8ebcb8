"""Report: one self-contained HTML page of a run, its figures as PNG and SVG, and every number as JSON."""

from pathsynth.report.build import write_report

__all__ = ["write_report"]
