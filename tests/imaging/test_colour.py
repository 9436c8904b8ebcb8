"""The torch colour conversions agree with scikit-image and kornia on real H&E patches."""

from __future__ import annotations

import math

import kornia
import numpy as np
import pytest
import torch
from skimage import color

from pathsynth.errors import DataError
from pathsynth.imaging.colour import (
    hed_to_rgb,
    hsv_to_rgb,
    lab_to_rgb,
    rgb_to_hed,
    rgb_to_hsv,
    rgb_to_lab,
)


def _float(patches: torch.Tensor) -> torch.Tensor:
    return patches.float() / 255.0


def _hwc(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).double().numpy()


def _nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2).float()


def test_hed_densities_and_their_inverse_match_skimage(bach_patches: torch.Tensor) -> None:
    rgb = _float(bach_patches)
    expected_hed = color.rgb2hed(_hwc(rgb), channel_axis=-1)
    assert np.abs(_hwc(rgb_to_hed(rgb)) - expected_hed).max() < 1e-5
    expected_rgb = color.hed2rgb(expected_hed, channel_axis=-1)
    assert np.abs(_hwc(hed_to_rgb(_nchw(expected_hed))) - expected_rgb).max() < 1e-5


def test_lab_and_its_inverse_match_skimage(bach_patches: torch.Tensor) -> None:
    rgb = _float(bach_patches)
    expected_lab = color.rgb2lab(_hwc(rgb), channel_axis=-1)
    # float32 against float64: L is in [0, 100], so 1e-3 is well under a visible difference
    assert np.abs(_hwc(rgb_to_lab(rgb)) - expected_lab).max() < 1e-3
    expected_rgb = color.lab2rgb(expected_lab, channel_axis=-1)
    assert np.abs(_hwc(lab_to_rgb(_nchw(expected_lab))) - expected_rgb).max() < 1e-5


def test_hsv_matches_kornia_and_round_trips(bach_patches: torch.Tensor) -> None:
    rgb = _float(bach_patches)
    hsv = rgb_to_hsv(rgb)
    reference = kornia.color.rgb_to_hsv(rgb)
    assert torch.allclose(hsv[:, 0] * 2 * math.pi, reference[:, 0], atol=1e-4)
    assert torch.allclose(hsv[:, 1:], reference[:, 1:], atol=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), rgb, atol=1e-5)


def test_grey_pixels_have_zero_hue_and_saturation() -> None:
    grey = torch.full((1, 3, 2, 2), 0.5)
    hsv = rgb_to_hsv(grey)
    assert hsv[:, :2].abs().max() == 0
    assert torch.allclose(hsv_to_rgb(hsv), grey)


def test_a_batch_that_is_not_rgb_is_refused() -> None:
    from pathsynth.imaging.colour import check_rgb_batch

    with pytest.raises(DataError, match=r"need \(N, 3, H, W\) RGB batches, got \(2, 1, 8, 8\)"):
        check_rgb_batch(torch.zeros(2, 1, 8, 8))
