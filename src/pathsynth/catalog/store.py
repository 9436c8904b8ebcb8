"""The image store: files under ``store/<patient code>/<study code>/``, written atomically.

Every file is first written to a hidden temporary name beside its destination, flushed to disk,
then renamed into place, so a reader never sees half a file. The database row for a file is
committed only after the rename; a run killed between the two leaves a file without a row, which
:func:`sweep_orphans` removes at the start of the next run (which then writes it again). The sweep
runs only under the workspace's write lock (:mod:`pathsynth.catalog.lock`): a file without a row is
then certainly left by a dead run, never one a live run is about to commit.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path

from pathsynth import files
from pathsynth.errors import StoreUnwritable
from pathsynth.files import TMP_MARK

# Why a store cannot be written, as opposed to a bug: full, read-only, not ours.
_UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def write_atomic(destination: Path, data: bytes) -> None:
    """Write an image file into the store whole or not at all, flushed to disk before the rename
    (its catalog row is committed right after).

    Raises:
        StoreUnwritable: the disk is full or the store is read-only or not writable by this user;
            nothing is left behind.
    """
    try:
        files.write_atomic(destination, data, durable=True)
    except OSError as error:
        if error.errno not in _UNWRITABLE:
            raise
        raise StoreUnwritable(
            f"cannot write to the image store {destination.parent}: {error.strerror}"
        ) from None


def remove_files(store: Path, relative_paths: Iterable[str]) -> None:
    """Remove store files (after a failed commit) and any folders that became empty."""
    for relative in relative_paths:
        path = store / relative
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            if folder != store and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def sweep_orphans(store: Path, catalogued: set[str]) -> list[str]:
    """Delete temporary files and files that have no catalog row.

    Args:
        store: the store folder.
        catalogued: store-relative paths (POSIX form) that have a row in the catalog.

    Returns:
        The store-relative paths that were removed.
    """
    removed: list[str] = []
    if not store.is_dir():
        return removed
    for path in sorted(store.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(store).as_posix()
        if TMP_MARK in path.name or relative not in catalogued:
            removed.append(relative)
    remove_files(store, removed)
    return removed
