"""Frozen-feature classifiers in the experiment: per-image embeddings of the stage's inputs.

A linear probe (``classifier.kind=linear-probe``) sees exactly the inputs fine-tuning sees, real,
affine and synthetic alike (after the experiment's preprocessing and stain normalisation), through
one frozen backbone; an image's inputs (patches, crops) are averaged into one vector. Vectors are
stored in the catalog keyed by image content, backbone weights and a preprocessing hash that
covers the experiment's inputs and stain reference, so every condition and seed of a stage, and
a rerun, reuse them.
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
    """

    def __init__(self, context: StageContext, backbone: Backbone, device: str = "cpu") -> None:
        self.context = context
        self.backbone = backbone
        self.device = device
        inputs = {
            "experiment_inputs": context.config.preprocess.as_dict(),
            "stain_reference": context.state.outputs("inputs").get("stain_reference"),
        }
        digest = preprocessing_sha256(_plain(inputs), backbone.spec)
        self.key = EmbeddingKey(backbone.name, backbone.weights_sha256, digest)
        self.method = {"backbone": backbone.name, "weights": backbone.weights,
                       "input": backbone.spec.as_dict(), **_plain(inputs)}  # fmt: skip
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
        index = torch.tensor([position[int(part.ids[r])] for r in rows], dtype=torch.int64)
        vectors = embed_inputs(self.backbone, part.images.images[rows], index, device=self.device)
        counts = torch.bincount(index, minlength=len(missing))
        store_embeddings(
            space,
            self.key,
            {shas[i]: (vectors[k].numpy(), int(counts[k])) for i, k in position.items()},
            self.method,
        )
        for image_id, k in position.items():
            self.vectors[image_id] = vectors[k]


def _plain(data: Any) -> Any:
    """``data`` with arrays and tensors as lists (JSON-able)."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if isinstance(data, np.ndarray | torch.Tensor):
        return data.tolist()
    return data
