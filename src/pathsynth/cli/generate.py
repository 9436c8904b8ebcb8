"""``pathsynth generate``: sample a generator run (of any kind, told from its folder) into the
catalog or class folders.

The catalog is imported lazily, only to store into it, so ``--out`` runs on machines with no SQL
package at all.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.cli.options import SAMPLING_KEYS, config_overrides


@app.command("generate")
def generate(
    ctx: typer.Context,
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

    from pathsynth.generators import generator_for, store_samples
    from pathsynth.generators.sampling import write_class_folders
    from pathsynth.training.runs import run_kind

    settings = config_overrides(ctx.params, SAMPLING_KEYS)
    chosen = generator_for(run_kind(run), sampling=settings)
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
