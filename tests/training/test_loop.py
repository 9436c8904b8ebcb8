"""The loop every trainer shares, driven by a toy trainer whose losses the test chooses: the
cadence of stats, grids, quality and checkpoints, the window means, a NaN stop, a clean stop."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from pathsynth.errors import ConfigError
from pathsynth.training.checkpoint import list_checkpoints
from pathsynth.training.loop import Cadence, Trainer, TrainingDiverged
from pathsynth.training.sampler import EpochSampler


@dataclass(frozen=True)
class _Run:
    device: str = "cpu"
    amp: str = "off"
    channels_last: bool = False
    log_every: int = 2
    checkpoint_every: int = 3


@dataclass(frozen=True)
class _Optim:
    batch_size: int = 4


@dataclass(frozen=True)
class _Config:
    run: _Run = field(default_factory=_Run)
    optim: _Optim = field(default_factory=_Optim)

    def to_dict(self) -> dict[str, Any]:
        return {}


class _Toy(Trainer):
    """Step ``k`` (1-based) returns the losses ``losses[k - 1]``; a 2-column grid of zeros;
    quality ``10 - step`` except where ``worse`` says otherwise."""

    loss_names = ("a", "b")

    def __init__(self, run_dir: Path, losses: list[tuple[float, float]], **cadence: Any) -> None:
        super().__init__(_Config(), run_dir, None, self._remember)
        self.lines: list[str] = []
        self.cadence = Cadence(2, 3, **cadence)
        self.sampler = EpochSampler(8, 4, 0)
        self.losses, self.step, self.total_steps = losses, 0, len(losses)
        self.stop_at: int | None = None

    def _remember(self, line: str) -> None:
        self.lines.append(line)

    def train_step(self) -> torch.Tensor:
        self.sampler.next_batch()
        self.step += 1
        if self.step == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return torch.tensor(self.losses[self.step - 1])

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "best_step": self.best_step}

    def window_fields(self, losses: dict[str, float]) -> tuple[dict[str, Any], str]:
        return dict(losses), f"a {losses['a']:.2f}"

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        return torch.zeros(4, 3, 2, 2, dtype=torch.uint8), 2

    def quality_signal(self) -> float:
        return 5.0 if self.step == 4 else 10.0 - self.step


def _stats(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_stats_lines_average_their_window_even_across_a_checkpoint(tmp_path: Path) -> None:
    losses = [(1.0, 0.0), (3.0, 0.0), (5.0, 2.0), (7.0, 2.0), (9.0, 4.0)]
    trainer = _Toy(tmp_path, losses)
    result = trainer.train()
    lines = [line for line in _stats(tmp_path) if "a" in line]
    # the log: a line per window, each but the last with the time the rest should take
    assert [line.split(" a ")[0] for line in trainer.lines[1:]] == [
        "step 2/5",
        "step 4/5",
        "step 5/5",
    ]
    assert all(" left" in line for line in trainer.lines[1:3]) and " left" not in trainer.lines[3]
    # windows: steps 1-2, 3-4 (a checkpoint at 3 inside it), 5 (the end)
    assert [(line["step"], line["a"], line["b"]) for line in lines] == [
        (2, 2.0, 0.0),
        (4, 6.0, 2.0),
        (5, 9.0, 4.0),
    ]
    assert result.status == "finished" and result.step == 5
    assert result.losses == {"a": 9.0, "b": 4.0}
    assert [p.name for p in list_checkpoints(tmp_path)] == ["last-step=00000005.pt"]
    assert not (tmp_path / "samples").exists()  # no grids for a trainer that draws none


def test_grids_and_quality_come_at_their_cadence_and_the_best_is_kept(tmp_path: Path) -> None:
    trainer = _Toy(tmp_path, [(1.0, 1.0)] * 6, sample_every=4, quality_every=2)
    result = trainer.train()
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["grid-step=00000004.png", "grid-step=00000006.png"]
    scores = [
        (line["step"], line["quality_kid"]) for line in _stats(tmp_path) if "quality_kid" in line
    ]
    assert scores == [(2, 8.0), (4, 5.0), (6, 4.0)]
    assert result.best_score == 4.0 and result.best_checkpoint is not None
    assert result.best_checkpoint.name == "best-step=00000006.pt"
    assert load_checkpoint_step(result.best_checkpoint) == 6


def load_checkpoint_step(path: Path) -> int:
    return int(torch.load(path, weights_only=False)["step"])


def test_a_nan_stops_before_the_checkpoint_that_would_keep_it(tmp_path: Path) -> None:
    losses = [(1.0, 1.0)] * 3 + [(float("nan"), 1.0)] + [(1.0, 1.0)] * 4
    with pytest.raises(TrainingDiverged) as error:
        _Toy(tmp_path, losses).train()
    message = str(error.value)
    assert "between steps 3 and 4" in message and "a nan" in message
    assert "last-step=00000003.pt" in message
    assert [p.name for p in list_checkpoints(tmp_path)] == ["last-step=00000003.pt"]


def test_a_stop_signal_ends_the_run_at_that_step_with_a_checkpoint(tmp_path: Path) -> None:
    trainer = _Toy(tmp_path, [(1.0, 1.0)] * 10)
    trainer.stop_at = 5
    result = trainer.train()
    assert (result.status, result.step) == ("interrupted", 5)
    assert result.last_checkpoint is not None
    assert load_checkpoint_step(result.last_checkpoint) == 5
    assert _stats(tmp_path)[-1]["step"] == 5
    assert trainer.lines[0].startswith("training 10 steps of 4 images from step 0 on cpu")


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path: Path) -> None:
    from pathsynth.training.distributed import DistContext

    with pytest.raises(
        ConfigError, match=r"optim\.batch_size 4 does not split evenly over 3 ranks"
    ):
        Trainer(_Config(), tmp_path, DistContext(rank=0, world_size=3), None)
