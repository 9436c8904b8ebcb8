"""Turn decoded images into the networks' square inputs: whole images or patches of them.

Six modes (:data:`MODES`), the one list every stage uses (``train-gan`` and ``reproduce`` alike):

- ``resize``: the whole image stretched to ``size`` x ``size`` (the paper's 128x128 inputs);
- ``crop``: short side scaled to ``size``, the central square kept;
- ``fit``: long side scaled to ``size`` (aspect kept), centred on a square canvas of ``fill``;
- ``pad``: the image shrunk by the fixed factor ``scale`` and centred on a ``size`` canvas of its
  border colour, larger ones centre-cropped: every image keeps the same pixels per micrometre, so a
  40 px cell stays 40 px (cell and nucleus size are diagnostic in cytology; resizing each crop to
  the canvas would erase them);
- ``patches-grid``: the image shrunk by ``scale`` and cut into the centred grid of ``size`` tiles,
  ``stride`` pixels apart (0: non-overlapping); with a stride the last row and column sit flush
  with the image's edges, so overlapping tiles cover the whole field (every tile of a held-out
  image is predicted, then averaged);
- ``patches-random``: ``patches_per_image`` tiles at random positions of the shrunk image, drawn
  from a generator seeded by ``seed`` and the image's hash (so an image gets the same tiles
  whatever else is in the set and whatever order it comes in).

Magnification: ``scale`` shrinks every image by one factor. With ``pixel_size_um`` set instead,
each image is brought to that many micrometres per pixel from the pixel size recorded for its
source (``ingest --pixel-size``), so sources scanned at different resolutions give inputs at one
magnification; an image without a recorded pixel size is refused rather than guessed.

Every output keeps the index of its source image, so predictions of an image's patches can be
aggregated to one prediction per image, the unit a pathologist diagnoses.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pathsynth.config import Presets
from pathsynth.errors import ConfigError, DataError, ImageTooSmall
from pathsynth.imaging.preprocess import FILLS, canvas_colour, center_crop, pad_to_square, resize

if TYPE_CHECKING:  # torch is imported where tensors are made: configs load without it
    import torch

MODES = ("resize", "crop", "fit", "pad", "patches-grid", "patches-random")
_SCALED_MODES = ("pad", "patches-grid", "patches-random")  # the modes that keep a magnification


@dataclass(frozen=True)
class PreprocessConfig:
    """How decoded images become network inputs.

    Args: see the comment on each field.
    """

    mode: str = "resize"  # "resize" | "crop" | "fit" | "pad" | "patches-grid" | "patches-random"
    size: int = 128  # side of the square output, pixels
    scale: float = 1.0  # pad and patches: shrink the image by this factor first (2 = half size)
    patches_per_image: int = 8  # patches-random: tiles per image
    seed: int = 0  # patches-random: seeds the tile positions
    fill: str = "border"  # fit and pad: canvas colour, "border" (edge median) | "black" | "white"
    stride: int = 0  # patches-grid: pixels between tile corners, 0 = size (no overlap)
    pixel_size_um: float = 0.0  # pad and patches: micrometres per pixel of the inputs, from each
    #   image's recorded pixel size (replaces scale); 0 = use scale

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.size < 8:
            raise ConfigError(f"size must be at least 8 pixels, got {self.size}")
        if not self.scale > 0.0:
            raise ConfigError(f"scale must be positive, got {self.scale}")
        if self.patches_per_image < 1:
            raise ConfigError(f"patches_per_image must be at least 1, got {self.patches_per_image}")
        if not 0 <= self.stride <= self.size:
            raise ConfigError(f"stride must be in [0, size], got {self.stride}")
        if not self.pixel_size_um >= 0.0:
            raise ConfigError(
                f"pixel_size_um must be >= 0 (0 = use scale), got {self.pixel_size_um}"
            )
        if self.fill not in FILLS:
            raise ConfigError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")

    def as_dict(self) -> dict[str, object]:
        """The configuration as a JSON-able dict (saved with every run, part of the cache key)."""
        return dataclasses.asdict(self)

    @property
    def needs_pixel_size(self) -> bool:
        """True when each image's recorded pixel size decides its scale (``pixel_size_um``)."""
        return self.pixel_size_um > 0.0 and self.mode in _SCALED_MODES

    def scale_for(self, pixel_size_um: float | None, image: str = "an image") -> float:
        """The factor ``image`` (recorded at ``pixel_size_um``) is shrunk by.

        Raises:
            DataError: ``pixel_size_um`` is set in the config but the image has no recorded
                pixel size (the message says how to record one, or to use ``scale``).
        """
        if not self.needs_pixel_size:
            return self.scale
        if pixel_size_um is None or not pixel_size_um > 0.0:
            raise DataError(
                f"{image} has no recorded pixel size, so it cannot be brought to "
                f"{self.pixel_size_um} um/px; ingest its source with --pixel-size UM (or a "
                "pixel_size_um column), or set preprocess.pixel_size_um=0 to use preprocess.scale"
            )
        return self.pixel_size_um / pixel_size_um


# Named choices per modality, each with the reason it fits.
PRESETS: dict[str, PreprocessConfig] = {
    # BACH-like fields (1024x768 here, 2048x1536 at 0.42 um/px in full): the classes differ in
    # tissue architecture (glands, invasion into stroma), so a patch must hold a few hundred
    # micrometres; halving keeps nuclei resolvable and a 512x384 field gives 12 grid tiles.
    "histology": PreprocessConfig(mode="patches-random", size=128, scale=2.0, patches_per_image=8),
    "histology-grid": PreprocessConfig(mode="patches-grid", size=128, scale=2.0),
    # The paper's inputs: the whole field squeezed to 128x128 (loses most nuclear detail).
    "histology-whole": PreprocessConfig(mode="resize", size=128),
    # Herlev-like single-cell crops of 50-450 px: half size on a 128 canvas keeps every cell at the
    # same absolute scale and fits cells up to 256 px whole; larger ones keep their centre.
    "cytology": PreprocessConfig(mode="pad", size=128, scale=2.0),
    # The paper's inputs: each crop stretched to 128x128 (cell size no longer comparable).
    "cytology-resize": PreprocessConfig(mode="resize", size=128),
}


PREPROCESS: Presets[PreprocessConfig] = Presets(
    PreprocessConfig, {name: config.as_dict() for name, config in PRESETS.items()}, "preprocess"
)
"""The input presets (see :class:`~pathsynth.config.Presets`)."""


def preprocess_image(
    rgb: np.ndarray,
    config: PreprocessConfig,
    image_key: str = "",
    pixel_size_um: float | None = None,
) -> torch.Tensor:
    """One decoded image as network inputs: :func:`input_squares` as a ``uint8`` tensor
    (P, 3, size, size); P = 1 for the whole-image modes, the number of grid tiles or
    ``patches_per_image`` for the patch modes.

    Raises:
        DataError: what :func:`input_squares` refuses.
    """
    import torch

    squares = input_squares(rgb, config, image_key, pixel_size_um)
    return torch.from_numpy(np.ascontiguousarray(squares.transpose(0, 3, 1, 2)))


def input_squares(
    rgb: np.ndarray,
    config: PreprocessConfig,
    image_key: str = "",
    pixel_size_um: float | None = None,
) -> np.ndarray:
    """One decoded image's input squares, ``uint8`` (P, size, size, 3) (torch is needed only for
    the positions of random patches).

    Args:
        rgb: ``uint8`` array (H, W, 3).
        config: how to preprocess.
        image_key: a stable name of the image (its sha256); with ``seed`` it decides the positions
            of random patches.
        pixel_size_um: the image's recorded micrometres per pixel (needed when
            ``config.pixel_size_um`` is set).

    Raises:
        DataError: not a uint8 (H, W, 3) array, an image smaller than one patch after
            shrinking, or no ``pixel_size_um`` when the config asks for a magnification.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    size = config.size
    scale = config.scale_for(pixel_size_um, f"image {image_key[:12] or '(unnamed)'}")
    if config.mode == "resize":
        squares = [np.asarray(resize(rgb, (size, size)))]
    elif config.mode == "crop":
        squares = [np.asarray(center_crop(rgb, size))]
    elif config.mode == "fit":
        squares = [np.asarray(pad_to_square(rgb, size, config.fill))]
    elif config.mode == "pad":
        squares = [_on_canvas(_shrink(rgb, scale), size, config.fill)]
    else:
        field = _shrink(rgb, scale)
        height, width = field.shape[:2]
        if height < size or width < size:
            raise ImageTooSmall(
                f"a {rgb.shape[1]}x{rgb.shape[0]} image shrunk by {scale:g} is "
                f"{width}x{height}, smaller than one {size} px patch",
                "lower the scale",
            )
        corners = (
            grid_corners(height, width, size, config.stride)
            if config.mode == "patches-grid"
            else _random_corners(height, width, size, config, image_key)
        )
        squares = [field[top : top + size, left : left + size] for top, left in corners]
    return np.stack(squares)


def preprocess_images(
    images: Sequence[np.ndarray], config: PreprocessConfig, image_keys: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Several decoded images as one tensor of inputs, each tagged with its source image.

    Args:
        images: ``uint8`` arrays (H, W, 3).
        config: how to preprocess.
        image_keys: stable names (sha256) per image for random patches; default their positions.

    Returns:
        ``uint8`` (M, 3, size, size) inputs and an ``int64`` (M,) tensor with the index in
        ``images`` each input came from.

    Raises:
        DataError: no images, keys of another length, or what :func:`preprocess_image` refuses.
    """
    import torch

    if not images:
        raise DataError("no images to preprocess")
    keys = list(image_keys) if image_keys is not None else [str(i) for i in range(len(images))]
    if len(keys) != len(images):
        raise DataError(f"{len(keys)} image keys for {len(images)} images")
    parts = [preprocess_image(rgb, config, key) for rgb, key in zip(images, keys, strict=True)]
    index = torch.cat([torch.full((len(p),), i, dtype=torch.int64) for i, p in enumerate(parts)])
    return torch.cat(parts), index


def grid_corners(height: int, width: int, size: int, stride: int = 0) -> list[tuple[int, int]]:
    """(top, left) of a grid of ``size`` tiles, row by row.

    ``stride`` 0: the centred grid of non-overlapping tiles (a margin may stay uncovered).
    ``stride`` > 0: tiles every ``stride`` pixels from the top-left corner, plus a last row and
    column flush with the bottom and right edges, so the tiles cover the whole field.
    """
    if stride == 0:
        rows, cols = height // size, width // size
        top0, left0 = (height - rows * size) // 2, (width - cols * size) // 2
        return [(top0 + r * size, left0 + c * size) for r in range(rows) for c in range(cols)]
    tops, lefts = _covering(height, size, stride), _covering(width, size, stride)
    return [(top, left) for top in tops for left in lefts]


def _covering(length: int, size: int, stride: int) -> list[int]:
    """Starts of ``size`` windows every ``stride`` px, the last one flush with ``length`` (none
    when a window does not fit)."""
    starts = list(range(0, length - size + 1, stride))
    if not starts:
        return []
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def _random_corners(
    height: int, width: int, size: int, config: PreprocessConfig, image_key: str
) -> list[tuple[int, int]]:
    import torch

    digest = hashlib.sha256(f"{config.seed}:{image_key}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    count = config.patches_per_image
    tops = torch.randint(0, height - size + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (count,), generator=generator).tolist()
    return list(zip(tops, lefts, strict=True))


def _shrink(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return rgb
    height, width = rgb.shape[:2]
    target = (max(1, round(width / scale)), max(1, round(height / scale)))
    return np.asarray(resize(rgb, target))


def _on_canvas(rgb: np.ndarray, size: int, fill: str) -> np.ndarray:
    """``rgb`` centred on a ``size`` canvas without rescaling; a larger image keeps its centre."""
    image = Image.fromarray(rgb)
    canvas = Image.new("RGB", (size, size), canvas_colour(image, fill))
    # Negative offsets paste only the centre of an image larger than the canvas.
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas)
