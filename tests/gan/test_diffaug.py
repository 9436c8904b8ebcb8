"""DiffAugment ops and the ADA controller."""

from __future__ import annotations

import torch

from pathsynth.gan.diffaug import AdaptiveProbability, augment

OPS = ["color", "translation", "cutout"]


def test_probability_zero_returns_the_images_untouched() -> None:
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    assert augment(images, OPS, 0.0) is images


def test_probability_one_changes_every_image_and_keeps_the_shape() -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    out = augment(images, OPS, 1.0)
    assert out.shape == images.shape
    assert all(not torch.equal(a, b) for a, b in zip(out, images, strict=True))


def test_augmentation_is_differentiable() -> None:
    images = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    augment(images, OPS, 1.0).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_rank_slices_augment_like_the_global_batch() -> None:
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    torch.manual_seed(3)
    whole = augment(images, OPS, 0.7)
    parts = []
    for offset in (0, 4):
        torch.manual_seed(3)
        parts.append(augment(images[offset : offset + 4], OPS, 0.7, offset=offset, global_batch=8))
    assert torch.equal(torch.cat(parts), whole)


def test_ada_raises_p_when_discriminator_is_overconfident_on_reals_and_lowers_it_otherwise() -> (
    None
):
    ada = AdaptiveProbability(p=0.2, target=0.6, speed_kimg=1.0)
    ada.accumulate(torch.ones(100))  # sign average 1.0 > 0.6: overfitting
    assert ada.update() == 0.2 + 0.1
    ada.accumulate(-torch.ones(100))
    assert abs(ada.update() - 0.2) < 1e-12
    ada.load_state_dict({"p": 0.0})
    ada.accumulate(-torch.ones(100))
    assert ada.update() == 0.0  # clamped
