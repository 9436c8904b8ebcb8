"""Write the experiment's report: one HTML page, its figures as PNG and SVG, and ``report.json``.

The input is a run's ``results.json``, read through the typed schema of
:mod:`pathsynth.records.schema`; the template receives the schema's records and renders under
``StrictUndefined``, so a field it names that the schema lacks fails at once. Optional sections
(no generator, no synthesis quality) are named on the page as not part of this run. No NaN or None
ever reaches the page as a number: :mod:`pathsynth.report.numbers` renders them ``n/a``, and
``report.json`` holds them as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from pathsynth.config import to_plain
from pathsynth.files import write_text_atomic
from pathsynth.records.conditions import GENERATOR_KINDS, Condition, labelled_condition
from pathsynth.records.schema import (
    SUMMARY_METRICS,
    Comparison,
    ConditionResult,
    GeneratorCost,
    Memorisation,
    Results,
    SynthesisQuality,
    read_results,
)
from pathsynth.report import figures
from pathsynth.report.figures import SavedFigure, save_figure
from pathsynth.report.numbers import (
    NOT_AVAILABLE,
    duration,
    fmt,
    interval,
    p_value,
    percent,
    points,
    sanitise,
    wilcoxon_p,
)
from pathsynth.report.summary import summarise

REPORT_NAME = "report.html"


@dataclass
class ConditionView:
    """One row of the accuracy table with its figures."""

    key: str
    condition: ConditionResult
    cells: dict[str, str]
    paper: str
    curves: SavedFigure | None
    roc: SavedFigure | None


@dataclass
class Downstream:
    """One condition that trains on a generator's images, under the honest protocol: its
    balanced accuracy on the held-out real images and its paired differences (b - a, by seed)
    against the conditions it is compared with (``original``, ``affine``, the unselected one)."""

    condition: str
    balanced_accuracy: str
    against: list[Comparison]


@dataclass
class GeneratorView:
    """One generator of this run in the comparison table: its quality and memorisation on the
    real training fold, what training and sampling it cost (``None`` where not measured) and
    the downstream honest result of every condition that adds its images."""

    kind: str
    quality: SynthesisQuality | None
    memorisation: Memorisation | None
    cost: GeneratorCost | None
    downstream: list[Downstream]


class _Figures:
    """The figures of one report, saved as they are drawn."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.saved: list[SavedFigure] = []

    def keep(self, figure: Figure | None, name: str) -> SavedFigure | None:
        if figure is None:
            return None
        item = save_figure(figure, self.out_dir, name)
        self.saved.append(item)
        return item


def write_report(results_json: Path, out_dir: Path) -> Path:
    """Write the report of one run.

    Args:
        results_json: the run's results file; example files and the generator statistics it
            names are read relative to its folder unless absolute.
        out_dir: folder for ``report.html``, ``report.json`` and ``figures/`` (created).

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: what :func:`~pathsynth.records.schema.read_results` refuses.
    """
    results = read_results(Path(results_json))
    base = Path(results_json).parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = _Figures(out_dir)
    context = {
        "results": results,
        "summary": summarise(results),
        "conditions": _condition_views(results, results.conditions, drawn),
        "external": _condition_views(results, results.external, drawn, "external_"),
        **_example_figures(results, base, drawn),
        **_generator_figure(results, base, drawn),
        "generator_views": _generator_views(results),
        "stages_total": sum(s.seconds for s in results.stages if s.seconds is not None),
        **_configs(results.configs),
        "metrics": SUMMARY_METRICS,
    }
    html = _environment().get_template("report.html.jinja").render(**context)
    page = out_dir / REPORT_NAME
    write_text_atomic(page, html)
    summary = {
        "results": sanitise(to_plain(results)),
        "figures": {item.name: {"png": item.png, "svg": item.svg} for item in drawn.saved},
        "report": REPORT_NAME,
    }
    write_text_atomic(out_dir / "report.json", json.dumps(summary, indent=2, allow_nan=False))
    return page


def _configs(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The appendix's configuration blocks: those the run used, as JSON, and the names of those
    it did not use (a generator no condition trained on, selection switched off, affine
    expansion nothing needed), which ``results.json`` keeps in full."""
    run = configs.get("experiment", {})
    conditions = [Condition.of(str(c)) for c in run.get("conditions", [])]
    generated = any(c.generator is not None for c in conditions)
    kind = run.get("generator")
    trained = GENERATOR_KINDS if kind == "both" else (kind,)
    unused = {
        **{each: not generated or each not in trained for each in GENERATOR_KINDS},
        "selection": not configs.get("selection", {}).get("enabled", True),
        "affine": not generated and not any("affine" in c.origins for c in conditions),
    }
    return {
        "configs": {
            key: json.dumps(sanitise(value), indent=2, sort_keys=True)
            for key, value in configs.items()
            if not unused.get(key, False)
        },
        "unused_configs": [key for key in configs if unused.get(key, False)],
    }


def _condition_views(
    results: Results, conditions: dict[str, ConditionResult], drawn: _Figures, prefix: str = ""
) -> list[ConditionView]:
    """One table row per condition, with its training curves and ROC figure (figure names start
    with ``prefix``; the external test set's rows draw no training curves, they are the same)."""
    paper = results.paper_reference.get(results.experiment.modality, {})
    views = []
    for key, condition in conditions.items():
        cells = {
            metric: interval(condition.summary.get(metric), as_percent=metric != "macro_auc")
            for metric in SUMMARY_METRICS
        }
        curves = None
        if not prefix:
            drawing = figures.classifier_curves(key, condition.per_seed)
            curves = drawn.keep(drawing, f"classifier_{key}")
        roc = (
            drawn.keep(figures.roc_figure(key, condition.per_seed[0]), f"{prefix}roc_{key}")
            if condition.per_seed
            else None
        )
        reference = percent(paper[condition.train_on]) if condition.train_on in paper else ""
        views.append(ConditionView(key, condition, cells, reference, curves, roc))
    return views


def _example_figures(results: Results, base: Path, drawn: _Figures) -> dict[str, Any]:
    affine_figure = None
    affine = _load_npz(base, results.examples.affine)
    if affine is not None and {"originals", "children"} <= set(affine):
        drawing = figures.affine_grid(affine["originals"], affine["children"])
        affine_figure = drawn.keep(drawing, "affine")
    examples = _load_npz(base, results.examples.real_vs_synthetic)
    generated_figure = None
    if examples is not None:
        sources, classes = _example_sources(examples, results.experiment.classes)
        images = {name: {s: examples[f"{s}_{name}"] for s in sources} for name in classes}
        drawing = figures.real_vs_generated_grid(classes, sources, images)
        generated_figure = drawn.keep(drawing, "real_vs_generated")
    return {"affine_figure": affine_figure, "generated_figure": generated_figure}


def _generator_views(results: Results) -> list[GeneratorView]:
    """The run's generators in training order: with several, each one's record of the quality
    stage; with one, the run's synthesis quality and memorisation."""
    measured = results.generator_qualities()
    kinds = list(measured)
    return [
        GeneratorView(kind, quality, memorisation, results.generator_costs.get(kind),
                      _downstream(results, kind, first=kind == kinds[0]))
        for kind, (quality, memorisation) in measured.items()
    ]  # fmt: skip


HONEST = "honest"  # the protocol whose test images no choice has seen: the result that counts


def _downstream(results: Results, kind: str, first: bool) -> list[Downstream]:
    """The honest conditions (every classifier kind) that add ``kind``'s images (``synthetic``
    ones when ``kind`` is the first generator), with their balanced-accuracy comparisons."""
    rows = []
    for key, condition in results.conditions.items():
        protocol, _, label = key.partition("/")
        uses = labelled_condition(label).generator
        if protocol != HONEST or not (uses == kind or (uses == "synthetic" and first)):
            continue
        against = [
            c
            for c in results.comparisons
            if c.protocol == HONEST and c.b == label and c.metric == "balanced_accuracy"
        ]
        accuracy = interval(condition.summary.get("balanced_accuracy"))
        rows.append(Downstream(label, accuracy, against))
    return rows


def _generator_figure(results: Results, base: Path, drawn: _Figures) -> dict[str, Any]:
    if results.generator is None:
        return {"generator_figure": None, "generator_note": "No generator was trained in this run."}
    records, note = _read_jsonl(base, results.generator.stats_jsonl)
    curves = figures.gan_curves(records) if records else None
    return {"generator_figure": drawn.keep(curves, "generator_training"), "generator_note": note}


def _resolve(base: Path, name: str | None) -> Path | None:
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else base / path


def _load_npz(base: Path, name: str | None) -> dict[str, np.ndarray] | None:
    path = _resolve(base, name)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: np.asarray(archive[key]) for key in archive.files}
    except (OSError, ValueError):
        return None


def _example_sources(
    examples: Mapping[str, np.ndarray], order: list[str]
) -> tuple[list[str], list[str]]:
    """The sources of an examples file (its ``sources`` array; ``real`` and ``synthetic`` in a
    file written before it had one) and the classes every source holds, in ``order`` first."""
    if "sources" in examples:
        sources = [str(source) for source in examples["sources"]]
    else:
        sources = ["real", "synthetic"]
    found = [key.removeprefix("real_") for key in examples if key.startswith("real_")]
    found = [name for name in found if all(f"{s}_{name}" in examples for s in sources)]
    return sources, [c for c in order if c in found] + sorted(c for c in found if c not in order)


def _read_jsonl(base: Path, name: str) -> tuple[list[dict[str, Any]], str]:
    path = _resolve(base, name)
    if path is None or not path.is_file():
        return [], f"Generator statistics file {name} is not there."
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        if isinstance(record, dict):
            records.append(record)
    note = "" if records else f"Generator statistics file {name} holds no records."
    return records, note


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("pathsynth.report", "templates"),
        autoescape=select_autoescape(["html", "jinja"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        {
            "num": fmt,
            "percent": percent,
            "points": points,
            "p_value": p_value,
            "wilcoxon_p": wilcoxon_p,
            "interval": interval,
            "value": _value,
            "duration": duration,
        }
    )
    return environment


def _value(value: Any) -> str:
    """Any table cell: numbers through :func:`fmt`, text as it is, nothing as ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping | list):
        return json.dumps(sanitise(value), sort_keys=True)
    return str(value)
