"""Helpers the tests share: small generated images and catalog/store consistency checks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
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


def torchrun(ranks: int) -> list[str]:
    """The command that starts ``ranks`` local processes under torchrun (append what to run)."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(ranks)]  # fmt: skip


def run_ranks(ranks: int, args: list[str], runs: Path, name: str, timeout: float = 120) -> Path:
    """Run ``pathsynth ARGS --runs RUNS --name NAME`` as one process (``ranks`` 1) or under
    torchrun with ``ranks`` gloo processes, one OpenMP thread each; assert it succeeded and
    return its run folder. A run past ``timeout`` seconds is killed with every process torchrun
    started, and the timeout raised."""
    import os
    import signal
    import subprocess
    import sys

    launcher = (
        [*torchrun(ranks), "-m", "pathsynth"] if ranks > 1 else [sys.executable, "-m", "pathsynth"]
    )
    process = subprocess.Popen(
        [*launcher, *args, "--runs", str(runs), "--name", name],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hang can be ended with every worker torchrun started
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    (run_dir,) = runs.glob(f"*-{name}")
    return run_dir


@contextlib.contextmanager
def throwaway_database(server_url: str, prefix: str, create: str, drop: str) -> Iterator[str]:
    """A new database on a test server (``create``/``drop`` are SQL with ``{name}``), its URL
    yielded, dropped afterwards. The name is generated here, never user input."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database=server.database or ""), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(create.format(name=name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(drop.format(name=name)))
        admin.dispose()
