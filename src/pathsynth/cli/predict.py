"""Using what was trained: ``predict`` (a classifier bundle on image files) and ``runs`` (what a
workspace holds). Neither imports the catalog, so both run on machines without SQL packages."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from pathsynth.cli.app import (
    WorkspaceOpt,
    app,
    console,
    err_console,
    progress_bar,
    resolve_workspace,
)
from pathsynth.files import csv_cell, write_text_atomic

if TYPE_CHECKING:
    from pathsynth.classify.predict import FilePredictions
    from pathsynth.inventory import Inventory


@app.command()
def predict(
    bundle: Path = typer.Argument(
        ...,
        help="Classifier bundle (*.bundle) to predict with, or a folder of bundles of one "
        "condition (e.g. classify/honest/original): their probabilities are averaged.",
    ),
    images: list[Path] = typer.Argument(..., help="Image files and/or folders (walked)."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: path, predicted, p_<class>."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
    pixel_size: float | None = typer.Option(
        None,
        "--pixel-size",
        help="Micrometres per pixel of the images; needed when the classifier's inputs are at a "
        "chosen magnification (the bundle says which).",
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Exit 0 even when some images could not be read."
    ),
) -> None:
    """Per-class probabilities for each image (patches averaged per image), as a CSV."""
    from pathsynth.classify.bundle import load_bundles
    from pathsynth.classify.predict import image_files, predict_files
    from pathsynth.devices import resolve_device

    loaded = load_bundles(bundle, resolve_device(device))
    named = image_files(images)
    files = named.found
    with progress_bar() as progress:
        task = progress.add_task(f"predict {len(files)} images", total=len(files))
        result = predict_files(
            loaded,
            files,
            batch_size,
            pixel_size_um=pixel_size,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    result.refused = named.refused + result.refused
    write_text_atomic(out, predictions_csv(result))
    models = f", the mean of {len(loaded)} bundles" if len(loaded) > 1 else ""
    console.print(
        f"wrote {len(result.paths)} predictions ({', '.join(result.class_names)}{models}) to "
        f"{out}; {len(result.refused)} images could not be read"
    )
    for path, reason in result.refused:
        err_console.print(f"[yellow]refused[/yellow] {path}: {reason}", soft_wrap=True)
    if result.refused and not skip_bad:
        raise typer.Exit(1)


def predictions_csv(result: FilePredictions) -> str:
    """The CSV text: ``path``, ``predicted``, then one ``p_<class>`` column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "predicted", *(f"p_{name}" for name in result.class_names)])
    for path, name, row in zip(
        result.paths, result.predicted(), result.probabilities.tolist(), strict=True
    ):
        writer.writerow([csv_cell(str(path)), csv_cell(name), *(f"{p:.6f}" for p in row)])
    return buffer.getvalue()


@app.command()
def runs(workspace: Path | None = WorkspaceOpt) -> None:
    """List the workspace's experiments, classifier bundles and generator runs, with headline numbers."""
    from pathsynth.inventory import workspace_inventory

    root = resolve_workspace(workspace)
    found = workspace_inventory(root)
    if not (found.experiments or found.bundles or found.generator_runs):
        console.print(
            f"nothing in {root} yet: no experiments, classifier bundles or generator runs"
        )
        return
    _print_experiments(found)
    _print_bundles(found)
    _print_generator_runs(found)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_experiments(found: Inventory) -> None:
    if not found.experiments:
        console.print("no experiments")
        return
    table = Table(
        title="experiments (test balanced accuracy, mean over seeds; honest: held-out patients)"
    )
    for column in ("name", "modality", "classes", "progress", "headline"):
        table.add_column(column)
    for entry in found.experiments:
        headline = "\n".join(f"{key} {value:.3f}" for key, value in entry.headline.items())
        problem = f"[red]{entry.problem}[/red]" if entry.problem else ""
        table.add_row(
            entry.name, entry.modality, entry.classes, entry.progress, headline or problem
        )
    console.print(table)


def _print_bundles(found: Inventory) -> None:
    """The bundles with their test metrics, then each bundle's absolute path on a line of its own
    (whole, to paste into ``pathsynth predict``)."""
    if not found.bundles:
        console.print("no classifier bundles")
        return
    table = Table(title="classifier bundles (test metrics)")
    for column in ("#", "experiment", "protocol/condition", "seed", "accuracy", "balanced"):
        table.add_column(column)
    for number, entry in enumerate(found.bundles, 1):
        if entry.problem:
            table.add_row(str(number), f"[red]{entry.problem}[/red]", "", "", "", "")
            continue
        table.add_row(
            str(number),
            entry.experiment or "-",
            f"{entry.protocol}/{entry.condition}",
            "-" if entry.seed is None else str(entry.seed),
            _number(entry.metrics.get("accuracy")),
            _number(entry.metrics.get("balanced_accuracy")),
        )
    console.print(table)
    for number, entry in enumerate(found.bundles, 1):
        console.print(f"{number}: {entry.path.resolve()}", soft_wrap=True, markup=False)


def _print_generator_runs(found: Inventory) -> None:
    if not found.generator_runs:
        console.print("no generator runs")
        return
    table = Table(
        title="Generator runs (best KID: the training signal's features, not the report's)"
    )
    columns = ("run", "kind", "preset", "created", "steps", "loss D / G / loss", "best KID")
    for column in columns:
        table.add_column(column)
    for entry in found.generator_runs:
        if entry.problem:
            table.add_row(entry.name, "", f"[red]{entry.problem}[/red]", "", "", "", "")
            continue
        planned = "?" if entry.steps_planned is None else str(entry.steps_planned)
        losses = (
            _number(entry.loss)
            if entry.kind != "gan"
            else f"{_number(entry.loss_d)} / {_number(entry.loss_g)}"
        )
        table.add_row(
            entry.name,
            entry.kind,
            entry.preset,
            entry.created,
            f"{entry.steps_done}/{planned}",
            losses,
            "-" if entry.best_kid is None else f"{entry.best_kid:.4f}",
        )
    console.print(table)
