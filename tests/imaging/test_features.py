"""Catalog features: values that mean what their names say."""

from __future__ import annotations

import numpy as np
from skimage.color import hed2rgb

from pathsynth.imaging.features import FEATURE_NAMES, compute_features


def synthetic_field(nuclei: list[tuple[int, int]], radius: int = 6, side: int = 120) -> np.ndarray:
    """A pale eosin background with dark haematoxylin discs at the given centres."""
    hed = np.zeros((side, side, 3))
    hed[..., 1] = 0.05
    yy, xx = np.mgrid[:side, :side]
    for y, x in nuclei:
        hed[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2, 0] = 0.6
    return (hed2rgb(hed) * 255).round().clip(0, 255).astype(np.uint8)


def test_nuclei_are_counted_and_their_area_measured():
    centres = [(20, 20), (20, 60), (60, 30), (90, 90), (100, 40)]
    features = compute_features(synthetic_field(centres))
    assert features["nuclei_count"] == 5
    assert abs(features["nuclei_mean_area_px"] - np.pi * 36) < 25
    assert features["od_mean_h"] > 0


def test_area_is_reported_in_original_pixels_for_large_images():
    small = synthetic_field([(60, 60)], radius=10, side=120)
    large = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)  # 480 px: reduced for features
    ratio = (
        compute_features(large)["nuclei_mean_area_px"]
        / compute_features(small)["nuclei_mean_area_px"]
    )
    assert 14 < ratio < 18


def test_flat_image_has_finite_features_and_no_nuclei():
    features = compute_features(np.full((50, 50, 3), 200, np.uint8))
    assert set(features) == set(FEATURE_NAMES)
    assert all(np.isfinite(v) for v in features.values())
    assert features["nuclei_count"] == 0
    assert features["rgb_std_r"] < 1e-9 and abs(features["rgb_mean_r"] - 200 / 255) < 1e-9
    assert features["rgb_skew_r"] == 0
