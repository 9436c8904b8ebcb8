"""Experiment commands: ``reproduce``, ``classify``, ``augment``, ``report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import DataError

if TYPE_CHECKING:
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.pipeline import Experiment


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None


def _open_or_create(workspace: Path) -> Workspace:
    from pathsynth.catalog.workspace import CONFIG_NAME, Workspace

    if (workspace / CONFIG_NAME).is_file():
        return Workspace(workspace)
    console.print(f"creating workspace {workspace}")
    return Workspace.create(workspace)


def _experiment(
    workspace: Path | None, name: str, source: Path | None, modality: str | None, **settings: Any
) -> Experiment:
    """The named experiment: a new one from SOURCE and MODALITY, else the recorded one."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_config
    from pathsynth.experiment.pipeline import Experiment

    root = resolve_workspace(workspace)
    space = _open_or_create(root) if source is not None else Workspace(root)
    state_path = space.root / "experiments" / name / "state.json"
    if source is None or modality is None:
        if not state_path.exists():
            raise DataError(f"no experiment {name!r} in {root}; run `pathsynth reproduce` first")
        recorded = json.loads(state_path.read_text())
        source = Path(recorded["experiment"]["source"])
        modality = recorded["experiment"]["modality"]
        settings.setdefault("classes", recorded["experiment"]["classes"])
        preset = recorded["config"]["preset"]
    else:
        preset = str(settings.pop("preset", "quick"))
    classes = settings.pop("classes", None)
    config = experiment_config(str(preset), modality, **settings)
    return Experiment(
        space,
        source,
        modality,
        config,
        tuple(classes) if classes else None,
        name,
        log=console.print,
    )


def _classifier_overrides(
    preset: str, network: str | None, weights: Path | None
) -> dict[str, Any] | None:
    """The preset's classifier overrides plus the network options given on the command line."""
    from pathsynth.experiment.config import PRESETS

    chosen = {"network": network, "weights_path": str(weights) if weights else None}
    chosen = {key: value for key, value in chosen.items() if value is not None}
    if not chosen or preset not in PRESETS:
        return None
    return {**PRESETS[preset].get("classifier_overrides", {}), **chosen}


@app.command()
def reproduce(
    source: Path = typer.Argument(..., help="Folder of labelled real images."),
    modality: str = typer.Option(..., "--modality", "-m", help="histology or cytology."),
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | paper."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class subset."),
    name: str | None = typer.Option(
        None, "--name", help="Experiment name (default SOURCE-PRESET)."
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Classifier runs per condition."),
    protocols: str | None = typer.Option(None, "--protocols", help="honest,paper (default both)."),
    train_on: str | None = typer.Option(
        None, "--train-on", help="original,affine,synthetic,affine+synthetic (default all)."
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
    until: str = typer.Option("results", "--until", help="Stop after this stage."),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """The whole experiment: ingest, split, expand, GAN, generate, classify, metrics, report.

    Resumable: a rerun skips finished stages and continues a killed one.
    """
    label = name or f"{source.resolve().name}-{preset}" + (
        f"-{len(_names(classes) or ())}classes" if classes else ""
    )
    experiment = _experiment(
        workspace, label, source, modality, preset=preset, classes=_names(classes), seeds=seeds,
        protocols=_names(protocols), conditions=_names(train_on), device=device,
        inception_weights=str(inception_weights) if inception_weights else None,
        classifier_overrides=_classifier_overrides(preset, network, classifier_weights),
    )  # fmt: skip
    results = experiment.run(until=until)
    if results.exists():
        _print_results(json.loads(results.read_text()))
        _write_report(results)


@app.command()
def classify(
    name: str = typer.Option(..., "--experiment", help="Experiment name (from `reproduce`)."),
    protocol: str = typer.Option("honest", "--protocol", help="honest or paper (comma list)."),
    train_on: str = typer.Option(
        "original,affine,synthetic,affine+synthetic", "--train-on", help="Conditions to compare."
    ),
    seeds: int = typer.Option(5, "--seeds", help="Classifier runs per condition."),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Train and test the classifiers of an experiment under a protocol, over K seeds."""
    experiment = _experiment(
        workspace, name, None, None, seeds=seeds, protocols=_names(protocol),
        conditions=_names(train_on),
    )  # fmt: skip
    missing = [
        s for s in ("inputs", "affine", "gan", "generate") if s not in experiment.state["stages"]
    ]
    if missing:
        raise DataError(f"experiment {name!r} has not run {', '.join(missing)}; run `reproduce`")
    for stage in ("classify", "quality", "results"):
        experiment.state["stages"].pop(stage, None)
    results = experiment.run()
    _print_results(json.loads(results.read_text()))


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
    from pathsynth.catalog.queries import fold_images
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.pipeline import affine_expansion, network_inputs
    from pathsynth.imaging.affine import AffineConfig
    from pathsynth.imaging.patches import preprocess_preset

    space = Workspace(resolve_workspace(workspace))
    inputs = preprocess_preset(preprocess, size=size)
    with space.open_catalog() as catalog:
        images = fold_images(catalog, space.store, split, fold)
    if not images:
        raise DataError(f"fold {fold!r} of split {split!r} holds no images")
    originals = network_inputs(
        images, sorted({i.label for i in images}), inputs, space.root / "cache"
    )
    children = affine_expansion(
        space.root, originals, AffineConfig(), inputs, per_class=per_class, total=total,
        seed=seed, run_name=f"{split}-{fold}-affine-seed{seed}",
    )  # fmt: skip
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
    results = run / "results.json" if run.is_dir() else run
    if not results.is_file():
        raise DataError(f"{run} holds no results.json; run `pathsynth reproduce` to the end first")
    page = _write_report(results, out)
    console.print(f"report: {page}")


def _write_report(results: Path, out: Path | None = None) -> Path:
    from pathsynth.report import write_report

    page = write_report(results, out or results.parent / "report")
    console.print(f"report written to {page}")
    return page


def _print_results(results: dict[str, Any]) -> None:
    table = Table()
    for column in ("protocol", "trained on", "train inputs", "accuracy (95% CI)", "balanced acc."):
        table.add_column(column)
    for condition in results["conditions"].values():
        cells = []
        for metric in ("accuracy", "balanced_accuracy"):
            summary = condition["summary"].get(metric)
            if summary is None:
                cells.append("n/a")
            elif summary.get("low") is None:
                cells.append(f"{summary['mean']:.3f}")
            else:
                cells.append(f"{summary['mean']:.3f} ({summary['low']:.3f}-{summary['high']:.3f})")
        table.add_row(
            condition["protocol"], condition["train_on"], str(condition["train_images"]), *cells
        )
    console.print(table)
    paper = results["paper_reference"][results["experiment"]["modality"]]
    console.print(
        f"paper ({results['experiment']['modality']}): original {paper['original']:.3f}, "
        f"generated {paper['synthetic']:.3f} (image-level split after expansion)"
    )
