"""The images a pretraining run learns from: a split's training fold and the unlabelled images.

Never the test fold: :func:`pretrain_images` refuses it, and leaves out any unlabelled image
whose content is in the split's test fold, so the features a probe is later tested on were never
learnt from its test images. The catalog is imported lazily (as in :mod:`pathsynth.backbones`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from pathsynth.errors import ConfigError, DataError, ImageRefused
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image

if TYPE_CHECKING:
    from pathsynth.catalog.api import FoldImage, Workspace

HELD_OUT_FOLDS = ("test",)


def pretrain_images(
    space: Workspace, split: str | None, fold: str | None, unlabelled: bool = True
) -> list[FoldImage]:
    """The real images of one fold of a split plus (``unlabelled``) every unlabelled image.

    Args:
        space: the workspace.
        split, fold: the labelled images' split and fold (``None`` for unlabelled images only).
        unlabelled: add the images ingested with ``ingest --unlabelled``.

    Returns:
        The images, split images first, each content once.

    Raises:
        ConfigError: the test fold, only one of split and fold, or no images at all.
        SplitError: no such split or fold.
    """
    from pathsynth.catalog.api import split_fold, unlabelled_images

    if (split is None) != (fold is None):
        raise ConfigError("give --split and --fold together, or neither (unlabelled images only)")
    if fold in HELD_OUT_FOLDS:
        raise ConfigError(
            f"pretraining on the {fold} fold would let the features see the images they are "
            "tested on; use the train fold"
        )
    images = (
        [i for i in split_fold(space, split, fold) if i.origin == "real"] if split and fold else []
    )
    if unlabelled:
        held_out: set[str] = set()
        if split is not None:
            for held in HELD_OUT_FOLDS:
                held_out |= {image.sha256 for image in _fold_or_empty(space, split, held)}
        images += [image for image in unlabelled_images(space) if image.sha256 not in held_out]
    unique = list({image.sha256: image for image in images}.values())
    if not unique:
        raise ConfigError("no images to pretrain on (an empty fold and no unlabelled images)")
    return unique


def _fold_or_empty(space: Workspace, split: str, fold: str) -> list[FoldImage]:
    from pathsynth.catalog.api import split_fold
    from pathsynth.errors import SplitError

    try:
        return split_fold(space, split, fold)
    except SplitError:
        return []


def image_pool(images: Sequence[FoldImage], preprocess: PreprocessConfig) -> torch.Tensor:
    """Every image as ``preprocess`` makes it (all patches kept), one ``uint8`` tensor.

    Raises:
        ImageRefused: a file that does not decode (named).
        DataError: what :func:`~pathsynth.imaging.patches.preprocess_image` refuses (named).
    """
    parts = []
    for image in images:
        try:
            rgb = load_rgb(image.path)
        except ImageRefused as error:
            raise ImageRefused(f"{image.path}: {error}") from None
        try:
            parts.append(preprocess_image(rgb, preprocess, image.sha256, image.pixel_size_um))
        except DataError as error:
            raise DataError(f"{image.path}: {error}") from None
    return torch.cat(parts)
