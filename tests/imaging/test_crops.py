"""Random and grid crops of batched inputs: true windows, repeatable, covering, refused when too big."""

from __future__ import annotations

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.imaging.crops import grid_crops, random_crops


def coordinate_batch(count: int, height: int, width: int) -> torch.Tensor:
    """Channel 0 = row, 1 = column, 2 = image number: any crop tells where it was cut."""
    rows = torch.arange(height)[:, None].expand(height, width)
    cols = torch.arange(width)[None, :].expand(height, width)
    images = [torch.stack([rows, cols, torch.full_like(rows, n)]) for n in range(count)]
    return torch.stack(images).to(torch.uint8)


def test_random_crops_are_windows_of_their_own_image_and_repeat_for_a_seed():
    images = coordinate_batch(16, 40, 56)
    crops = random_crops(images, 24, torch.Generator().manual_seed(3))
    again = random_crops(images, 24, torch.Generator().manual_seed(3))
    other = random_crops(images, 24, torch.Generator().manual_seed(4))

    assert crops.shape == (16, 3, 24, 24) and crops.dtype == torch.uint8
    assert torch.equal(crops, again) and not torch.equal(crops, other)
    for n, crop in enumerate(crops):
        top, left = int(crop[0, 0, 0]), int(crop[1, 0, 0])
        assert torch.equal(crop, images[n, :, top : top + 24, left : left + 24])
    tops = {int(crop[0, 0, 0]) for crop in crops}
    assert len(tops) > 4 and max(tops) <= 40 - 24  # positions vary and stay inside


def test_random_crop_of_the_input_size_is_the_input():
    images = coordinate_batch(2, 32, 32)
    assert random_crops(images, 32) is images


def test_grid_crops_cover_every_pixel_and_name_their_input():
    images = coordinate_batch(3, 40, 56)
    crops, index = grid_crops(images, 24, 12)
    # rows 0, 12, 16 (flush); columns 0, 12, 24, 32 (flush)
    assert crops.shape == (3 * 3 * 4, 3, 24, 24)
    assert index.tolist() == [n for n in range(3) for _ in range(12)]
    seen = torch.zeros(40, 56, dtype=torch.bool)
    for crop in crops[index == 1]:
        assert bool((crop[2] == 1).all())
        top, left = int(crop[0, 0, 0]), int(crop[1, 0, 0])
        seen[top : top + 24, left : left + 24] = True
    assert bool(seen.all())


def test_crops_larger_than_the_inputs_or_a_zero_stride_are_refused():
    images = coordinate_batch(1, 20, 30)
    with pytest.raises(DataError, match="does not fit 30x20"):
        random_crops(images, 24)
    with pytest.raises(DataError, match="stride"):
        grid_crops(images, 16, 0)
