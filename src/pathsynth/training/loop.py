"""The training loop every trainer shares: the GAN, the diffusion model and SimCLR pretraining.

A trainer is a :class:`Trainer` that knows its own step; everything around the step is here, read
top to bottom in :meth:`Trainer.train` as in stylegan2-ada's ``training_loop``:

- the prologue: this rank's share of every global batch (:meth:`Trainer.mine`), the compute
  device, bf16 autocast and the memory layout;
- the networks as the step calls them: in DDP under torchrun, compiled when asked
  (:meth:`Trainer.wrap`), unwrapped again before the process group goes
  (:meth:`Trainer.release_process_group`);
- the loop: steps until ``total_steps`` or a stop signal (SIGINT/SIGTERM) that every rank agrees
  on, then a checkpoint;
- the cadence (:class:`Cadence`): a ``stats.jsonl`` line and a log line per window, a sample grid,
  a quality signal for the ``best`` checkpoint, the ``last`` checkpoint; the run's last step and
  an interrupted one always log and checkpoint;
- the window's mean losses over ranks, checked finite before anything is logged or saved: a NaN
  stops the run with :class:`TrainingDiverged` and leaves the last good checkpoint in place.

Randomness stays the trainer's: nothing here draws from any RNG, so a trainer that draws in a
fixed order per step resumes exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from pathsynth.devices import compiled, use_bf16
from pathsynth.errors import ConfigError, PathsynthError
from pathsynth.files import write_atomic
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import image_grid
from pathsynth.progress import advance
from pathsynth.timing import duration
from pathsynth.training.checkpoint import list_checkpoints, save_checkpoint
from pathsynth.training.distributed import DistContext, all_reduce_sum
from pathsynth.training.runs import STATS_NAME
from pathsynth.training.sampler import EpochSampler


class TrainingDiverged(PathsynthError):
    """A loss became NaN or infinite; the last good checkpoint is left in place."""


@dataclass
class TrainResult:
    """How a training run ended.

    Args:
        run_dir: the run folder.
        step: steps done.
        status: ``"finished"`` or ``"interrupted"`` (SIGINT/SIGTERM; a checkpoint was written).
        last_checkpoint: the last checkpoint written, if any (rank 0).
        best_checkpoint: the best checkpoint kept, if any (rank 0; trainers with a quality signal).
        best_score: its quality signal (lower is better), if any.
        losses: the last logged window's mean losses by name (``loss_d``, ``loss``, ...).
    """

    run_dir: Path
    step: int
    status: str
    last_checkpoint: Path | None
    best_checkpoint: Path | None = None
    best_score: float | None = None
    losses: dict[str, float] = field(default_factory=dict)


class StopFlag:
    """Set by SIGINT/SIGTERM while training; the loop checks it between steps."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Catch SIGINT and SIGTERM inside the block (the main thread only; elsewhere the block
        runs without a clean stop)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self.raised = True

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers, no clean stop
            pass
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class _RunSettings(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def amp(self) -> str: ...
    @property
    def channels_last(self) -> bool: ...
    @property
    def log_every(self) -> int: ...
    @property
    def checkpoint_every(self) -> int: ...


class _OptimSettings(Protocol):
    @property
    def batch_size(self) -> int: ...


class TrainerConfig(Protocol):
    """What the loop reads of a trainer's config (every trainer config has these groups)."""

    @property
    def run(self) -> _RunSettings: ...

    @property
    def optim(self) -> _OptimSettings: ...


@dataclass(frozen=True)
class Cadence:
    """Steps between the loop's outputs.

    Args:
        log_every: a stats line and a log line.
        checkpoint_every: the ``last`` checkpoint (0: only at the run's end).
        sample_every: a sample grid (0: only at the run's end; ``None``: never, for a trainer
            without :meth:`Trainer.sample_grid`).
        quality_every: the quality signal and, when it improves, the ``best`` checkpoint (0:
            never).
    """

    log_every: int
    checkpoint_every: int
    sample_every: int | None = None
    quality_every: int = 0


class _Window:
    """Loss sums and timing since the last stats line (stylegan2-ada's tick).

    Args:
        size: how many losses a step returns.
        device: where the sums live.
        step: the step training starts from.
    """

    def __init__(self, size: int, device: torch.device, step: int) -> None:
        self.loss_sum = torch.zeros(size, device=device)
        self.steps = 0
        self.started = time.perf_counter()
        self.checked_step = step  # the last step whose losses were found finite

    def add(self, losses: torch.Tensor) -> None:
        """Count one step's losses."""
        self.loss_sum += losses
        self.steps += 1

    def restart(self) -> None:
        """Start a new window: zero sums, time from now."""
        self.loss_sum.zero_()
        self.steps, self.started = 0, time.perf_counter()


class Trainer:
    """The loop around one trainer's step; subclasses provide the step and their state.

    A subclass sets ``config``-dependent networks, optimisers, ``sampler``, ``step`` and
    ``total_steps`` in its ``__init__`` after calling this one, and implements
    :meth:`train_step`, :meth:`state_dict` and :meth:`window_fields`; one that draws sample
    grids implements :meth:`sample_grid`, one with a quality signal :meth:`quality_signal`.

    Args:
        config: the resolved config.
        run_dir: the run folder (written by rank 0 only).
        context: the torchrun context (single process by default).
        log: called with one line of progress text (rank 0).

    Raises:
        ConfigError: a batch that does not split evenly over the ranks.
    """

    loss_names: ClassVar[tuple[str, ...]] = ("loss",)
    """The names of the losses :meth:`train_step` returns, in order (``stats.jsonl``'s keys)."""
    progress_task: ClassVar[str] = "training steps"
    """What :func:`pathsynth.progress.advance` calls this trainer's steps."""

    sampler: EpochSampler
    step: int
    total_steps: int

    def __init__(
        self,
        config: TrainerConfig,
        run_dir: Path,
        context: DistContext | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.context = context or DistContext()
        self.run_dir = run_dir
        self.log = log or (lambda line: None)
        self.device = self.context.compute_device(config.run.device)
        batch, world = config.optim.batch_size, self.context.world_size
        if batch % world:
            raise ConfigError(f"optim.batch_size {batch} does not split evenly over {world} ranks")
        self.local_batch = batch // world
        self.offset = self.context.rank * self.local_batch
        self.bf16 = use_bf16(config.run.amp, self.device)
        self.memory_format = (
            torch.channels_last if config.run.channels_last else torch.contiguous_format
        )
        self.cadence = Cadence(config.run.log_every, config.run.checkpoint_every)
        self.best_score: float | None = None
        self.best_step: int | None = None
        self._unwrapped: dict[str, nn.Module] = {}

    # ----------------------------------------------------------------------------- the prologue

    def mine(self, full: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a tensor drawn for the whole global batch."""
        return full[self.offset : self.offset + self.local_batch]

    def spread(self, local: torch.Tensor) -> torch.Tensor:
        """This rank's rows at their place in a global batch of zeros, for an augmentation that
        draws for the whole batch (then :meth:`mine`): N ranks draw as one process does, at the
        cost of augmenting N times the rows. One process: ``local`` itself."""
        if not self.context.enabled:
            return local
        full = local.new_zeros((self.local_batch * self.context.world_size, *local.shape[1:]))
        full[self.offset : self.offset + self.local_batch] = local
        return full

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on the compute device when the run uses it."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def adam(
        self,
        kind: type[torch.optim.Optimizer],
        module: nn.Module,
        lr: float,
        betas: tuple[float, float],
        weight_decay: float,
        fused: bool,
    ) -> torch.optim.Optimizer:
        """An Adam-family optimiser for ``module``: fused kernels when asked (CUDA and CPU; on
        the CPU they took Adam from 64 to 8 ms per step for the paper's 25M-parameter
        generator), foreach ones otherwise."""
        fused = fused and self.device.type in ("cuda", "cpu")
        return kind(  # type: ignore[call-arg]
            module.parameters(),
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            fused=fused or None,
            foreach=None if fused else True,
        )

    def wrap(
        self, name: str, module: nn.Module, compile_mode: str | None = None, **ddp: Any
    ) -> nn.Module:
        """``module`` as the step calls it, kept as attribute ``name``: in DDP (with ``ddp``'s
        options) under torchrun, compiled in ``compile_mode`` when one is given."""
        trained = module
        if self.context.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            trained = DDP(module, device_ids=ids, **ddp)
        if compile_mode is not None:
            trained = compiled(trained, compile_mode)
        self._unwrapped[name] = module
        setattr(self, name, trained)
        return trained

    def release_process_group(self) -> None:
        """Drop the DDP wrappers once the run is over (:meth:`RunTrainer.release_process_group
        <pathsynth.training.runs.RunTrainer.release_process_group>`)."""
        for name, module in self._unwrapped.items():
            setattr(self, name, module)

    def rng_state(self, **extra: Any) -> dict[str, Any]:
        """The global torch RNG's state (and this device's CUDA one), plus ``extra`` states."""
        state: dict[str, Any] = {"torch": torch.get_rng_state(), **extra}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`rng_state` saved (the CUDA state only on a CUDA run)."""
        torch.set_rng_state(state["torch"])
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)

    # ----------------------------------------------------------------------------- the step

    def train_step(self) -> torch.Tensor:
        """One step; returns this rank's losses, one per :attr:`loss_names`, as a 1-d tensor."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as a checkpoint dict (must hold ``step``)."""
        raise NotImplementedError

    def window_fields(self, losses: dict[str, float]) -> tuple[dict[str, Any], str]:
        """The stats line's fields for a window's mean ``losses`` (between ``epoch`` and the
        timings) and the log line's text for them."""
        raise NotImplementedError

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """The average network's images of the fixed grid noise (uint8 NCHW) and grid columns."""
        raise NotImplementedError

    def quality_signal(self) -> float:
        """A quality score of the current samples, lower is better."""
        raise NotImplementedError

    def opening_line(self) -> str:
        """The log line the run starts with."""
        return (
            f"training {self.total_steps} steps of {self.local_batch * self.context.world_size} "
            f"images from step {self.step} on {self.device} (bf16 {'on' if self.bf16 else 'off'}, "
            f"{self.context.world_size} rank(s))"
        )

    # ----------------------------------------------------------------------------- the loop

    def train(self) -> TrainResult:
        """Train to ``total_steps``, writing stats, grids and checkpoints (rank 0).

        Returns:
            How the run ended (``interrupted`` after SIGINT/SIGTERM, with a checkpoint written).

        Raises:
            TrainingDiverged: a loss became NaN or infinite (the last good checkpoint is kept).
        """
        stop = StopFlag()
        window = _Window(len(self.loss_names), self.device, self.step)
        self.last_losses: dict[str, float] = {}
        if self.context.is_main:
            self.log(self.opening_line())
        status = "finished"
        with stop.installed():
            while self.step < self.total_steps:
                window.add(self.train_step())
                interrupted = self._agree(stop.raised)
                self._tick(window, interrupted)
                if self.context.is_main:
                    advance(self.progress_task, self.step, self.total_steps)
                if interrupted:
                    status = "interrupted"
                    break
        main = self.context.is_main
        return TrainResult(
            self.run_dir,
            self.step,
            status,
            self._latest("last") if main else None,
            self._latest("best") if main else None,
            self.best_score,
            self.last_losses,
        )

    def _tick(self, window: _Window, interrupted: bool) -> None:
        """After a step: stats and log line, sample grid, quality signal and checkpoints when due.

        The losses are checked finite (on every rank) before anything is logged or saved.
        """
        cadence, main, at = self.cadence, self.context.is_main, self.step
        done = at >= self.total_steps
        log_now = done or interrupted or at % cadence.log_every == 0
        save_now = (
            done
            or interrupted
            or bool(cadence.checkpoint_every and at % cadence.checkpoint_every == 0)
        )
        if log_now or save_now:
            losses = self._window_losses(window)
            if main and log_now:
                self._write_stats(losses, window)
        every = cadence.sample_every
        if main and every is not None and (done or (every and at % every == 0)):
            self._write_grid()
        if main and cadence.quality_every and (done or at % cadence.quality_every == 0):
            self._check_quality()
        if save_now:
            self._save("last")
        if log_now:  # time the next window without the grids, signals and saves above
            window.restart()

    def _window_losses(self, window: _Window) -> dict[str, float]:
        """The window's mean losses over all ranks, by name.

        Raises:
            TrainingDiverged: one is NaN or infinite.
        """
        sums = window.loss_sum.clone()
        if self.context.enabled:
            all_reduce_sum(sums)
            sums /= self.context.world_size
        means = {
            name: float(total) / window.steps
            for name, total in zip(self.loss_names, sums.tolist(), strict=True)
        }
        if not all(math.isfinite(value) for value in means.values()):
            last = self._latest("last")
            shown = ", ".join(f"{name} {value:.4g}" for name, value in means.items())
            raise TrainingDiverged(
                f"loss became NaN or infinite between steps {window.checked_step} and "
                f"{self.step} ({shown}); last good checkpoint: {last or 'none written yet'}"
            )
        window.checked_step = self.step
        self.last_losses = means
        return means

    def _write_stats(self, losses: dict[str, float], window: _Window) -> None:
        """One ``stats.jsonl`` line and one log line for the window."""
        elapsed = time.perf_counter() - window.started
        batch = self.local_batch * self.context.world_size
        fields, text = self.window_fields(losses)
        record = {
            "step": self.step,
            "epoch": self.sampler.epoch,
            **fields,
            "sec_per_step": round(elapsed / window.steps, 5),
            "images_per_s": round(window.steps * batch / max(elapsed, 1e-9), 2),
        }
        self.stats_line(record)
        left = (self.total_steps - self.step) * elapsed / window.steps
        self.log(
            f"step {self.step}/{self.total_steps} {text} {record['images_per_s']:.1f} img/s"
            + (f", about {duration(left)} left" if self.step < self.total_steps else "")
        )

    def stats_line(self, record: dict[str, Any]) -> None:
        """Append one JSON line to the run's ``stats.jsonl``."""
        with open(self.run_dir / STATS_NAME, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _write_grid(self) -> None:
        images, columns = self.sample_grid()
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        write_atomic(
            folder / f"grid-step={self.step:08d}.png", encode_png(image_grid(images, columns))
        )

    def _check_quality(self) -> None:
        """Log the quality signal; keep a ``best`` checkpoint when it is the best yet."""
        score = self.quality_signal()
        self.stats_line({"step": self.step, "quality_kid": score})
        if math.isfinite(score) and (self.best_score is None or score < self.best_score):
            self.best_score, self.best_step = score, self.step
            self._save("best")

    def _save(self, kind: str) -> None:
        if self.context.is_main:
            save_checkpoint(self.run_dir, kind, self.state_dict())

    def _latest(self, kind: str) -> Path | None:
        found = list_checkpoints(self.run_dir, kind)
        return found[-1] if found else None

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank got a stop signal."""
        if not self.context.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        all_reduce_sum(value)
        return bool(value.item() > 0)
