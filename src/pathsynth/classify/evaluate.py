"""Predict class probabilities for a held-out set, per image.

A pathologist diagnoses an image, not a patch, so when held-out images were cut into patches the
patch probabilities are averaged per image (mean probability) and the metrics are computed on
images. Pass the result to ``pathsynth.metrics.classification.classification_report``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pathsynth.errors import DataError
from pathsynth.imaging.crops import grid_crops
from pathsynth.imaging.patches import grid_corners
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float


@dataclass
class ImagePredictions:
    """Class probabilities per held-out image.

    Args:
        image_ids: one id per image, in order of first appearance among the patches.
        labels: (n_images,) true class index.
        probabilities: (n_images, n_classes) float64 mean class probabilities, rows summing to 1.
        class_names: class name per label index.
        patches_per_image: (n_images,) number of patches averaged into each row.
    """

    image_ids: list[Hashable]
    labels: torch.Tensor
    probabilities: torch.Tensor
    class_names: list[str]
    patches_per_image: torch.Tensor


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 256,
    tta: bool = False,
    crop_size: int = 0,
    crop_stride: int = 0,
) -> torch.Tensor:
    """Softmax class probabilities of uint8 NCHW images, in eval mode.

    Args:
        model: the classifier (its device is used; mode restored afterwards).
        images: (N, C, H, W) uint8 images, on any device.
        batch_size: network inputs per forward pass.
        tta: average the probabilities of each image's 8 dihedral views (4 rotations, each
            mirrored too): microscopy has no "up", so every view is the same specimen.
        crop_size: a classifier trained on crops: each image is covered by a grid of crops of
            this side, ``crop_stride`` apart (:func:`~pathsynth.imaging.crops.grid_crops`), and
            their probabilities averaged; 0 = the images whole.
        crop_stride: the grid's spacing, pixels (used with ``crop_size``; at least 1).

    Returns:
        (N, n_classes) float64 probabilities on the CPU.

    Raises:
        DataError: images that are not uint8 NCHW, or crops that do not fit them.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"expected uint8 NCHW images, got {images.dtype} {tuple(images.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    per_chunk = batch_size
    if crop_size:  # about batch_size crops per forward pass
        height, width = images.shape[-2:]
        crops = len(grid_corners(height, width, crop_size, max(1, crop_stride)))
        per_chunk = max(1, batch_size // max(1, crops))
    try:
        chunks = [
            _image_probabilities(
                model, images[start : start + per_chunk].to(device), tta, crop_size, crop_stride
            )
            for start in range(0, len(images), per_chunk)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def _image_probabilities(
    model: nn.Module, images: torch.Tensor, tta: bool, crop_size: int, crop_stride: int
) -> torch.Tensor:
    """(N, classes) probabilities of uint8 images, averaged over each one's grid crops."""
    if not crop_size:
        return _probabilities(model, to_signed_float(images), tta)
    crops, index = grid_crops(images, crop_size, crop_stride)
    per_crop = _probabilities(model, to_signed_float(crops), tta)
    summed = torch.zeros(len(images), per_crop.shape[1], dtype=torch.float64)
    summed.index_add_(0, index.cpu(), per_crop)
    return summed / torch.bincount(index.cpu(), minlength=len(images))[:, None]


def _probabilities(model: nn.Module, inputs: torch.Tensor, tta: bool) -> torch.Tensor:
    """(N, classes) float64 CPU probabilities of a batch, over its dihedral views with ``tta``."""
    views = [inputs]
    if tta:
        turned = [torch.rot90(inputs, k, dims=(2, 3)) for k in range(4)]
        views = turned + [view.flip(3) for view in turned]
    total = torch.stack([torch.softmax(model(view), 1).double() for view in views]).mean(0)
    return total.cpu()


def aggregate_patches(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    image_ids: Sequence[Hashable] | torch.Tensor,
    class_names: list[str],
) -> ImagePredictions:
    """Mean class probability over the patches of each image.

    Args:
        probabilities: (n_patches, n_classes) probabilities per patch.
        labels: (n_patches,) true class per patch.
        image_ids: id of the image each patch was cut from.
        class_names: class name per label index.

    Returns:
        One row per image.

    Raises:
        DataError: lengths that differ, or patches of one image with different labels.
    """
    ids = image_ids.tolist() if isinstance(image_ids, torch.Tensor) else list(image_ids)
    if not len(ids) == len(labels) == len(probabilities):
        raise DataError(
            f"{len(probabilities)} probability rows, {len(labels)} labels and {len(ids)} image ids"
        )
    row_of: dict[Hashable, int] = {}
    for image_id in ids:
        row_of.setdefault(image_id, len(row_of))
    rows = torch.tensor([row_of[image_id] for image_id in ids], dtype=torch.long)
    n_images = len(row_of)
    labels = labels.cpu()
    summed = torch.zeros(n_images, probabilities.shape[1], dtype=torch.float64)
    summed.index_add_(0, rows, probabilities.cpu().double())
    counts = torch.bincount(rows, minlength=n_images)
    image_labels = torch.full((n_images,), -1, dtype=torch.long)
    image_labels.scatter_(0, rows, labels)
    if not torch.equal(image_labels[rows], labels):
        raise DataError("patches of one image carry different labels")
    return ImagePredictions(
        image_ids=list(row_of),
        labels=image_labels,
        probabilities=summed / counts[:, None],
        class_names=list(class_names),
        patches_per_image=counts,
    )


def evaluate_images(
    model: nn.Module,
    test_set: TensorImageSet,
    image_ids: Sequence[Hashable] | torch.Tensor | None = None,
    batch_size: int = 256,
    tta: bool = False,
    crop_size: int = 0,
    crop_stride: int = 0,
) -> ImagePredictions:
    """Per-image class probabilities for a held-out set, patches averaged per image.

    Args:
        model: the trained classifier.
        test_set: held-out images (or patches) with their labels.
        image_ids: image id per item when items are patches; ``None`` treats each item as an image.
        batch_size: images per forward pass.
        tta: average each input's 8 dihedral views (see :func:`predict_probabilities`).
        crop_size: average each input's grid of crops of this side (0: inputs whole).
        crop_stride: the crop grid's spacing, pixels.

    Returns:
        One row per image.

    Raises:
        DataError: an empty test set, or an ``aggregate_patches`` refusal.
    """
    if len(test_set) == 0:
        raise DataError("the test set is empty")
    probabilities = predict_probabilities(
        model, test_set.images, batch_size, tta, crop_size, crop_stride
    )
    ids = list(range(len(test_set))) if image_ids is None else image_ids
    return aggregate_patches(probabilities, test_set.labels, ids, test_set.class_names)
