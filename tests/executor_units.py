"""Units for the executor tests: module-level functions a worker process can import by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pathsynth.errors import DataError


def record(folder: str, name: str) -> None:
    """Write this worker's pid under ``name``."""
    (Path(folder) / name).write_text(str(os.getpid()))


def meet(folder: str, name: str, other: str) -> None:
    """Say ``name`` started, then wait (at most a minute) until ``other`` has started too: two
    units that both return were running at the same time."""
    (Path(folder) / f"{name}.started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not (Path(folder) / f"{other}.started").exists():
        if time.monotonic() > deadline:
            raise DataError(f"{other} never started while {name} ran")
        time.sleep(0.05)
    record(folder, name)


def die_once(folder: str, name: str) -> None:
    """Killed (SIGKILL) on the first attempt, done on the second."""
    marker = Path(folder) / f"{name}.tried"
    if not marker.exists():
        marker.write_text("1")
        os.kill(os.getpid(), signal.SIGKILL)
    record(folder, name)


def always_fail(folder: str, name: str) -> None:
    """Fails on every attempt, counting them."""
    attempts = Path(folder) / f"{name}.attempts"
    count = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(count))
    raise DataError(f"the unit {name} cannot read its input")
