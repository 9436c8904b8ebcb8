"""Square crops of a batch of larger inputs, on whatever device the batch is on.

The stored inputs can be larger fields than the networks see (a whole BACH field at the chosen
magnification, a cytology canvas with room around the cell): training then draws a new random
crop of every input each time it is used (:func:`random_crops`), and testing covers each input
with a dense grid of crops (:func:`grid_crops`) whose predictions are averaged, so nothing of the
field is left unseen. Both are plain tensor indexing, batched, with no host round trip.
"""

from __future__ import annotations

import torch

from pathsynth.errors import DataError
from pathsynth.imaging.patches import grid_corners


def _check(images: torch.Tensor, size: int) -> tuple[int, int]:
    if images.ndim != 4:
        raise DataError(f"expected NCHW images, got shape {tuple(images.shape)}")
    height, width = int(images.shape[2]), int(images.shape[3])
    if not 1 <= size <= min(height, width):
        raise DataError(f"a {size} px crop does not fit {width}x{height} inputs")
    return height, width


def random_crops(
    images: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One ``size`` x ``size`` crop of every image, at a uniformly random position per image.

    Args:
        images: (N, C, H, W) tensor of any dtype.
        size: side of the crops.
        generator: draws the positions; it must live on ``images``' device (``None``: torch's
            global generator, drawn on the CPU).

    Returns:
        (N, C, size, size), same dtype and device; ``images`` itself when it is already that size.

    Raises:
        DataError: not NCHW, or a crop larger than the inputs.
    """
    height, width = _check(images, size)
    if (height, width) == (size, size):
        return images
    count, device = len(images), images.device
    draw_device = generator.device if generator is not None else torch.device("cpu")
    tops = torch.randint(0, height - size + 1, (count,), generator=generator, device=draw_device)
    lefts = torch.randint(0, width - size + 1, (count,), generator=generator, device=draw_device)
    offsets = torch.arange(size, device=device)
    rows = (tops.to(device)[:, None] + offsets)[:, :, None]  # (N, size, 1)
    cols = (lefts.to(device)[:, None] + offsets)[:, None, :]  # (N, 1, size)
    picked = images[torch.arange(count, device=device)[:, None, None], :, rows, cols]
    return picked.permute(0, 3, 1, 2).contiguous()  # advanced indices came first: (N, s, s, C)


def grid_crops(images: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input covered by ``size`` crops ``stride`` pixels apart, the last row and column
    flush with the edges (:func:`pathsynth.imaging.patches.grid_corners`).

    Args:
        images: (N, C, H, W) tensor of any dtype.
        size: side of the crops.
        stride: pixels between crop corners, at least 1.

    Returns:
        ``(crops, index)``: (N * P, C, size, size) crops, input by input, and the (N * P,) int64
        index of the input each crop came from (on ``images``' device).

    Raises:
        DataError: not NCHW, a crop larger than the inputs, or a stride below 1.
    """
    height, width = _check(images, size)
    if stride < 1:
        raise DataError(f"the crop stride must be at least 1 pixel, got {stride}")
    corners = grid_corners(height, width, size, stride)
    crops = torch.stack(
        [images[:, :, top : top + size, left : left + size] for top, left in corners], dim=1
    )
    index = torch.arange(len(images), device=images.device).repeat_interleave(len(corners))
    return crops.flatten(0, 1), index
