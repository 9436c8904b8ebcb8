"""The generator stage's record of what training cost, across an interruption and its resume."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.experiment import synthesis
from pathsynth.experiment.protocols import ExperimentSets, LabelledPart
from pathsynth.experiment.state import StageRecord
from pathsynth.generators import TrainedRun
from pathsynth.imaging.tensorset import TensorImageSet

SECONDS_PER_CALL = 0.2


class _StoppedOnce:
    """A generator whose first training call is stopped by SIGTERM and whose second finishes;
    each call takes :data:`SECONDS_PER_CALL` of wall time."""

    kind = "gan"

    def __init__(self, runs: Path) -> None:
        self.run_dir = runs / "00000-gan"
        self.resumed_from: list[Path | None] = []

    def train(self, images: Any, runs: Path, name: str, source: str, resume_dir=None, log=None,
              on_open=None) -> TrainedRun:  # fmt: skip
        self.run_dir.mkdir(parents=True, exist_ok=True)
        on_open(self.run_dir)
        self.resumed_from.append(resume_dir)
        time.sleep(SECONDS_PER_CALL)
        status = "interrupted" if len(self.resumed_from) == 1 else "finished"
        return TrainedRun(self.run_dir, status, 3 * len(self.resumed_from))


def _part(n: int) -> LabelledPart:
    images = TensorImageSet(torch.zeros(n, 3, 8, 8, dtype=torch.uint8), torch.zeros(n), ["a"])
    ids = torch.arange(n)
    return LabelledPart(images, ids, ids, ids)


def test_training_time_counts_the_interrupted_call_and_its_resume(tmp_path, monkeypatch):
    generator = _StoppedOnce(tmp_path)
    monkeypatch.setattr(synthesis, "experiment_generator", lambda *args: generator)
    sets = ExperimentSets(_part(4), _part(2))
    sets.affine_train = _part(6)
    context = SimpleNamespace(
        config=SimpleNamespace(trains_on=lambda origin: True, generator_kinds=("gan",)),
        sets=lambda: sets, record=StageRecord(), workspace=SimpleNamespace(runs=tmp_path),
        name="costs", device=torch.device("cpu"), log=lambda line: None, checkpoint=lambda: None,
    )  # fmt: skip
    with pytest.raises(DataError, match="interrupted at step 3; rerun to resume"):
        synthesis.train_generator(context)
    stopped = context.record.outputs["runs"]["gan"]
    assert stopped["train_seconds"] >= SECONDS_PER_CALL
    outputs = synthesis.train_generator(context)  # the rerun continues the same run
    assert generator.resumed_from == [None, generator.run_dir]
    assert outputs["steps"] == 6 and outputs["training_images"] == 10
    assert outputs["train_seconds"] >= 2 * SECONDS_PER_CALL
    assert outputs["train_seconds"] < 2 * SECONDS_PER_CALL + 5  # the two calls, nothing else
    assert outputs["train_device"].startswith("cpu, ")
