"""Decoding and validating image files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pathsynth.errors import ImageRefused
from pathsynth.imaging.decode import decode_bytes


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_16_bit_tiff_keeps_its_most_significant_byte():
    values = np.array([[0, 256, 65535, 32768]], dtype=np.uint16)
    decoded = decode_bytes(encode(Image.fromarray(values), "TIFF"))
    assert (decoded.original_mode, decoded.bit_depth, decoded.channels) == ("I;16", 16, 1)
    assert decoded.rgb[0, :, 0].tolist() == [0, 1, 255, 128]
    assert decoded.rgb.shape == (1, 4, 3)


def test_transparent_pixels_become_white_like_an_empty_slide():
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0]]], dtype=np.uint8)
    decoded = decode_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.rgb[0].tolist() == [[200, 0, 0], [255, 255, 255]]
    assert decoded.original_mode == "RGBA"


def test_first_page_of_a_multi_page_tiff_is_used():
    pages = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    decoded = decode_bytes(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert decoded.pages == 2
    assert decoded.rgb[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"plain text", "not an image file"),
        (encode(Image.new("RGB", (8, 8)), "GIF"), "format GIF is not one of JPEG, PNG, BMP, TIFF"),
        (encode(Image.new("RGB", (64, 64)), "JPEG")[:200], "corrupt or truncated image"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(data, reason):
    with pytest.raises(ImageRefused, match=reason):
        decode_bytes(data)


def test_pixel_limit_refuses_before_decoding():
    data = encode(Image.new("RGB", (100, 50)), "PNG")
    with pytest.raises(ImageRefused, match="100x50 = 5000 pixels is over the limit of 4999"):
        decode_bytes(data, pixel_limit=4999)
    assert decode_bytes(data, pixel_limit=5000).width == 100
