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


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_12_bit_values_in_a_16_bit_grey_file_keep_their_contrast(fmt):
    """A 12-bit camera's values (0..4095) in a 16-bit file: the top byte of the container would
    make them 0..15, a black image; the top 8 of the 12 used bits keep the picture."""
    values = np.array([[0, 1024, 2048, 4095]], dtype=np.uint16)
    decoded = decode_bytes(encode(Image.fromarray(values), fmt))
    assert decoded.rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert decoded.bit_depth == 16  # what the file stores


def test_the_bit_depth_read_from_the_values_is_the_smallest_that_holds_them():
    from pathsynth.imaging.decode import significant_bits

    assert [significant_bits(v) for v in (0, 255, 256, 1023, 4095, 4096, 16383, 65535)] == [
        8,
        8,
        10,
        10,
        12,
        14,
        14,
        16,
    ]


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


def test_pillows_bomb_warning_does_not_refuse_an_image_under_our_limit(monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS (89.5 MP by default, under our documented 100 MP) and
    # fails above twice that; scaled down here so the test needs no 100 MP image.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (40, 40)), "PNG")  # 1600 pixels: Pillow warns
    assert decode_bytes(data, pixel_limit=2000).width == 40
    too_big = encode(Image.new("RGB", (50, 50)), "PNG")  # 2500 pixels: Pillow's hard error
    with pytest.raises(ImageRefused, match="decompression-bomb limit"):
        decode_bytes(too_big, pixel_limit=10_000)


def test_exif_orientation_is_applied_to_pixels_and_size():
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)  # a red band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_bytes(data)
    assert (decoded.width, decoded.height) == (20, 60)
    assert decoded.rgb[2, 10, 0] > 200 and decoded.rgb[-3, 10, 0] < 60  # the band is on top


def test_16_bit_rgb_tiff_records_16_bits_and_an_8_bit_png_8():
    import tifffile

    ramp = (np.arange(20 * 30 * 3).reshape(20, 30, 3) * 50).astype(np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, ramp, photometric="rgb")
    decoded = decode_bytes(buffer.getvalue())
    assert (decoded.original_mode, decoded.bit_depth, decoded.channels) == ("RGB", 16, 3)
    assert decoded.rgb[5, 5].tolist() == (ramp[5, 5] >> 8).tolist()
    assert decode_bytes(encode(Image.new("RGB", (4, 4)), "PNG")).bit_depth == 8
