"""Diffusion presets resolve, and values no run can use are refused with a clear message."""

from __future__ import annotations

import pytest

from pathsynth.diffusion.config import DIFFUSION, PRESETS
from pathsynth.errors import ConfigError


def test_presets_give_the_documented_sizes_and_round_trip_through_plain_data() -> None:
    sizes = {"smoke": 32, "quick": 64, "gpu": 128}
    assert set(PRESETS) == set(sizes)
    for name, side in sizes.items():
        config = DIFFUSION.resolve(name)
        assert config.data.resolution == side and config.preset == name
        assert config.schedule.prediction == "v_prediction"
        assert config.run.quality_every == 0
        assert DIFFUSION.read(config.to_dict()) == config


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown diffusion setting 'model.depth'.*model\.channels"
    ):
        DIFFUSION.resolve("smoke", {"model.depth": 3})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("sampling.sampler", "euler", "sampling.sampler 'euler' is not one of ddim, dpm\\+\\+"),
        ("guidance.label_dropout", "1.0", "guidance.label_dropout must be in"),
        ("model.norm_groups", "5", "model.norm_groups 5 does not divide"),
        ("data.preprocess.size", "33", "multiple of 2 and at least 8 px, got 33"),
        ("run.quality_every", "10", "run.quality_every must be 0 for diffusion runs"),
    ],
)
def test_values_no_run_can_use_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DIFFUSION.resolve("smoke", {key: value})


def test_keys_of_one_group_change_together_and_a_bad_combination_is_still_refused() -> None:
    # 36 channels do not split into quick's 8 groups, nor its 16 into 12: neither key can be
    # applied first on its own, together they make a UNet
    both = {"model.channels": "36,72,72,72", "model.norm_groups": "12"}
    config = DIFFUSION.resolve("quick", both)
    assert config.model.channels == (36, 72, 72, 72) and config.model.norm_groups == 12
    with pytest.raises(ConfigError, match=r"model\.norm_groups 8 does not divide model\.channels"):
        DIFFUSION.resolve("quick", {"model.channels": "36,72,72,72"})
    with pytest.raises(ConfigError, match=r"model\.norm_groups 12 does not divide model\.channels"):
        DIFFUSION.resolve("quick", {"model.norm_groups": "12"})
    with pytest.raises(ConfigError, match=r"model\.norm_groups 24 does not divide"):
        DIFFUSION.resolve("quick", {**both, "model.norm_groups": "24"})


def test_a_whole_group_and_keys_inside_it_apply_the_keys_on_top_in_any_order() -> None:
    for overrides in (
        {"sampling": {"steps": 3, "guidance": 3.0}, "sampling.guidance": "1.5"},
        {"sampling.guidance": "1.5", "sampling": {"steps": 3, "guidance": 3.0}},
    ):
        sampling = DIFFUSION.resolve("smoke", overrides).sampling
        assert (sampling.steps, sampling.guidance) == (3, 1.5)
