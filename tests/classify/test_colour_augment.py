"""Colour and stain augmentation: each formula equals kornia's or scikit-image's on a real BACH
patch, a seed gives the same batch, shape/dtype/range are kept, and training with it off is
unchanged."""

from __future__ import annotations

import dataclasses
import math

import kornia
import numpy as np
import pytest
import torch
from skimage import color
from torch import nn

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.trainer import train_classifier, train_one_epoch
from pathsynth.config import from_plain, to_plain
from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.augment import (
    ColourAugment,
    apply_gamma,
    gaussian_blur,
    hed_jitter,
    scale_contrast,
    scale_saturation,
    shift_brightness,
    shift_hue,
)
from pathsynth.imaging.colour import rgb_to_lab
from pathsynth.imaging.config import COLOUR_PRESETS, ColourAugmentConfig
from pathsynth.imaging.stain import fit_lab_statistics

from .shapes import draw_shapes

EVERYTHING = ColourAugmentConfig(
    **{f.name: 1.0 for f in dataclasses.fields(ColourAugmentConfig) if f.name.endswith("_p")}
)


def _rgb(patches: torch.Tensor) -> torch.Tensor:
    return patches.float() / 255.0


def _augment(config: ColourAugmentConfig, images: torch.Tensor, seed: int) -> torch.Tensor:
    statistics = fit_lab_statistics(
        images if images.dtype == torch.uint8 else images.mul(255).byte()
    )
    return ColourAugment(config, torch.Generator().manual_seed(seed), statistics)(images)


def test_hed_jitter_is_tellez_on_skimage_densities_before_clipping(
    bach_patches: torch.Tensor,
) -> None:
    rgb = _rgb(bach_patches)
    alpha = torch.tensor(
        [[0.95, 1.05, 1.0], [1.02, 0.97, 1.01], [1.0, 1.0, 1.0], [1.04, 1.0, 0.96]]
    )
    beta = torch.tensor(
        [[0.01, -0.01, 0.0], [0.0, 0.005, 0.0], [-0.01, 0.0, 0.0], [0.0, 0.0, 0.01]]
    )
    # skimage's rgb2hed without its final clip to >= 0 (H&E pixels have negative DAB densities)
    pixels = rgb.permute(0, 2, 3, 1).double().numpy()
    log_adjust = np.log(1e-6)
    hed = (np.log(np.maximum(pixels, 1e-6)) / log_adjust) @ color.hed_from_rgb
    assert (hed < 0).mean() > 0.05  # the case the clip got wrong is present in these patches
    jittered = hed * alpha.double().numpy()[:, None, None] + beta.double().numpy()[:, None, None]
    expected = color.hed2rgb(jittered, channel_axis=-1)
    ours = hed_jitter(rgb, alpha, beta).permute(0, 2, 3, 1).double().numpy()
    assert np.abs(ours - expected).max() < 1e-5


def test_hed_jitter_at_identity_gives_the_image_back(bach_patches: torch.Tensor) -> None:
    rgb = _rgb(bach_patches)
    same = hed_jitter(rgb, torch.ones(len(rgb), 3), torch.zeros(len(rgb), 3))
    assert (same - rgb).abs().max() < 1e-4  # float32 round trip, well under a grey level


def test_photometric_jitter_matches_kornia_on_a_bach_patch(bach_patches: torch.Tensor) -> None:
    rgb = _rgb(bach_patches)
    turns = torch.tensor([-0.04, 0.0, 0.02, 0.3])
    factor = torch.tensor([0.8, 1.0, 1.15, 1.3])
    offset = torch.tensor([-0.1, 0.0, 0.05, 0.2])
    cases = [
        (shift_hue(rgb, turns), kornia.enhance.adjust_hue(rgb, turns * 2 * math.pi)),
        (scale_saturation(rgb, factor), kornia.enhance.adjust_saturation(rgb, factor)),
        (shift_brightness(rgb, offset), kornia.enhance.adjust_brightness(rgb, offset)),
        (
            scale_contrast(rgb, factor),
            kornia.enhance.adjust_contrast_with_mean_subtraction(rgb, factor),
        ),
        (apply_gamma(rgb, factor), kornia.enhance.adjust_gamma(rgb, factor)),
    ]
    for ours, theirs in cases:
        assert (ours - theirs).abs().max() < 1e-4  # float32 HSV round trips differ in ulps


def test_blur_matches_kornia_gaussian_blur2d(bach_patches: torch.Tensor) -> None:
    rgb = _rgb(bach_patches)
    sigma = torch.tensor([0.3, 0.7, 1.2, 2.0])
    theirs = kornia.filters.gaussian_blur2d(
        rgb, (13, 13), torch.stack((sigma, sigma), dim=1), border_type="reflect"
    )
    assert (gaussian_blur(rgb, sigma, radius=6) - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_every_operation_keeps_shape_dtype_and_range(
    bach_patches: torch.Tensor, dtype: torch.dtype
) -> None:
    images = bach_patches if dtype == torch.uint8 else _rgb(bach_patches).to(dtype)
    out = _augment(EVERYTHING, images, seed=0)
    assert out.shape == images.shape and out.dtype == dtype
    top = 255 if dtype == torch.uint8 else 1.0
    assert out.min() >= 0 and out.max() <= top
    assert not torch.equal(out, images)


def test_a_seed_gives_the_same_batch_and_another_seed_another(bach_patches: torch.Tensor) -> None:
    preset = COLOUR_PRESETS["histology"]
    first = _augment(preset, bach_patches, seed=5)
    assert torch.equal(first, _augment(preset, bach_patches, seed=5))
    assert not torch.equal(first, _augment(preset, bach_patches, seed=6))


def test_probability_decides_which_images_change(bach_patches: torch.Tensor) -> None:
    off = ColourAugmentConfig(brightness_p=0.0)
    assert torch.equal(_augment(off, bach_patches, seed=0), bach_patches)
    always = ColourAugmentConfig(brightness_p=1.0, brightness=0.2)
    out = _augment(always, bach_patches, seed=0)
    changed = (out.int() - bach_patches.int()).flatten(1).abs().amax(dim=1) > 0
    assert changed.all()


def test_randstain_draws_lab_statistics_from_the_training_distribution(
    bach_patches: torch.Tensor,
) -> None:
    statistics = fit_lab_statistics(bach_patches)
    config = ColourAugmentConfig(randstain_p=1.0)
    copies = bach_patches[:1].expand(64, -1, -1, -1)
    out = ColourAugment(config, torch.Generator().manual_seed(0), statistics)(copies)
    means = rgb_to_lab(out.float() / 255.0).flatten(2).mean(dim=2)
    # 64 draws: their mean L lies within a few standard errors of the training set's mean L
    standard_error = statistics.std_of_means[0] / 8
    assert abs(float(means[:, 0].mean()) - statistics.mean_of_means[0]) < 4 * standard_error + 1
    assert float(means[:, 0].std()) > 0.3 * statistics.std_of_means[0]


def test_refusals_name_the_problem(bach_patches: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match=r"colour\.randstain_p needs LAB statistics"):
        ColourAugment(ColourAugmentConfig(randstain_p=0.5), torch.Generator())
    augment = ColourAugment(ColourAugmentConfig(hue_p=1.0), torch.Generator())
    with pytest.raises(DataError, match=r"takes uint8 or float images, got torch\.int32"):
        augment(bach_patches.int())
    with pytest.raises(DataError, match=r"RGB batches, got \(4, 3, 128\)"):
        augment(bach_patches[:, :, 0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour.hue_p": 1.5}, r"colour.hue_p is a probability in \[0, 1\], got 1.5"),
        ({"colour.hed_alpha": -0.1}, "colour.hed_alpha must be a finite number >= 0, got -0.1"),
        ({"colour.hed_alpha": 1.0}, "colour.hed_alpha must be < 1.0, got 1.0"),
        ({"colour.hue": 0.7}, "colour.hue must be <= 0.5, got 0.7"),
        ({"colour.blur_sigma": 0.05}, "colour.blur_sigma must be >= 0.1, got 0.05"),
        ({"colour.randstain_spread": 0}, "colour.randstain_spread must be > 0"),
        ({"colour.hue_q": 0.1}, "unknown classifier setting 'colour.hue_q'"),
    ],
)
def test_bad_colour_settings_are_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CLASSIFIER.resolve("quick", overrides)


def test_colour_settings_resolve_from_dotted_keys_and_saved_json() -> None:
    config = CLASSIFIER.resolve("quick", {"colour.hed_p": "0.5", "colour.hed_alpha": "0.1"})
    assert (config.colour.hed_p, config.colour.hed_alpha, config.colour.enabled) == (0.5, 0.1, True)
    assert not CLASSIFIER.resolve("quick").colour.enabled  # off by default
    with_preset = CLASSIFIER.resolve("quick", {"colour": COLOUR_PRESETS["histology"]})
    assert from_plain(type(with_preset), to_plain(with_preset)) == with_preset


def test_colour_hook_leaves_the_flip_draws_and_the_training_step_unchanged() -> None:
    shapes = draw_shapes(8, seed=1)
    config = CLASSIFIER.resolve("smoke", {"width": 4, "blocks": 2, "batch_size": 8})
    seen: list[torch.Tensor] = []

    def identity(images: torch.Tensor) -> torch.Tensor:
        seen.append(images.clone())
        return images

    def one_epoch(colour: object) -> tuple[float, float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
        batches = shapes.batches(8, torch.Generator().manual_seed(1), True)
        generator = torch.Generator().manual_seed(2)
        return train_one_epoch(
            model,
            nn.CrossEntropyLoss(),
            optimiser,
            batches,
            config,
            generator,
            colour_augment=colour,
        )

    assert one_epoch(None) == one_epoch(identity)
    assert len(seen) == 2 and all(batch.dtype == torch.uint8 for batch in seen)


def test_training_with_the_histology_preset_is_seeded_and_trains() -> None:
    config = CLASSIFIER.resolve(
        "smoke", {"width": 4, "blocks": 2, "epochs": 2, "colour": COLOUR_PRESETS["histology"]}
    )
    first = train_classifier(draw_shapes(12, seed=1), config)
    second = train_classifier(draw_shapes(12, seed=1), config)
    assert first.curves() == {**second.curves(), "seconds": first.curves()["seconds"]}
    assert all(math.isfinite(loss) for loss in first.curves()["train_loss"])
    plain = train_classifier(
        draw_shapes(12, seed=1), dataclasses.replace(config, colour=ColourAugmentConfig())
    )
    assert plain.curves()["train_loss"] != first.curves()["train_loss"]


def test_colour_augmentation_on_greyscale_images_is_refused() -> None:
    shapes = draw_shapes(6, seed=1)
    grey = dataclasses.replace(shapes, images=shapes.images[:, :1].contiguous())
    config = CLASSIFIER.resolve("smoke", {"colour": ColourAugmentConfig(hue_p=0.5)})
    with pytest.raises(ConfigError, match=r"colour augmentation needs RGB images \(3 channels\)"):
        train_classifier(grey, config)
