"""A pretraining run: exact resume after SIGTERM or a crash, and its backbone file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from helpers import run_pathsynth
from safetensors.torch import load_file

from pathsynth.backbones.load import load_backbone, state_sha256
from pathsynth.errors import CheckpointError
from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.run import BACKBONE_NAME, train_pretrain_run
from pathsynth.pretrain.trainer import load_pretrain_checkpoint
from pathsynth.training.checkpoint import list_checkpoints
from pathsynth.training.runs import resumed_run_config

CONFIG = PRETRAIN.resolve("smoke", {"run.device": "cpu"})


@pytest.fixture(scope="module")
def pool() -> torch.Tensor:
    return torch.randint(0, 256, (12, 3, 48, 48), generator=torch.Generator().manual_seed(5),
                         dtype=torch.uint8)  # fmt: skip


@pytest.fixture(scope="module")
def straight(pool: torch.Tensor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke run trained from start to end in one go; its folder."""
    runs = tmp_path_factory.mktemp("straight")
    outcome = train_pretrain_run(CONFIG, pool, runs, "straight", "test pool", data={"k": "v"})
    assert outcome is not None and outcome.result.status == "finished"
    return outcome.result.run_dir


def _stats_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_sigterm_checkpoints_and_the_resumed_run_ends_with_the_same_weights(
    pool: torch.Tensor, straight: Path, tmp_path: Path
) -> None:
    def terminate_at_step_2(line: str) -> None:
        if line.startswith("step 2/"):
            os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before it kills

    first = train_pretrain_run(CONFIG, pool, tmp_path, "cut", "test pool", log=terminate_at_step_2)
    assert first is not None and first.result.status == "interrupted"
    assert first.backbone_file is None and not (first.result.run_dir / BACKBONE_NAME).exists()
    stopped = first.result.step
    assert 2 < stopped < CONFIG.optim.steps
    assert [p.name for p in list_checkpoints(first.result.run_dir)] == [
        f"last-step={stopped:08d}.pt"
    ]

    run_dir = first.result.run_dir
    resumed = train_pretrain_run(
        resumed_run_config(run_dir, {}, load_pretrain_checkpoint, PRETRAIN),
        pool,
        tmp_path,
        "unused",
        "test pool",
        resume_dir=run_dir,
    )

    assert resumed is not None and resumed.result.step == CONFIG.optim.steps
    expected = load_file(str(straight / BACKBONE_NAME))
    got = load_file(str(run_dir / BACKBONE_NAME))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert _stats_steps(run_dir) == _stats_steps(straight)


def test_a_run_killed_after_a_checkpoint_redoes_the_lost_steps_exactly(
    pool: torch.Tensor, straight: Path, tmp_path: Path
) -> None:
    class Killed(Exception):
        pass

    def crash_at_step_5(line: str) -> None:  # after the step-3 checkpoint and two stats lines
        if line.startswith("step 5/"):
            raise Killed

    with pytest.raises(Killed):
        train_pretrain_run(CONFIG, pool, tmp_path, "killed", "test pool", log=crash_at_step_5)
    (run_dir,) = tmp_path.glob("*-killed")
    assert [p.name for p in list_checkpoints(run_dir)] == ["last-step=00000003.pt"]

    train_pretrain_run(CONFIG, pool, tmp_path, "unused", "test pool", resume_dir=run_dir)

    expected = load_file(str(straight / BACKBONE_NAME))
    got = load_file(str(run_dir / BACKBONE_NAME))
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert _stats_steps(run_dir) == _stats_steps(straight)  # each step's line once


def test_the_backbone_file_loads_as_backbone_weights_with_the_trained_tensors(
    straight: Path,
) -> None:
    state = load_pretrain_checkpoint(list_checkpoints(straight, "last")[-1])
    trained = {
        key.removeprefix("backbone."): value
        for key, value in state["network"].items()
        if key.startswith("backbone.")
    }

    loaded = load_backbone("resnet18", straight / BACKBONE_NAME, input_size=32)

    assert loaded.weights == str(straight / BACKBONE_NAME)
    reference = load_backbone("resnet18", input_size=32)
    reference.model.load_state_dict(trained)
    assert loaded.weights_sha256 == state_sha256(reference.model)
    assert loaded.weights_sha256 != load_backbone("resnet18", input_size=32).weights_sha256


def test_a_gan_checkpoint_is_not_taken_for_a_pretraining_one(tmp_path: Path) -> None:
    torch.save({"format": 1, "step": 3, "generator": {}}, tmp_path / "last-step=00000003.pt")

    with pytest.raises(CheckpointError, match="not a pathsynth pretraining checkpoint"):
        resumed_run_config(tmp_path, {}, load_pretrain_checkpoint, PRETRAIN)


def test_a_pretraining_run_says_its_kind_and_generate_refuses_it_in_one_line(
    straight: Path, tmp_path: Path
) -> None:
    identity = json.loads((straight / "run.json").read_text())
    assert identity["kind"] == "pretrain" and identity["data"] == {"k": "v"}
    out = tmp_path / "out"
    done = run_pathsynth("generate", str(straight), "--per-class", "1", "--out", str(out))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: unknown generator 'pretrain'; known: gan, diffusion"
    assert not out.exists()
