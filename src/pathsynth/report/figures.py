"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display needed).

Each function takes plain arrays, dicts or schema records and returns a :class:`~matplotlib.figure.Figure`, or
``None`` when there is nothing to draw; :func:`save_figure` writes it as PNG and SVG.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pathsynth.records.schema import SeedResult
from pathsynth.report.numbers import finite, fmt

MAX_GRID_ROWS = 6  # originals shown in the affine grid
MAX_GRID_COLUMNS = 8  # children (or images per row) shown
PNG_DPI = 110
SOURCE_BLOCK = (2, 4)  # rows, columns of images per class and source in the real-vs-generated grid


@dataclass(frozen=True)
class SavedFigure:
    """A figure written next to the report.

    Attributes:
        name: file stem, also the figure's key in ``report.json``.
        png: path of the PNG relative to the report folder.
        svg: path of the SVG relative to the report folder.
        png_base64: the PNG's bytes in base64, for embedding in the page.
    """

    name: str
    png: str
    svg: str
    png_base64: str


def slug(text: str) -> str:
    """``text`` reduced to a safe file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "figure"


def save_figure(figure: Figure, out_dir: Path, name: str) -> SavedFigure:
    """Write ``figure`` as ``figures/<name>.png`` and ``.svg`` under ``out_dir``.

    Args:
        figure: the figure.
        out_dir: the report folder.
        name: file stem (made safe with :func:`slug`).

    Returns:
        Where the files are, and the PNG in base64.
    """
    name = slug(name)
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight")
    (folder / f"{name}.png").write_bytes(buffer.getvalue())
    figure.savefig(folder / f"{name}.svg", format="svg", bbox_inches="tight")
    return SavedFigure(
        name=name,
        png=f"figures/{name}.png",
        svg=f"figures/{name}.svg",
        png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"),
    )


def image_grid(
    rows: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    column_labels: Sequence[str] | None = None,
    title: str = "",
) -> Figure | None:
    """Images in a grid, one labelled row per sequence (empty cells where a row is shorter).

    Args:
        rows: per row, ``uint8`` (H, W, 3) images.
        row_labels: a label per row.
        column_labels: a title per column (optional).
        title: the figure's title.

    Returns:
        The figure, or ``None`` when there are no images.
    """
    columns = max((len(row) for row in rows), default=0)
    if columns == 0:
        return None
    cell = 1.35
    figure = Figure(figsize=(cell * columns + 0.8, cell * len(rows) + (0.6 if title else 0.2)))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(columns):
            ax: Axes = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                ax.imshow(np.asarray(row[c]), interpolation="nearest")
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
            if r == 0 and column_labels is not None and c < len(column_labels):
                ax.set_title(column_labels[c], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.subplots_adjust(wspace=0.04, hspace=0.08)
    return figure


def affine_grid(originals: np.ndarray, children: np.ndarray) -> Figure | None:
    """Each original followed by its affine children (the paper's figure of transformed images).

    Args:
        originals: ``uint8`` (N, H, W, 3).
        children: ``uint8`` (N, K, H, W, 3).
    """
    count = min(len(originals), len(children), MAX_GRID_ROWS)
    per_row = min(children.shape[1] if children.ndim == 5 else 0, MAX_GRID_COLUMNS - 1)
    rows = [[originals[i], *children[i][:per_row]] for i in range(count)]
    labels = [f"image {i + 1}" for i in range(count)]
    columns = ["original", *[f"transform {k + 1}" for k in range(per_row)]]
    return image_grid(rows, labels, columns, "Affine expansion: shift, zoom, rotation, reflection")


def real_vs_generated_grid(
    class_names: Sequence[str],
    sources: Sequence[str],
    images: Mapping[str, Mapping[str, np.ndarray]],
    block: tuple[int, int] = SOURCE_BLOCK,
) -> Figure | None:
    """Per class a row block, per source a column block: the real training images beside each
    generator's images of the same class (empty cells where a source has fewer).

    Args:
        class_names: the classes, top to bottom.
        sources: the sources, left to right (``real`` first, then each generator kind).
        images: ``images[class_name][source]``: ``uint8`` (M, H, W, 3); a missing entry leaves
            its block empty.
        block: rows and columns of images in each block (the first ``rows x columns`` shown).

    Returns:
        The figure, or ``None`` when there is no class, no source or no image at all.
    """
    rows, columns = block
    shown = rows * columns
    if (
        not class_names
        or not sources
        or not any(
            len(images.get(name, {}).get(source, ())) for name in class_names for source in sources
        )
    ):
        return None
    cell = 0.62
    figure = Figure(
        figsize=(cell * columns * len(sources) + 1.0, cell * rows * len(class_names) + 0.9)
    )
    outer = figure.add_gridspec(
        len(class_names), len(sources), wspace=0.08, hspace=0.1, left=0.06, right=0.99,
        top=1 - 0.55 / figure.get_figheight(), bottom=0.01,
    )  # fmt: skip
    for r, name in enumerate(class_names):
        for s, source in enumerate(sources):
            pictures = list(images.get(name, {}).get(source, ()))[:shown]
            inner = outer[r, s].subgridspec(rows, columns, wspace=0.03, hspace=0.03)
            for k in range(shown):
                ax: Axes = figure.add_subplot(inner[k // columns, k % columns])
                ax.set_axis_off()
                if k < len(pictures):
                    ax.imshow(np.asarray(pictures[k]), interpolation="nearest")
            box = outer[r, s].get_position(figure)
            if r == 0:
                label = "real (training fold)" if source == "real" else source
                figure.text((box.x0 + box.x1) / 2, box.y1 + 0.01, label, ha="center",
                            va="bottom", fontsize=9, fontweight="bold")  # fmt: skip
            if s == 0:
                figure.text(box.x0 - 0.008, (box.y0 + box.y1) / 2, name, ha="right",
                            va="center", rotation=90, fontsize=8)  # fmt: skip
    figure.suptitle("Real training images and each generator's, per class", fontsize=10)
    return figure


def _series(records: Sequence[Mapping[str, Any]], x_key: str, y_key: str) -> tuple[list, list]:
    xs, ys = [], []
    for record in records:
        x, y = finite(record.get(x_key)), finite(record.get(y_key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def gan_curves(records: Sequence[Mapping[str, Any]]) -> Figure | None:
    """GAN training statistics against the step: losses together, other numbers each apart,
    two panels a row.

    Args:
        records: JSONL lines as dicts, each with ``step`` and numbers such as ``loss_d``,
            ``loss_g``, ``ada_p``, ``quality``; non-finite values are skipped.

    Returns:
        The figure, or ``None`` when no record has a step and a number.
    """
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key != "step" and key not in keys and finite(value) is not None:
                keys.append(key)
    losses = [key for key in keys if key.startswith("loss")]
    others = [key for key in keys if not key.startswith("loss")][:4]
    panels = ([losses] if losses else []) + [[key] for key in others]
    if not panels:
        return None
    # two panels a row, each as wide as half the page: a row of five was unreadable at page size
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.0 * rows + 0.4))
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, panel in zip(axes, panels, strict=False):
        for key in panel:
            xs, ys = _series(records, "step", key)
            ax.plot(xs, ys, label=key, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_title(", ".join(panel), fontsize=9)
        ax.grid(alpha=0.3)
        if len(panel) > 1:
            ax.legend(fontsize=8)
    figure.suptitle("GAN training", fontsize=10)
    figure.tight_layout()
    return figure


def classifier_curves(condition: str, per_seed: Sequence[SeedResult]) -> Figure | None:
    """One condition's training curves over epochs, every seed: losses and validation accuracy.

    Args:
        condition: shown in the title.
        per_seed: the condition's per-seed results.
    """
    figure = Figure(figsize=(9.0, 3.2))
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    drew = False
    for index, run in enumerate(per_seed):
        colour = f"C{index % 10}"
        for key, values, ax, style in (
            ("train loss", run.curves.train_loss, loss_ax, "-"),
            ("val loss", run.curves.val_loss, loss_ax, "--"),
            ("val balanced accuracy", run.curves.val_balanced_accuracy, accuracy_ax, "-"),
        ):
            pairs = [
                (e, v)
                for e, v in zip(run.curves.epoch, values, strict=False)
                if finite(v) is not None
            ]
            if pairs:
                drew = True
                label = f"seed {run.seed} {key}"
                ax.plot(*zip(*pairs, strict=True), style, color=colour, linewidth=1.1, label=label)
    if not drew:
        return None
    loss_ax.set_title("loss (solid train, dashed validation)", fontsize=9)
    accuracy_ax.set_title("validation balanced accuracy", fontsize=9)
    for ax in (loss_ax, accuracy_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    accuracy_ax.legend(fontsize=6)
    figure.suptitle(f"Classifier training: {condition}", fontsize=10)
    figure.tight_layout()
    return figure


def roc_figure(condition: str, run: SeedResult) -> Figure | None:
    """One-vs-rest ROC curves of one seed of one condition: per class plus micro and macro.

    Args:
        condition: shown in the title.
        run: a per-seed result; its ``roc`` holds one curve per class plus ``micro`` and
            ``macro`` (``None`` where undefined).
    """
    figure = Figure(figsize=(4.8, 4.4))
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8, linestyle=":")
    styles = {"micro": ("k", "--"), "macro": ("0.35", "-.")}
    drew = False
    classes = [key for key in run.roc if key not in styles]
    for index, key in enumerate([*classes, *[k for k in styles if k in run.roc]]):
        curve = run.roc[key]
        if curve is None or not curve.fpr:
            continue
        drew = True
        colour, style = styles.get(key, (f"C{index % 10}", "-"))
        label = f"{key} (AUC {fmt(curve.auc)})"
        ax.plot(curve.fpr, curve.tpr, style, color=colour, linewidth=1.3, label=label)
    if not drew:
        return None
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC: {condition} (seed {run.seed})", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure
