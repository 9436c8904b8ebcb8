"""Embeddings as catalog data: compute each image's vector once per backbone and preprocessing.

:func:`embed_catalog_images` looks up the vectors already stored under the key (backbone, hash
of its tensors, hash of the preprocessing), computes only the missing ones and stores them in
chunks, so a rerun computes nothing and a killed run keeps what it finished. The key never
names an image row: a changed file has another sha256 and gets a new vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pathsynth.backbones.embed import AGGREGATION, embed_inputs, preprocessing_sha256
from pathsynth.backbones.load import Backbone
from pathsynth.errors import DataError, ImageRefused
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image

if TYPE_CHECKING:
    from pathsynth.catalog.api import EmbeddingKey, FoldImage, Workspace


@dataclass(frozen=True)
class EmbedSummary:
    """What one call did: vectors computed now and vectors found stored."""

    computed: int
    reused: int


def embedding_key(backbone: Backbone, preprocess: PreprocessConfig) -> EmbeddingKey:
    """The catalog key of ``backbone``'s vectors of images preprocessed with ``preprocess``."""
    from pathsynth.catalog.api import EmbeddingKey

    digest = preprocessing_sha256(preprocess.as_dict(), backbone.spec)
    return EmbeddingKey(backbone.name, backbone.weights_sha256, digest)


def method_record(backbone: Backbone, preprocess: PreprocessConfig) -> dict[str, Any]:
    """The settings behind a key, as stored with the ``embed`` run."""
    return {
        "backbone": backbone.name,
        "weights": backbone.weights,
        "weights_sha256": backbone.weights_sha256,
        "dim": backbone.dim,
        "input": backbone.spec.as_dict(),
        "preprocess": preprocess.as_dict(),
        "aggregation": AGGREGATION,
    }


def embed_catalog_images(
    space: Workspace,
    images: Sequence[FoldImage],
    backbone: Backbone,
    preprocess: PreprocessConfig,
    batch_size: int = 64,
    bf16: bool = False,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> EmbedSummary:
    """Store the vector of every image that has none under this backbone and preprocessing.

    Args:
        space: the workspace.
        images: catalog images (from :func:`~pathsynth.catalog.api.split_fold` or
            :func:`~pathsynth.catalog.api.all_images`).
        backbone: the frozen feature extractor.
        preprocess: how each file becomes network inputs (patches averaged per image).
        batch_size: inputs per forward pass.
        bf16: bf16 autocast; vectors are stored as float32 either way.
        chunk: images computed and stored per transaction.
        progress: called with the number of images done after each chunk.

    Returns:
        How many vectors were computed and how many were already stored.

    Raises:
        ImageRefused: a file that does not decode (named).
        DataError: what :func:`~pathsynth.imaging.patches.preprocess_image` refuses.
        CatalogUnavailable: the catalog cannot be reached.
    """
    from pathsynth.catalog.api import store_embeddings, stored_embeddings

    key = embedding_key(backbone, preprocess)
    unique = list({image.sha256: image for image in images}.values())
    have = stored_embeddings(space, key, [image.sha256 for image in unique])
    missing = [image for image in unique if image.sha256 not in have]
    method = method_record(backbone, preprocess)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        inputs = [_inputs(image, preprocess) for image in part]
        index = torch.cat(
            [torch.full((len(t),), i, dtype=torch.int64) for i, t in enumerate(inputs)]
        )
        vectors = embed_inputs(backbone, torch.cat(inputs), index, batch_size, bf16)
        store_embeddings(
            space,
            key,
            {image.sha256: (vectors[i].numpy(), len(inputs[i])) for i, image in enumerate(part)},
            method,
        )
        if progress is not None:
            progress(len(part))
    return EmbedSummary(computed=len(missing), reused=len(unique) - len(missing))


def image_embeddings(
    space: Workspace, images: Sequence[FoldImage], backbone: Backbone, preprocess: PreprocessConfig
) -> np.ndarray:
    """The stored vectors of ``images``, in their order, computing the missing ones first.

    Returns:
        ``float32`` (len(images), dim).

    Raises:
        What :func:`embed_catalog_images` raises.
    """
    from pathsynth.catalog.api import stored_embeddings

    embed_catalog_images(space, images, backbone, preprocess)
    key = embedding_key(backbone, preprocess)
    found = stored_embeddings(space, key, [image.sha256 for image in images])
    return np.stack([found[image.sha256] for image in images]).astype(np.float32)


def _inputs(image: FoldImage, preprocess: PreprocessConfig) -> torch.Tensor:
    try:
        rgb = load_rgb(image.path)
    except ImageRefused as error:
        raise ImageRefused(f"{image.path}: {error}") from None
    try:
        return preprocess_image(rgb, preprocess, image.sha256, image.pixel_size_um)
    except DataError as error:
        raise DataError(f"{image.path}: {error}") from None
