"""Affine expansion: exact geometry for known parameters, seeded randomness, replay, class balance."""

from __future__ import annotations

import json

import pytest
import torch

from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.affine import (
    PARAM_KEYS,
    AffineConfig,
    apply_affine,
    class_balanced_plan,
    expand,
    identity_params,
    random_affine,
)


def images(count: int = 3, height: int = 12, width: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, height, width), dtype=torch.uint8, generator=generator)


def test_identity_params_return_the_input_exactly():
    batch = images()
    assert torch.equal(apply_affine(batch, [identity_params()] * 3), batch)


@pytest.mark.parametrize(("key", "dim"), [("hflip", 3), ("vflip", 2)])
def test_a_pure_flip_equals_torch_flip(key, dim):
    batch = images()
    params = [{**identity_params(), key: True}] * 3
    assert torch.equal(apply_affine(batch, params), torch.flip(batch, dims=[dim]))


def test_a_90_degree_rotation_equals_rot90_counter_clockwise():
    square = images(height=10, width=10)
    params = [{**identity_params(), "angle": 90.0}] * 3
    assert torch.equal(apply_affine(square, params), torch.rot90(square, 1, dims=[2, 3]))


def test_a_half_turn_of_a_non_square_image_equals_both_flips():
    batch = images(height=8, width=14)
    params = [{**identity_params(), "angle": 180.0}] * 3
    assert torch.equal(apply_affine(batch, params), torch.flip(batch, dims=[2, 3]))


def test_a_one_pixel_shift_moves_content_right_and_reflects_the_edge():
    batch = images(width=16)
    shifted = apply_affine(batch, [{**identity_params(), "dx": 1 / 16}] * 3)
    assert torch.equal(shifted[..., 1:], batch[..., :-1])
    assert torch.equal(shifted[..., 0], batch[..., 0])  # reflection about the left edge


def test_same_seed_gives_same_images_and_params_and_another_seed_differs():
    batch, config = images(), AffineConfig()
    first = random_affine(batch, config, torch.Generator().manual_seed(7))
    second = random_affine(batch, config, torch.Generator().manual_seed(7))
    other = random_affine(batch, config, torch.Generator().manual_seed(8))
    assert torch.equal(first[0], second[0]) and first[1] == second[1]
    assert first[1] != other[1]


def test_stored_params_reproduce_the_child_after_a_json_round_trip():
    batch = images(count=4, height=20, width=24)
    children, params = random_affine(batch, AffineConfig(), torch.Generator().manual_seed(3))
    stored = json.loads(json.dumps(params))
    assert torch.equal(apply_affine(batch, stored), children)


def test_drawn_params_stay_in_the_configured_ranges():
    config = AffineConfig(max_shift=0.05, min_zoom=0.95, max_zoom=1.05, max_rotation=20.0)
    _, params = random_affine(images(count=50), config, torch.Generator().manual_seed(0))
    for p in params:
        assert set(p) == set(PARAM_KEYS)
        assert abs(p["dx"]) <= 0.05 and abs(p["dy"]) <= 0.05
        assert 0.95 <= p["zoom"] <= 1.05 and abs(p["angle"]) <= 20.0
    assert {p["hflip"] for p in params} == {True, False}


def test_refuses_float_images_and_a_wrong_number_of_params():
    with pytest.raises(DataError, match="uint8"):
        apply_affine(images().float(), [identity_params()] * 3)
    with pytest.raises(DataError, match="2 affine parameter sets for 3 images"):
        apply_affine(images(), [identity_params()] * 2)
    with pytest.raises(ConfigError, match="lack angle"):
        apply_affine(images(count=1), [{"dx": 0, "dy": 0, "zoom": 1, "hflip": 0, "vflip": 0}])


def test_config_refuses_impossible_ranges():
    with pytest.raises(ConfigError, match="zoom"):
        AffineConfig(min_zoom=1.2, max_zoom=1.1)
    with pytest.raises(ConfigError, match="max_rotation"):
        AffineConfig(max_rotation=270.0)


def test_per_class_plan_brings_every_class_to_the_target_exactly():
    counts = {"benign": 7, "insitu": 10, "invasive": 3}
    plan = class_balanced_plan(counts, per_class=25, seed=1)
    for name, share in plan.items():
        assert len(share) == counts[name]
        assert counts[name] + sum(share) == 25
        assert max(share) - min(share) <= 1  # spread evenly over the originals


def test_total_plan_sums_to_the_total_and_counts_children_only_when_asked():
    counts = {"a": 4, "b": 5, "c": 6}
    plan = class_balanced_plan(counts, total=100, seed=0)
    reached = {name: counts[name] + sum(share) for name, share in plan.items()}
    assert reached == {"a": 34, "b": 33, "c": 33}
    children_only = class_balanced_plan(counts, per_class=10, include_originals=False)
    assert {name: sum(share) for name, share in children_only.items()} == dict.fromkeys(counts, 10)


def test_plan_refuses_ambiguous_or_unreachable_targets():
    with pytest.raises(ConfigError, match="exactly one"):
        class_balanced_plan({"a": 3}, per_class=5, total=5)
    with pytest.raises(ConfigError, match="more than the target"):
        class_balanced_plan({"a": 30}, per_class=10)
    with pytest.raises(DataError, match="no originals"):
        class_balanced_plan({"a": 3, "b": 0}, per_class=10)


def test_expand_makes_the_planned_children_of_originals_of_different_sizes():
    originals = [images(1, 10, 12, seed=1)[0], images(1, 20, 8, seed=2)[0], images(1, 6, 6)[0]]
    children = expand(originals, [2, 3, 0], AffineConfig(), torch.Generator().manual_seed(5))
    assert [child.parent for child in children] == [0, 0, 1, 1, 1]
    for child in children:
        parent = originals[child.parent]
        assert child.image.shape == parent.shape
        replay = apply_affine(parent[None], [child.params])[0]
        assert torch.equal(replay, child.image)
    again = expand(
        originals, [2, 3, 0], AffineConfig(), torch.Generator().manual_seed(5), batch_size=1
    )
    assert [c.params for c in again] == [c.params for c in children]
    assert all(torch.equal(a.image, b.image) for a, b in zip(again, children, strict=True))


def test_expand_follows_a_class_balanced_plan_to_the_target():
    originals = {"a": [images(1, seed=i)[0] for i in range(3)], "b": [images(1, seed=9)[0]]}
    plan = class_balanced_plan({name: len(imgs) for name, imgs in originals.items()}, per_class=8)
    generator = torch.Generator().manual_seed(0)
    for name, share in plan.items():
        children = expand(originals[name], share, AffineConfig(), generator)
        assert len(originals[name]) + len(children) == 8
