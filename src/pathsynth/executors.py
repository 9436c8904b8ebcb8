"""Where an experiment's independent units run: here, in N local worker processes, or on Ray.

A cross-validation's folds and an experiment's classifier fits are units that write their own
results to disk and share nothing else but the catalog, so they can run anywhere the workspace
is reachable. ``reproduce --executor`` picks where:

- ``sequential`` (the default): one after another in this process;
- ``local:N``: at most N at once (``local``: one per GPU, else one per core), each in a fresh
  worker process of this machine
  (``python -m pathsynth.executors``, so a unit never inherits a parent's CUDA or thread state);
  with GPUs each worker sees one GPU (``CUDA_VISIBLE_DEVICES``, round robin), without them each
  gets ``cores / N`` threads;
- ``ray`` or ``ray:ADDRESS``: tasks on a Ray cluster (``ray start --head`` on a lab's machines, or
  a SLURM allocation as Ray documents; ``ray`` alone joins the cluster ``RAY_ADDRESS`` names or
  starts one on this machine), each declaring one GPU when the cluster has GPUs, else its CPU
  threads. Every node must see the workspace at the same path (a shared file system), and a
  cluster of several nodes needs a catalog server: SQLite is refused there.

A unit that fails, or whose worker is killed, runs once more; a second failure stops the stage
with a :class:`~pathsynth.errors.TaskFailed` naming the unit and its error. Units skip what an
earlier attempt finished (their results are on disk), so a rerun, like ``reproduce`` after a kill,
goes on where they stopped. Results are identical to a sequential run's for the same seeds when
each unit computes with the same number of threads.

This module imports neither torch nor Ray at import time: a worker sets its GPU and threads
before anything loads torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathsynth.errors import ConfigError, PathsynthError, TaskFailed
from pathsynth.progress import advance

KINDS = ("sequential", "local", "ray")
ATTEMPTS = 2  # a unit that fails twice fails its stage


@dataclass(frozen=True)
class ExecutorSpec:
    """Where units run.

    Attributes:
        kind: ``sequential``, ``local`` or ``ray``.
        workers: local worker processes at once (``local``); 0: one per GPU where there are
            GPUs, else one per core.
        address: the Ray cluster's address (``ray``); ``None``: ``RAY_ADDRESS`` or a new local one.
    """

    kind: str = "sequential"
    workers: int = 1
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> ExecutorSpec:
        """``sequential``, ``local``, ``local:N``, ``ray`` or ``ray:ADDRESS``.

        Raises:
            ConfigError: another form, or a worker count below 1.
        """
        kind, _, rest = text.strip().partition(":")
        if kind == "sequential" and not rest:
            return cls()
        if kind == "local":
            if not rest:
                return cls("local", 0)  # as many as there are GPUs, else cores (at run time)
            try:
                workers = int(rest)
            except ValueError:
                workers = 0
            if workers < 1:
                raise ConfigError(f"--executor local:N needs a worker count N >= 1, got {text!r}")
            return cls("local", workers)
        if kind == "ray":
            return cls("ray", address=rest or None)
        raise ConfigError(
            f"--executor must be sequential, local[:N] or ray[:ADDRESS], got {text!r}"
        )

    @property
    def parallel(self) -> bool:
        """True when units may run at the same time."""
        return self.kind == "ray" or (self.kind == "local" and self.workers != 1)

    def __str__(self) -> str:
        if self.kind == "local":
            return f"local:{self.workers}" if self.workers else "local"
        return f"ray:{self.address}" if self.kind == "ray" and self.address else self.kind


@dataclass(frozen=True)
class Task:
    """One unit of work: ``function`` (``"package.module:name"``, importable in any worker) called
    with ``args``; it writes its own results and returns nothing the caller needs.

    Attributes:
        name: how logs and errors name it (``fold 2``, ``honest/affine seed 1``).
        function: the dotted path of a module-level function.
        args: picklable arguments.
    """

    name: str
    function: str
    args: tuple[Any, ...] = field(default_factory=tuple)


def call(function: str, args: tuple[Any, ...]) -> None:
    """Import ``function`` (``"module:name"``) and call it with ``args``."""
    module, _, name = function.partition(":")
    getattr(importlib.import_module(module), name)(*args)


def run_tasks(
    spec: ExecutorSpec,
    tasks: Sequence[Task],
    log: Callable[[str], None] = print,
    catalog_url: str | None = None,
    progress: str | None = None,
) -> None:
    """Run every task once to completion where ``spec`` says.

    Args:
        spec: where.
        tasks: independent units.
        log: one line per finished unit (and per retry).
        catalog_url: the catalog the units write to; with Ray, SQLite is refused on a cluster of
            several nodes.
        progress: the progress task finished units advance (:func:`pathsynth.progress.advance`).

    Raises:
        TaskFailed: a unit that failed twice (its name and its error's last line).
        ConfigError: Ray is not installed, the cluster cannot be reached, or SQLite on several
            nodes.
    """
    if not tasks:
        return
    finished = 0

    def one_done(line: str) -> None:
        nonlocal finished
        finished += 1
        log(f"{line} ({finished} of {len(tasks)})")
        if progress:
            advance(progress, finished, len(tasks))

    if spec.kind == "ray":
        _run_on_ray(spec, tasks, log, one_done, catalog_url)
    elif spec.parallel:
        _run_local(spec.workers, tasks, log, one_done)
    else:
        for task in tasks:  # in this process: errors are the unit's own, raised as they are
            call(task.function, task.args)
            one_done(f"  {task.name}: done")


# -- local worker processes ----------------------------------------------------------------------


def _worker_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _error_line(error: BaseException) -> str:
    if isinstance(error, PathsynthError):
        return str(error)
    last = traceback.format_exception_only(type(error), error)[-1].strip()
    return last.splitlines()[0] if last else type(error).__name__


def _visible_gpus() -> list[str]:
    """The GPU indices this process may hand out (``CUDA_VISIBLE_DEVICES`` or every GPU)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    import torch

    return [str(k) for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


@dataclass
class _Running:
    task: Task
    attempt: int
    slot: int
    process: subprocess.Popen[bytes]
    report: Path
    started: float


def _run_local(
    workers: int,
    tasks: Sequence[Task],
    log: Callable[[str], None],
    done: Callable[[str], None],
) -> None:
    """At most ``workers`` tasks at once, each in a fresh ``python -m pathsynth.executors``
    process (one GPU each when there are GPUs; its output goes where this process's goes); a
    task runs at most :data:`ATTEMPTS` times."""
    gpus = _visible_gpus()
    workers = workers or len(gpus) or os.cpu_count() or 1
    threads = _worker_threads(workers)
    waiting: list[tuple[Task, int]] = [(task, 1) for task in tasks]
    running: list[_Running] = []
    free = list(range(workers))
    with tempfile.TemporaryDirectory(prefix="pathsynth-units-") as scratch:
        try:
            while waiting or running:
                while waiting and free:
                    task, attempt = waiting.pop(0)
                    slot = free.pop(0)
                    gpu = gpus[slot % len(gpus)] if gpus else None
                    running.append(_start(task, attempt, slot, Path(scratch), threads, gpu))
                _reap(running, waiting, free, log, done)
        finally:
            for unit in running:  # a failure elsewhere, or Ctrl-C: no orphan workers
                unit.process.kill()
                unit.process.wait()


def _start(
    task: Task, attempt: int, slot: int, scratch: Path, threads: int, gpu: str | None
) -> _Running:
    """A worker process for one attempt at ``task``."""
    stem = scratch / f"unit{uuid.uuid4().hex}"
    order, report = stem.with_suffix(".task"), stem.with_suffix(".report")
    order.write_bytes(pickle.dumps((task, threads)))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # what this process imports
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    command = [sys.executable, "-m", __name__, str(order), str(report)]
    process = subprocess.Popen(command, env=env)
    return _Running(task, attempt, slot, process, report, time.monotonic())


def _reap(
    running: list[_Running],
    waiting: list[tuple[Task, int]],
    free: list[int],
    log: Callable[[str], None],
    done: Callable[[str], None],
) -> None:
    """Wait a moment for workers to end; record each, requeue a first failure, raise a second."""
    time.sleep(0.2)
    for unit in [u for u in running if u.process.poll() is not None]:
        running.remove(unit)
        free.append(unit.slot)
        code = unit.process.returncode
        if code == 0:
            done(f"  {unit.task.name}: done in {time.monotonic() - unit.started:.0f} s")
            continue
        message = unit.report.read_text() if unit.report.exists() else _death(code)
        if unit.attempt >= ATTEMPTS:
            raise TaskFailed(f"{unit.task.name} failed twice: {message}")
        log(f"  {unit.task.name}: {message}; running it again")
        waiting.insert(0, (unit.task, unit.attempt + 1))


def _death(code: int) -> str:
    if code < 0:
        return f"its worker was killed by signal {-code}"
    return f"its worker ended with exit status {code} without a report"


def _worker(order: Path, report: Path) -> int:
    """A worker process: set its threads, run the task of ``order``; on failure write the error's
    line to ``report`` and return 1."""
    task, threads = pickle.loads(order.read_bytes())
    try:
        import torch

        torch.set_num_threads(threads)
        call(task.function, task.args)
    except Exception as error:  # reported to the parent, which decides on a retry
        report.write_text(_error_line(error))
        return 1
    return 0


# -- Ray -----------------------------------------------------------------------------------------


def _ray_call(function: str, args: tuple[Any, ...], threads: int) -> None:
    """A task on a Ray worker: its threads set (Ray sets the GPU), then the unit."""
    import torch

    torch.set_num_threads(threads)
    call(function, args)


def _run_on_ray(
    spec: ExecutorSpec,
    tasks: Sequence[Task],
    log: Callable[[str], None],
    done: Callable[[str], None],
    catalog_url: str | None,
) -> None:
    """Submit every task to the cluster, one GPU or its threads each, retried once."""
    ray = _connect(spec)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) > 1 and (catalog_url or "").startswith("sqlite"):
        raise ConfigError(
            f"the Ray cluster has {len(nodes)} nodes and the catalog is a SQLite file; give the "
            "workspace a MariaDB or PostgreSQL catalog (pathsynth init --db-url) for a cluster"
        )
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    # one GPU per unit where there are GPUs; else one CPU thread per unit, as many units at once
    # as the cluster has CPUs (small networks on a CPU gain more from units than from threads)
    threads = 1
    options: dict[str, Any] = {"max_retries": ATTEMPTS - 1, "retry_exceptions": True}
    options.update({"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads})
    remote = ray.remote(**options)(_ray_call)
    pending = {remote.remote(t.function, t.args, threads): (t, time.monotonic()) for t in tasks}
    log(f"  {len(tasks)} units on the Ray cluster ({len(nodes)} node(s), {_resources(resources)})")
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task, started = pending.pop(ready[0])
            try:
                ray.get(ready[0])
            except Exception as error:  # RayTaskError, WorkerCrashedError, ...
                raise TaskFailed(f"{task.name} failed twice: {_ray_error_line(error)}") from None
            done(f"  {task.name}: done in {time.monotonic() - started:.0f} s")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _connect(spec: ExecutorSpec) -> Any:
    """The ``ray`` module, connected to the spec's cluster.

    Raises:
        ConfigError: Ray missing, or the cluster unreachable.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'pathsynth[ray]' (or pip install ray)"
        ) from None
    if ray.is_initialized():
        return ray
    env = {k: v for k, v in os.environ.items() if k.startswith("PATHSYNTH_")}
    # workers import what this process imports (a checkout on PYTHONPATH, a lab's own modules);
    # on several nodes these paths must exist there too, as the workspace must
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    try:
        ray.init(
            address=spec.address,
            runtime_env={"env_vars": env},
            log_to_driver=True,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = spec.address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
        raise ConfigError(f"cannot reach the Ray cluster at {where}: {first[:200]}") from None
    return ray


def _resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{int(resources.get(k, 0))} {k}" for k in ("CPU", "GPU") if k in resources)


def _ray_error_line(error: Exception) -> str:
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return _error_line(cause)
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


if __name__ == "__main__":  # a local worker: python -m pathsynth.executors TASK REPORT
    sys.exit(_worker(Path(sys.argv[1]), Path(sys.argv[2])))
