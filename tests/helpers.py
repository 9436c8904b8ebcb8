"""Helpers the tests share: small generated images and catalog/store consistency checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Path:
    """A small random image file (format from the suffix), different for every seed."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def catalog_files(workspace) -> tuple[set[str], set[str]]:
    """(store paths with a catalog row, files present in the store)."""
    from sqlalchemy import select

    from pathsynth.catalog.models import Image as ImageRow

    with workspace.open_catalog() as catalog, catalog.session() as session:
        rows = set(session.scalars(select(ImageRow.store_path)))
    files = {
        p.relative_to(workspace.store).as_posix() for p in workspace.store.rglob("*") if p.is_file()
    }
    return rows, files


def assert_consistent(workspace) -> int:
    """Every catalog row has its file and every store file has its row; returns the count."""
    rows, files = catalog_files(workspace)
    assert rows == files, f"rows without files: {rows - files}; files without rows: {files - rows}"
    return len(rows)


def run_pathsynth(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    """Run ``python -m pathsynth ARGS`` as a user would; returns the completed process."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [*prefix, sys.executable, "-m", "pathsynth", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=300,
    )
