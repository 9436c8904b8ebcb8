"""Training: finite loss that moves the weights, exact resume, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

from pathsynth.diffusion.config import DIFFUSION
from pathsynth.diffusion.run import load_diffusion_checkpoint, train_run
from pathsynth.diffusion.trainer import dihedral
from pathsynth.training.checkpoint import find_checkpoint, load_checkpoint
from pathsynth.training.runs import resumed_run_config

from .conftest import smoke_config, tiny_set


def _tensors_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_steps_give_finite_loss_and_move_the_network_and_its_average(
    tmp_path: Path,
) -> None:
    config = smoke_config(**{"optim.steps": 3})
    result = train_run(config, tiny_set(), tmp_path, "fit", "test set")
    assert result is not None and result.status == "finished" and result.step == 3
    state = load_checkpoint(find_checkpoint(result.run_dir, "last"))
    stats = [line for line in (result.run_dir / "stats.jsonl").read_text().splitlines() if line]
    assert len(stats) == 3 and all('"loss": ' in line and "NaN" not in line for line in stats)
    torch.manual_seed(config.run.seed)
    from pathsynth.diffusion.networks import build_unet

    initial = build_unet(config.model, 32, 3).state_dict()
    moved = sum(float((state["generator"][k] - v).abs().sum()) for k, v in initial.items())
    ema_moved = sum(float((state["generator_ema"][k] - v).abs().sum()) for k, v in initial.items())
    assert moved > 0 and ema_moved > 0
    assert state["kind"] == "diffusion" and state["class_names"] == ["alpha", "beta", "gamma"]
    assert (result.run_dir / "run.json").read_text().count('"kind": "diffusion"') == 1


def test_killed_and_resumed_run_matches_a_straight_run_exactly(tmp_path: Path) -> None:
    data = tiny_set()
    straight = train_run(smoke_config(**{"optim.steps": 4}), data, tmp_path, "straight", "t")
    assert straight is not None
    half = train_run(smoke_config(**{"optim.steps": 2}), data, tmp_path, "resumed", "t")
    assert half is not None and half.step == 2
    config = resumed_run_config(
        half.run_dir, {"optim.steps": 4}, load_diffusion_checkpoint, DIFFUSION
    )
    resumed = train_run(config, data, tmp_path, "ignored", "t", resume_dir=half.run_dir)
    assert resumed is not None and resumed.step == 4
    a = load_checkpoint(find_checkpoint(straight.run_dir, "last"))
    b = load_checkpoint(find_checkpoint(half.run_dir, "last"))
    _tensors_equal(a["generator"], b["generator"])
    _tensors_equal(a["generator_ema"], b["generator_ema"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["sampler"] == b["sampler"]
    steps = [line for line in (half.run_dir / "stats.jsonl").read_text().splitlines() if line]
    assert len(steps) == 4  # each step logged once


def test_sigterm_stops_at_the_next_step_with_a_checkpoint(tmp_path: Path) -> None:
    def log(line: str) -> None:
        if line.startswith("step 1/"):
            os.kill(os.getpid(), signal.SIGTERM)

    result = train_run(
        smoke_config(**{"optim.steps": 50}), tiny_set(), tmp_path, "stop", "t", log=log
    )
    # the signal lands while step 1 is logged, after step 1's check: step 2 sees it
    assert result is not None and result.status == "interrupted" and result.step == 2
    assert result.last_checkpoint is not None and result.last_checkpoint.name == (
        "last-step=00000002.pt"
    )


def test_dihedral_turns_and_mirrors_each_image_alone() -> None:
    images = torch.arange(2 * 3 * 4 * 4).view(2, 3, 4, 4)
    out = dihedral(images, torch.tensor([1, 0]), torch.tensor([False, True]))
    assert torch.equal(out[0], torch.rot90(images[0], 1, dims=(1, 2)))
    assert torch.equal(out[1], images[1].flip(2))
