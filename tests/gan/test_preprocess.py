"""Fitting images to the network's square (pathsynth.imaging.preprocess)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pathsynth.imaging.preprocess import border_colour, center_crop, fit_square, pad_to_square


def _tall() -> Image.Image:
    pixels = np.full((40, 20, 3), 200, dtype=np.uint8)
    pixels[10:30, 5:15] = (10, 20, 30)  # a dark object on a light background
    return Image.fromarray(pixels)


def test_every_fit_gives_an_rgb_square() -> None:
    for fit in ("pad", "crop", "stretch"):
        out = fit_square(_tall(), 32, fit=fit)
        assert out.size == (32, 32) and out.mode == "RGB"


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
    assert fit_square(grey, 16).size == (16, 16)
    assert border_colour(Image.fromarray(np.full((4, 4, 3), 7, np.uint8))) == (7, 7, 7)


def test_unknown_fit_or_fill_is_refused() -> None:
    with pytest.raises(ValueError, match="fit"):
        fit_square(_tall(), 16, fit="zoom")
    with pytest.raises(ValueError, match="fill"):
        fit_square(_tall(), 16, fill="green")
    with pytest.raises(ValueError, match="uint8"):
        fit_square(np.zeros((4, 4), dtype=np.float32), 16)
