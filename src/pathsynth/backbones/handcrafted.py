"""Handcrafted features of H&E and Pap-stained inputs: stain, texture and nuclei, no training.

The classic computational-pathology baseline (the features QuPath and CellProfiler users train a
classifier on) as a frozen backbone, so that ``classifier.kind=logistic`` (and the quality stage)
can use it like any timm network: ``--set classifier.backbone=handcrafted``. Per input square:

- stain: percentiles (5, 25, 50, 75, 95) and spread of the haematoxylin, eosin and DAB densities
  (skimage's colour deconvolution, Ruifrok and Johnston 2001): 18 values;
- texture: rotation-invariant uniform local binary patterns of the grey image at radii 1, 2 and 4
  (Ojala et al. 2002; histograms of 10, 10 and 18 bins) and grey-level co-occurrence statistics
  (contrast, homogeneity, energy, correlation, dissimilarity; 32 levels, distances 1, 2, 4 and
  8 pixels, averaged over four directions; Haralick 1973): 58 values;
- nuclei: objects of the haematoxylin channel above its Otsu threshold: their area fraction,
  number per 10,000 pixels, median, 90th percentile and spread of area, and mean eccentricity:
  6 values.

Features are computed on the inputs as the experiment makes them (at its magnification) and an
image's inputs are averaged like any backbone's. On BACH by patient group (5-fold CV, 3 seeds,
BENCHMARKS.md) they scored best at 3.36 um/px, the ``quick`` inputs' scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

NAME = "handcrafted"
LBP_SCALES = ((8, 1), (8, 2), (16, 4))  # (points, radius)
GLCM_DISTANCES = (1, 2, 4, 8)
GLCM_LEVELS = 32
GLCM_PROPERTIES = ("contrast", "homogeneity", "energy", "correlation", "dissimilarity")
STAIN_PERCENTILES = (5, 25, 50, 75, 95)
MIN_NUCLEUS_PIXELS = 8
DIM = 3 * (len(STAIN_PERCENTILES) + 1) + sum(p + 2 for p, _ in LBP_SCALES)
DIM += len(GLCM_PROPERTIES) * len(GLCM_DISTANCES) + 6


class HandcraftedFeatures(nn.Module):
    """Stain, texture and nuclei features of RGB inputs in [0, 1] (N, 3, H, W) -> (N, :data:`DIM`).

    It has no parameters: its features depend on the inputs alone (an empty state, so every
    instance has the same weights hash).
    """

    num_features = DIM

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of each input, float32 on the inputs' device."""
        pixels = images.detach().float().clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy()
        rows = [square_features(square) for square in pixels]
        return torch.from_numpy(np.stack(rows).astype(np.float32)).to(images.device)


def square_features(rgb: np.ndarray) -> np.ndarray:
    """The :data:`DIM` features of one RGB square, float64 (H, W, 3) in [0, 1]."""
    from skimage.color import rgb2gray, rgb2hed

    densities = rgb2hed(rgb)
    grey = (rgb2gray(rgb) * 255).astype(np.uint8)
    parts = [
        _stain(densities),
        _local_binary_patterns(grey),
        _cooccurrence(grey),
        _nuclei(densities[..., 0]),
    ]
    return np.concatenate(parts)


def _stain(densities: np.ndarray) -> np.ndarray:
    values = densities.reshape(-1, 3)
    percentiles = np.percentile(values, STAIN_PERCENTILES, axis=0)  # (5, 3)
    return np.vstack([percentiles, values.std(axis=0)]).T.ravel()  # per stain: percentiles, std


def _local_binary_patterns(grey: np.ndarray) -> np.ndarray:
    from skimage.feature import local_binary_pattern

    histograms = []
    for points, radius in LBP_SCALES:
        with warnings.catch_warnings():  # skimage warns on integer input; the codes are the same
            warnings.simplefilter("ignore")
            codes = local_binary_pattern(grey, points, radius, "uniform")
        counts, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
        histograms.append(counts / max(codes.size, 1))
    return np.concatenate(histograms)


def _cooccurrence(grey: np.ndarray) -> np.ndarray:
    from skimage.feature import graycomatrix, graycoprops

    levels = (grey.astype(np.uint16) * GLCM_LEVELS // 256).astype(np.uint8)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    matrix = graycomatrix(
        levels, GLCM_DISTANCES, angles, levels=GLCM_LEVELS, symmetric=True, normed=True
    )
    return np.concatenate([graycoprops(matrix, p).mean(axis=1) for p in GLCM_PROPERTIES])


def _nuclei(haematoxylin: np.ndarray) -> np.ndarray:
    """Area fraction, objects per 10,000 pixels, median, 90th percentile and spread of area, and
    mean eccentricity (second moments, as skimage's regionprops computes it) of the 4-connected
    haematoxylin objects of at least :data:`MIN_NUCLEUS_PIXELS` pixels."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    if float(haematoxylin.max() - haematoxylin.min()) <= 0.0:  # a flat square: no objects
        return np.zeros(6)
    labels, count = ndimage.label(haematoxylin > threshold_otsu(haematoxylin))
    flat = labels.ravel()
    rows, cols = np.indices(labels.shape).reshape(2, -1).astype(np.float64)
    area = np.bincount(flat, minlength=count + 1)[1:].astype(np.float64)
    keep = area >= MIN_NUCLEUS_PIXELS
    if not keep.any():
        return np.zeros(6)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values, minlength=count + 1)[1:][keep]

    n = area[keep]
    mean_r, mean_c = total(rows) / n, total(cols) / n
    var_r = total(rows * rows) / n - mean_r**2
    var_c = total(cols * cols) / n - mean_c**2
    cov = total(rows * cols) / n - mean_r * mean_c
    spread = np.sqrt(np.maximum(((var_r - var_c) / 2) ** 2 + cov**2, 0.0))
    major = (var_r + var_c) / 2 + spread
    minor = np.maximum((var_r + var_c) / 2 - spread, 0.0)
    eccentricity = np.sqrt(1.0 - np.divide(minor, major, out=np.ones_like(major), where=major > 0))
    return np.array(
        [
            float(n.sum()) / labels.size,
            len(n) / labels.size * 1e4,
            float(np.median(n)),
            float(np.percentile(n, 90)),
            float(n.std()),
            float(eccentricity.mean()),
        ]
    )
