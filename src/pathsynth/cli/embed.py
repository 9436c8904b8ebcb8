"""``pathsynth embed``: one feature vector per catalog image from a chosen backbone."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape as esc

from pathsynth.cli.app import WorkspaceOpt, app, console, progress_bar, resolve_workspace
from pathsynth.errors import ConfigError


@app.command()
def embed(
    backbone: str = typer.Option(
        ...,
        "--backbone",
        help="timm architecture (resnet18, vit_small_patch16_224, ...) or "
        "hf-hub:org/name (from the local hub cache without a network).",
    ),
    backbone_weights: str | None = typer.Option(
        None,
        "--backbone-weights",
        help="State dict or .safetensors file (key prefixes handled), or hf-hub:org/name; "
        "default random init.",
    ),
    split: str | None = typer.Option(None, "--split", help="Only this split's fold."),
    fold: str | None = typer.Option(None, "--fold", help="The fold of --split (train/val/test)."),
    preprocess: str | None = typer.Option(
        None,
        "--preprocess",
        help="Input preset (histology, cytology, ...; patches are averaged per image); default: "
        "the whole image resized to the backbone's input size.",
    ),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Side the backbone sees (default its pretrained config's)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Inputs per forward pass."),
    bf16: bool = typer.Option(
        False,
        "--bf16",
        help="bf16 autocast (vectors stored as float32); slower on CPUs without native bf16.",
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Compute and store one embedding per image; vectors already stored are reused."""
    from pathsynth.backbones.load import load_backbone
    from pathsynth.backbones.stored import embed_catalog_images, embedding_key
    from pathsynth.catalog.api import all_images, open_workspace, split_fold
    from pathsynth.imaging.patches import PREPROCESS, PreprocessConfig

    if (split is None) != (fold is None):
        raise ConfigError("give --split and --fold together, or neither (every image)")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    space = open_workspace(resolve_workspace(workspace))
    images = split_fold(space, split, fold) if split and fold else all_images(space)
    # the backbone is loaded (and refused) before anything is written
    network = load_backbone(backbone, backbone_weights, input_size=input_size)
    inputs = (
        PREPROCESS.resolve(preprocess)
        if preprocess
        else PreprocessConfig(mode="resize", size=network.spec.size)
    )
    key = embedding_key(network, inputs)
    with progress_bar() as bar:
        task = bar.add_task("embedding", total=len(images))
        summary = embed_catalog_images(
            space,
            images,
            network,
            inputs,
            batch_size=batch_size,
            bf16=bf16,
            progress=lambda done: bar.advance(task, done),
        )
    console.print(
        f"{summary.computed} embeddings computed, {summary.reused} already stored "
        f"({esc(network.name)}, {network.dim} dims, weights {key.weights_sha256[:12]}, "
        f"preprocessing {key.preprocess_sha256[:12]})"
    )
