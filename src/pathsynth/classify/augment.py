"""Light on-device augmentation for the classifier: flips and 90-degree rotations.

Microscopy has no up or down, so the eight symmetries of the square keep every label and every
pixel value (no interpolation, no padding). Each image of a batch gets its own random symmetry.
"""

from __future__ import annotations

import torch


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
