"""Image features computed at ingest and stored in the catalog beside each image.

Three families, all cheap enough to run on every image:

- colour moments (mean, standard deviation, skewness) per RGB channel and per channel of the
  haematoxylin / eosin / DAB optical-density space (colour deconvolution, Ruifrok & Johnston);
- grey-level texture statistics from a co-occurrence matrix (contrast, homogeneity, energy,
  correlation) and the grey-level entropy;
- a nuclei estimate: an Otsu threshold of the haematoxylin channel, small objects removed, then the
  number of connected regions, their mean area (in pixels of the original image) and the fraction
  of the image they cover.

Large images are reduced to at most :data:`FEATURE_MAX_SIDE` pixels per side first, so a 1024x768
field costs about as much as a 250 px cell crop; areas are scaled back to original pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.color import rgb2gray, rgb2hed
from skimage.feature import graycomatrix, graycoprops
from skimage.filters import threshold_otsu
from skimage.measure import label, shannon_entropy
from skimage.morphology import remove_small_objects

FEATURE_MAX_SIDE = 256
GLCM_LEVELS = 64
MIN_NUCLEUS_AREA = 12  # pixels at feature scale: smaller regions are noise, not nuclei

_RGB = ("r", "g", "b")
_HED = ("h", "e", "d")
COLOUR_FEATURES = tuple(
    f"{space}_{stat}_{channel}"
    for space, channels in (("rgb", _RGB), ("od", _HED))
    for stat in ("mean", "std", "skew")
    for channel in channels
)
TEXTURE_FEATURES = (
    "glcm_contrast",
    "glcm_homogeneity",
    "glcm_energy",
    "glcm_correlation",
    "grey_entropy",
)
NUCLEI_FEATURES = ("nuclei_count", "nuclei_mean_area_px", "nuclei_area_fraction")
FEATURE_NAMES: tuple[str, ...] = COLOUR_FEATURES + TEXTURE_FEATURES + NUCLEI_FEATURES


def compute_features(rgb: np.ndarray) -> dict[str, float]:
    """All catalog features of one RGB image.

    Args:
        rgb: ``uint8`` array (H, W, 3).

    Returns:
        A value for every name in :data:`FEATURE_NAMES`; every value is finite.
    """
    small, scale = _reduce(rgb)
    features: dict[str, float] = {}
    features.update(_moments("rgb", _RGB, small.astype(np.float64) / 255.0))
    hed = rgb2hed(small)
    features.update(_moments("od", _HED, hed))
    features.update(_texture(small))
    features.update(_nuclei(hed[:, :, 0], scale))
    return features


def _reduce(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The image at most FEATURE_MAX_SIDE per side, and the linear scale to the original."""
    height, width = rgb.shape[:2]
    factor = max(height, width) / FEATURE_MAX_SIDE
    if factor <= 1.0:
        return rgb, 1.0
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    return small, factor


def _moments(space: str, channels: tuple[str, ...], values: np.ndarray) -> dict[str, float]:
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64, copy=False)
    mean = flat.mean(axis=0)
    centred = flat - mean
    squared = centred * centred  # products, not ** powers: several times faster on large arrays
    variance = squared.mean(axis=0)
    third = (squared * centred).mean(axis=0)
    std = np.sqrt(variance)
    skew = np.divide(third, std**3, out=np.zeros_like(third), where=std > 1e-12)
    result = {}
    for index, channel in enumerate(channels):
        result[f"{space}_mean_{channel}"] = float(mean[index])
        result[f"{space}_std_{channel}"] = float(std[index])
        result[f"{space}_skew_{channel}"] = float(skew[index])
    return result


def _texture(rgb: np.ndarray) -> dict[str, float]:
    grey = (rgb2gray(rgb) * (GLCM_LEVELS - 1)).round().astype(np.uint8)
    matrix = graycomatrix(
        grey,
        distances=[1],
        angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
        levels=GLCM_LEVELS,
        symmetric=True,
        normed=True,
    )
    result = {
        f"glcm_{prop}": float(np.nan_to_num(graycoprops(matrix, prop).mean(), nan=0.0))
        for prop in ("contrast", "homogeneity", "energy", "correlation")
    }
    result["grey_entropy"] = float(shannon_entropy(grey))
    return result


def _nuclei(haematoxylin: np.ndarray, scale: float) -> dict[str, float]:
    if float(haematoxylin.max() - haematoxylin.min()) < 1e-9:
        return {"nuclei_count": 0.0, "nuclei_mean_area_px": 0.0, "nuclei_area_fraction": 0.0}
    mask = haematoxylin > threshold_otsu(haematoxylin)
    mask = remove_small_objects(mask, max_size=MIN_NUCLEUS_AREA)
    regions = label(mask, connectivity=2)
    count = int(regions.max())
    covered = float(mask.sum())
    return {
        "nuclei_count": float(count),
        "nuclei_mean_area_px": covered / count * scale * scale if count else 0.0,
        "nuclei_area_fraction": covered / mask.size,
    }
