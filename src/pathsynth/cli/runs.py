"""``pathsynth runs``: what a workspace holds (experiments, classifier bundles, generator runs)
with headline numbers. It reads files only, never the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace

if TYPE_CHECKING:
    from pathsynth.inventory import Inventory


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
        losses = (  # a GAN has two losses, the other kinds one
            f"{_number(entry.loss_d)} / {_number(entry.loss_g)}"
            if entry.loss_d is not None or entry.loss_g is not None
            else _number(entry.loss)
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
