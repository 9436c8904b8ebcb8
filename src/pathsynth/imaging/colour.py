"""Colour-space conversions of image batches in plain torch: HSV, CIE LAB and H&E-DAB density.

The classifier's colour augmentation and the stain normalisation run on the device that trains
the network, where only torch is installed, so the conversions are written here rather than taken
from kornia or scikit-image. Each one follows a library's formula exactly, and the tests check it
against that library on a real BACH patch: HSV against kornia's ``adjust_hue`` /
``adjust_saturation``, LAB against ``skimage.color.rgb2lab`` / ``lab2rgb`` (D65 white, the same
constants torchstain uses), and HED against ``skimage.color.rgb2hed`` / ``hed2rgb`` (Ruifrok and
Johnston's stain vectors).

Every function takes and returns float batches of shape (N, 3, H, W); RGB is in [0, 1].
"""

from __future__ import annotations

import math

import torch

from pathsynth.errors import DataError

# sRGB (D65) -> CIE XYZ, and the D65 reference white: scikit-image's and torchstain's constants.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
# Ruifrok & Johnston's haematoxylin, eosin and DAB optical-density vectors (rows), as in skimage.
_RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
_HED_FLOOR = 1e-6  # skimage's floor on RGB before the log; log(1e-6) scales density to [0, 1]


def check_rgb_batch(images: torch.Tensor) -> None:
    """Refuse anything but an (N, 3, H, W) batch.

    Raises:
        DataError: a tensor of another rank or channel count.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(
            f"colour operations need (N, 3, H, W) RGB batches, got {tuple(images.shape)}"
        )


def _matrix(rows: tuple[tuple[float, ...], ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(device=like.device, dtype=like.dtype)


def _mix(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Each pixel's channel vector ``v`` replaced by ``v @ matrix`` (row-vector convention)."""
    return torch.einsum("nchw,cd->ndhw", images, matrix)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV with hue as a fraction of a turn in [0, 1) (0 where grey)."""
    maxc, argmax = rgb.max(dim=1)
    minc = rgb.min(dim=1).values
    delta = maxc - minc
    saturation = delta / (maxc + 1e-8)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    red, green, blue = ((maxc - rgb[:, i]) / safe for i in range(3))
    hue = torch.where(
        argmax == 0, blue - green, torch.where(argmax == 1, 2.0 + red - blue, 4.0 + green - red)
    )
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack((hue, saturation, maxc), dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV (hue a fraction of a turn, any real value) back to RGB."""
    hue, saturation, value = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    sector = torch.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    sector = sector.long() % 6
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * fraction)
    t = value * (1.0 - saturation * (1.0 - fraction))
    # Rows: the (r, g, b) source for each of the six hue sectors.
    table = torch.stack(
        (
            torch.stack((value, t, p), 1),
            torch.stack((q, value, p), 1),
            torch.stack((p, value, t), 1),
            torch.stack((p, q, value), 1),
            torch.stack((t, p, value), 1),
            torch.stack((value, p, q), 1),
        ),
        dim=1,
    )  # (N, 6, 3, H, W)
    index = sector.unsqueeze(1).unsqueeze(1).expand(-1, 1, 3, -1, -1)
    return table.gather(1, index).squeeze(1)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to CIE LAB (D65, 2 degree observer): L in [0, 100], a and b about +-128."""
    linear = torch.where(
        rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92
    )
    xyz = _mix(linear, _matrix(_XYZ_FROM_RGB, rgb).T)
    xyz = xyz / _matrix((_WHITE_D65,), rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE LAB (D65) back to sRGB, clipped to [0, 1] (z below 0 clipped first, as skimage does)."""
    fy = (lab[:, 0] + 16.0) / 116.0
    fx = lab[:, 1] / 500.0 + fy
    fz = (fy - lab[:, 2] / 200.0).clamp(min=0.0)
    f = torch.stack((fx, fy, fz), dim=1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787)
    xyz = xyz * _matrix((_WHITE_D65,), lab).view(1, 3, 1, 1)
    linear = _mix(xyz, torch.linalg.inv(_matrix(_XYZ_FROM_RGB, lab)).T)
    rgb = torch.where(
        linear > 0.0031308,
        1.055 * linear.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return rgb.clamp(0.0, 1.0)


def rgb_to_hed(rgb: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """RGB in [0, 1] to haematoxylin, eosin and DAB densities (skimage's ``rgb2hed``).

    Args:
        rgb: (N, 3, H, W) in [0, 1].
        clip: clip negative densities to 0, as skimage does. H&E pixels often have a negative
            DAB (or eosin) density, so a clipped round trip through :func:`hed_to_rgb` darkens
            them (by 1 to 19 grey levels per channel on BACH fields, more on some classes than
            others); anything that maps back to RGB, such as HED jitter, passes ``clip=False``.
    """
    log_adjust = math.log(_HED_FLOOR)
    density = torch.log(rgb.clamp(min=_HED_FLOOR)) / log_adjust
    hed_from_rgb = torch.linalg.inv(_matrix(_RGB_FROM_HED, rgb))
    hed = _mix(density, hed_from_rgb)
    return hed.clamp(min=0.0) if clip else hed


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """H, E and DAB densities back to RGB in [0, 1] (skimage's ``hed2rgb``)."""
    log_adjust = -math.log(_HED_FLOOR)
    log_rgb = -_mix(hed * log_adjust, _matrix(_RGB_FROM_HED, hed))
    return torch.exp(log_rgb).clamp(0.0, 1.0)
