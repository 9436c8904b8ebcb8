"""Write the experiment's report: one HTML page, its figures as PNG and SVG, and ``report.json``.

The input is the results JSON of a run (its schema is documented by the example builder in
``tests/report/test_report.py``). Every section but the file itself is optional: a missing or null
section is named on the page as not part of this run. No NaN or None ever reaches the page as a
number: :mod:`pathsynth.report.numbers` renders them ``n/a``, and ``report.json`` holds them as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pathsynth.errors import DataError
from pathsynth.report import figures
from pathsynth.report.figures import SavedFigure, save_figure
from pathsynth.report.numbers import (
    NOT_AVAILABLE,
    finite,
    fmt,
    interval,
    p_value,
    percent,
    sanitise,
)

REPORT_NAME = "report.html"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")  # columns of the table
PAPER_REFERENCE = {  # Berezsky et al. 2019: CNN accuracy, image-level 7:3 split after expansion
    "histology": {"original": 0.84, "synthetic": 0.965},
    "cytology": {"original": 0.75, "synthetic": 0.955},
}


def write_report(results_json: Path, out_dir: Path) -> Path:
    """Write the report of one run.

    Args:
        results_json: the run's results file; example files it names (``examples``) and the GAN
            statistics (``gan.stats_jsonl``) are read relative to its folder unless absolute.
        out_dir: folder for ``report.html``, ``report.json`` and ``figures/`` (created).

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: the results file is missing, is not JSON, or is not a JSON object.
    """
    results = _read_results(Path(results_json))
    base = Path(results_json).parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[SavedFigure] = []

    def keep(figure: Any, name: str) -> SavedFigure | None:
        if figure is None:
            return None
        item = save_figure(figure, out_dir, name)
        saved.append(item)
        return item

    experiment = _section(results, "experiment")
    modality = str(experiment.get("modality", ""))
    conditions = _section(results, "conditions")
    examples = _section(results, "examples")
    gan = results.get("gan") if isinstance(results.get("gan"), Mapping) else None

    affine_figure = None
    affine = _load_npz(base, examples.get("affine"))
    if affine is not None and {"originals", "children"} <= set(affine):
        affine_figure = keep(figures.affine_grid(affine["originals"], affine["children"]), "affine")
    class_figures = []
    pairs = _load_npz(base, examples.get("real_vs_synthetic"))
    if pairs is not None:
        for name in _pair_classes(pairs, experiment.get("classes")):
            drawn = figures.real_vs_synthetic_grid(
                name, pairs[f"real_{name}"], pairs[f"synthetic_{name}"]
            )
            item = keep(drawn, f"real_vs_synthetic_{name}")
            if item is not None:
                class_figures.append({"class_name": name, "figure": item})

    gan_figure, gan_note = None, "No GAN was trained in this run."
    if gan is not None:
        records, gan_note = _read_jsonl(base, gan.get("stats_jsonl"))
        gan_figure = keep(figures.gan_curves(records), "gan_training") if records else None

    condition_views = []
    for key, condition in conditions.items():
        if not isinstance(condition, Mapping):
            continue
        per_seed = [run for run in condition.get("per_seed") or [] if isinstance(run, Mapping)]
        curves = keep(figures.classifier_curves(key, per_seed), f"classifier_{key}")
        roc_run = next((run for run in per_seed if isinstance(run.get("roc"), Mapping)), None)
        roc = keep(figures.roc_figure(key, roc_run), f"roc_{key}") if roc_run else None
        condition_views.append(_condition_view(key, condition, per_seed, modality, results))
        condition_views[-1].update({"curves": curves, "roc": roc})

    context = {
        "experiment": experiment,
        "modality": modality,
        "data": _section(results, "data"),
        "stages": [s for s in results.get("stages") or [] if isinstance(s, Mapping)],
        "stages_total": _total_seconds(results.get("stages")),
        "conditions": condition_views,
        "comparisons": [c for c in results.get("comparisons") or [] if isinstance(c, Mapping)],
        "paper": _paper_reference(results),
        "quality": results.get("synthesis_quality")
        if isinstance(results.get("synthesis_quality"), Mapping)
        else None,
        "memorisation": results.get("memorisation")
        if isinstance(results.get("memorisation"), Mapping)
        else None,
        "gan": gan,
        "gan_figure": gan_figure,
        "gan_note": gan_note,
        "configs": {
            key: json.dumps(sanitise(value), indent=2, sort_keys=True)
            for key, value in _section(results, "configs").items()
            if value is not None
        },
        "affine_figure": affine_figure,
        "class_figures": class_figures,
        "metrics": METRICS,
    }
    html = _environment().get_template("report.html.jinja").render(**context)
    page = out_dir / REPORT_NAME
    page.write_text(html, encoding="utf-8")
    summary = {
        "results": sanitise(results),
        "figures": {item.name: {"png": item.png, "svg": item.svg} for item in saved},
        "report": REPORT_NAME,
    }
    (out_dir / "report.json").write_text(
        json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8"
    )
    return page


def _read_results(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"cannot read results file {path} ({error.strerror})") from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"results file {path} is not JSON ({error.msg}, line {error.lineno})"
        ) from None
    if not isinstance(results, dict):
        raise DataError(f"results file {path} holds a {type(results).__name__}, not an object")
    return results


def _section(results: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = results.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _resolve(base: Path, name: Any) -> Path | None:
    if not isinstance(name, str) or not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else base / path


def _load_npz(base: Path, name: Any) -> dict[str, np.ndarray] | None:
    path = _resolve(base, name)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: np.asarray(archive[key]) for key in archive.files}
    except (OSError, ValueError):
        return None


def _pair_classes(pairs: Mapping[str, np.ndarray], classes: Any) -> list[str]:
    found = [key.removeprefix("real_") for key in pairs if key.startswith("real_")]
    found = [name for name in found if f"synthetic_{name}" in pairs]
    order = [str(c) for c in classes] if isinstance(classes, list) else []
    return [c for c in order if c in found] + sorted(c for c in found if c not in order)


def _read_jsonl(base: Path, name: Any) -> tuple[list[dict[str, Any]], str]:
    path = _resolve(base, name)
    if path is None:
        return [], "The run names no GAN statistics file."
    if not path.is_file():
        return [], f"GAN statistics file {name} is not there."
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        if isinstance(record, dict):
            records.append(record)
    note = "" if records else f"GAN statistics file {name} holds no records."
    return records, note


def _total_seconds(stages: Any) -> float | None:
    if not isinstance(stages, list):
        return None
    values = [finite(s.get("seconds")) for s in stages if isinstance(s, Mapping)]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _paper_reference(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    given = results.get("paper_reference")
    return dict(given) if isinstance(given, Mapping) and given else PAPER_REFERENCE


def _condition_view(
    key: str,
    condition: Mapping[str, Any],
    per_seed: list[Mapping[str, Any]],
    modality: str,
    results: Mapping[str, Any],
) -> dict[str, Any]:
    summary = condition.get("summary") if isinstance(condition.get("summary"), Mapping) else {}
    assert isinstance(summary, Mapping)
    train_on = str(condition.get("train_on", key.split("/")[-1]))
    paper = _paper_reference(results).get(modality, {})
    cells = {}
    for metric in METRICS:
        value = summary.get(metric)
        cells[metric] = interval(value, as_percent=metric != "macro_auc")
    seeds = [
        {
            "seed": run.get("seed", NOT_AVAILABLE),
            "accuracy": percent(run.get("accuracy")),
            "balanced_accuracy": percent(run.get("balanced_accuracy")),
            "macro_f1": percent(run.get("macro_f1")),
            "macro_auc": fmt(run.get("macro_auc")),
            "confusion_matrix": run.get("confusion_matrix"),
        }
        for run in per_seed
    ]
    accuracy = summary.get("accuracy") if isinstance(summary.get("accuracy"), Mapping) else None
    return {
        "key": key,
        "protocol": condition.get("protocol", key.split("/")[0]),
        "train_on": train_on,
        "train_images": fmt(condition.get("train_images")),
        "n": fmt(accuracy.get("n")) if accuracy else fmt(len(per_seed) or None),
        "cells": cells,
        "paper": percent(paper.get(train_on)) if train_on in paper else "",
        "seeds": seeds,
    }


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("pathsynth.report", "templates"),
        autoescape=select_autoescape(["html", "jinja"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        {"num": fmt, "percent": percent, "p_value": p_value, "interval": interval, "value": _value}
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
