"""Preprocessing to network inputs: which pixels each mode keeps, and where each patch came from."""

from __future__ import annotations

import numpy as np
import pytest

from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.patches import (
    PREPROCESS,
    PRESETS,
    PreprocessConfig,
    grid_corners,
    preprocess_image,
    preprocess_images,
)


def coordinate_image(height: int, width: int, tag: int = 0) -> np.ndarray:
    """Red = column, green = row, blue = tag: any crop reveals where it was cut from."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols % 256, rows % 256, np.full_like(rows, tag)], axis=2).astype(np.uint8)


def test_grid_patches_are_the_centred_tiles_and_carry_their_image_index():
    first, second = coordinate_image(300, 260, tag=1), coordinate_image(140, 140, tag=2)
    config = PreprocessConfig(mode="patches-grid", size=128)
    patches, index = preprocess_images([first, second], config)
    assert patches.shape == (5, 3, 128, 128)
    assert index.tolist() == [0, 0, 0, 0, 1]
    corners = grid_corners(300, 260, 128)
    assert corners == [(22, 2), (22, 130), (150, 2), (150, 130)]
    for patch, (top, left) in zip(patches[:4], corners, strict=True):
        expected = first[top : top + 128, left : left + 128].transpose(2, 0, 1)
        assert np.array_equal(patch.numpy(), expected)
    assert (patches[4, 2] == 2).all()  # the last patch is the second image's


def test_random_patches_are_true_crops_repeatable_per_image_and_seed():
    image = coordinate_image(200, 250)
    config = PreprocessConfig(mode="patches-random", size=64, patches_per_image=5, seed=3)
    patches = preprocess_image(image, config, image_key="abc").numpy()
    assert patches.shape == (5, 3, 64, 64)
    for patch in patches:
        top, left = int(patch[1, 0, 0]), int(patch[0, 0, 0])
        assert np.array_equal(patch, image[top : top + 64, left : left + 64].transpose(2, 0, 1))
    again = preprocess_image(image, config, image_key="abc").numpy()
    other_seed = preprocess_image(image, PreprocessConfig(**{**config.as_dict(), "seed": 4}), "abc")
    assert np.array_equal(patches, again)
    assert not np.array_equal(patches, other_seed.numpy())


def test_patches_shrink_the_image_by_the_scale_first():
    image = np.zeros((512, 768, 3), np.uint8)
    patches = preprocess_image(image, PreprocessConfig(mode="patches-grid", size=128, scale=2.0))
    assert len(patches) == 2 * 3  # a 384x256 field holds 3x2 tiles


def test_pad_keeps_the_absolute_size_of_a_cell():
    cell = np.full((40, 40, 3), 90, np.uint8)
    canvas = preprocess_image(cell, PreprocessConfig(mode="pad", size=128, fill="white"))[0]
    rows, cols = np.nonzero((canvas.numpy() != 255).any(axis=0))
    assert canvas.shape == (3, 128, 128)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (40, 40)
    halved = preprocess_image(cell, PreprocessConfig(mode="pad", size=128, scale=2.0, fill="white"))
    assert int((halved[0].numpy() != 255).any(axis=0).sum()) == 20 * 20


def test_pad_keeps_the_centre_of_a_crop_larger_than_the_canvas():
    image = coordinate_image(200, 160)
    canvas = preprocess_image(image, PreprocessConfig(mode="pad", size=128))[0].numpy()
    assert np.array_equal(canvas, image[36:164, 16:144].transpose(2, 0, 1))


def test_whole_image_modes_give_one_square_per_image():
    image = coordinate_image(90, 120)
    for mode in ("resize", "crop", "pad"):
        out = preprocess_image(image, PreprocessConfig(mode=mode, size=32))
        assert out.shape == (1, 3, 32, 32), mode


def test_refuses_an_image_smaller_than_one_patch_and_unknown_settings():
    with pytest.raises(DataError, match="smaller than one 128 px patch"):
        preprocess_image(np.zeros((100, 300, 3), np.uint8), PreprocessConfig(mode="patches-grid"))
    with pytest.raises(ConfigError, match="mode"):
        PreprocessConfig(mode="tiles")
    with pytest.raises(
        ConfigError,
        match=r"unknown preprocess setting 'sizes' \(did you mean size\?\); valid keys: mode, size",
    ):
        PREPROCESS.resolve("cytology", {"sizes": 64})


def test_presets_cover_both_modalities():
    assert PRESETS["histology"].mode == "patches-random"
    assert PRESETS["cytology"].mode == "pad"
    assert PREPROCESS.resolve("cytology", {"size": 64}).size == 64


def test_bach_field_gives_the_histology_preset_patches(bach):
    from pathsynth.imaging.decode import load_rgb

    path = next((bach / "images").rglob("*.jpg"))
    patches = preprocess_image(load_rgb(path), PRESETS["histology-grid"], "x")
    assert patches.shape[1:] == (3, 128, 128) and len(patches) >= 1


def test_grid_with_a_stride_overlaps_and_ends_flush_with_the_edges():
    assert grid_corners(192, 256, 128, 64) == [
        (0, 0), (0, 64), (0, 128), (64, 0), (64, 64), (64, 128),
    ]  # fmt: skip
    patches, _ = preprocess_images(
        [coordinate_image(100, 150)], PreprocessConfig(mode="patches-grid", size=64, stride=40)
    )
    # rows 0, 36 (flush); columns 0, 40, 80, 86 (flush)
    assert patches.shape == (8, 3, 64, 64)
    assert int(patches[-1, 0, 0, -1]) == 149 and int(patches[-1, 1, -1, 0]) == 99


def test_a_magnification_scales_each_image_by_its_recorded_pixel_size():
    config = PreprocessConfig(mode="pad", size=64, pixel_size_um=2.0)
    fine, coarse = np.full((120, 120, 3), 90, np.uint8), np.full((60, 60, 3), 90, np.uint8)
    # 120 px at 0.5 um/px and 60 px at 1 um/px are both 30 px at 2 um/px: same size on the canvas
    assert config.scale_for(0.5) == 4.0 and config.scale_for(1.0) == 2.0
    fine[10:110, 10:110] = coarse[5:55, 5:55] = 200
    a = preprocess_image(fine, config, pixel_size_um=0.5)
    b = preprocess_image(coarse, config, pixel_size_um=1.0)
    bright_a, bright_b = int((a[0, 0] > 150).sum()), int((b[0, 0] > 150).sum())
    assert bright_a == bright_b and 23 * 23 <= bright_a <= 25 * 25  # 25 px squares, edges blend
    with pytest.raises(DataError, match=r"no recorded pixel size.*--pixel-size"):
        preprocess_image(fine, config)
    # modes that stretch to the canvas have no magnification: the pixel size is not needed
    assert PreprocessConfig(mode="resize", pixel_size_um=2.0).scale_for(None) == 1.0
