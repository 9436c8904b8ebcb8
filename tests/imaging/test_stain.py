"""Macenko and Reinhard stain normalisation agree with torchstain on real BACH patches, and the
reference comes from the training images alone and survives a JSON round trip."""

from __future__ import annotations

import json

import pytest
import torch
from torchstain.torch.normalizers import TorchMacenkoNormalizer, TorchReinhardNormalizer

from pathsynth.errors import DataError
from pathsynth.imaging.stain import (
    StainReference,
    fit_lab_statistics,
    fit_stain_reference,
    normalise_stain,
    stain_reference_from_plain,
)


def test_macenko_reference_of_one_patch_equals_torchstains_fit(bach_patches: torch.Tensor) -> None:
    torchstain = TorchMacenkoNormalizer()
    torchstain.fit(bach_patches[0])
    reference = fit_stain_reference([bach_patches[0]], "macenko")
    assert torch.allclose(torch.tensor(reference.stain_matrix), torchstain.HERef, atol=1e-5)
    assert torch.allclose(torch.tensor(reference.max_concentrations), torchstain.maxCRef, atol=1e-5)


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_normalised_patches_match_torchstain_within_one_grey_level(
    bach_patches: torch.Tensor, method: str
) -> None:
    train, others = bach_patches[:1], bach_patches[1:]
    torchstain = TorchMacenkoNormalizer() if method == "macenko" else TorchReinhardNormalizer()
    torchstain.fit(train[0])
    reference = fit_stain_reference(train, method)
    ours = normalise_stain(others, reference).int()
    for image, mine in zip(others, ours, strict=True):
        theirs = torchstain.normalize(image)
        theirs = (theirs[0] if method == "macenko" else theirs).permute(2, 0, 1).int()
        # torchstain truncates to integers where we round: at most one level apart
        assert (theirs - mine).abs().max() <= 1
        assert (theirs - mine).abs().float().mean() < 0.6


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_a_set_is_fitted_as_torchstain_fits_the_mosaic_of_its_images(
    bach_patches: torch.Tensor, method: str
) -> None:
    torchstain = TorchMacenkoNormalizer() if method == "macenko" else TorchReinhardNormalizer()
    torchstain.fit(torch.cat(list(bach_patches[:3]), dim=1))  # stacked vertically
    reference = fit_stain_reference(bach_patches[:3], method)
    assert reference.fitted_images == 3
    if method == "macenko":
        assert torch.allclose(torch.tensor(reference.stain_matrix), torchstain.HERef, atol=1e-4)
    else:
        assert torch.allclose(torch.tensor(reference.lab_mean), torchstain.target_means, atol=1e-3)
        assert torch.allclose(torch.tensor(reference.lab_std), torchstain.target_stds, atol=1e-3)


def test_test_images_are_normalised_with_the_training_reference_only(
    bach_patches: torch.Tensor,
) -> None:
    train, test = bach_patches[:2], bach_patches[2:]
    reference = fit_stain_reference(train, "reinhard")
    before = normalise_stain(test, reference)
    # other test images in the batch (or a different test set) never move the reference
    assert torch.equal(normalise_stain(test[:1], reference), before[:1])
    assert fit_stain_reference(train, "reinhard") == reference
    # a reference fitted on other images gives a different mapping: the training set decides
    assert not torch.equal(normalise_stain(test, fit_stain_reference(test, "reinhard")), before)


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_reference_round_trips_through_json(bach_patches: torch.Tensor, method: str) -> None:
    reference = fit_stain_reference(bach_patches[:2], method)
    loaded = stain_reference_from_plain(json.loads(json.dumps(reference.to_plain())))
    assert loaded == reference
    assert torch.equal(
        normalise_stain(bach_patches, loaded), normalise_stain(bach_patches, reference)
    )


def test_subsampled_fit_is_seeded_and_close_to_the_full_fit(bach_patches: torch.Tensor) -> None:
    full = fit_stain_reference(bach_patches, "macenko")
    part = fit_stain_reference(bach_patches, "macenko", max_pixels=20_000, seed=3)
    assert part == fit_stain_reference(bach_patches, "macenko", max_pixels=20_000, seed=3)
    assert torch.allclose(
        torch.tensor(part.stain_matrix), torch.tensor(full.stain_matrix), atol=0.02
    )


def test_blank_glass_is_left_unchanged_and_cannot_be_fitted() -> None:
    blank = torch.full((1, 3, 16, 16), 235, dtype=torch.uint8)
    reference = StainReference("macenko", ((0.65, 0.07), (0.70, 0.99), (0.29, 0.11)), (1.9, 1.0))
    assert torch.equal(normalise_stain(blank, reference), blank)
    with pytest.raises(DataError, match="too few stained pixels to fit Macenko stains"):
        fit_stain_reference(blank, "macenko")


def test_refusals_name_the_problem(bach_patches: torch.Tensor) -> None:
    with pytest.raises(
        DataError, match="stain method must be one of macenko, reinhard, got 'vahadane'"
    ):
        fit_stain_reference(bach_patches, "vahadane")
    with pytest.raises(DataError, match="needs at least one training image"):
        fit_stain_reference([], "reinhard")
    with pytest.raises(
        DataError, match=r"stain normalisation takes uint8 images, got torch\.float32"
    ):
        normalise_stain(bach_patches.float(), fit_stain_reference(bach_patches, "reinhard"))
    with pytest.raises(DataError, match="a reinhard stain reference lacks its fitted values"):
        stain_reference_from_plain({"method": "reinhard", "lab_mean": [1, 2, 3]})
    with pytest.raises(DataError, match="malformed stain reference"):
        stain_reference_from_plain({"stain_matrix": []})


def test_lab_statistics_describe_the_spread_of_the_training_images(
    bach_patches: torch.Tensor,
) -> None:
    statistics = fit_lab_statistics(bach_patches)
    per_image = [fit_stain_reference(image[None], "reinhard") for image in bach_patches]
    means = torch.tensor([reference.lab_mean for reference in per_image])
    assert torch.allclose(torch.tensor(statistics.mean_of_means), means.mean(0), atol=1e-3)
    assert torch.allclose(torch.tensor(statistics.std_of_means), means.std(0), atol=1e-3)
    with pytest.raises(DataError, match="at least 2 training images"):
        fit_lab_statistics(bach_patches[:1])
