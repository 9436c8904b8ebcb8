"""Checkpoint files: atomic, named by kind and step, refused clearly when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pathsynth import files
from pathsynth.errors import CheckpointError
from pathsynth.training import checkpoint as ckpt


def _state(step: int) -> dict:
    return {
        "format": ckpt.CHECKPOINT_FORMAT,
        "step": step,
        "generator": {"w": torch.ones(2)},
        "generator_ema": {},
        "class_names": ["a", "b"],
        "config": {},
    }


def test_saving_keeps_one_file_per_kind_named_by_step(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, "last", _state(10))
    ckpt.save_checkpoint(tmp_path, "best", _state(10))
    ckpt.save_checkpoint(tmp_path, "last", _state(20))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best-step=00000010.pt", "last-step=00000020.pt"]
    assert ckpt.load_checkpoint(ckpt.find_checkpoint(tmp_path, "last"))["step"] == 20
    assert ckpt.find_checkpoint(tmp_path, "10").name == "best-step=00000010.pt"


def test_failed_write_leaves_the_previous_checkpoint_and_no_temp_file(
    tmp_path: Path, monkeypatch
) -> None:
    ckpt.save_checkpoint(tmp_path, "last", _state(1))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)  # the one atomic writer
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, "last", _state(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last-step=00000001.pt"]
    assert ckpt.load_checkpoint(tmp_path / "last-step=00000001.pt")["step"] == 1


def test_missing_run_or_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.find_checkpoint(tmp_path / "no-run")
    with pytest.raises(CheckpointError, match="no last checkpoint"):
        ckpt.find_checkpoint(tmp_path, "last")
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "last-step=00000001.pt")
    with pytest.raises(CheckpointError, match="best, last or a step"):
        ckpt.find_checkpoint(tmp_path, "newest")


def test_corrupt_or_foreign_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "last-step=00000001.pt"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(broken)
    foreign = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a pathsynth GAN checkpoint"):
        ckpt.load_checkpoint(foreign)
    truncated = tmp_path / "last-step=00000002.pt"
    torch.save(_state(2), truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(truncated)
