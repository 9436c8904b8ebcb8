"""The preprocessing cache: hit on a rerun, missed on a changed setting, never half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_image

import pathsynth.imaging.cache as cache
from pathsynth.errors import DataError
from pathsynth.imaging.cache import load_preprocessed, params_key
from pathsynth.imaging.patches import PreprocessConfig

CLASSES = ["benign", "malignant"]


@pytest.fixture
def files(tmp_path: Path) -> list[tuple[Path, str]]:
    return [
        (write_image(tmp_path / "src" / "a.png", seed=1, size=(70, 50)), "malignant"),
        (write_image(tmp_path / "src" / "b.png", seed=2, size=(64, 64)), "benign"),
        (write_image(tmp_path / "src" / "c.png", seed=3, size=(40, 90)), "malignant"),
    ]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the cache decodes, in order."""
    calls: list[Path] = []
    real = cache.load_rgb

    def counting(path: Path) -> np.ndarray:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache, "load_rgb", counting)
    return calls


def test_second_call_loads_from_the_cache_without_decoding(files, decodes, tmp_path):
    config = PreprocessConfig(mode="resize", size=16)
    first, first_index = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    assert len(decodes) == 3
    second, second_index = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    assert len(decodes) == 3  # nothing decoded again
    assert torch.equal(first.images, second.images) and torch.equal(first_index, second_index)
    assert first.labels.tolist() == [1, 0, 1]


def test_a_changed_setting_misses_the_cache(files, decodes, tmp_path):
    load_preprocessed(files, CLASSES, PreprocessConfig(mode="resize", size=16), tmp_path / "c")
    changed = PreprocessConfig(mode="resize", size=24)
    sets, _ = load_preprocessed(files, CLASSES, changed, tmp_path / "c")
    assert len(decodes) == 6 and sets.resolution == 24
    assert params_key(changed) != params_key(PreprocessConfig(mode="resize", size=16))
    assert len([p for p in (tmp_path / "c").iterdir() if p.is_dir()]) == 2


def test_patch_rows_carry_their_file_index_and_label(files, tmp_path):
    config = PreprocessConfig(mode="patches-random", size=32, patches_per_image=4)
    images, index = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    assert len(images) == 12
    assert index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert images.labels.tolist() == [1] * 4 + [0] * 4 + [1] * 4
    assert images.class_counts() == {"benign": 4, "malignant": 8}


def test_entries_are_complete_files_and_a_damaged_one_is_recomputed(files, decodes, tmp_path):
    config = PreprocessConfig(mode="crop", size=16)
    expected, _ = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    folder = tmp_path / "cache" / params_key(config)
    entries = sorted(folder.glob("*.pt"))
    assert len(entries) == 3 and not list(folder.glob(".tmp-*"))
    entries[0].write_bytes(b"not a tensor")
    again, _ = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    assert len(decodes) == 4 and torch.equal(again.images, expected.images)


def test_without_a_cache_folder_nothing_is_written(files, tmp_path):
    images, _ = load_preprocessed(files, CLASSES, PreprocessConfig(size=16), None)
    assert len(images) == 3 and not (tmp_path / "cache").exists()


def test_refuses_an_unknown_class_and_an_empty_list(files, tmp_path):
    with pytest.raises(DataError, match="malignant are not among benign"):
        load_preprocessed(files, ["benign"], PreprocessConfig(), tmp_path / "c")
    with pytest.raises(DataError, match="no image files"):
        load_preprocessed([], CLASSES, PreprocessConfig(), tmp_path / "c")


def test_herlev_cells_load_on_the_cytology_canvas_and_hit_the_cache(herlev, decodes, tmp_path):
    from pathsynth.imaging.patches import PRESETS

    paths = sorted((herlev / "images").rglob("*.jpg"))[:3]
    files = [(path, path.parent.name) for path in paths]
    names = sorted({label for _, label in files})
    first, index = load_preprocessed(files, names, PRESETS["cytology"], tmp_path / "cache")
    again, _ = load_preprocessed(files, names, PRESETS["cytology"], tmp_path / "cache")
    assert first.images.shape == (3, 3, 128, 128) and index.tolist() == [0, 1, 2]
    assert len(decodes) == 3 and torch.equal(first.images, again.images)


def test_patch_index_aggregates_to_one_prediction_per_file(files, tmp_path):
    from pathsynth.classify.evaluate import aggregate_patches

    config = PreprocessConfig(mode="patches-random", size=32, patches_per_image=4)
    images, index = load_preprocessed(files, CLASSES, config, tmp_path / "cache")
    probabilities = torch.softmax(torch.randn(len(images), 2), dim=1)
    per_image = aggregate_patches(probabilities, images.labels, index, CLASSES)
    assert per_image.image_ids == [0, 1, 2] and per_image.labels.tolist() == [1, 0, 1]
    assert torch.allclose(per_image.probabilities[1].float(), probabilities[4:8].mean(dim=0))


def test_a_file_that_does_not_decode_is_refused_by_name(files, tmp_path):
    from pathsynth.errors import ImageRefused

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageRefused, match=r"broken\.png: not an image file"):
        load_preprocessed([*files, (broken, "benign")], CLASSES, PreprocessConfig(), None)
