"""The ``train-diffusion`` command: parses options and calls :mod:`pathsynth.diffusion`.

It mirrors ``train-gan`` (data from a class-folder root or a catalog split, presets, ``--set``,
``--resume``, ``--dry-run``, torchrun); ``pathsynth generate RUN`` samples either kind of run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli import training
from pathsynth.cli.app import WorkspaceOpt, app


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command("train-diffusion")
def train_diffusion(
    ctx: typer.Context,
    data: Path | None = training.DataOpt,
    workspace: Path | None = WorkspaceOpt,
    split: str | None = training.SplitOpt,
    fold: str = training.FoldOpt,
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | gpu."),
    steps: int | None = training.StepsOpt,
    batch_size: int | None = training.BatchSizeOpt,
    resolution: int | None = training.ResolutionOpt,
    seed: int | None = training.SeedOpt,
    device: str | None = training.DeviceOpt,
    assignments: list[str] = training.SetOpt,
    runs: Path = training.RunsOpt,
    name: str | None = typer.Option(None, "--name", help="Run name (default: diffusion-<preset>)."),
    resume: Path | None = training.ResumeOpt,
    dry_run: bool = training.DryRunOpt,
) -> None:
    """Train the class-conditional diffusion model (single process, or one rank of torchrun)."""
    from pathsynth.diffusion.config import DIFFUSION
    from pathsynth.diffusion.run import load_diffusion_checkpoint, train_run

    config = training.command_config(
        ctx.params, assignments, preset, resume, DIFFUSION, load_diffusion_checkpoint
    )
    training.train_generator(
        "train-diffusion",
        config,
        train_run,
        (data, workspace, split, fold, resume),
        runs,
        name or f"diffusion-{config.preset}",
        dry_run,
    )
