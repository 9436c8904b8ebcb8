"""``pathsynth pretrain``: SimCLR on a split's training fold and the unlabelled images."""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli import training
from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import ConfigError


@app.command()
def pretrain(
    ctx: typer.Context,
    split: str | None = typer.Option(None, "--split", help="Labelled images: this split's fold."),
    fold: str | None = typer.Option(
        None, "--fold", help="The fold of --split (train or val; the test fold is refused)."
    ),
    unlabelled: bool = typer.Option(
        True, "--unlabelled/--no-unlabelled", help="Add the images of `ingest --unlabelled`."
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="timm architecture (model.backbone; default resnet18)."
    ),
    preset: str = typer.Option("quick", "--preset", help="smoke | quick | gpu."),
    steps: int | None = training.StepsOpt,
    seed: int | None = training.SeedOpt,
    device: str | None = training.DeviceOpt,
    assignments: list[str] = training.SetOpt,
    runs: Path | None = typer.Option(
        None,
        "--runs",
        help="Folder of the numbered run folders (default WORKSPACE/pretrain, apart from the GAN "
        "runs `pathsynth runs` lists).",
    ),
    name: str | None = typer.Option(None, "--name", help="Run name (default pretrain-PRESET)."),
    resume: Path | None = training.ResumeOpt,
    dry_run: bool = training.DryRunOpt,
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Pretrain a backbone self-supervised (SimCLR); writes RUN/backbone.safetensors, usable as
    --backbone-weights (single process, or one rank of torchrun)."""
    from pathsynth.catalog.api import open_workspace
    from pathsynth.pretrain.config import PRETRAIN
    from pathsynth.pretrain.data import image_pool, pretrain_images
    from pathsynth.pretrain.run import recorded_data, train_pretrain_run
    from pathsynth.pretrain.trainer import load_pretrain_checkpoint

    config = training.command_config(
        ctx.params, assignments, preset, resume, PRETRAIN, load_pretrain_checkpoint
    )
    if dry_run:
        console.print_json(config.to_json())
        return
    if resume is not None:
        if split is not None or fold is not None:
            raise ConfigError(
                "--resume continues on the images the run recorded; drop --split/--fold"
            )
        origin = recorded_data(resume)
    else:
        origin = {
            "workspace": str(resolve_workspace(workspace).resolve()),
            "split": split or "",
            "fold": fold or "",
            "unlabelled": str(unlabelled),
        }
    root = Path(origin["workspace"])
    images = pretrain_images(
        open_workspace(root),
        origin["split"] or None,
        origin["fold"] or None,
        origin["unlabelled"] == "True",
    )
    source = (
        f"split {origin['split']} fold {origin['fold']}" if origin["split"] else "no split"
    ) + f"{' + unlabelled' if origin['unlabelled'] == 'True' else ''} of workspace {root}"
    pool = image_pool(images, config.data.preprocess)
    console.print(f"{len(images)} images, {len(pool)} inputs of {config.data.preprocess.size} px")
    outcome = train_pretrain_run(
        config,
        pool,
        runs or root / "pretrain",
        name or f"pretrain-{config.preset}",
        source,
        resume_dir=resume,
        log=console.print,
        on_open=training.announce_run_folder,
        data=origin,
    )
    if outcome is None:  # not rank 0 under torchrun
        return
    result = outcome.result
    training.report_run_end(
        "pretrain",
        result,
        f"done: {result.step} steps, loss {result.losses['loss']:.4f}; backbone weights "
        f"{outcome.backbone_file} (use as --backbone-weights with --backbone "
        f"{config.model.backbone})",
    )
