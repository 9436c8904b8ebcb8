"""Pretraining presets resolve, and a setting no run can use is refused with one line."""

import pytest

from pathsynth.errors import ConfigError
from pathsynth.pretrain.config import PRESETS, PRETRAIN


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_resolves_and_survives_its_saved_json(preset: str) -> None:
    config = PRETRAIN.resolve(preset)

    assert config.preset == preset
    assert PRETRAIN.read(config.to_dict()) == config


def test_quick_is_a_cpu_budget_and_gpu_a_larger_one() -> None:
    quick, gpu = PRETRAIN.resolve("quick"), PRETRAIN.resolve("gpu")

    assert quick.model.backbone == gpu.model.backbone == "resnet18"
    assert quick.optim.steps * quick.optim.batch_size < gpu.optim.steps * gpu.optim.batch_size
    assert gpu.run.amp == "bf16" and gpu.data.view_size > quick.data.view_size


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("loss.temperature", "0", "loss.temperature"),
        ("data.min_scale", "1.5", "data.min_scale"),
        ("optim.batch_size", "1", "optim.batch_size"),
        ("run.amp", "fp8", "run.amp"),
        ("optim.nonsense", "1", "optim.nonsense"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        PRETRAIN.resolve("smoke", {key: value})

    assert named in str(error.value) and "\n" not in str(error.value)
