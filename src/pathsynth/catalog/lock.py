"""One writer at a time per workspace: an advisory lock file that the kernel releases with its
holder.

Every run that writes store files or sweeps the store (ingest, affine expansion, generation,
``check --repair``) holds :func:`write_lock` for its whole write phase; ``check`` without
``--repair`` holds :func:`read_lock` (the shared side) while it compares catalog and store, so it
never sees a writer's files before their rows. The store sweep that removes
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
    with _locked(handle, path, fcntl.LOCK_EX, on_wait):
        _write_holder(handle)
        yield


@contextmanager
def read_lock(root: Path, on_wait: Callable[[str], None] | None = _tell_stderr) -> Iterator[None]:
    """Hold the shared side of the workspace's lock for the block: writers wait until it ends,
    and it waits for a writer to finish. A workspace that cannot be written has no writers: there
    the block runs without a lock.

    Args:
        root: the workspace folder.
        on_wait: called once with the writer's description when this run must wait.
    """
    path = Path(root) / LOCK_NAME
    try:
        handle = os.open(path, os.O_RDONLY if path.exists() else os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only workspace without a lock file: nobody writes it
        yield
        return
    with _locked(handle, path, fcntl.LOCK_SH, on_wait):
        yield


@contextmanager
def held_alone(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created) for the block, or refuse at once when another
    live process holds it: for work that must not run twice at the same time (one experiment
    name run by two ``reproduce`` commands).

    Raises:
        WorkspaceError: another process holds it (named with its pid, host and start), or the
            lock file cannot be created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise WorkspaceError(f"cannot lock {what}: {error.strerror} ({path})") from None

    def refuse(holder: str) -> None:
        raise WorkspaceError(
            f"{what} is being run by another process ({holder}); wait for it to finish, or use "
            "another name"
        )

    with _locked(handle, path, fcntl.LOCK_EX, refuse):
        _write_holder(handle)
        yield


@contextmanager
def _locked(
    handle: int, path: Path, mode: int, on_busy: Callable[[str], None] | None
) -> Iterator[None]:
    """``flock`` ``handle`` in ``mode`` for the block; when another process holds it, call
    ``on_busy`` with its holder's description (it may raise to refuse), then wait. The handle
    is closed at the end, which releases the lock."""
    try:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_busy is not None:
                on_busy(_holder(path))
            fcntl.flock(handle, mode)
        yield
    finally:
        os.close(handle)


def _write_holder(handle: int) -> None:
    """Name this process in the lock file, for whoever has to wait for it."""
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
