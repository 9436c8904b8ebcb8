"""Experiment commands: ``reproduce``, ``classify``, ``augment``, ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.cli.options import EXPERIMENT_KEYS, config_overrides
from pathsynth.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pathsynth.catalog.workspace import Workspace


def _log(line: str) -> None:
    """One progress line, printed as it is (labels and paths are never read as rich markup)."""
    console.print(line, markup=False)


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None


ExecutorOpt = typer.Option(
    "sequential",
    "--executor",
    help="Where folds and classifier fits run: sequential | local:N (N worker processes here, "
    "one GPU each when there are GPUs) | ray[:ADDRESS] (a Ray cluster; several nodes need a "
    "MariaDB or PostgreSQL catalog and a shared workspace). Results do not depend on it.",
)


def _open_or_create(workspace: Path) -> Workspace:
    from pathsynth.catalog.workspace import CONFIG_NAME, Workspace

    if (workspace / CONFIG_NAME).is_file():
        return Workspace(workspace)
    console.print(f"creating workspace {workspace}")
    return Workspace.create(workspace)


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command()
def reproduce(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Folder of labelled real images."),
    modality: str = typer.Option(..., "--modality", "-m", help="histology or cytology."),
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | paper | gpu."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class subset."),
    name: str | None = typer.Option(
        None, "--name", help="Experiment name (default SOURCE-PRESET)."
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Classifier runs per condition."),
    folds: int | None = typer.Option(
        None,
        "--folds",
        help="K >= 2: patient-level K-fold cross-validation (every real image tested once; "
        "every stage after ingest runs per fold).",
    ),
    protocols: str | None = typer.Option(None, "--protocols", help="honest,paper (default both)."),
    train_on: str | None = typer.Option(
        None,
        "--train-on",
        help="original,affine,synthetic,affine+synthetic (default all); with --generator both: "
        "original+gan,affine+gan,original+diffusion,affine+diffusion; a ':selected' suffix "
        "trains on the generated images selection kept of that generator "
        "(affine+synthetic:selected, affine+gan:selected).",
    ),
    generator: str | None = typer.Option(
        None, "--generator", help="gan (default) | diffusion | both: the generator(s) trained."
    ),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda."),
    network: str | None = typer.Option(
        None, "--network", help="Classifier: small_cnn (default) or resnet18 (random init)."
    ),
    classifier_weights: Path | None = typer.Option(
        None, "--classifier-weights", help="Local ResNet-18 state dict to start from (no download)."
    ),
    inception_weights: Path | None = typer.Option(
        None, "--inception-weights", help="Local Inception-v3 state dict: adds standard FID/KID."
    ),
    quality_backbone: str | None = typer.Option(
        None,
        "--quality-backbone",
        help="timm backbone whose features the quality metrics use (default: the classifier's "
        "backbone when it has weights, else the reference classifier's features).",
    ),
    quality_backbone_weights: Path | None = typer.Option(
        None, "--quality-backbone-weights", help="Its weights file (state dict or safetensors)."
    ),
    classifier_kinds: str | None = typer.Option(
        None,
        "--classifier-kinds",
        help="Classifier kinds side by side in one results table, e.g. linear-probe,fine-tune "
        "(fine-tune trains classifier.network; set classifier.network=backbone for the timm "
        "backbone).",
    ),
    pixel_size: float | None = typer.Option(
        None,
        "--pixel-size",
        help="Micrometres per pixel of SOURCE's images (recorded at ingest; presets that choose "
        "a magnification need it, e.g. 0.84 for the shared BACH copy).",
    ),
    external_pixel_size: float | None = typer.Option(
        None, "--external-pixel-size", help="Micrometres per pixel of the external test set."
    ),
    external_test: Path | None = typer.Option(
        None,
        "--external-test",
        help="Folder of real images from other patients or sites (layouts as for ingest): every "
        "classifier is also tested there; never used for training, validation or the generator.",
    ),
    selection: str | None = typer.Option(
        None,
        "--selection",
        help="Selective synthesis preset (none | lenient | default | strict | fixed): adds a "
        "':selected' variant of every condition with generated images.",
    ),
    assignments: list[str] = typer.Option(
        [], "--set", help="Any config key: --set gan.optim.steps=500, --set classifier.epochs=30."
    ),
    until: str = typer.Option("report", "--until", help="Stop after this stage."),
    executor: str = ExecutorOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and stop."),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """The whole experiment: ingest, split, expand, generator, generate, classify, metrics, report.

    Resumable: a rerun skips finished stages and continues a killed one.
    """
    from pathsynth.config import to_json
    from pathsynth.executors import ExecutorSpec
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment, check_stage
    from pathsynth.files import name_from
    from pathsynth.selection.config import SELECTION

    check_stage(until)
    where = ExecutorSpec.parse(executor)
    overrides: dict[str, Any] = {
        "selection": SELECTION.resolve(selection) if selection else None,
        "external_test": str(external_test.resolve()) if external_test else None,
        **config_overrides(ctx.params, EXPERIMENT_KEYS, assignments),
    }
    config = experiment_presets(modality).resolve(preset, overrides)
    if dry_run:
        console.print_json(to_json(config))
        return
    for folder in (source, external_test):
        if folder is not None and not folder.is_dir():
            raise DataError(f"{folder} is not a folder of images")
    chosen = _names(classes)
    label = name or name_from(f"{source.resolve().name}-{preset}") + (
        f"-{len(chosen)}classes" if chosen else ""
    )
    space = _open_or_create(resolve_workspace(workspace))
    experiment = Experiment.create(space, source, config, chosen, label, log=_log, executor=where)
    results = experiment.run(until=until)
    if results.exists():
        _print_results(results)


@app.command()
def classify(
    ctx: typer.Context,
    name: str = typer.Option(..., "--experiment", help="Experiment name (from `reproduce`)."),
    protocol: str = typer.Option("honest", "--protocol", help="honest or paper (comma list)."),
    train_on: str = typer.Option(
        "original,affine,synthetic,affine+synthetic", "--train-on", help="Conditions to compare."
    ),
    seeds: int = typer.Option(5, "--seeds", help="Classifier runs per condition."),
    classifier_kinds: str | None = typer.Option(
        None,
        "--classifier-kinds",
        help="Kinds side by side, e.g. linear-probe,logistic,fine-tune (the first is the "
        "reference).",
    ),
    assignments: list[str] = typer.Option(
        [],
        "--set",
        help="Classifier keys, e.g. --set classifier.kind=linear-probe "
        "--set classifier.backbone=vit_small_patch16_224 --set classifier.backbone_weights=F.",
    ),
    executor: str = ExecutorOpt,
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Train and test the classifiers of an experiment under a protocol, over K seeds.

    The classify stage's results are replaced by this run's (fine-tuned or linear-probe).
    """
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.executors import ExecutorSpec
    from pathsynth.experiment.pipeline import Experiment

    where = ExecutorSpec.parse(executor)
    overrides = config_overrides(ctx.params, EXPERIMENT_KEYS, assignments)
    space = Workspace(resolve_workspace(workspace))
    experiment = Experiment.open(space, name, overrides, log=_log, executor=where)
    experiment.require("inputs", "affine", "generator", "generate")
    experiment.invalidate("classify")
    _print_results(experiment.run())


@app.command(name="select")
def select_generated(
    name: str = typer.Argument(..., help="Experiment name (from `reproduce`)."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="lenient | default | strict | fixed (default: the experiment's, else default).",
    ),
    assignments: list[str] = typer.Option(
        [], "--set", help="Selection keys, e.g. --set selection.keep_floor=0.3."
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Select an experiment's generated images again (scores against its real training fold,
    into the catalog), print each generator's kept fraction per class, then retrain the ':selected'
    conditions and rewrite the results and report (other classifier runs are kept).
    """
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.config import load_record, parse_assignments
    from pathsynth.experiment.pipeline import Experiment
    from pathsynth.records.schema import SelectionRecord
    from pathsynth.selection.config import SELECTION

    overrides: dict[str, Any] = {
        "selection": SELECTION.resolve(preset) if preset else None,
        **parse_assignments(assignments),
    }
    if any(not key.startswith("selection.") for key in overrides if key != "selection"):
        raise ConfigError("select takes selection.* keys only (--set selection.keep_floor=0.3)")
    space = Workspace(resolve_workspace(workspace))
    experiment = Experiment.open(space, name, overrides, log=_log)
    experiment.require("generate")
    if not experiment.config.selects:  # an experiment run without selection: the preset's
        overrides["selection"] = SELECTION.resolve(preset or "default")
        experiment = Experiment.open(space, name, overrides, log=_log)
    experiment.forget_selection()
    experiment.run(until="select")
    if not experiment.paths.selection.exists():
        raise DataError(f"experiment {name!r} has no generated images to select from")
    record = load_record(SelectionRecord, experiment.paths.selection, "selection record")
    table = Table()
    columns = ("generator", "class", "kept", "generated", "fraction", "by floor", "near-copies")
    for column in columns:
        table.add_column(column)
    made = record.summary.generators
    for kind, counts_of in made.items():
        for label, counts in counts_of.per_class.items():
            table.add_row(
                kind,
                label,
                str(counts.kept),
                str(counts.generated),
                f"{counts.fraction:.3f}",
                str(counts.kept_by_floor),
                str(counts.near_copies),
            )
    console.print(table)
    _print_results(experiment.run())


@app.command()
def augment(
    split: str = typer.Option(..., "--split", help="Split whose fold is expanded."),
    fold: str = typer.Option("train", "--fold", help="The fold (children inherit it)."),
    per_class: int | None = typer.Option(None, "--per-class", help="Images per class after."),
    total: int | None = typer.Option(None, "--total", help="Images over all classes after."),
    preprocess: str = typer.Option("cytology", "--preprocess", help="Input preset (see docs)."),
    size: int = typer.Option(128, "--size", help="Side of the network input in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the plan and the transforms."),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Affine expansion (shift, zoom, rotation, reflection) of one fold, into the catalog."""
    from pathsynth.catalog.api import split_fold
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.data import network_inputs
    from pathsynth.experiment.expansion import affine_expansion
    from pathsynth.imaging.config import AffineConfig
    from pathsynth.imaging.patches import PREPROCESS

    if (per_class is None) == (total is None):
        raise ConfigError("give exactly one of --per-class and --total")
    space = Workspace(resolve_workspace(workspace))
    inputs = PREPROCESS.resolve(preprocess, {"size": size})
    images = split_fold(space, split, fold)
    if not images:
        raise DataError(f"fold {fold!r} of split {split!r} holds no images")
    originals = network_inputs(
        images, sorted({i.label for i in images}), inputs, space.root / "cache"
    )
    children = affine_expansion(
        space,
        originals,
        AffineConfig(),
        inputs,
        per_class=per_class,
        total=total,
        seed=seed,
        run_name=f"{split}-{fold}-affine-seed{seed}",
    )
    counts = children.images.class_counts()
    console.print(
        f"stored {len(children.images)} affine children of {len(images)} {fold} images: "
        + ", ".join(f"{name} {n}" for name, n in counts.items())
    )


@app.command()
def report(
    run: Path = typer.Argument(..., help="Experiment folder (holding results.json) or the JSON."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the page (default RUN/report)."
    ),
) -> None:
    """Write the experiment's HTML report with figures and a JSON of every number."""
    from pathsynth.report import write_report

    results = run / "results.json" if run.is_dir() else run
    if not results.is_file():
        raise DataError(f"{run} holds no results.json; run `pathsynth reproduce` to the end first")
    page = write_report(results, out or results.parent / "report")
    console.print(f"report: {page}")


def _print_results(path: Path) -> None:
    from pathsynth.records.schema import read_results
    from pathsynth.report.numbers import interval

    results = read_results(path)
    table = Table()
    for column in ("protocol", "trained on", "train inputs", "accuracy (95% CI)", "balanced acc."):
        table.add_column(column)
    for condition in results.conditions.values():
        cells = [
            interval(condition.summary.get(metric), as_percent=False)
            for metric in ("accuracy", "balanced_accuracy")
        ]
        table.add_row(condition.protocol, condition.train_on, str(condition.train_images), *cells)
    console.print(table)
    modality = results.experiment.modality
    paper = results.paper_reference[modality]
    console.print(
        f"published, not measured here: the reference study's {modality} accuracy, "
        f"{paper['original']:.3f} trained on original images and {paper['synthetic']:.3f} with "
        "generated ones (split by image after expansion, so the same images were on both sides)",
        soft_wrap=True,
    )
