"""Bring an image to a network's square input: stretch, center-crop, or pad onto a canvas.

Used by the GAN and the classifiers alike. Everything takes a PIL image or an HxW / HxWxC uint8
array and returns an RGB PIL image of ``size`` x ``size``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

FITS = ("pad", "crop", "stretch")
FILLS = ("border", "black", "white")


def _as_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"array images must be uint8, got {image.dtype}")
        image = Image.fromarray(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Per-channel median of the outermost pixel ring: the background a cell or tile sits on."""
    array = np.asarray(image)
    ring = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    r, g, b = (int(v) for v in np.median(ring, axis=0))
    return (r, g, b)


def resize(image: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image:
    """``image`` resized to ``(width, height)`` with Lanczos (area-like when shrinking)."""
    return _as_rgb(image).resize(size, Image.Resampling.LANCZOS)


def center_crop(image: Image.Image | np.ndarray, size: int) -> Image.Image:
    """Short side scaled to ``size``, then the central ``size`` x ``size`` square."""
    rgb = _as_rgb(image)
    scale = size / min(rgb.size)
    width, height = max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))
    scaled = rgb.resize((width, height), Image.Resampling.LANCZOS)
    left, top = (width - size) // 2, (height - size) // 2
    return scaled.crop((left, top, left + size, top + size))


def pad_to_square(image: Image.Image | np.ndarray, size: int, fill: str = "border") -> Image.Image:
    """Long side scaled to ``size`` (aspect kept), centred on a ``size`` square canvas.

    Args:
        image: the image.
        size: canvas side.
        fill: ``"border"`` (median colour of the image's edge, so the canvas continues the
            background), ``"black"`` or ``"white"``.

    Raises:
        ValueError: an unknown fill.
    """
    rgb = _as_rgb(image)
    if fill == "border":
        colour = border_colour(rgb)
    elif fill == "black":
        colour = (0, 0, 0)
    elif fill == "white":
        colour = (255, 255, 255)
    else:
        raise ValueError(f"fill {fill!r} is not one of {', '.join(FILLS)}")
    scale = size / max(rgb.size)
    width, height = max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))
    scaled = rgb.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), colour)
    canvas.paste(scaled, ((size - width) // 2, (size - height) // 2))
    return canvas


def fit_square(
    image: Image.Image | np.ndarray, size: int, fit: str = "pad", fill: str = "border"
) -> Image.Image:
    """``image`` as an RGB ``size`` x ``size`` square.

    Args:
        image: PIL image or uint8 array (HxW or HxWxC).
        size: side of the result.
        fit: ``"pad"`` (keep aspect, pad; nothing cut off), ``"crop"`` (keep aspect, cut the long
            side) or ``"stretch"`` (change aspect).
        fill: canvas colour for ``"pad"``.

    Raises:
        ValueError: an unknown fit or fill, or a non-uint8 array.
    """
    if fit == "pad":
        return pad_to_square(image, size, fill)
    if fit == "crop":
        return center_crop(image, size)
    if fit == "stretch":
        return resize(image, (size, size))
    raise ValueError(f"fit {fit!r} is not one of {', '.join(FITS)}")
