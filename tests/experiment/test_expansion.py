"""Affine expansion counts images, not inputs: a child of a tiled image is all of its tiles."""

from __future__ import annotations

import torch

from pathsynth.catalog.api import source_fold
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.workspace import Workspace
from pathsynth.experiment.expansion import affine_expansion
from pathsynth.experiment.protocols import LabelledPart
from pathsynth.imaging.affine import AffineConfig
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import TensorImageSet


def test_expansion_to_n_images_per_class_expands_every_tile_of_a_chosen_image(
    tmp_path, class_source
):
    space = Workspace.create(tmp_path / "ws")
    ingest_source(space, class_source, IngestOptions(modality="histology", workers=0))
    images = [image for image in source_fold(space, "histology", "source")]
    names = sorted({image.label for image in images})
    ids = torch.tensor([image.image_id for image in images]).repeat_interleave(3)  # 3 tiles each
    labels = torch.tensor([names.index(image.label) for image in images]).repeat_interleave(3)
    tiles = torch.randint(0, 256, (len(ids), 3, 16, 16), dtype=torch.uint8)
    originals = LabelledPart(TensorImageSet(tiles, labels, names), ids, ids.clone(), ids.clone())

    children = affine_expansion(
        space, originals, AffineConfig(), PreprocessConfig(mode="patches-grid", size=16),
        per_class=6, seed=1,
    )  # fmt: skip

    # 4 images per class expanded to 6: 2 children per class, each of 3 tiles
    assert len(children.images) == 3 * 2 * 3
    for parent in children.parents.unique().tolist():
        assert int((children.parents == parent).sum()) % 3 == 0
    per_class = torch.bincount(children.images.labels, minlength=3)
    assert per_class.tolist() == [6, 6, 6]
