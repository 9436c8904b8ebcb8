"""One writer at a time per workspace: an advisory lock file that the kernel releases with its
holder.

Every run that writes store files or sweeps the store (ingest, affine expansion, generation,
``check --repair``) holds :func:`write_lock` for its whole write phase. The store sweep that removes
files left by a killed run is then safe: no other live run can have written a file that has no row
yet. ``flock`` locks die with the process that holds them, so a run killed with ``kill -9`` never
leaves a stale lock; the file itself stays and only names the last holder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pathsynth.errors import WorkspaceError

LOCK_NAME = ".write.lock"


def _tell_stderr(holder: str) -> None:
    print(f"waiting for another run writing to this workspace ({holder})", file=sys.stderr)


@contextmanager
def write_lock(root: Path, on_wait: Callable[[str], None] | None = _tell_stderr) -> Iterator[None]:
    """Hold the workspace's write lock for the block, waiting for another holder to finish.

    Args:
        root: the workspace folder.
        on_wait: called once, with a description of the holder (pid, host, since when), when
            another run holds the lock and this one must wait; None waits silently.

    Raises:
        WorkspaceError: the lock file cannot be created (a read-only workspace cannot be written).
    """
    path = Path(root) / LOCK_NAME
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise WorkspaceError(
            f"cannot write to workspace {root}: {error.strerror} ({path})"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(_holder(path))
            fcntl.flock(handle, fcntl.LOCK_EX)
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(handle, 0)
        os.pwrite(
            handle, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0
        )
        yield
    finally:
        os.close(handle)  # releases the lock


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
