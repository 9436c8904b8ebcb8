"""Class folders into a tensor set; the resumable epoch sampler; bad data folders refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.imaging.folders import folder_files, load_image_set
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.training.sampler import EpochSampler

from .conftest import write_class_folders

SQUARE_32 = PreprocessConfig(mode="fit", size=32)  # what the GAN's default inputs are, at 32 px


def test_class_folders_load_as_uint8_squares_with_sorted_classes(class_folders: Path) -> None:
    data = load_image_set(folder_files(class_folders), SQUARE_32)
    assert data.images.shape == (24, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.class_names == ["alpha", "beta", "gamma"]
    assert data.class_counts() == {"alpha": 8, "beta": 8, "gamma": 8}


def test_folder_with_one_class_is_refused(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"only": 3})
    with pytest.raises(DataError, match="one class"):
        load_image_set(folder_files(tmp_path), SQUARE_32)


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        load_image_set(folder_files(tmp_path), SQUARE_32)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        folder_files(tmp_path / "nope")


def test_undecodable_file_is_named(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        load_image_set(folder_files(tmp_path), SQUARE_32)


def test_sampler_covers_each_epoch_once_and_resumes_mid_epoch() -> None:
    sampler = EpochSampler(10, 3, seed=1)
    first_epoch = torch.cat([sampler.next_batch() for _ in range(3)])
    assert len(set(first_epoch.tolist())) == 9 and sampler.epoch == 1
    sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(5)]
    resumed = EpochSampler(10, 3, seed=1)
    resumed.load_state_dict(state)
    assert all(
        torch.equal(a, b)
        for a, b in zip(expected, [resumed.next_batch() for _ in range(5)], strict=True)
    )


def test_fewer_images_than_a_batch_are_refused() -> None:
    with pytest.raises(DataError, match="fewer than one batch"):
        EpochSampler(4, 8, seed=0)
