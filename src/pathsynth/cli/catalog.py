"""Catalog commands: ``init``, ``ingest``, ``stats``, ``split``, ``export``, ``check``.

The catalog modules are imported inside each command, so ``pathsynth --help`` and the GAN commands
work on machines without SQLAlchemy. Labels, file names and reasons are user data: every one is
passed through :func:`rich.markup.escape` (``esc``) before it is printed, so ``[/x]`` in a label
is shown as written instead of being read as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape as esc
from rich.table import Table

from pathsynth.cli.app import (
    WorkspaceOpt,
    app,
    console,
    err_console,
    progress_bar,
    resolve_workspace,
)

if TYPE_CHECKING:
    from pathsynth.catalog.ingest import IngestReport
    from pathsynth.catalog.workspace import Workspace


def _tell_waiting(holder: str) -> None:
    err_console.print(
        f"[yellow]waiting:[/yellow] another run is writing to this workspace ({esc(holder)}); "
        "this one goes on when it has finished"
    )


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder to create the workspace in."),
    db_url: str | None = typer.Option(
        None,
        "--db-url",
        help="Catalog database URL, e.g. mysql+pymysql://user:pass@host/db or "
        "postgresql+psycopg://...; default: an embedded SQLite file in the workspace.",
    ),
) -> None:
    """Create a workspace: config file, image store and catalog database."""
    from pathsynth.catalog.db import masked_url
    from pathsynth.catalog.workspace import Workspace

    workspace = Workspace.create(directory, db_url)
    shown = esc(masked_url(workspace.db_url))
    console.print(f"workspace {esc(str(directory))} created; catalog at {shown}")
    if workspace.config.db_url is not None and masked_url(workspace.config.db_url) != (
        workspace.config.db_url
    ):
        console.print(
            "[yellow]note:[/yellow] the database password is stored in pathsynth.json (readable "
            "by you only); to keep it out, give it as $PATHSYNTH_DB_PASSWORD instead"
        )


@app.command()
def ingest(
    source: Path = typer.Argument(..., help="Folder of images to ingest."),
    modality: str = typer.Option(..., "--modality", "-m", help="histology or cytology."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels/metadata CSV (default: SOURCE/labels.csv if present)."
    ),
    layout: str = typer.Option(
        "auto", "--layout", help="auto, class-folders, patient-study or csv."
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated labels to accept; others are refused."
    ),
    stain: str | None = typer.Option(None, "--stain", help="Stain (default H&E / Papanicolaou)."),
    magnification: float | None = typer.Option(None, "--magnification", help="Objective, e.g. 20."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Micrometres per pixel."),
    workers: int | None = typer.Option(None, "--workers", help="Decoding processes (0: none)."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Exit 0 even when some images were refused."
    ),
    source_map: Path | None = typer.Option(
        None,
        "--source-map",
        help="CSV to append (source code, source file) to: the only way back from the catalog's "
        "codes to your files; keep it private. Default: none kept.",
    ),
    unlabelled: bool = typer.Option(
        False,
        "--unlabelled",
        help="Images without labels (every image under SOURCE), for `pathsynth pretrain` only: "
        "no split, export or classifier takes them.",
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Ingest a folder of labelled images into the catalog (idempotent: reruns add nothing)."""
    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.sources import Refusal
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    options = IngestOptions(
        modality=modality,
        layout=layout,
        labels_csv=labels,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
        stain=stain,
        magnification=magnification,
        pixel_size_um=pixel_size,
        source_map=source_map,
        unlabelled=unlabelled,
    )
    if workers is not None:
        options.workers = workers

    def show_refusal(refusal: Refusal) -> None:
        err_console.print(f"[yellow]refused[/yellow] {esc(refusal.path)}: {esc(refusal.reason)}")

    with progress_bar() as progress:
        task = progress.add_task(f"ingest {esc(source.name)}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = ingest_source(space, source, options, advance, show_refusal, _tell_waiting)
    _print_ingest_report(str(source), report, skip_bad)


def _print_ingest_report(source: str, report: IngestReport, skip_bad: bool) -> None:
    console.print(f"[bold]ingest of {esc(source)} ({report.layout} layout)[/bold]")
    table = Table()
    table.add_column("class")
    table.add_column("added", justify="right")
    for label in sorted(report.added):
        table.add_row(esc(label) if label else "(unlabelled)", str(report.added[label]))
    table.add_row("[bold]total[/bold]", f"[bold]{report.added_total}[/bold]")
    console.print(table)
    console.print(
        f"added {report.added_total} images in {len(report.added)} classes; "
        f"{report.already_present} already in the catalog; {len(report.refused)} refused"
    )
    if report.orphans_removed:
        console.print(
            f"removed {len(report.orphans_removed)} store files left by an interrupted run"
        )
    for group in report.alike_labels:
        console.print(
            f"[yellow]warning:[/yellow] labels {esc(', '.join(repr(g) for g in group))} differ "
            "only in case or Unicode form: they are separate classes (fix the source if they "
            "are one)",
            soft_wrap=True,
        )
    if report.pixel_sizes_filled:
        console.print(
            f"recorded the pixel size for {report.pixel_sizes_filled} studies ingested earlier "
            "without one"
        )
    if report.refused:
        console.print("[bold]refused[/bold]")
        reasons = Table()
        reasons.add_column("path")
        reasons.add_column("reason")
        for refusal in report.refused:
            reasons.add_row(esc(refusal.path), esc(refusal.reason))
        console.print(reasons)
        if not skip_bad:
            raise typer.Exit(1)


@app.command()
def stats(workspace: Path | None = WorkspaceOpt) -> None:
    """Print image counts per modality, class, origin and split."""
    from pathsynth.catalog.queries import catalog_stats
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    with space.open_catalog() as catalog:
        result = catalog_stats(catalog)
    origins = sorted({origin for _, _, origin in result.images})
    console.print(f"[bold]catalog of {esc(str(space.root))}[/bold]")
    table = Table()
    table.add_column("modality")
    table.add_column("class")
    for origin in origins:
        table.add_column(origin, justify="right")
    for modality, label in sorted({(m, c) for m, c, _ in result.images}):
        counts = [str(result.images.get((modality, label, o), 0)) for o in origins]
        table.add_row(modality, esc(label), *counts)
    console.print(table)
    console.print(
        f"{result.total_images} images in {result.studies} studies; {_patients_line(result.patients)}",
        soft_wrap=True,
    )
    for name, fold_counts in sorted(result.splits.items()):
        _print_split_counts(f"split {esc(name)} (by {result.split_units[name]})", fold_counts)


# What a patient of each key kind is, in words (catalog.sources: patient, group, image;
# the catalog's own: generator)
_PATIENT_KINDS = {
    "patient": "patients named in the labels",
    "group": "patient groups from the labels",
    "image": "images that name no patient (each counted as its own patient)",
}


def _patients_line(counts: dict[str, int]) -> str:
    """How many patients the catalog knows and from what, e.g. ``patients: 11 patient groups
    from the labels (the generated images belong to 1 generator pseudo-patient)``."""
    real = [f"{counts[kind]} {words}" for kind, words in _PATIENT_KINDS.items() if counts.get(kind)]
    real += [
        f"{n} of key kind {kind}"
        for kind, n in sorted(counts.items())
        if kind not in _PATIENT_KINDS and kind != "generator"
    ]
    line = "patients: " + (", ".join(real) if real else "none")
    generators = counts.get("generator", 0)
    if generators:
        line += f" (generated images belong to {generators} generator pseudo-patient(s))"
    return line


def _print_split_counts(title: str, counts: dict[tuple[str, str], int]) -> None:
    folds = [f for f in ("train", "val", "test") if any(k[0] == f for k in counts)]
    console.print(f"[bold]{title}[/bold]")
    table = Table()
    table.add_column("class")
    for fold in folds:
        table.add_column(fold, justify="right")
    for label in sorted({label for _, label in counts}):
        table.add_row(esc(label), *(str(counts.get((fold, label), 0)) for fold in folds))
    table.add_row(
        "[bold]total[/bold]",
        *(str(sum(n for (f, _), n in counts.items() if f == fold)) for fold in folds),
    )
    console.print(table)


@app.command()
def split(
    name: str = typer.Option(..., "--name", help="Name of the split in the catalog."),
    by: str = typer.Option(
        "patient", "--by", help="Keep whole: patient, group (same rows as patient) or image."
    ),
    test: float = typer.Option(0.3, "--test", help="Test fraction of each class."),
    val: float = typer.Option(0.0, "--val", help="Validation fraction of each class."),
    seed: int = typer.Option(0, "--seed", help="Seed of the assignment."),
    modality: str | None = typer.Option(None, "--modality", help="Only this modality."),
    classes: str | None = typer.Option(
        None, "--classes", help="Only these comma-separated labels."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace a split of the same name."),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="Audit the split for leakage: how much its test images resemble training "
        "patients' own images (an existing split of that name is audited as it is).",
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Make a stratified split of the real images that never puts a patient on two sides."""
    from pathsynth.catalog.api import find_split
    from pathsynth.catalog.splits import SplitRequest, make_split
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    if audit and not replace and find_split(space, name) is not None:
        _print_audit(space, name)
        return
    request = SplitRequest(
        name=name,
        unit=by,
        test=test,
        val=val,
        seed=seed,
        modality=modality,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
    )
    with space.open_catalog() as catalog:
        result = make_split(catalog, request, replace=replace)
    counts = {
        (fold, label): n
        for fold, per_class in result.counts.items()
        for label, n in per_class.items()
    }
    _print_split_counts(f"split {esc(name)} (by {esc(by)}, seed {seed})", counts)
    if result.image_level:
        console.print(
            "[yellow]note:[/yellow] no patient or group identifiers are known for these images, "
            "so this split is image-level"
        )
    if audit:
        _print_audit(space, name)


def _print_audit(space: Workspace, name: str) -> None:
    """The split's leakage audit as a table and its verdict."""
    from pathsynth.catalog.api import split_audit
    from pathsynth.report.numbers import percent

    found = split_audit(space, name)
    table = Table(
        title=f"audit of split {esc(name)}: {found['train_images']} train, "
        f"{found['test_images']} test images; {found['train_units']} / {found['test_units']} "
        f"patients or groups, {found['shared_units']} on both sides"
    )
    for column in (
        "features",
        "test as close as a patient's own",
        "new patients as close",
        "chance up to",
        "1-NN probe",
        "1-NN, own patient out",
        "near-duplicates",
    ):
        table.add_column(column, justify="left" if column == "features" else "right")
    for block in found["blocks"]:
        table.add_row(
            f"{block['block']} ({block['features']})",
            percent(block["close_share"]),
            percent(block["new_patient_share"]),
            percent(block["close_noise"]),
            percent(block["probe_split"]),
            percent(block["probe_leak_free"]),
            str(block["near_duplicates"]),
        )
    console.print(table)
    colour = "yellow" if found["likely_optimistic"] else "green"
    console.print(f"[{colour}]verdict:[/{colour}] {esc(found['verdict'])}")


@app.command()
def export(
    split_name: str = typer.Option(..., "--split", help="Split name."),
    fold: str = typer.Option("train", "--fold", help="train, val or test."),
    out: Path = typer.Option(..., "--out", help="Empty or new folder to write class folders to."),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Write one fold of a split as class folders (hard links where possible)."""
    from pathsynth.catalog.export import export_class_folders
    from pathsynth.catalog.queries import fold_images
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    with space.open_catalog() as catalog:
        images = fold_images(catalog, space.store, split_name, fold)
    counts = export_class_folders(images, out)
    console.print(
        f"exported {sum(counts.values())} images of {esc(split_name)}/{esc(fold)} in "
        f"{len(counts)} classes to {esc(str(out))}"
    )


@app.command()
def check(
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Remove stray and temporary files, drop rows whose file is gone, migrate the schema.",
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Check that every row has its file, every file its row, hashes match and the schema is new.

    Exits 1 with a list of the problems when anything is wrong (after --repair: when anything
    could not be repaired).
    """
    from pathsynth.catalog.check import check_workspace
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    report = check_workspace(space, repair=repair)
    if not report.problems:
        console.print(f"workspace {esc(str(space.root))}: catalog and store agree")
        return
    table = Table()
    table.add_column("problem")
    table.add_column("what")
    for kind, what in report.problems:
        table.add_row(kind, esc(what))
    console.print(table)
    if report.repaired:
        console.print(
            f"repaired {len(report.problems) - len(report.hash_mismatches)} problems; "
            f"{len(report.hash_mismatches)} hash mismatches left to inspect"
        )
        if not report.hash_mismatches:
            return
    else:
        console.print(f"{len(report.problems)} problems; `pathsynth check --repair` fixes them")
    raise typer.Exit(1)
