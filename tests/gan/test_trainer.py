"""The training loop: exact resume, run-folder outputs, divergence stop, mismatches refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.gan import trainer as trainer_module
from pathsynth.gan.presets import GAN
from pathsynth.gan.trainer import GanTrainer
from pathsynth.imaging.folders import folder_files, load_image_set
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.checkpoint import find_checkpoint, load_checkpoint
from pathsynth.training.loop import TrainingDiverged
from pathsynth.training.runs import new_run_dir

from .conftest import EXACT, smoke_config

SQUARE_32 = PreprocessConfig(mode="fit", size=32)  # what the GAN's default inputs are, at 32 px

EVERYTHING_ON = {
    "augment__policy": "color,translation,cutout",
    "augment__adaptive": True,
    "augment__p": 0.5,
    "augment__interval": 1,
    "loss__lecam_weight": 0.01,
    "loss__r1_gamma": 1.0,
    "loss__r1_interval": 2,
    "model__spectral_norm": True,
    "model__d_minibatch_std_group": 4,
    "ema__start_step": 1,
}


FASTGAN = {"model__arch": "fastgan", "loss__reconstruction_weight": 1.0}
# the classifier's colour augmentation on real images, every operation on (RandStainNA included)
COLOUR_ON = {
    f"augment__colour__{op}_p": 0.5
    for op in ("randstain", "hed", "hue", "saturation", "brightness", "contrast", "gamma")
}
FASTGAN_EVERYTHING_ON = {
    **EVERYTHING_ON,
    **FASTGAN,
    **COLOUR_ON,
    "loss__kind": "hinge",
    "model__d_minibatch_std_group": 0,
}


@pytest.fixture(scope="module")
def data(class_folders: Path) -> TensorImageSet:
    return load_image_set(folder_files(class_folders), SQUARE_32)


@pytest.fixture(scope="module")
def data48(class_folders: Path) -> TensorImageSet:
    return load_image_set(folder_files(class_folders), PreprocessConfig(mode="fit", size=48))


def _weights(state: dict) -> dict[str, torch.Tensor]:
    return {
        f"{net}.{name}": value
        for net in ("generator", "discriminator", "generator_ema")
        for name, value in state[net].items()
    }


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(EVERYTHING_ON, id="bce-diffaug-ada-lecam-r1-sn"),
        pytest.param({"loss__kind": "wgan-gp", "optim__n_critic": 2}, id="wgan-gp"),
        pytest.param({"data__crop": 32, "data__preprocess__size": 48}, id="random-crops"),
        pytest.param(
            FASTGAN_EVERYTHING_ON, id="fastgan-reconstruction-colour-diffaug-ada-lecam-r1"
        ),
        pytest.param(
            {**FASTGAN, "data__crop": 32, "data__preprocess__size": 48}, id="fastgan-random-crops"
        ),
    ],
)
def test_n_steps_straight_equal_half_then_resume_then_half(
    data, data48, tmp_path: Path, overrides
) -> None:
    config = smoke_config(optim__steps=6, run__checkpoint_every=0, **overrides)
    if config.data.crop:  # random 32 px crops of 48 px inputs
        data = data48
    straight = GanTrainer(config, data, tmp_path / "straight")
    (tmp_path / "straight").mkdir()
    straight.train()

    half = GAN.override(config, {"optim.steps": 3})
    (tmp_path / "halves").mkdir()
    GanTrainer(half, data, tmp_path / "halves").train()
    state = load_checkpoint(find_checkpoint(tmp_path / "halves", "last"))
    assert state["step"] == 3
    resumed = GanTrainer(config, data, tmp_path / "halves", resume=state)
    resumed.train()

    expected, got = _weights(straight.state_dict()), _weights(resumed.state_dict())
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert straight.ada.p == resumed.ada.p
    assert straight.sampler.state_dict() == resumed.sampler.state_dict()
    assert torch.equal(
        straight.opt_d.state_dict()["state"][0]["exp_avg"],
        resumed.opt_d.state_dict()["state"][0]["exp_avg"],
    )


def test_run_folder_holds_stats_grids_and_last_and_best_checkpoints(data, tmp_path: Path) -> None:
    config = smoke_config(run__sample_every=2, run__quality_every=2, run__checkpoint_every=2)
    result = GanTrainer(config, data, tmp_path).train()
    assert result.status == "finished" and result.step == 4
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "last-step=00000004.pt" in names
    assert any(name.startswith("best-step=") for name in names)
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["grid-step=00000002.png", "grid-step=00000004.png"]
    with Image.open(tmp_path / "samples" / grids[-1]) as grid:
        # one row per class (3), samples_per_class (2) columns of 32x32
        assert grid.size == (2 * 32, 3 * 32)
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss_d" in line] == [1, 2, 3, 4]
    assert all(np.isfinite(line["quality_kid"]) for line in lines if "quality_kid" in line)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    data, tmp_path: Path, monkeypatch
) -> None:
    real_loss = trainer_module.generator_loss
    calls = {"n": 0}

    def poisoned(kind: str, logits: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = real_loss(kind, logits)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(trainer_module, "generator_loss", poisoned)
    config = smoke_config(optim__steps=6, run__checkpoint_every=2)
    with pytest.raises(TrainingDiverged) as error:
        GanTrainer(config, data, tmp_path).train()
    assert "NaN or infinite" in str(error.value)
    assert "last-step=00000002.pt" in str(error.value)
    assert [p.name for p in tmp_path.glob("*.pt")] == ["last-step=00000002.pt"]
    state = load_checkpoint(tmp_path / "last-step=00000002.pt")
    assert all(
        torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point()
    )


def test_resume_with_a_different_class_set_is_refused(data, tmp_path: Path) -> None:
    config = smoke_config(optim__steps=1)
    GanTrainer(config, data, tmp_path).train()
    state = load_checkpoint(find_checkpoint(tmp_path, "last"))
    other = TensorImageSet(data.images, data.labels, ["alpha", "beta", "delta"])
    with pytest.raises(CheckpointError, match="differ from the data's classes"):
        GanTrainer(config, other, tmp_path, resume=state)
    wider = GAN.override(config, {"model.g_channel_base": 512, "model.g_channel_max": 64})
    with pytest.raises(CheckpointError, match="do not match"):
        GanTrainer(wider, data, tmp_path, resume=state)


def test_with_a_crop_the_networks_work_at_the_crop_size(data48, tmp_path: Path) -> None:
    config = smoke_config(
        data__preprocess__size=48, data__crop=32, optim__steps=2, run__sample_every=2
    )
    trainer = GanTrainer(config, data48, tmp_path)
    trainer.train()
    assert trainer.G.resolution == 32
    with Image.open(tmp_path / "samples" / "grid-step=00000002.png") as grid:
        assert grid.size == (2 * 32, 3 * 32)
    with pytest.raises(ConfigError, match=r"data.crop must be 0 or in \[8, preprocess.size=32\]"):
        smoke_config(data__crop=48)


def test_data_of_another_size_is_refused(data, tmp_path: Path) -> None:
    config = smoke_config(data__preprocess__size=64)
    with pytest.raises(ConfigError, match="32px"):
        GanTrainer(config, data, tmp_path)


def test_batch_that_would_mix_real_and_fake_in_a_minibatch_std_group_is_refused(
    data, tmp_path: Path
) -> None:
    config = smoke_config(model__d_minibatch_std_group=3)
    with pytest.raises(ConfigError, match=r"not a multiple of model\.d_minibatch_std_group 3"):
        GanTrainer(config, data, tmp_path)


def test_run_folders_are_numbered(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "paper")
    second = new_run_dir(tmp_path, "modern")
    assert (first.name, second.name) == ("00000-paper", "00001-modern")


def test_runs_started_together_get_distinct_numbers(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: new_run_dir(tmp_path, f"run{i}"), range(16)))
    assert sorted(p.name[:5] for p in made) == [f"{i:05d}" for i in range(16)]
    assert not list(tmp_path.glob(".*.lock"))


@pytest.mark.slow
def test_a_compiled_run_trains_as_the_eager_one_does(data, tmp_path: Path) -> None:
    """``run.compile`` (here in the CUDA-graph mode, which on the CPU compiles alone) changes
    how the step runs, not what it computes: weights agree to float rounding after 3 steps."""
    config = smoke_config(optim__steps=3, run__checkpoint_every=0, **EXACT)
    eager = GanTrainer(config, data, tmp_path)  # each trainer seeds the global RNG it draws from
    for _ in range(3):
        eager.train_step()
    fast = GanTrainer(
        GAN.override(config, {"run.compile": True, "run.compile_mode": "reduce-overhead"}),
        data,
        tmp_path,
    )
    for _ in range(3):
        fast.train_step()
    expected, got = _weights(eager.state_dict()), _weights(fast.state_dict())
    assert expected.keys() == got.keys()
    moved = _weights(GanTrainer(config, data, tmp_path).state_dict())
    for name in expected:
        assert torch.allclose(expected[name].float(), got[name].float(), atol=1e-4), name
    assert any(not torch.equal(moved[name], expected[name]) for name in expected)
