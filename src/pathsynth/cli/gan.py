"""GAN commands: ``train-gan`` and ``generate``. They parse options and call :mod:`pathsynth.gan`.

The catalog is imported lazily, only for ``--workspace/--split`` data and for generation into the
catalog, so both commands run on machines with no SQL package at all.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli import training
from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import ConfigError


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command("train-gan")
def train_gan(
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
    from pathsynth.gan.presets import resolve_config
    from pathsynth.gan.run import resumed_config, train_run

    named = {
        "loss.kind": loss,
        "optim.steps": steps,
        "optim.batch_size": batch_size,
        "data.preprocess.size": resolution,
        "run.seed": seed,
        "run.device": device,
    }
    config = training.command_config(
        named, assignments, preset, resume, resolve_config, resumed_config
    )
    check_architecture(config)
    training.train_generator(
        "train-gan", config, train_run, (data, workspace, split, fold, resume), runs,
        name or config.preset, dry_run,
    )  # fmt: skip


@app.command("generate")
def generate(
    run: Path = typer.Argument(..., help="The run folder to sample from."),
    per_class: int = typer.Option(..., "--per-class", help="Images per class."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last | a step number."),
    seed: int = typer.Option(0, "--seed", help="Generation seed (same seed: same bytes)."),
    out: Path | None = typer.Option(
        None, "--out", help="Write DIR/<class>/*.png instead of the catalog."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per generator pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    workspace: Path | None = WorkspaceOpt,
    sampler: str | None = typer.Option(
        None, "--sampler", help="Diffusion runs: ddim | dpm++ (default: the run's)."
    ),
    sampling_steps: int | None = typer.Option(
        None, "--sampling-steps", help="Diffusion runs: solver steps (default: the run's)."
    ),
    guidance: float | None = typer.Option(
        None, "--guidance", help="Diffusion runs: classifier-free guidance scale."
    ),
    guidance_interval: str | None = typer.Option(
        None,
        "--guidance-interval",
        help="Diffusion runs: LO,HI noise levels (t/T) where guidance applies; one pass elsewhere.",
    ),
    compile_unet: bool | None = typer.Option(
        None,
        "--compile/--no-compile",
        help="Diffusion runs: torch.compile the UNet (a GPU samples ~2.8x faster after a minute "
        "of compiling; its bytes differ slightly from eager's). Default: the run's.",
    ),
) -> None:
    """Sample images of every class with a run's generator (GAN or diffusion, told from the run
    folder), into a folder or the catalog."""
    import time

    from pathsynth.generators import ImageGenerator, generator_for, store_samples
    from pathsynth.generators.sampling import write_class_folders
    from pathsynth.training.runs import run_kind

    named = {
        "sampler": sampler,
        "steps": sampling_steps,
        "guidance": guidance,
        "guidance_interval": guidance_interval,
        "compile": compile_unet,
    }
    settings = {key: value for key, value in named.items() if value is not None}
    kind = run_kind(run) if run.is_dir() else "gan"
    chosen: ImageGenerator
    if kind == "diffusion":
        from pathsynth.generators.diffusion import DiffusionGenerator

        chosen = DiffusionGenerator(sampling=settings)
    elif settings:
        raise ConfigError(
            f"--sampler, --sampling-steps, --guidance, --guidance-interval and --compile are for "
            f"diffusion runs; {run} is a {kind} run"
        )
    else:
        chosen = generator_for(kind)
    samples = chosen.sample(run, per_class, seed, checkpoint, device, batch_size)
    start = time.perf_counter()
    if out is not None:
        count = write_class_folders(samples.images, out)
        where = str(out)
    else:
        from pathsynth.catalog.api import open_workspace

        root = resolve_workspace(workspace)
        count = len(store_samples(open_workspace(root), samples)[1])
        where = f"catalog of {root}"
    elapsed = time.perf_counter() - start
    console.print(
        f"{count} images from {samples.checkpoint.name} (seed {seed}) into {where} "
        f"in {elapsed:.1f}s ({count / max(elapsed, 1e-9):.0f} images/s)",
        soft_wrap=True,
    )
