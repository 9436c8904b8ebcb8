"""PNG bytes to and from uint8 RGB arrays: how generated and affine images travel and are stored."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """An HxWx3 uint8 array as PNG bytes (fast, low compression; PIL releases the GIL here)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG (or any image) bytes as an HxWx3 uint8 RGB array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
