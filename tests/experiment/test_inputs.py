"""The inputs stage at a magnification: BACH fields brought to 3.36 um/px from the recorded
pixel size, covered by overlapping tiles; a source without a pixel size is refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import DataError
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import Experiment


def bach_sample(bach: Path, root: Path) -> Path:
    """Three images of each of two BACH classes, copied (ingest refuses links out of a source)."""
    for label in ("Benign", "Invasive"):
        for path in sorted((bach / "images" / label).iterdir())[:3]:
            target = root / label / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


def test_quick_histology_inputs_cover_each_field_at_its_magnification(bach, tmp_path):
    source = bach_sample(bach, tmp_path / "bach")
    space = Workspace.create(tmp_path / "ws")
    without = experiment_presets("histology").resolve("quick")
    first = Experiment.create(space, source, without, None, "no-size", log=lambda line: None)
    refusal = r"(\d) of \1 images have no recorded pixel size.*--pixel-size UM to reproduce"
    with pytest.raises(DataError, match=refusal):
        first.run(until="inputs")

    with_size = experiment_presets("histology").resolve("quick", {"source_pixel_size_um": 0.84})
    experiment = Experiment.create(space, source, with_size, None, "sized", log=lambda line: None)
    experiment.run(until="inputs")  # the rerun of ingest records the pixel size it lacked

    inputs = torch.load(experiment.paths.inputs, weights_only=False)
    rows = {fold: part["images"].shape for fold, part in inputs.items()}
    # 1024x768 at 0.84 um/px is 256x192 at 3.36 um/px: 128 px tiles at columns 0, 64, 128 and
    # rows 0, 64, six per image; six images
    assert sum(shape[0] for shape in rows.values()) == 6 * 6
    assert all(shape[1:] == (3, 128, 128) for shape in rows.values())
    for part in inputs.values():
        assert torch.bincount(part["ids"]).max() == 6


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper", "gpu"])
@pytest.mark.parametrize("modality", ["histology", "cytology"])
def test_every_preset_resolves_and_its_generator_learns_from_the_classifiers_crops(
    preset, modality
):
    from pathsynth.gan.networks import generator_stride2_layers

    config = experiment_presets(modality).resolve(preset)
    crop = config.classifier.crop_size
    assert config.gan.data.crop == crop and config.gan.data.preprocess == config.preprocess
    assert crop <= config.preprocess.size
    generator_stride2_layers(config.gan.model, config.gan.data.resolution)  # a size it can make
    if preset == "gpu" or (preset, modality) == ("quick", "histology"):  # fields, crops, grid
        assert 0 < crop < config.preprocess.size and config.classifier.grid_stride <= crop
