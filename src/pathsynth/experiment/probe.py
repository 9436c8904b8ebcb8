"""Frozen-feature classifiers in the experiment: per-image embeddings of the stage's inputs.

A linear probe (``classifier.kind=linear-probe``) sees exactly the inputs fine-tuning sees, real,
affine and synthetic alike (after the experiment's preprocessing and stain normalisation), through
one frozen backbone; an image's inputs (patches, crops) are averaged into one vector. Vectors are
stored in the catalog keyed by image content, backbone weights and a preprocessing hash that
covers the experiment's inputs and stain reference, so every condition and seed of a stage, and
a rerun, reuse them.

The quality stage asks for another view (``view_side``): one vector per image from its first
input alone, centre-cropped to the generated images' side, so that a real image and a generated
one are seen at the same scale and field (averaging a real image's several tiles would shrink the
real set's spread and bias every distance). The view is part of the key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pathsynth.backbones.embed import embed_inputs, preprocessing_sha256
from pathsynth.backbones.load import Backbone
from pathsynth.catalog.api import (
    EmbeddingKey,
    image_sha256s,
    store_embeddings,
    stored_embeddings,
)
from pathsynth.classify.probe import FeatureSet
from pathsynth.errors import DataError
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.protocols import LabelledPart


class ExperimentEmbeddings:
    """Per-image vectors of an experiment's inputs under one backbone, computed once.

    Args:
        context: the stage.
        backbone: the frozen feature extractor.
        device: where the backbone runs.
        view_side: 0: an image's vector averages all its inputs; S: it is the features of the
            centre S x S crop of its first input alone.
    """

    def __init__(
        self, context: StageContext, backbone: Backbone, device: str = "cpu", view_side: int = 0
    ) -> None:
        self.context = context
        self.backbone = backbone
        self.device = device
        self.view_side = view_side
        inputs: dict[str, Any] = {
            "experiment_inputs": context.config.preprocess.as_dict(),
            "stain_reference": context.state.outputs("inputs").get("stain_reference"),
        }
        if view_side:
            inputs["view"] = {"input": "first", "centre_crop": view_side}
        digest = preprocessing_sha256(_plain(inputs), backbone.spec)
        self.key = EmbeddingKey(backbone.name, backbone.weights_sha256, digest)
        self.method = {
            "backbone": backbone.name,
            "weights": backbone.weights,
            "input": backbone.spec.as_dict(),
            **_plain(inputs),
        }
        self.vectors: dict[int, torch.Tensor] = {}

    def of(self, part: LabelledPart) -> FeatureSet:
        """One vector and label per catalog image of ``part`` (rows of one id averaged), in
        ascending id order.

        Raises:
            DataError: an image whose rows carry two labels, or an id not in the catalog.
        """
        ids, inverse = torch.unique(part.ids, return_inverse=True)
        labels = torch.full((len(ids),), -1, dtype=torch.int64)
        labels[inverse] = part.images.labels
        if bool((labels[inverse] != part.images.labels).any()):
            raise DataError("rows of one image carry different labels")
        self._fill(part, ids, inverse)
        features = torch.stack([self.vectors[int(i)] for i in ids])
        return FeatureSet(features, labels)

    def views(self, part: LabelledPart) -> torch.Tensor:
        """The pixels behind :meth:`of`'s vectors with ``view_side``: each image's first input,
        centre-cropped, in ascending id order.

        Raises:
            DataError: no ``view_side``, or inputs smaller than it.
        """
        if not self.view_side:
            raise DataError("image views need a view_side")
        ids = torch.unique(part.ids)
        first = {int(i): r for r, i in reversed(list(enumerate(part.ids.tolist())))}
        rows = [first[int(i)] for i in ids]
        return centre_crops(part.images.images[rows], self.view_side)

    def _fill(self, part: LabelledPart, ids: torch.Tensor, inverse: torch.Tensor) -> None:
        """Load stored vectors of ``ids`` and compute and store the missing ones."""
        wanted = [int(i) for i in ids if int(i) not in self.vectors]
        if not wanted:
            return
        space = self.context.workspace
        shas = image_sha256s(space, wanted)
        absent = [i for i in wanted if i not in shas]
        if absent:
            raise DataError(f"images {absent[:3]} of the experiment are not in the catalog")
        stored = stored_embeddings(space, self.key, shas.values())
        for image_id in wanted:
            if shas[image_id] in stored:
                self.vectors[image_id] = torch.from_numpy(stored[shas[image_id]].copy())
        missing = [i for i in wanted if i not in self.vectors]
        if not missing:
            return
        position = {image_id: k for k, image_id in enumerate(missing)}
        rows = [r for r, i in enumerate(ids[inverse].tolist()) if i in position]
        if self.view_side:  # the first input of each image, centre-cropped
            first = {int(part.ids[r]): r for r in reversed(rows)}
            rows = [first[image_id] for image_id in missing]
        index = torch.tensor([position[int(part.ids[r])] for r in rows], dtype=torch.int64)
        images = part.images.images[rows]
        if self.view_side:
            images = centre_crops(images, self.view_side)
        vectors = embed_inputs(self.backbone, images, index, device=self.device)
        counts = torch.bincount(index, minlength=len(missing))
        store_embeddings(
            space,
            self.key,
            {shas[i]: (vectors[k].numpy(), int(counts[k])) for i, k in position.items()},
            self.method,
        )
        for image_id, k in position.items():
            self.vectors[image_id] = vectors[k]


def centre_crops(images: torch.Tensor, side: int) -> torch.Tensor:
    """The centre ``side`` x ``side`` square of every image (N, C, H, W).

    Raises:
        DataError: images smaller than ``side``.
    """
    height, width = images.shape[-2:]
    if side > min(height, width):
        raise DataError(f"a {side} px view of {width}x{height} inputs")
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top : top + side, left : left + side]


def _plain(data: Any) -> Any:
    """``data`` with arrays and tensors as lists (JSON-able)."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if isinstance(data, np.ndarray | torch.Tensor):
        return data.tolist()
    return data
