"""The ``train-diffusion`` command: parses options and calls :mod:`pathsynth.diffusion`.

It mirrors ``train-gan`` (data from a class-folder root or a catalog split, presets, ``--set``,
``--resume``, ``--dry-run``, torchrun); ``pathsynth generate RUN`` samples either kind of run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli.app import WorkspaceOpt, app, console
from pathsynth.cli.gan import training_images, training_origin


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command("train-diffusion")
def train_diffusion(
    data: Path | None = typer.Option(
        None, "--data", help="Class-folder root FOLDER/<class>/<image>."
    ),
    workspace: Path | None = WorkspaceOpt,
    split: str | None = typer.Option(
        None, "--split", help="Catalog split to train on (with --workspace)."
    ),
    fold: str = typer.Option("train", "--fold", help="Fold of the split."),
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | gpu."),
    steps: int | None = typer.Option(None, "--steps", help="Optimiser steps (optim.steps)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Global batch (optim.batch_size)."
    ),
    resolution: int | None = typer.Option(
        None, "--resolution", help="Image side (data.preprocess.size)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Run seed (run.seed)."),
    device: str | None = typer.Option(
        None, "--device", help="auto | cpu | cuda | cuda:N (run.device)."
    ),
    assignments: list[str] = typer.Option(
        [], "--set", help="Any config key: --set group.key=value."
    ),
    runs: Path = typer.Option(
        Path("runs"), "--runs", help="Folder holding the numbered run folders."
    ),
    name: str | None = typer.Option(None, "--name", help="Run name (default: diffusion-<preset>)."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Run folder to continue from its last checkpoint."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and stop."),
) -> None:
    """Train the class-conditional diffusion model (single process, or one rank of torchrun)."""
    from pathsynth.config import parse_assignments
    from pathsynth.diffusion.config import resolve_config
    from pathsynth.diffusion.run import resumed_config, train_run

    named = {
        "optim.steps": steps,
        "optim.batch_size": batch_size,
        "data.preprocess.size": resolution,
        "run.seed": seed,
        "run.device": device,
    }
    overrides = {key: value for key, value in named.items() if value is not None}
    overrides.update(parse_assignments(assignments))
    if resume is not None:
        config = resumed_config(resume, overrides)
    else:
        config = resolve_config(preset, overrides)
    if dry_run:
        console.print_json(config.to_json())
        return
    origin = training_origin(data, workspace, split, fold, resume)
    dataset, source = training_images(config.data.preprocess, origin)

    def opened(run_dir: Path) -> None:
        console.print(f"run folder: {run_dir}")

    result = train_run(
        config, dataset, runs, name or f"diffusion-{config.preset}", source, resume_dir=resume,
        log=console.print, on_open=opened, data=origin,
    )  # fmt: skip
    if result is None:  # not rank 0 under torchrun: rank 0 reports
        return
    if result.status == "interrupted":
        console.print(
            f"interrupted at step {result.step}; checkpoint {result.last_checkpoint}; "
            f"continue with: pathsynth train-diffusion --resume {result.run_dir}",
            soft_wrap=True,
        )
    else:
        last = result.last_checkpoint.name if result.last_checkpoint else "none"
        console.print(f"done: {result.step} steps; last {last}", soft_wrap=True)
