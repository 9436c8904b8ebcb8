"""Config resolution: presets over defaults, overrides over presets, refusals naming the key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pathsynth.config import parse_assignments
from pathsynth.errors import ConfigError
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.presets import GAN, PRESETS


def test_paper_preset_is_the_papers_training_setup() -> None:
    config = GAN.resolve("paper")
    assert config.model.noise_dim == 64
    assert config.optim.batch_size == 64
    assert config.optim.g_lr == config.optim.d_lr == 1e-3
    assert config.optim.weight_decay == 1e-6
    assert config.optim.epochs == 3000
    assert config.model.leaky_slope == 0.2
    assert config.loss.kind == "bce"
    assert config.data.resolution == 128


def test_wgan_gp_preset_uses_penalty_and_critic_steps() -> None:
    config = GAN.resolve("paper-wgan-gp")
    assert config.loss.kind == "wgan-gp"
    assert config.loss.gp_weight > 0
    assert config.optim.n_critic == 5


def test_every_preset_resolves() -> None:
    for name in PRESETS:
        assert GAN.resolve(name).preset == name


def test_overrides_convert_strings_to_the_keys_types() -> None:
    config = GAN.resolve(
        "paper", {"optim.g_lr": "2e-4", "optim.steps": "10", "model.spectral_norm": "true"}
    )
    assert config.optim.g_lr == 2e-4
    assert config.optim.steps == 10
    assert config.model.spectral_norm is True
    assert config.optim.d_lr == 1e-3  # untouched


def test_unknown_key_names_itself_and_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as error:
        GAN.resolve("paper", {"optim.learning_rate": "1"})
    message = str(error.value)
    assert "'optim.learning_rate'" in message
    assert "(did you mean optim.g_lr?)" in message  # the closest key
    assert "valid keys: optim.batch_size, optim.g_lr" in message  # the keys of its group


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match="paper-wgan-gp"):
        GAN.resolve("papr")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("loss.kind", "lsgan", "loss.kind"),
        ("optim.steps", "ten", "optim.steps"),
        ("augment.policy", "color,blur", "blur"),
        ("optim.batch_size", "0", "batch_size"),
        ("optim.steps", "-5", "optim.steps"),
        ("optim.g_lr", "nan", "optim.g_lr"),
        ("optim.d_lr", "-1e-3", "optim.d_lr"),
        ("data.preprocess.mode", "zoom", "mode"),
        (
            "run.compile_mode",
            "fast",
            "run.compile_mode .fast. is not one of default, reduce-overhead",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        GAN.resolve("paper", {key: value})


def test_assignments_need_an_equals_sign() -> None:
    assert parse_assignments(["optim.g_lr=1e-4"]) == {"optim.g_lr": "1e-4"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["optim.g_lr"])


def test_config_round_trips_through_json() -> None:
    config = GAN.resolve("modern", {"optim.steps": 7})
    again = GAN.read(json.loads(config.to_json()))
    assert again == config


def test_valid_keys_cover_every_group() -> None:
    groups = {key.split(".")[0] for key in GAN.valid_keys()}
    assert groups == {"data", "model", "loss", "optim", "augment", "ema", "run"}


def test_overrides_leave_the_original_unchanged() -> None:
    base = TrainConfig()
    GAN.override(base, {"optim.g_lr": 0.5})
    assert base.optim.g_lr == 1e-3


def test_configs_are_frozen() -> None:
    config = GAN.resolve("paper")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.optim.g_lr = 0.5  # type: ignore[misc]


def test_a_config_in_a_format_no_release_wrote_is_refused_naming_the_key() -> None:
    """Development builds before the preprocessing group wrote ``data.resolution``; no release
    did, so the reader has no translation for it and refuses the key in one line."""
    old = GAN.resolve("smoke").to_dict()
    old["data"] = {"resolution": 32, "fit": "stretch", "fill": "black"}
    with pytest.raises(ConfigError, match=r"data\.resolution"):
        GAN.read(old)
