"""The run folder every trainer shares (GAN, diffusion, pretraining), and the run around a loop.

As in stylegan2-ada-pytorch (``train.py`` -> ``training_loop.py``), a run owns everything around
the loop and the trainer only the loop:

- the numbered run folder ``runs/NNNNN-name`` (claimed safely when runs start at once) and its
  identity ``run.json``: a unique id made at creation (catalog provenance keys on it, never on
  the folder's name), the run's ``kind``, where the training images came from, when and by which
  version;
- the resolved ``config.json``, written atomically;
- resume from the folder's last checkpoint (config, networks, optimisers, RNG and data order);
- the torchrun hand-off (:func:`run_training`): join the process group when launched by torchrun,
  rank 0 makes the folder and tells the others, everyone leaves the group at the end.

Nothing here touches the catalog: training runs on machines without any SQL package.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pathsynth import __version__
from pathsynth.config import Presets
from pathsynth.devices import resolve_device
from pathsynth.errors import CheckpointError, DataError
from pathsynth.files import write_text_atomic
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.training.checkpoint import (
    checkpoint_name,
    checkpoint_step,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from pathsynth.training.distributed import DistContext, init_distributed, shutdown_distributed

CONFIG_NAME = "config.json"
IDENTITY_NAME = "run.json"
C = TypeVar("C")
STATS_NAME = "stats.jsonl"


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is, independent of where its folder lies or what it is called.

    Args:
        run_id: unique id made when the folder was created (32 hex digits).
        name: the folder's name (``NNNNN-name``), for people.
        source: where the training images came from (a folder, a split, an experiment).
    """

    run_id: str
    name: str
    source: str


def new_run_dir(runs_root: Path, name: str) -> Path:
    """Create the next numbered run folder ``runs_root/NNNNN-name``.

    Safe when several runs start at once: a number is claimed with an exclusive lock file, and
    taken only if no folder holds it once the lock is held.
    """
    runs_root.mkdir(parents=True, exist_ok=True)

    def taken() -> set[int]:
        return {int(p.name[:5]) for p in runs_root.iterdir() if p.is_dir() and p.name[:5].isdigit()}

    number = max(taken(), default=-1) + 1
    while True:
        lock = runs_root / f".{number:05d}.lock"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            number += 1
            continue
        try:
            if number not in taken():
                path = runs_root / f"{number:05d}-{name}"
                path.mkdir()
                return path
        finally:
            lock.unlink()
        number += 1


def recorded_data(run_dir: Path) -> dict[str, str]:
    """Where a run's training images came from, as the command that started it recorded it:
    ``{"folder": ...}`` or ``{"workspace": ..., "split": ..., "fold": ...}``.

    Raises:
        CheckpointError: no ``run.json`` (not a run folder), or a run that does not say (a run
            ``reproduce`` trained on its experiment's inputs: rerun ``pathsynth reproduce`` to
            continue it).
    """
    path = run_dir / IDENTITY_NAME
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {IDENTITY_NAME}: not a pathsynth run folder")
    identity = json.loads(path.read_text(encoding="utf-8"))
    data = {str(k): str(v) for k, v in identity.get("data", {}).items()}
    if not data:
        made_from = identity.get("source") or "images it does not name"
        raise CheckpointError(
            f"run {run_dir} was trained on {made_from}; rerun the command that made it "
            "(`pathsynth reproduce` for an experiment's run) to continue it, or give --data"
        )
    return data


def run_identity(run_dir: Path) -> RunIdentity:
    """The identity recorded in ``run.json``.

    Raises:
        CheckpointError: no ``run.json`` (not a pathsynth run folder).
    """
    path = run_dir / IDENTITY_NAME
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {IDENTITY_NAME}: not a pathsynth run folder")
    data = json.loads(path.read_text(encoding="utf-8"))
    return RunIdentity(str(data["run_id"]), run_dir.name, str(data.get("source", "")))


def run_kind(run_dir: Path) -> str:
    """The generator kind that made a run, as its ``run.json`` records it; ``gan`` for a path
    without one (a GAN checkpoint file, or a path the GAN's loader then refuses)."""
    path = run_dir / IDENTITY_NAME
    if path.is_file():
        return str(json.loads(path.read_text(encoding="utf-8")).get("kind", "gan"))
    return "gan"


def write_identity(
    run_dir: Path, source: str, data: Mapping[str, str] | None, kind: str = "gan"
) -> None:
    identity = {
        "run_id": uuid.uuid4().hex,
        "kind": kind,
        "source": source,
        "data": dict(data or {}),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pathsynth_version": __version__,
    }
    write_text_atomic(run_dir / IDENTITY_NAME, json.dumps(identity, indent=2) + "\n")


def trim_stats(run_dir: Path, step: int) -> None:
    """Drop the statistics lines a killed run wrote after the checkpoint it resumes from, so the
    resumed run writes each step once (and a line cut short by the kill goes too)."""
    path = run_dir / STATS_NAME
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and int(record.get("step", 0)) <= step:
            kept.append(line)
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def discard_best_after(run_dir: Path, step: int) -> None:
    """Delete 'best' checkpoints a killed run kept after ``step``, the step it resumes from: the
    steps that made them are trained again, and their record is gone from the statistics."""
    for path in list_checkpoints(run_dir, "best"):
        if checkpoint_step(path) > step:
            path.unlink(missing_ok=True)


@dataclass
class OpenedRun:
    """A run folder ready to train in: a new one, or an existing one to continue.

    Args:
        run_dir: the folder (the same path on every rank).
        resume: the last checkpoint's state, ``None`` when training starts at step 0.
    """

    run_dir: Path
    resume: dict[str, Any] | None


Reopen = Callable[[Path, bool], "dict[str, Any] | None"]
"""``(run_dir, is_main) -> state``: what a reopened run continues from (``None``: step 0)."""


def reopen_generator_run(run_dir: Path, is_main: bool) -> dict[str, Any] | None:
    """The last checkpoint's state of a run to continue (``None``: start at step 0); rank 0 drops
    what a killed run left after it (statistics lines, a later 'best' checkpoint)."""
    resume = (
        load_checkpoint(find_checkpoint(run_dir, "last"))
        if list_checkpoints(run_dir, "last")
        else None
    )
    step = int(resume["step"]) if resume else 0
    if is_main:
        trim_stats(run_dir, step)
        discard_best_after(run_dir, step)
    if resume is not None and resume.get("best_step") is not None:
        kept = run_dir / checkpoint_name("best", int(resume["best_step"]))
        if not kept.is_file():  # its file went when a later, discarded best was saved
            resume["best_score"] = resume["best_step"] = None
    return resume


class RunConfigLike(Protocol):
    """What the run folder code needs of a generator's resolved config (GAN or diffusion)."""

    def to_json(self) -> str:
        """The config as indented JSON."""
        ...


def open_run(
    config: RunConfigLike,
    runs: Path,
    name: str,
    source: str,
    resume_dir: Path | None = None,
    context: DistContext | None = None,
    data: Mapping[str, str] | None = None,
    kind: str = "gan",
    reopen: Reopen | None = None,
) -> OpenedRun:
    """Make a new numbered run folder, or reopen ``resume_dir``; write its config and identity.

    A reopened folder continues from its last checkpoint when it has one, and starts at step 0
    otherwise (a run killed before its first checkpoint). The caller checks the config first.

    Args:
        kind: the run's kind, recorded in ``run.json`` (``generate`` reads it back).
        reopen: reads the state to continue from, on every rank, and tidies the folder on rank 0;
            default the generators' (:func:`reopen_generator_run`).

    Raises:
        CheckpointError: a last checkpoint that cannot be read.
    """
    context = context or DistContext()
    resume = None
    if resume_dir is not None:
        run_dir, resume = resume_dir, (reopen or reopen_generator_run)(resume_dir, context.is_main)
    else:
        run_dir = new_run_dir(runs, name) if context.is_main else Path()
    if context.enabled:
        import torch.distributed as dist

        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / CONFIG_NAME, config.to_json() + "\n")
        if not (run_dir / IDENTITY_NAME).is_file():
            write_identity(run_dir, source, data, kind)
    return OpenedRun(run_dir, resume)


def resumed_run_config(
    run_dir: Path,
    overrides: Mapping[str, Any],
    read_state: Callable[[Path], dict[str, Any]],
    configs: Presets[C],
) -> C:
    """The config of a run's last checkpoint, read by ``read_state`` (the trainer's checkpoint
    reader, which refuses another kind's) as the run kind's ``configs``, with ``overrides``
    applied, for ``--resume``; of its
    ``config.json`` when it has no checkpoint yet (killed before its first one: it starts again
    at step 0).

    Raises:
        CheckpointError: no run folder, neither a checkpoint nor a config.json in it, or what
            ``read_state`` refuses.
        ConfigError: an override the config refuses.
    """
    saved = run_dir / CONFIG_NAME
    if run_dir.is_dir() and not list_checkpoints(run_dir, "last") and saved.is_file():
        plain = json.loads(saved.read_text(encoding="utf-8"))
    else:
        plain = read_state(find_checkpoint(run_dir, "last"))["config"]
    return configs.override(configs.read(plain), overrides)


def check_batch(dataset: TensorImageSet, batch_size: int, source: str) -> None:
    """Refuse a training set smaller than one global batch.

    Raises:
        DataError: the count and the batch size.
    """
    if len(dataset) < batch_size:
        raise DataError(
            f"{source} has {len(dataset)} images, fewer than one batch of "
            f"{batch_size}; lower optim.batch_size"
        )


class RunTrainer(Protocol):
    """What :func:`run_training` needs of a trainer: a loop that trains to its end."""

    def train(self) -> Any:
        """Train, checkpointing as configured; returns how the run ended."""
        ...

    def release_process_group(self) -> None:
        """Drop whatever holds the process group (the DDP wrappers), so it is freed while Python
        still runs (see :func:`~pathsynth.training.distributed.shutdown_distributed`). Training
        after this would not sync ranks: :func:`run_training` calls it once the run is over."""
        ...


T = TypeVar("T", bound=RunTrainer)


def run_training(
    config: RunConfigLike,
    device: str,
    make_trainer: Callable[[Path, DistContext, dict[str, Any] | None], T],
    runs: Path,
    name: str,
    source: str,
    *,
    resume_dir: Path | None = None,
    on_open: Callable[[Path], None] | None = None,
    data: Mapping[str, str] | None = None,
    kind: str = "gan",
    reopen: Reopen | None = None,
) -> tuple[T, Any, Path] | None:
    """Open the run folder and train in it, as a single process or as one rank of torchrun: the
    part of a run that every trainer (GAN, diffusion, pretraining) shares.

    Args:
        config: the resolved config (written to the folder).
        device: the config's ``run.device`` (picks the process group's backend).
        make_trainer: ``(run_dir, context, resume_state) -> trainer``, called on every rank.
        on_open: called with the run folder once it exists, before training (rank 0 only).
        Others: as :func:`open_run`.

    Returns:
        ``(trainer, what its train() returned, run folder)`` on rank 0; ``None`` on the others.

    Raises:
        ConfigError, CheckpointError: what :func:`open_run` and the trainer refuse.
    """
    context = init_distributed(resolve_device(device))
    trainer: T | None = None
    try:
        opened = open_run(config, runs, name, source, resume_dir, context, data, kind, reopen)
        if context.is_main and on_open is not None:
            on_open(opened.run_dir)
        trainer = make_trainer(opened.run_dir, context, opened.resume)
        opened.resume = None  # the trainer holds what it needs; free the checkpoint's copy
        result = trainer.train()
        return (trainer, result, opened.run_dir) if context.is_main else None
    finally:
        if trainer is not None:
            trainer.release_process_group()
        shutdown_distributed(context)
