"""Square-making steps behind :mod:`pathsynth.imaging.patches`: stretch, center-crop, pad onto a canvas.

:func:`pathsynth.imaging.patches.preprocess_image` is the one way images become network inputs,
for the GAN and the classifiers alike. Everything takes a PIL image or an HxW / HxWxC uint8
array and returns an RGB PIL image of ``size`` x ``size``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

FILLS = ("border", "black", "white")


def _as_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"array images must be uint8, got {image.dtype}")
        image = Image.fromarray(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def canvas_colour(image: Image.Image, fill: str) -> tuple[int, int, int]:
    """The colour of a canvas an image is pasted on: ``"border"`` (its edge's median colour, so the
    canvas continues the background), ``"black"`` or ``"white"``.

    Raises:
        ValueError: an unknown fill.
    """
    if fill == "border":
        return border_colour(image)
    if fill == "black":
        return (0, 0, 0)
    if fill == "white":
        return (255, 255, 255)
    raise ValueError(f"fill {fill!r} is not one of {', '.join(FILLS)}")


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
    colour = canvas_colour(rgb, fill)
    scale = size / max(rgb.size)
    width, height = max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))
    scaled = rgb.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), colour)
    canvas.paste(scaled, ((size - width) // 2, (size - height) // 2))
    return canvas
