"""Affine expansion counts images, not inputs: a child of a tiled image is all of its tiles."""

from __future__ import annotations

import pytest
import torch

from pathsynth.catalog.api import source_fold
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.workspace import Workspace
from pathsynth.experiment.expansion import affine_expansion
from pathsynth.experiment.protocols import LabelledPart
from pathsynth.imaging.config import AffineConfig
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


def _part(ids: list[int], parents: list[int], tile: list[int]) -> LabelledPart:
    """One row per tile; each row's pixels are ``id + tile`` (so a test can tell rows apart)."""
    pixels = torch.tensor([i % 200 + t for i, t in zip(ids, tile, strict=True)], dtype=torch.uint8)
    images = pixels[:, None, None, None].expand(-1, 3, 4, 4).contiguous()
    labels = torch.zeros(len(ids), dtype=torch.long)
    return LabelledPart(
        TensorImageSet(images, labels, ["a"]),
        torch.tensor(ids), torch.tensor(parents), torch.tensor(parents),
    )  # fmt: skip


def test_the_affine_figure_shows_distinct_images_each_beside_its_own_distinct_children() -> None:
    """Tiled images repeat their catalog id on every tile row: the figure must still show one
    row per image, and per child, not four tiles of one image with the same children."""
    from pathsynth.experiment.protocols import ExperimentSets
    from pathsynth.experiment.results import _affine_examples

    real = _part([10, 10, 11, 11, 12, 12], [10, 10, 11, 11, 12, 12], [0, 1] * 3)
    kids = [100, 100, 101, 101, 102, 102, 110, 110, 111, 111]
    parents = [10] * 6 + [11] * 4
    children = _part(kids, parents, [0, 1] * 5)
    sets = ExperimentSets(real, real, affine_train=children)

    found = _affine_examples(sets)

    assert found is not None
    originals, made = found
    assert originals[:, 0, 0, 0].tolist() == [10, 11]  # image 10 (3 children) first, 12 has none
    assert made.shape[:2] == (2, 2)  # as many children per row as the poorest row has
    assert made[:, :, 0, 0, 0].tolist() == [[100, 101], [110, 111]]  # first tile of each child


@pytest.mark.parametrize(
    ("protocols", "conditions", "expanded"),
    [
        (("honest",), ("original", "affine"), ["train"]),
        (("honest", "paper"), ("original", "affine"), ["train", "all"]),
        (("honest", "paper"), ("original", "synthetic"), ["train"]),  # paper needs no children
    ],
)
def test_the_test_fold_is_expanded_only_for_the_paper_protocols_affine_conditions(
    tmp_path, monkeypatch, protocols, conditions, expanded
) -> None:
    import dataclasses
    from types import SimpleNamespace

    from pathsynth.experiment import expansion
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.protocols import ExperimentSets

    config = dataclasses.replace(
        experiment_presets("histology").resolve("smoke"), protocols=protocols, conditions=conditions
    )
    real = _part([1, 2], [1, 2], [0, 0])
    calls: list[str] = []

    def fake_expansion(space, originals, *args, run_name: str, **kwargs) -> LabelledPart:
        calls.append(run_name.rsplit("-", 1)[-1])
        return originals

    monkeypatch.setattr(expansion, "affine_expansion", fake_expansion)
    context = SimpleNamespace(
        config=config, workspace=None, name="demo",
        paths=SimpleNamespace(affine=tmp_path / "affine.pt"),
        sets=lambda: ExperimentSets(real, real),
    )  # fmt: skip

    done = expansion.affine(context)  # type: ignore[arg-type]

    assert calls == expanded
    assert ("all_children" in done) == ("all" in expanded)
    saved = torch.load(tmp_path / "affine.pt", weights_only=False)
    assert sorted(saved) == sorted(expanded)
