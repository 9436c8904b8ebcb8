"""The ``affine`` stage: class-balanced affine expansion, stored in the catalog with its lineage."""

from __future__ import annotations

from typing import Any

import torch

from pathsynth.catalog.api import AffineChild, store_affine
from pathsynth.catalog.workspace import Workspace
from pathsynth.experiment.context import StageContext, save_tensors
from pathsynth.experiment.protocols import LabelledPart, concatenate
from pathsynth.imaging.affine import class_balanced_plan, random_affine
from pathsynth.imaging.config import AffineConfig
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import TensorImageSet


def affine(context: StageContext) -> dict[str, Any]:
    """Children of the training fold (honest protocol), and of every real image when the paper
    protocol runs a condition with affine children; skipped when no condition trains on them or
    on generated images (the generator learns from the expanded fold). The test fold is expanded
    for the paper protocol only: an honest run leaves its test images without children."""
    config = context.config
    if not (config.trains_on("affine") or config.trains_on("synthetic")):
        return {"skipped": "no condition trains on affine or generated images"}
    sets = context.sets()

    def expand(originals: LabelledPart, which: str, per_class: int, seed: int) -> LabelledPart:
        return affine_expansion(
            context.workspace,
            originals,
            config.affine,
            config.preprocess,
            per_class=per_class,
            seed=config.split_seed * 1000 + seed,
            run_name=f"{context.name}-affine-{which}",
        )

    train = expand(sets.real_train, "train", config.affine_per_class, seed=1)
    tensors = {"train": train.to_state()}
    done = {"train_children": len(train.images)}
    if "paper" in config.protocols and config.trains_on("affine"):
        # The paper expanded every image before its split, the test fold's too: only its
        # protocol needs those children. Same target per class over the whole pool.
        pool = concatenate([sets.real_train, sets.real_test])
        pool_target = round(config.affine_per_class / (1 - config.test_fraction))
        everything = expand(pool, "all", pool_target, seed=2)
        tensors["all"] = everything.to_state()
        done["all_children"] = len(everything.images)
    save_tensors(context.paths.affine, tensors)
    return done


def _children(
    originals: LabelledPart,
    rows: list[int],
    images: torch.Tensor,
    params: list[dict[str, Any]],
    preprocess: PreprocessConfig,
) -> list[AffineChild]:
    """The catalog records of the transformed ``images``, numbered per parent."""
    child_number: dict[int, int] = {}
    children = []
    pixels = images.permute(0, 2, 3, 1).contiguous().numpy()
    for k, row in enumerate(rows):
        parent = int(originals.ids[row])
        number = child_number.get(parent, 0)
        child_number[parent] = number + 1
        children.append(
            AffineChild(
                parent_id=parent,
                index=number,
                png=encode_png(pixels[k]),
                params={**params[k], "input_row": row, "preprocess": preprocess.as_dict()},
            )
        )
    return children


def affine_expansion(
    space: Workspace,
    originals: LabelledPart,
    affine: AffineConfig,
    preprocess: PreprocessConfig,
    per_class: int | None = None,
    total: int | None = None,
    seed: int = 0,
    run_name: str = "affine",
) -> LabelledPart:
    """Class-balanced affine children of ``originals``, stored in the catalog with their parents.

    Args:
        space: the workspace.
        originals: the real network inputs to expand (one fold only: children inherit it).
        affine: the parameter ranges.
        preprocess: how the inputs were made (recorded with each child).
        per_class: images per class after expansion, originals included. The unit is the
            image: a child of an image cut into several inputs (tiles, patches) is all of them,
            each transformed (so a class has ``per_class`` times the inputs per image).
        total: images over all classes after expansion (instead of ``per_class``).
        seed: seeds the plan and the parameters.
        run_name: the augmentation run's name in the catalog.

    Returns:
        The children, with their catalog ids, parents and patient groups.

    Raises:
        ConfigError: neither or both of ``per_class``/``total``, or a target below the originals.
    """
    names = originals.images.class_names
    labels = originals.images.labels
    rows_of: dict[int, list[int]] = {}  # the input rows of each image (tiles, patches), in order
    for row, image_id in enumerate(originals.ids.tolist()):
        rows_of.setdefault(image_id, []).append(row)
    images_of = {
        name: [image for image, rows in rows_of.items() if int(labels[rows[0]]) == i]
        for i, name in enumerate(names)
    }
    counts = {name: len(images) for name, images in images_of.items()}
    plan = class_balanced_plan(counts, per_class=per_class, total=total, seed=seed)
    rows: list[int] = []
    for name in names:
        for image, count in zip(images_of[name], plan[name], strict=True):
            for _ in range(count):  # one child is every input of the image, transformed
                rows.extend(rows_of[image])
    source_rows = torch.tensor(rows, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    images, params = random_affine(originals.images.images[source_rows], affine, generator)
    children = _children(originals, rows, images, params, preprocess)
    ids = store_affine(space, children, {"name": run_name, "config": affine.as_dict()})
    return LabelledPart(
        TensorImageSet(images, labels[source_rows], list(names)),
        torch.tensor(ids, dtype=torch.int64),
        originals.ids[source_rows],
        originals.groups[source_rows],
    )
