"""``pathsynth predict``: a classifier bundle (or a folder of them) on image files. It does not
import the catalog, so it runs on machines without SQL packages."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pathsynth.cli.app import (
    app,
    console,
    err_console,
    progress_bar,
)
from pathsynth.files import csv_cell, write_text_atomic

if TYPE_CHECKING:
    from pathsynth.classify.predict import FilePredictions


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
