"""``pathsynth train-gan``: parses options and calls :mod:`pathsynth.gan`.

The catalog is imported lazily, only for ``--workspace/--split`` data, so the command runs on
machines with no SQL package at all.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli import training
from pathsynth.cli.app import WorkspaceOpt, app


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command("train-gan")
def train_gan(
    ctx: typer.Context,
    data: Path | None = training.DataOpt,
    workspace: Path | None = WorkspaceOpt,
    split: str | None = training.SplitOpt,
    fold: str = training.FoldOpt,
    preset: str = typer.Option("paper", "--preset", help="paper | paper-wgan-gp | modern | smoke."),
    loss: str | None = typer.Option(None, "--loss", help="bce | wgan-gp | hinge (loss.kind)."),
    steps: int | None = training.StepsOpt,
    batch_size: int | None = training.BatchSizeOpt,
    resolution: int | None = training.ResolutionOpt,
    seed: int | None = training.SeedOpt,
    device: str | None = training.DeviceOpt,
    assignments: list[str] = training.SetOpt,
    runs: Path = training.RunsOpt,
    name: str | None = typer.Option(None, "--name", help="Run name (default: the preset)."),
    resume: Path | None = training.ResumeOpt,
    dry_run: bool = training.DryRunOpt,
) -> None:
    """Train the class-conditional GAN (single process, or one rank of torchrun)."""
    from pathsynth.gan.architectures import check_architecture
    from pathsynth.gan.presets import GAN
    from pathsynth.gan.run import train_run
    from pathsynth.training.checkpoint import load_checkpoint

    config = training.command_config(ctx.params, assignments, preset, resume, GAN, load_checkpoint)
    check_architecture(config)
    training.train_generator(
        "train-gan",
        config,
        train_run,
        (data, workspace, split, fold, resume),
        runs,
        name or config.preset,
        dry_run,
    )
