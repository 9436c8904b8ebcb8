"""GAN commands: ``train-gan`` and ``generate``. They parse options and call :mod:`pathsynth.gan`.

The catalog is imported lazily, only for ``--workspace/--split`` data and for generation into the
catalog, so both commands run on machines with no SQL package at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import ConfigError

if TYPE_CHECKING:
    from pathsynth.gan.config import TrainConfig
    from pathsynth.imaging.patches import PreprocessConfig
    from pathsynth.imaging.tensorset import TensorImageSet


# One piece: typer reads the command's options from this signature (most of its lines).
@app.command("train-gan")
def train_gan(
    data: Path | None = typer.Option(
        None, "--data", help="Class-folder root FOLDER/<class>/<image>."
    ),
    workspace: Path | None = WorkspaceOpt,
    split: str | None = typer.Option(
        None, "--split", help="Catalog split to train on (with --workspace)."
    ),
    fold: str = typer.Option("train", "--fold", help="Fold of the split."),
    preset: str = typer.Option("paper", "--preset", help="paper | paper-wgan-gp | modern | smoke."),
    loss: str | None = typer.Option(None, "--loss", help="bce | wgan-gp | hinge (loss.kind)."),
    steps: int | None = typer.Option(None, "--steps", help="Generator steps (optim.steps)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Global batch (optim.batch_size)."
    ),
    resolution: int | None = typer.Option(
        None, "--resolution", help="Image side (data.resolution)."
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
    name: str | None = typer.Option(None, "--name", help="Run name (default: the preset)."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Run folder to continue from its last checkpoint."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and stop."),
) -> None:
    """Train the class-conditional GAN (single process, or one rank of torchrun)."""
    from pathsynth.config import parse_assignments
    from pathsynth.gan.presets import resolve_config
    from pathsynth.gan.run import check_architecture, resumed_config

    named = {
        "loss.kind": loss,
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
    check_architecture(config)
    if dry_run:
        console.print_json(config.to_json())
        return
    origin = training_origin(data, workspace, split, fold, resume)
    dataset, source = training_images(config.data.preprocess, origin)
    _train(config, dataset, source, origin, runs, name or config.preset, resume)


def training_origin(
    data: Path | None, workspace: Path | None, split: str | None, fold: str, resume: Path | None
) -> dict[str, str]:
    """Where a training command's images come from: ``--data``, ``--workspace/--split``, or what
    the run to ``--resume`` recorded.

    Raises:
        ConfigError: both or neither given (and nothing to resume).
        CheckpointError: a resumed run that does not say where its images came from.
    """
    if data is not None and split is not None:
        raise ConfigError("give the training data as --data FOLDER or --workspace W --split NAME")
    if data is not None:
        return {"folder": str(data.resolve())}
    if split is not None:
        return {"workspace": str(resolve_workspace(workspace).resolve()), "split": split,
                "fold": fold}  # fmt: skip
    from pathsynth.gan.run import recorded_data

    if resume is None:
        raise ConfigError(
            "give the training data as either --data FOLDER or --workspace W --split NAME"
        )
    return recorded_data(resume)


def training_images(
    preprocess: PreprocessConfig, origin: dict[str, str]
) -> tuple[TensorImageSet, str]:
    """The training images of a class-folder root or a catalog split, prepared as ``reproduce``
    prepares them, and a description of where they came from."""
    from pathsynth.gan.data import folder_files, load_image_set

    if "folder" in origin:
        source = f"data folder {origin['folder']}"
        files = folder_files(Path(origin["folder"]))
        return load_image_set(files, preprocess, source), source
    from pathsynth.catalog.api import fold_files, open_workspace

    root = Path(origin["workspace"])
    source = f"split {origin['split']} fold {origin['fold']} of workspace {root}"
    files = fold_files(open_workspace(root), origin["split"], origin["fold"])
    return load_image_set(files, preprocess, source, root / "cache"), source


def _train(
    config: TrainConfig,
    dataset: TensorImageSet,
    source: str,
    origin: dict[str, str],
    runs: Path,
    name: str,
    resume: Path | None,
) -> None:
    from pathsynth.gan.run import train_run

    def opened(run_dir: Path) -> None:
        console.print(f"run folder: {run_dir}")

    result = train_run(
        config, dataset, runs, name, source, resume_dir=resume, log=console.print,
        on_open=opened, data=origin,
    )  # fmt: skip
    if result is None:  # not rank 0 under torchrun: rank 0 reports
        return
    best = f"; best {result.best_checkpoint.name}" if result.best_checkpoint else ""
    if result.status == "interrupted":
        console.print(
            f"interrupted at step {result.step}; checkpoint {result.last_checkpoint}; "
            f"continue with: pathsynth train-gan --resume {result.run_dir}",
            soft_wrap=True,
        )
    else:
        last = result.last_checkpoint.name if result.last_checkpoint else "none"
        console.print(f"done: {result.step} steps; last {last}{best}", soft_wrap=True)


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

    from pathsynth.gan.run import run_kind
    from pathsynth.gan.sampling import write_class_folders
    from pathsynth.generators import ImageGenerator, generator_for, store_samples

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
