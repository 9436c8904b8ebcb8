"""GAN commands: ``train-gan`` and ``generate``. They parse options and call :mod:`pathsynth.gan`.

The catalog is imported lazily, only for ``--workspace/--split`` data and for generation into the
catalog, so both commands run on machines with no SQL package at all.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import ConfigError, DataError


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
    from pathsynth.gan.config import apply_overrides, from_dict, parse_assignments, validate
    from pathsynth.gan.presets import resolve_config
    from pathsynth.gan.trainer import check_architecture

    overrides: dict[str, object] = {}
    named = {
        "loss.kind": loss,
        "optim.steps": steps,
        "optim.batch_size": batch_size,
        "data.resolution": resolution,
        "run.seed": seed,
        "run.device": device,
    }
    overrides.update({key: value for key, value in named.items() if value is not None})
    if data is not None:
        overrides["data.folder"] = str(data.resolve())
    if split is not None:
        overrides["data.workspace"] = str(resolve_workspace(workspace).resolve())
        overrides["data.split"] = split
        overrides["data.fold"] = fold
    overrides.update(parse_assignments(assignments))

    state = None
    if resume is not None:
        from pathsynth.gan.checkpoint import find_checkpoint, load_checkpoint

        state = load_checkpoint(find_checkpoint(resume, "last"))
        config = apply_overrides(from_dict(state["config"]), overrides)
        validate(config)
    else:
        config = resolve_config(preset, overrides)
    check_architecture(config)
    if dry_run:
        console.print_json(config.to_json())
        return
    if bool(config.data.folder) == bool(config.data.split):
        raise ConfigError(
            "give the training data as either --data FOLDER or --workspace W --split NAME"
        )

    from pathsynth.gan.data import folder_files, load_image_set
    from pathsynth.gan.distributed import init_distributed, shutdown_distributed
    from pathsynth.gan.trainer import GanTrainer, new_run_dir, resolve_device

    if config.data.folder:
        files = folder_files(Path(config.data.folder))
        source = f"data folder {config.data.folder}"
    else:
        from pathsynth.catalog.api import fold_files

        files = fold_files(Path(config.data.workspace), config.data.split, config.data.fold)
        source = f"split {config.data.split} fold {config.data.fold}"
    dataset = load_image_set(
        files, config.data.resolution, fit=config.data.fit, fill=config.data.fill, source=source
    )
    if len(dataset) < config.optim.batch_size:
        raise DataError(
            f"{source} has {len(dataset)} images, fewer than one batch of {config.optim.batch_size}"
        )

    context = init_distributed(resolve_device(config.run.device))
    try:
        if resume is not None:
            run_dir = resume
        elif context.is_main:
            run_dir = new_run_dir(runs, name or config.preset)
        else:
            run_dir = Path()
        if context.enabled:
            import torch.distributed as dist

            shared = [str(run_dir)]
            dist.broadcast_object_list(shared, src=0)
            run_dir = Path(shared[0])
        if context.is_main:
            (run_dir / "config.json").write_text(config.to_json() + "\n", encoding="utf-8")
            console.print(f"run folder: {run_dir}")
        trainer = GanTrainer(
            config,
            dataset,
            run_dir,
            context=context,
            resume=state,
            log=console.print if context.is_main else None,
        )
        del state
        result = trainer.train()
        if context.is_main:
            best = f"; best {result.best_checkpoint.name}" if result.best_checkpoint else ""
            if result.status == "interrupted":
                console.print(
                    f"interrupted at step {result.step}; checkpoint {result.last_checkpoint}; "
                    f"continue with: pathsynth train-gan --resume {run_dir}",
                    soft_wrap=True,
                )
            else:
                last = result.last_checkpoint.name if result.last_checkpoint else "none"
                console.print(f"done: {result.step} steps; last {last}{best}", soft_wrap=True)
    finally:
        shutdown_distributed(context)


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
) -> None:
    """Sample images of every class with the run's EMA generator, into a folder or the catalog."""
    import time

    from pathsynth.gan.sampling import (
        generate_images,
        load_generator,
        run_provenance,
        write_class_folders,
    )
    from pathsynth.gan.trainer import resolve_device, use_bf16

    target = resolve_device(device)
    loaded = load_generator(run, checkpoint, target)
    images = generate_images(
        loaded.network,
        loaded.class_names,
        per_class,
        seed,
        loaded.step,
        batch_size=batch_size,
        amp=use_bf16(loaded.config.run.amp, target),
    )
    start = time.perf_counter()
    if out is not None:
        count = write_class_folders(images, out)
        where = str(out)
    else:
        from pathsynth.catalog.api import store_generated

        ws = resolve_workspace(workspace)
        count = store_generated(ws, images, run_provenance(loaded, run))
        where = f"catalog of {ws}"
    elapsed = time.perf_counter() - start
    console.print(
        f"{count} images from {loaded.checkpoint.name} (seed {seed}) into {where} "
        f"in {elapsed:.1f}s ({count / max(elapsed, 1e-9):.0f} images/s)",
        soft_wrap=True,
    )
