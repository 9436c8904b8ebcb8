"""Two views per image: seeded, of the configured size, different from each other."""

import torch

from pathsynth.backbones.load import InputSpec
from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.views import ViewMaker, random_resized_crops

SPEC = InputSpec(size=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear")


def test_a_whole_image_box_is_the_image_resized() -> None:
    images = torch.rand(2, 3, 32, 32)

    crops = random_resized_crops(images, 32, 1.0, 1.0, torch.Generator().manual_seed(0))

    assert torch.allclose(crops, images, atol=1e-5)


def test_views_repeat_for_a_seed_and_differ_between_the_two() -> None:
    config = PRETRAIN.resolve("smoke", {"colour.randstain_p": "0"})
    images = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)

    first_a, second_a = ViewMaker(config, SPEC, torch.Generator().manual_seed(3), None)(images)
    first_b, second_b = ViewMaker(config, SPEC, torch.Generator().manual_seed(3), None)(images)

    assert first_a.shape == (4, 3, config.data.view_size, config.data.view_size)
    assert torch.equal(first_a, first_b) and torch.equal(second_a, second_b)
    assert not torch.allclose(first_a, second_a)
