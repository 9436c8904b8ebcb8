"""A tiny learnable image set drawn in the tests: coloured squares against coloured circles."""

from __future__ import annotations

import torch

from pathsynth.imaging.tensorset import TensorImageSet

CLASS_NAMES = ["square", "circle"]


def draw_shapes(n_per_class: int, seed: int, size: int = 32) -> TensorImageSet:
    """``n_per_class`` filled squares and circles of random colour, size and place on noise."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(size).view(size, 1).float()
    cols = torch.arange(size).view(1, size).float()
    images, labels = [], []
    for label in range(2):
        for _ in range(n_per_class):
            radius = float(torch.randint(6, 11, (1,), generator=generator))
            centre = torch.randint(int(radius), size - int(radius), (2,), generator=generator)
            dy, dx = rows - float(centre[0]), cols - float(centre[1])
            if label == 0:
                mask = (dy.abs() <= radius * 0.85) & (dx.abs() <= radius * 0.85)
            else:
                mask = dy**2 + dx**2 <= radius**2
            background = torch.randint(0, 60, (3, size, size), generator=generator)
            colour = torch.randint(120, 256, (3, 1, 1), generator=generator)
            images.append(torch.where(mask, colour, background))
            labels.append(label)
    return TensorImageSet(
        torch.stack(images).to(torch.uint8), torch.tensor(labels), list(CLASS_NAMES)
    )
