"""Checkpoints: atomic writes, names that say what they hold, clear refusals when they are unusable.

A run folder holds at most one ``last-step=NNNNNNNN.pt`` (the full trainer state for resuming) and
one ``best-step=NNNNNNNN.pt`` (the same state at the best quality signal so far). Each is written
to a temporary file in the same folder and moved into place with ``os.replace``, so a killed
process leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.files import atomic_path
from pathsynth.weights import load_torch_file

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^(last|best)-step=(\d+)\.pt$")
REQUIRED_KEYS = ("format", "step", "generator", "generator_ema", "class_names", "config")

ConfigT = TypeVar("ConfigT")


def checkpoint_name(kind: str, step: int) -> str:
    """File name of a ``kind`` ("last" or "best") checkpoint at ``step``."""
    return f"{kind}-step={step:08d}.pt"


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint file named by :func:`checkpoint_name`.

    Raises:
        CheckpointError: a file name that is not a checkpoint's.
    """
    match = _NAME.match(path.name)
    if match is None:
        raise CheckpointError(f"{path.name} is not a checkpoint file name")
    return int(match.group(2))


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` with ``torch.save`` to ``path`` atomically (tmp file + fsync + replace)."""
    with atomic_path(path, durable=True) as tmp:
        torch.save(state, tmp)


def save_checkpoint(run_dir: Path, kind: str, state: dict[str, Any]) -> Path:
    """Write ``state`` as the run's ``kind`` checkpoint and remove older ones of that kind.

    Args:
        run_dir: the run folder.
        kind: ``"last"`` or ``"best"``.
        state: the trainer state; must hold ``step``.

    Returns:
        The path written.
    """
    path = run_dir / checkpoint_name(kind, int(state["step"]))
    save_atomic(state, path)
    for old in list_checkpoints(run_dir, kind):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path, kind: str | None = None) -> list[Path]:
    """The run's checkpoint files (of ``kind`` if given), oldest step first."""
    found = []
    for path in run_dir.glob("*-step=*.pt"):
        match = _NAME.match(path.name)
        if match and (kind is None or match.group(1) == kind):
            found.append((int(match.group(2)), path))
    return [path for _, path in sorted(found)]


def find_checkpoint(run_dir: Path, which: str = "last") -> Path:
    """The checkpoint file a user names: ``best``, ``last`` or a step number.

    Raises:
        CheckpointError: no run folder, or no checkpoint of that name in it.
    """
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist")
    if which in ("last", "best"):
        found = list_checkpoints(run_dir, which)
        if not found and which == "best":
            found = list_checkpoints(run_dir, "last")
        if not found:
            raise CheckpointError(f"no {which} checkpoint in {run_dir}")
        return found[-1]
    if not which.isdigit():
        raise CheckpointError(f"checkpoint {which!r} is not best, last or a step number")
    step = int(which)
    for path in list_checkpoints(run_dir):
        if checkpoint_step(path) == step:
            return path
    steps = sorted({checkpoint_step(p) for p in list_checkpoints(run_dir)})
    raise CheckpointError(f"no checkpoint at step {step} in {run_dir}; steps kept: {steps}")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is missing, unreadable, not a pathsynth GAN checkpoint or of
            another format version.
    """
    state = load_torch_file(path, "checkpoint", map_location)
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} is not a pathsynth GAN checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format']}, this version reads {CHECKPOINT_FORMAT}"
        )
    return state


def restore_states(state: dict[str, Any], class_names: list[str], parts: dict[str, Any]) -> None:
    """Load a resumed checkpoint's ``parts`` (key -> module, optimiser or schedule) in place.

    Raises:
        CheckpointError: the checkpoint's classes differ from the data's, or a part is missing or
            does not fit (the first line of torch's reason).
    """
    if list(state["class_names"]) != class_names:
        raise CheckpointError(
            f"checkpoint classes {list(state['class_names'])} differ from the data's "
            f"classes {class_names}"
        )
    try:
        for key, part in parts.items():
            part.load_state_dict(state[key])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint networks do not match this config ({str(error).splitlines()[0]})"
        ) from None


def load_run_checkpoint(
    run_dir: Path,
    which: str,
    read_config: Callable[[dict[str, Any]], ConfigT],
    kind: str | None = None,
) -> tuple[Path, dict[str, Any], ConfigT]:
    """A run's checkpoint ``which`` (see :func:`find_checkpoint`), its state and its config read
    by ``read_config`` (the run kind's ``Presets.read``).

    Args:
        kind: the ``kind`` the checkpoint must record (``None``: not checked; GAN checkpoints
            record none).

    Raises:
        CheckpointError: no such run or checkpoint, a corrupt one, one of another kind, or a
            config this version cannot read.
    """
    path = find_checkpoint(run_dir, which)
    state = load_checkpoint(path)
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} is not a {kind} run's")
    try:
        config = read_config(state["config"])
    except ConfigError as error:
        raise CheckpointError(
            f"checkpoint {path} holds a config this version cannot read: {error}"
        ) from None
    return path, state, config
