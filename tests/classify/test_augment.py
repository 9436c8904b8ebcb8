"""Flip/rotation augmentation keeps every pixel value and draws all eight symmetries."""

import torch

from pathsynth.imaging.augment import random_dihedral


def _symmetries(image: torch.Tensor) -> list[torch.Tensor]:
    return [
        torch.rot90(flipped, k, dims=(-2, -1))
        for flipped in (image, image.flip(-1))
        for k in range(4)
    ]


def test_each_image_becomes_one_of_its_eight_symmetries_and_all_occur() -> None:
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)  # no symmetry of its own
    batch = image.repeat(200, 3, 1, 1)

    out = random_dihedral(batch, torch.Generator().manual_seed(0))

    candidates = _symmetries(batch[0])
    which = [next(i for i, c in enumerate(candidates) if torch.equal(o, c)) for o in out]
    assert set(which) == set(range(8))
    assert out.dtype == torch.uint8 and out.shape == batch.shape


def test_same_seed_gives_the_same_augmentation() -> None:
    batch = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)

    first = random_dihedral(batch, torch.Generator().manual_seed(3))
    second = random_dihedral(batch, torch.Generator().manual_seed(3))

    assert torch.equal(first, second)
