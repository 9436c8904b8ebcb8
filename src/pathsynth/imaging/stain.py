"""Stain normalisation (Macenko, Reinhard) with a reference fitted on the training fold only.

A lab's slides differ in stain batch, thickness and scanner; stain normalisation maps every image
to one reference appearance. The reference must come from the training images alone, or the test
images leak into preprocessing, so fitting and applying are two steps:

1. :func:`fit_stain_reference` takes the training images (and nothing else) and returns a
   :class:`StainReference`: for Macenko the 3x2 H&E optical-density matrix and the 99th percentile
   stain concentrations, for Reinhard the LAB mean and standard deviation. Fitting on a set is
   fitting on all its pixels at once, as torchstain fits one mosaic of them.
2. :func:`normalise_stain` applies that reference to any images (training, validation, test).

The reference is plain data (:meth:`StainReference.to_plain`, :func:`stain_reference_from_plain`)
so it is stored beside a run and the same mapping is applied when the model is used later.

The formulas are torchstain's (``TorchMacenkoNormalizer``, ``TorchReinhardNormalizer``), rewritten
in plain torch because the device that trains classifiers has no torchstain; the tests check the
two agree on a real BACH patch. :class:`LabStatistics` is the distribution of per-image LAB
statistics that the RandStainNA-style augmentation draws from, fitted the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pathsynth.errors import DataError
from pathsynth.imaging.colour import check_rgb_batch, lab_to_rgb, rgb_to_lab
from pathsynth.imaging.config import STAIN_METHODS

_IO = 240.0  # transmitted light intensity (torchstain's and Macenko's default)
_ALPHA = 1.0  # percentile of the stain angles taken as the extreme stain vectors
_BETA = 0.15  # optical density below which a pixel counts as background (transparent)
_MIN_TISSUE_PIXELS = 16  # fewer stained pixels than this: no stain estimate possible


@dataclass(frozen=True)
class StainReference:
    """A fitted stain-normalisation target, JSON-able.

    Args:
        method: ``"macenko"`` or ``"reinhard"``.
        stain_matrix: macenko: 3 rows (R, G, B) of (haematoxylin, eosin) optical densities.
        max_concentrations: macenko: the 99th percentile H and E concentrations.
        lab_mean: reinhard: mean L, a, b of the fitted pixels.
        lab_std: reinhard: standard deviation of L, a, b of the fitted pixels.
        fitted_images: how many training images the reference was fitted on.
    """

    method: str
    stain_matrix: tuple[tuple[float, float], ...] = ()
    max_concentrations: tuple[float, ...] = ()
    lab_mean: tuple[float, ...] = ()
    lab_std: tuple[float, ...] = ()
    fitted_images: int = 0

    def __post_init__(self) -> None:
        if self.method not in STAIN_METHODS:
            raise DataError(f"stain method must be one of {', '.join(STAIN_METHODS)}")
        shapes = {
            "macenko": (len(self.stain_matrix) == 3 and len(self.max_concentrations) == 2),
            "reinhard": (len(self.lab_mean) == 3 and len(self.lab_std) == 3),
        }
        if not shapes[self.method]:
            raise DataError(f"a {self.method} stain reference lacks its fitted values")

    def to_plain(self) -> dict[str, Any]:
        """The reference as JSON-able nested lists."""
        return {key: _listed(value) for key, value in asdict(self).items()}


def _listed(value: Any) -> Any:
    return [_listed(item) for item in value] if isinstance(value, tuple) else value


def stain_reference_from_plain(data: Mapping[str, Any]) -> StainReference:
    """A reference back from :meth:`StainReference.to_plain`'s output.

    Raises:
        DataError: unknown keys, values that are not numbers, or a reference missing its values.
    """
    try:
        return StainReference(
            method=str(data["method"]),
            stain_matrix=tuple(
                (float(row[0]), float(row[1])) for row in data.get("stain_matrix", ())
            ),
            max_concentrations=tuple(float(v) for v in data.get("max_concentrations", ())),
            lab_mean=tuple(float(v) for v in data.get("lab_mean", ())),
            lab_std=tuple(float(v) for v in data.get("lab_std", ())),
            fitted_images=int(data.get("fitted_images", 0)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise DataError(f"malformed stain reference: {error!r}") from None


def _as_float_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] batches as float32 in [0, 255]; refuses other dtypes and shapes."""
    check_rgb_batch(images)
    if images.dtype != torch.uint8:
        raise DataError(f"stain normalisation takes uint8 images, got {images.dtype}")
    return images.float()


def _optical_density(pixels: torch.Tensor) -> torch.Tensor:
    """(P, 3) RGB values in [0, 255] to optical density, as torchstain computes it."""
    return -torch.log((pixels + 1.0) / _IO)


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N*H*W, 3), pixels in row-major order per image."""
    return images.permute(0, 2, 3, 1).reshape(-1, 3)


def _percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The nearest-rank percentile torchstain uses (no interpolation)."""
    k = 1 + round(0.01 * q * (values.numel() - 1))
    return values.reshape(-1).kthvalue(k).values


def _macenko_matrices(density: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(H&E matrix (3, 2), concentrations (2, P)) of one pixel set's densities, or ``None``.

    ``None`` when fewer than ``_MIN_TISSUE_PIXELS`` pixels are stained (a blank or white patch).
    """
    tissue = density[~torch.any(density < _BETA, dim=1)]
    if len(tissue) < _MIN_TISSUE_PIXELS:
        return None
    centred = tissue - tissue.mean(dim=0)
    covariance = centred.T @ centred / (len(tissue) - 1)
    eigenvectors = torch.linalg.eigh(covariance)[1][:, [1, 2]]
    projected = tissue @ eigenvectors
    angles = torch.atan2(projected[:, 1], projected[:, 0])
    extremes = [_percentile(angles, q) for q in (_ALPHA, 100.0 - _ALPHA)]
    v_min, v_max = (
        eigenvectors @ torch.stack((torch.cos(phi), torch.sin(phi))) for phi in extremes
    )
    # Haematoxylin first: the vector with the larger red density.
    pair = (v_min, v_max) if v_min[0] > v_max[0] else (v_max, v_min)
    stain_matrix = torch.stack(pair, dim=1)
    concentrations = torch.linalg.lstsq(stain_matrix, density.T)[0]
    return stain_matrix, concentrations


def _max_concentrations(concentrations: torch.Tensor) -> torch.Tensor:
    return torch.stack([_percentile(concentrations[i], 99.0) for i in range(2)])


def _fit_pixels(
    train_images: Sequence[torch.Tensor] | torch.Tensor, max_pixels: int, seed: int
) -> torch.Tensor:
    """All pixels of the training images as (P, 3) floats, subsampled (seeded) past the cap."""
    images = [_as_float_rgb(image.unsqueeze(0)).cpu() for image in train_images]
    if not images:
        raise DataError("a stain reference needs at least one training image")
    total = sum(image[0, 0].numel() for image in images)
    share = min(1.0, max_pixels / total)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for image in images:
        pixels = _pixels(image)
        if share < 1.0:
            keep = torch.randperm(len(pixels), generator=generator)
            pixels = pixels[keep[: max(1, int(share * len(pixels)))].sort().values]
        chosen.append(pixels)
    return torch.cat(chosen)


def _lab_mean_std(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (N, 3) mean and (unbiased, as torchstain) standard deviation of L, a, b."""
    lab = rgb_to_lab(rgb).flatten(2)
    return lab.mean(dim=2), lab.std(dim=2)


def fit_stain_reference(
    train_images: Sequence[torch.Tensor] | torch.Tensor,
    method: str,
    max_pixels: int = 4_000_000,
    seed: int = 0,
) -> StainReference:
    """Fit a stain-normalisation reference on the training fold's images, and only on them.

    Args:
        train_images: the training images, each uint8 (3, H, W) (sizes may differ), or one
            (N, 3, H, W) uint8 batch. Never pass validation or test images here.
        method: ``"macenko"`` or ``"reinhard"``.
        max_pixels: pixels pooled at most; past it the same share of each image's pixels is
            drawn at random (the percentiles and means of millions of pixels barely move).
        seed: draws those pixels.

    Returns:
        The fitted reference; on one image it equals torchstain's ``fit`` on that image.

    Raises:
        DataError: an unknown method, no images, ``max_pixels`` below 1, images that are not uint8 RGB, or (macenko) too
            few stained pixels to estimate stain vectors.
    """
    if method not in STAIN_METHODS:
        raise DataError(f"stain method must be one of {', '.join(STAIN_METHODS)}, got {method!r}")
    if max_pixels < 1:
        raise DataError(f"max_pixels must be at least 1, got {max_pixels}")
    pixels = _fit_pixels(train_images, max_pixels, seed)
    count = len(train_images)
    if method == "reinhard":
        mean, std = _lab_mean_std((pixels / 255.0).T.reshape(1, 3, 1, -1))
        return StainReference(
            method,
            lab_mean=tuple(mean[0].tolist()),
            lab_std=tuple(std[0].tolist()),
            fitted_images=count,
        )
    fitted = _macenko_matrices(_optical_density(pixels))
    if fitted is None:
        raise DataError("the training images have too few stained pixels to fit Macenko stains")
    stain_matrix, concentrations = fitted
    return StainReference(
        method,
        stain_matrix=tuple((float(row[0]), float(row[1])) for row in stain_matrix),
        max_concentrations=tuple(_max_concentrations(concentrations).tolist()),
        fitted_images=count,
    )


def _macenko_one(image: torch.Tensor, reference: StainReference) -> torch.Tensor:
    """One (3, H, W) float [0, 255] image in the reference's stains; unchanged if unstained."""
    density = _optical_density(image.permute(1, 2, 0).reshape(-1, 3))
    fitted = _macenko_matrices(density)
    if fitted is None:
        return image
    _, concentrations = fitted
    target = torch.tensor(reference.max_concentrations, device=image.device)
    concentrations = concentrations * (target / _max_concentrations(concentrations)).unsqueeze(1)
    matrix = torch.tensor(reference.stain_matrix, device=image.device)
    normalised = (_IO * torch.exp(-matrix @ concentrations)).clamp(max=255.0)
    return normalised.T.reshape(image.shape[1], image.shape[2], 3).permute(2, 0, 1)


def transfer_lab_statistics(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Each image's LAB mean and standard deviation moved to ``mean`` and ``std`` (Reinhard).

    With fixed targets this is Reinhard normalisation; with targets drawn per image from a
    :class:`LabStatistics` it is RandStainNA's augmentation (Shen et al. 2022).

    Args:
        images: (N, 3, H, W) float RGB in [0, 1].
        mean, std: (N, 3) target L, a, b mean and standard deviation per image.

    Returns:
        (N, 3, H, W) float RGB in [0, 1].
    """
    lab = rgb_to_lab(images)
    own_mean, own_std = _lab_mean_std(images)
    scale = std / own_std.clamp(min=1e-6)
    lab = (lab - own_mean[..., None, None]) * scale[..., None, None] + mean[..., None, None]
    return lab_to_rgb(lab)


def normalise_stain(images: torch.Tensor, reference: StainReference) -> torch.Tensor:
    """Map images to a fitted reference's stain appearance.

    Reinhard runs batched on the images' device; Macenko estimates each image's own stain vectors,
    one image at a time (a preprocessing step, not the training loop). An image with too few
    stained pixels to estimate them (blank glass) is returned unchanged.

    Args:
        images: uint8 (N, 3, H, W) on any device.
        reference: from :func:`fit_stain_reference` on the training fold.

    Returns:
        uint8 (N, 3, H, W), rounded (torchstain truncates: results differ by at most 1 level).

    Raises:
        DataError: images that are not uint8 RGB batches.
    """
    rgb = _as_float_rgb(images)
    if reference.method == "reinhard":
        mean = torch.tensor(reference.lab_mean, device=rgb.device).expand(len(rgb), 3)
        std = torch.tensor(reference.lab_std, device=rgb.device).expand(len(rgb), 3)
        out = transfer_lab_statistics(rgb / 255.0, mean, std) * 255.0
    else:
        out = torch.stack([_macenko_one(image, reference) for image in rgb]) if len(rgb) else rgb
    return out.round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class LabStatistics:
    """How per-image LAB statistics vary over a training set (RandStainNA's "stain template").

    Args:
        mean_of_means: (L, a, b) average of the per-image channel means.
        std_of_means: (L, a, b) spread of the per-image channel means.
        mean_of_stds: (L, a, b) average of the per-image channel standard deviations.
        std_of_stds: (L, a, b) spread of the per-image channel standard deviations.
    """

    mean_of_means: tuple[float, ...]
    std_of_means: tuple[float, ...]
    mean_of_stds: tuple[float, ...]
    std_of_stds: tuple[float, ...]


def fit_lab_statistics(train_images: torch.Tensor, chunk: int = 64) -> LabStatistics:
    """The distribution of per-image LAB means and standard deviations over training images.

    Args:
        train_images: uint8 (N, 3, H, W) training images, N >= 2, on any device.
        chunk: images converted at a time (bounds the float memory).

    Raises:
        DataError: fewer than 2 images, or images that are not uint8 RGB batches.
    """
    _as_float_rgb(train_images[:1])
    if len(train_images) < 2:
        raise DataError("LAB statistics need at least 2 training images")
    stats = [
        _lab_mean_std(_as_float_rgb(train_images[start : start + chunk]) / 255.0)
        for start in range(0, len(train_images), chunk)
    ]
    means = torch.cat([mean for mean, _ in stats]).double()
    stds = torch.cat([std for _, std in stats]).double()
    return LabStatistics(
        mean_of_means=tuple(means.mean(0).tolist()),
        std_of_means=tuple(means.std(0).tolist()),
        mean_of_stds=tuple(stds.mean(0).tolist()),
        std_of_stds=tuple(stds.std(0).tolist()),
    )
