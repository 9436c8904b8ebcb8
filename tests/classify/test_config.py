"""Classifier presets resolve, and bad options are refused with a ConfigError."""

import dataclasses

import pytest

from pathsynth.classify.config import CLASSIFIER, NETWORKS, PRESETS
from pathsynth.errors import ConfigError


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_resolves_to_a_valid_config(preset: str) -> None:
    config = CLASSIFIER.resolve(preset)

    for field, value in PRESETS[preset].items():
        assert getattr(config, field) == value
    assert dataclasses.asdict(config)["network"] in NETWORKS


def test_overrides_replace_preset_values() -> None:
    config = CLASSIFIER.resolve("smoke", {"network": "resnet18", "seed": 7})

    assert (config.network, config.seed, config.epochs) == (
        "resnet18",
        7,
        PRESETS["smoke"]["epochs"],
    )


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("fast", {}, "unknown classifier preset"),
        (
            "quick",
            {"learning_rat": 0.1},
            r"unknown classifier setting 'learning_rat' \(did you mean learning_rate\?\); valid keys: kind, backbone, backbone_weights, backbone_input_size, network",
        ),
        ("quick", {"network": "vgg"}, "network must be one of"),
        ("quick", {"min_epochs": 30}, r"min_epochs must be in \[0, epochs\], got 30"),
        ("quick", {"monitor": "accuracy"}, "monitor must be one of"),
        ("quick", {"validation_fraction": 1.0}, "validation_fraction"),
        ("quick", {"patience": 0}, "patience must be at least 1"),
    ],
)
def test_bad_options_are_refused(preset: str, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CLASSIFIER.resolve(preset, overrides)
