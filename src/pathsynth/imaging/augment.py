"""On-device augmentation of training batches: flips and rotations, colour and stain jitter.

Used by the classifier, the GAN (real images the discriminator sees) and self-supervised
pretraining (views), so it lives with the other imaging operations.

Microscopy has no up or down, so the eight symmetries of the square keep every label and every
pixel value (no interpolation, no padding). Each image of a batch gets its own random symmetry.

Stain, scanner and preparation vary between labs and patients far more than within one slide, and
a small CNN trained on a few dozen images learns those colours as if they were the disease. The
colour operations here (HED jitter, hue, saturation, brightness, contrast, gamma, blur, noise and
RandStainNA's LAB statistics) vary that appearance per image, batched on the training device and
seeded by one ``torch.Generator``. They are plain torch (the training machine has no kornia) and
use the conversions of :mod:`pathsynth.imaging.colour`; stain normalisation itself, a
preprocessing step with a reference fitted on the training fold, is in
:mod:`pathsynth.imaging.stain`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.colour import (
    check_rgb_batch,
    hed_to_rgb,
    hsv_to_rgb,
    rgb_to_hed,
    rgb_to_hsv,
)
from pathsynth.imaging.config import ColourAugmentConfig
from pathsynth.imaging.stain import LabStatistics, transfer_lab_statistics


def random_dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each square NCHW image under a random one of the 8 flip/rotation symmetries.

    Args:
        images: (N, C, H, H) tensor of any dtype, on any device.
        generator: torch generator on the images' device, drawing the symmetries.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    n = images.shape[0]
    draw = torch.randint(0, 8, (n,), generator=generator, device=generator.device).to(images.device)
    rotations = draw % 4
    flip = (draw // 4).bool().view(n, 1, 1, 1)
    flipped = torch.where(flip, images.flip(-1), images)
    out = torch.empty_like(images)
    for quarter_turns in range(4):
        chosen = rotations == quarter_turns
        out[chosen] = torch.rot90(flipped[chosen], quarter_turns, dims=(-2, -1))
    return out


# --- colour and stain augmentation --------------------------------------------------------------
# Every operation below takes float RGB in [0, 1] (N, 3, H, W) and per-image parameters drawn by
# :class:`ColourAugment`; each is checked against kornia or scikit-image in the tests.


def hed_jitter(rgb: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Tellez et al. 2019: ``s' = alpha * s + beta`` on the H, E and DAB densities (skimage's).

    The densities are not clipped at zero, so ``alpha = 1, beta = 0`` gives the image back: a
    clipped round trip darkened every jittered training image (class-dependently) against test
    images that are never jittered, which cost about as much accuracy as chance.

    Args:
        rgb: (N, 3, H, W) in [0, 1].
        alpha, beta: (N, 3) scale and shift per image and stain.
    """
    hed = rgb_to_hed(rgb, clip=False)
    return hed_to_rgb(hed * alpha[..., None, None] + beta[..., None, None])


def shift_hue(rgb: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue rotated by ``turns`` (N,) of a full turn (kornia ``adjust_hue`` with 2*pi*turns)."""
    hsv = rgb_to_hsv(rgb)
    hue = (hsv[:, 0] + turns[:, None, None]) % 1.0
    return hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), dim=1))


def scale_saturation(rgb: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Saturation times ``factor`` (N,), clipped to [0, 1] (kornia ``adjust_saturation``)."""
    hsv = rgb_to_hsv(rgb)
    saturation = (hsv[:, 1] * factor[:, None, None]).clamp(0.0, 1.0)
    return hsv_to_rgb(torch.stack((hsv[:, 0], saturation, hsv[:, 2]), dim=1))


def shift_brightness(rgb: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``rgb + offset`` (N,), clipped (kornia ``adjust_brightness``)."""
    return (rgb + offset[:, None, None, None]).clamp(0.0, 1.0)


def scale_contrast(rgb: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Contrast about each image's mean grey (kornia ``adjust_contrast_with_mean_subtraction``)."""
    grey = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).mean(dim=(-2, -1))
    mean = grey[:, None, None, None]
    return ((rgb - mean) * factor[:, None, None, None] + mean).clamp(0.0, 1.0)


def apply_gamma(rgb: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``rgb ** gamma`` (N,) (kornia ``adjust_gamma`` with gain 1)."""
    return rgb.clamp(min=0.0).pow(gamma[:, None, None, None]).clamp(0.0, 1.0)


def gaussian_blur(rgb: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (N,), reflected borders.

    Matches kornia ``gaussian_blur2d`` with kernel size ``2 * radius + 1`` and border
    ``"reflect"``. ``radius`` is clipped to the image size minus one (reflection needs it).
    """
    n, c, h, w = rgb.shape
    radius = max(0, min(radius, h - 1, w - 1))
    offsets = torch.arange(-radius, radius + 1, device=rgb.device, dtype=rgb.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2.0 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    flat = F.pad(rgb.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


class ColourAugment:
    """Seeded, per-image colour and stain augmentation of training batches, on their device.

    Each operation of the config with a probability above zero runs in the config's order; for
    each, every image is chosen with that probability and gets its own parameters. All draws come
    from ``generator``, in a fixed order, so a seed gives the same batch every time.

    Args:
        config: probabilities and strengths.
        generator: torch generator (any device) for every draw.
        lab_statistics: the training set's LAB statistics, for ``randstain_p > 0``; fit them with
            :func:`pathsynth.imaging.stain.fit_lab_statistics` on the training images only.

    Raises:
        ConfigError: ``randstain_p > 0`` without ``lab_statistics``.
    """

    def __init__(
        self,
        config: ColourAugmentConfig,
        generator: torch.Generator,
        lab_statistics: LabStatistics | None = None,
    ) -> None:
        if config.randstain_p > 0.0 and lab_statistics is None:
            raise ConfigError("colour.randstain_p needs LAB statistics of the training images")
        self.config = config
        self.generator = generator
        self.lab_statistics = lab_statistics

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The augmented batch, same shape, dtype, device and range.

        Args:
            images: (N, 3, H, W) uint8 in [0, 255] or float in [0, 1] (values outside are clipped).

        Raises:
            DataError: another shape or dtype.
        """
        check_rgb_batch(images)
        if images.dtype == torch.uint8:
            rgb = images.float() / 255.0
        elif images.is_floating_point():
            rgb = images.float().clamp(0.0, 1.0)
        else:
            raise DataError(f"colour augmentation takes uint8 or float images, got {images.dtype}")
        config = self.config
        steps = (
            (config.randstain_p, self._randstain),
            (config.hed_p, self._hed),
            (config.hue_p, self._hue),
            (config.saturation_p, self._saturation),
            (config.brightness_p, self._brightness),
            (config.contrast_p, self._contrast),
            (config.gamma_p, self._gamma),
            (config.blur_p, self._blur),
            (config.noise_p, self._noise),
        )
        for probability, step in steps:
            if probability > 0.0:
                chosen = self._uniform((len(rgb),), 0.0, 1.0, rgb.device) < probability
                rgb = torch.where(chosen[:, None, None, None], step(rgb), rgb)
        if images.dtype == torch.uint8:
            return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8)
        return rgb.clamp(0.0, 1.0).to(images.dtype)

    def _uniform(
        self, shape: tuple[int, ...], low: float, high: float, device: torch.device
    ) -> torch.Tensor:
        draw = torch.rand(shape, generator=self.generator, device=self.generator.device)
        return (low + (high - low) * draw).to(device)

    def _normal(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.generator.device).to(device)

    def _randstain(self, rgb: torch.Tensor) -> torch.Tensor:
        stats, spread = self.lab_statistics, self.config.randstain_spread
        assert stats is not None  # refused in __init__
        n, device = len(rgb), rgb.device

        def draw(centre: tuple[float, ...], scale: tuple[float, ...]) -> torch.Tensor:
            centre_t = torch.tensor(centre, device=device)
            scale_t = torch.tensor(scale, device=device)
            return centre_t + spread * scale_t * self._normal((n, 3), device)

        mean = draw(stats.mean_of_means, stats.std_of_means)
        std = draw(stats.mean_of_stds, stats.std_of_stds).clamp(min=1e-3)
        return transfer_lab_statistics(rgb, mean, std)

    def _hed(self, rgb: torch.Tensor) -> torch.Tensor:
        a, b, n = self.config.hed_alpha, self.config.hed_beta, len(rgb)
        alpha = self._uniform((n, 3), 1.0 - a, 1.0 + a, rgb.device)
        beta = self._uniform((n, 3), -b, b, rgb.device)
        return hed_jitter(rgb, alpha, beta)

    def _hue(self, rgb: torch.Tensor) -> torch.Tensor:
        hue = self.config.hue
        return shift_hue(rgb, self._uniform((len(rgb),), -hue, hue, rgb.device))

    def _saturation(self, rgb: torch.Tensor) -> torch.Tensor:
        s = self.config.saturation
        return scale_saturation(rgb, self._uniform((len(rgb),), 1.0 - s, 1.0 + s, rgb.device))

    def _brightness(self, rgb: torch.Tensor) -> torch.Tensor:
        b = self.config.brightness
        return shift_brightness(rgb, self._uniform((len(rgb),), -b, b, rgb.device))

    def _contrast(self, rgb: torch.Tensor) -> torch.Tensor:
        c = self.config.contrast
        return scale_contrast(rgb, self._uniform((len(rgb),), 1.0 - c, 1.0 + c, rgb.device))

    def _gamma(self, rgb: torch.Tensor) -> torch.Tensor:
        g = self.config.gamma
        return apply_gamma(rgb, torch.exp(self._uniform((len(rgb),), -g, g, rgb.device)))

    def _blur(self, rgb: torch.Tensor) -> torch.Tensor:
        top = self.config.blur_sigma
        sigma = self._uniform((len(rgb),), min(0.1, top), top, rgb.device)
        return gaussian_blur(rgb, sigma, math.ceil(3.0 * top))

    def _noise(self, rgb: torch.Tensor) -> torch.Tensor:
        std = self._uniform((len(rgb),), 0.0, self.config.noise_std, rgb.device)
        noise = self._normal(tuple(rgb.shape), rgb.device)
        return (rgb + noise * std[:, None, None, None]).clamp(0.0, 1.0)
