"""Decode and validate microscopy image files into 8-bit RGB arrays.

Accepted: JPEG, PNG, BMP and TIFF (8 or 16 bit; the first page of a multi-page file). Greyscale,
palette, RGBA and 16-bit images are converted to 8-bit RGB (16-bit data by the bits its values
use, so a 12-bit camera's image keeps its brightness, grey and colour alike: Pillow opens 16-bit
RGB as its top bytes, so those files are read again by pypng or tifffile); the original mode,
bit depth (as the file stores it) and format are reported so the catalog can record them. An EXIF orientation is applied, so the pixels
and the recorded size are the image as a viewer shows it. Everything else is refused with an
:class:`~pathsynth.errors.ImageRefused` whose message names the reason.

The pixel limit is ours (``pixel_limit``, checked from the header before any pixel is decoded);
Pillow's own decompression-bomb warning (at 89.5 MP) is ignored so that the documented 100 MP
limit is reachable, and its hard error (at twice that) is reported as a refusal.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pathsynth.errors import ImageRefused

ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "MPO")
DEFAULT_PIXEL_LIMIT = 100_000_000  # 100 megapixels: a large field of view, far below a whole slide

# Bits per channel of the modes Pillow opens; modes not listed are refused.
_MODE_BITS = {
    "1": 1,
    "L": 8,
    "P": 8,
    "RGB": 8,
    "RGBA": 8,
    "LA": 8,
    "CMYK": 8,
    "YCbCr": 8,
    "PA": 8,
    "I;16": 16,
    "I;16B": 16,
    "I;16L": 16,
    "I;16N": 16,
    "I": 32,
}


@dataclass(frozen=True)
class DecodedImage:
    """An image file decoded to RGB, with what it was before conversion.

    Attributes:
        rgb: ``uint8`` array of shape (H, W, 3).
        sha256: hex digest of the file's bytes.
        original_mode: the Pillow mode of the file (``RGB``, ``L``, ``P``, ``RGBA``, ``I;16`` ...).
        original_format: the file format (``JPEG``, ``PNG``, ``BMP``, ``TIFF``).
        bit_depth: bits per channel in the file (8 or 16; 1 for bilevel).
        channels: channels in the file (1 grey, 3 colour, 4 with alpha).
        pages: number of pages (frames) in the file; only the first is used.
    """

    rgb: np.ndarray
    sha256: str
    original_mode: str
    original_format: str
    bit_depth: int
    channels: int
    pages: int

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def decode_bytes(data: bytes, pixel_limit: int = DEFAULT_PIXEL_LIMIT) -> DecodedImage:
    """Decode an image file's bytes to 8-bit RGB.

    Args:
        data: the file's bytes.
        pixel_limit: largest accepted width x height (a guard against decompression bombs).

    Returns:
        The decoded image and what it was before conversion.

    Raises:
        ImageRefused: not an image, a format other than JPEG/PNG/BMP/TIFF, truncated or corrupt
            data, more pixels than ``pixel_limit``, or a pixel mode that has no RGB meaning.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRefused("not an image file") from None
    except Image.DecompressionBombError as error:
        raise ImageRefused(f"image over Pillow's decompression-bomb limit ({error})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRefused(f"corrupt or truncated image header ({error})") from None
    with image:
        file_format = image.format or "unknown"
        if file_format not in ACCEPTED_FORMATS:
            raise ImageRefused(f"format {file_format} is not one of JPEG, PNG, BMP, TIFF")
        width, height = image.size
        if width * height > pixel_limit:
            raise ImageRefused(
                f"{width}x{height} = {width * height} pixels is over the limit of {pixel_limit}"
            )
        if width == 0 or height == 0:
            raise ImageRefused("image has no pixels")
        mode = image.mode
        if mode not in _MODE_BITS:
            raise ImageRefused(f"pixel mode {mode} has no RGB meaning")
        pages = int(getattr(image, "n_frames", 1))
        bit_depth = _stored_bit_depth(image, data)
        try:
            orientation = int(image.getexif().get(0x0112, 1))  # a TIFF's is gone after load
            image.seek(0)
            image.load()
            if bit_depth == 16 and mode in ("RGB", "RGBA"):  # Pillow kept only the top bytes
                rgb = _oriented(_deep_rgb(data, file_format), orientation)
            elif orientation != 1:
                rgb = _to_rgb(ImageOps.exif_transpose(image))
            else:  # upright already: no transposed copy of a possibly huge image
                rgb = _to_rgb(image)
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise ImageRefused(f"corrupt or truncated image data ({error})") from None
    return DecodedImage(
        rgb=rgb,
        sha256=sha256,
        original_mode=mode,
        original_format="JPEG" if file_format == "MPO" else file_format,
        bit_depth=bit_depth,
        channels=len(image.getbands()),
        pages=pages,
    )


def _stored_bit_depth(image: Image.Image, data: bytes) -> int:
    """Bits per channel as the file stores them: from the TIFF tag or PNG header, where Pillow's
    mode hides them (it opens 16-bit RGB as 8-bit ``RGB``), else from the mode."""
    bits = _MODE_BITS[image.mode]
    if image.format == "TIFF":
        stored = image.tag_v2.get(258)  # type: ignore[attr-defined]  # BitsPerSample
        values = stored if isinstance(stored, tuple) else (stored,)
        if all(isinstance(v, int) for v in values) and values:
            bits = max(bits, *values)
    elif image.format == "PNG" and data[12:16] == b"IHDR":
        bits = max(bits, data[24])
    return bits


def decode_file(path: Path, pixel_limit: int = DEFAULT_PIXEL_LIMIT) -> DecodedImage:
    """Read and decode one image file; see :func:`decode_bytes` for what is refused.

    Raises:
        ImageRefused: the file cannot be read, or :func:`decode_bytes` refuses it.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageRefused(f"cannot read file ({error.strerror})") from None
    return decode_bytes(data, pixel_limit)


def load_rgb(path: Path) -> np.ndarray:
    """The pixels of an image file as ``uint8`` (H, W, 3), converted as at ingest."""
    return decode_file(path, pixel_limit=2**62).rgb


def significant_bits(largest: int) -> int:
    """The camera bit depth (8, 10, 12, 14 or 16) a 16-bit image whose largest value is
    ``largest`` most likely has: the smallest that holds it. A dim true 16-bit image reads as one
    of fewer bits and is brightened, which shows it, where the container's top byte hides it."""
    return next(bits for bits in (8, 10, 12, 14, 16) if largest < 2**bits)


def _eight_bits(values: np.ndarray) -> np.ndarray:
    """16-bit values as ``uint8``: the top 8 of the bits they use (:func:`significant_bits`),
    not of the container."""
    shift = significant_bits(int(values.max())) - 8
    return (values >> shift).astype(np.uint8)


def _deep_rgb(data: bytes, file_format: str) -> np.ndarray:
    """8-bit RGB of a 16-bit RGB(A) PNG or TIFF, read at its full depth (pypng, tifffile) and
    brought down by the bits its values use, as 16-bit greyscale is (a 12-bit camera's RGB in a
    16-bit file is otherwise near black); transparent parts become white."""
    if file_format == "PNG":
        import png

        width, height, rows, info = png.Reader(bytes=data).asDirect()
        planes = int(info["planes"])
        values = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        values = values.reshape(height, width, planes)
    else:
        import tifffile

        values = np.asarray(tifffile.imread(io.BytesIO(data), key=0)).astype(np.uint16)
    if values.ndim != 3 or values.shape[2] not in (3, 4):
        raise ValueError(f"16-bit colour data of shape {values.shape}")
    rgb = _eight_bits(values[:, :, :3]).astype(np.float64)
    if values.shape[2] == 4:
        alpha = values[:, :, 3:4].astype(np.float64) / 65535.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    return rgb.round().clip(0, 255).astype(np.uint8)


def _oriented(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` turned as the file's orientation tag says, by Pillow's ``exif_transpose``."""
    if orientation == 1:
        return rgb
    image = Image.fromarray(rgb)
    image.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(image))


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        # 16-bit greyscale from microscope cameras often holds 10, 12 or 14 significant bits:
        # keep the top 8 of the bits the values use, not of the container (a 12-bit image's
        # top byte is 0..15, black).
        grey = _eight_bits(np.asarray(image).astype(np.uint16))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "I":
        # 32-bit integer greyscale has no fixed range: stretch what is used to 0..255.
        values = np.asarray(image).astype(np.float64)
        grey = (values * (255.0 / max(values.max(), 1.0))).round().clip(0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent parts become white, the colour of an empty slide under the microscope.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode == "RGB":
        return _pixels(image)
    return _pixels(image.convert("RGB"))


_BAND_ROWS = 256  # rows copied out of a Pillow image at a time


def _pixels(image: Image.Image) -> np.ndarray:
    """An RGB image's pixels as a new array, copied a band of rows at a time: ``np.asarray``
    goes through ``tobytes``, which holds a third copy of the whole image at once (100 MP:
    300 MB each)."""
    width, height = image.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, _BAND_ROWS):
        bottom = min(height, top + _BAND_ROWS)
        out[top:bottom] = np.asarray(image.crop((0, top, width, bottom)))
    return out
