"""Fitting images to the network's square (pathsynth.imaging.preprocess and the square modes of
pathsynth.imaging.patches, the one preparation path)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pathsynth.errors import ConfigError
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image
from pathsynth.imaging.preprocess import border_colour, center_crop, pad_to_square


def _tall() -> Image.Image:
    pixels = np.full((40, 20, 3), 200, dtype=np.uint8)
    pixels[10:30, 5:15] = (10, 20, 30)  # a dark object on a light background
    return Image.fromarray(pixels)


def test_every_whole_image_mode_gives_an_rgb_square() -> None:
    for mode in ("fit", "crop", "resize", "pad"):
        out = preprocess_image(np.asarray(_tall()), PreprocessConfig(mode=mode, size=32))
        assert out.shape == (1, 3, 32, 32) and out.dtype.is_floating_point is False


def test_pad_keeps_the_whole_image_and_fills_with_the_background() -> None:
    out = np.asarray(pad_to_square(_tall(), 32))
    assert tuple(out[16, 0]) == (200, 200, 200)  # left margin is canvas in the border colour
    assert out[16, 16].tolist() == [10, 20, 30]  # the object is still in the middle


def test_crop_cuts_the_long_side() -> None:
    out = np.asarray(center_crop(_tall(), 20))
    assert out.shape == (20, 20, 3)
    assert out[10, 10].tolist() == [10, 20, 30]


def test_arrays_and_grey_images_are_accepted() -> None:
    grey = np.zeros((10, 30), dtype=np.uint8)
    assert pad_to_square(grey, 16).size == (16, 16)
    assert border_colour(Image.fromarray(np.full((4, 4, 3), 7, np.uint8))) == (7, 7, 7)


def test_unknown_mode_or_fill_is_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        PreprocessConfig(mode="zoom")
    with pytest.raises(ConfigError, match="fill"):
        PreprocessConfig(mode="fit", fill="green")
    with pytest.raises(ValueError, match="fill"):
        pad_to_square(_tall(), 16, fill="green")
    with pytest.raises(ValueError, match="uint8"):
        pad_to_square(np.zeros((4, 4), dtype=np.float32), 16)
