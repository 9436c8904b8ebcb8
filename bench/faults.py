"""Fault injection for the catalog's writers: concurrent writers and kill -9 in ingest.

    python bench/faults.py                                 # SQLite, 12 pairs, 24 kills
    scripts/with-mariadb python bench/faults.py --backend mariadb
    scripts/with-postgres python bench/faults.py --backend postgres

Everything runs on generated images (never the licensed data sets) in a temporary folder, as real
``pathsynth`` processes:

- **pairs**: two writers started together on one workspace, in three kinds taken in turn: two
  ingests of different sources, the same source twice, and an ingest beside an affine expansion
  (``store_affine``) of images already catalogued. The second starts once the first has files in
  the store whose rows are not committed yet (the moment the old start-up sweep deleted them).
- **kills**: an ingest killed with SIGKILL at a random moment (seeded, 0-4 s after its first store
  file), then run again to the end.

After each, rows and files are compared: a row without its file is a **lost** image; a file
without a row after a completed run is a stray. Prints a Markdown table for BENCHMARKS.md; the
goal is zero lost in every row. Bounded: about 7 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.workspace import Workspace

IMAGES = 60  # in the second writer's source of a pair
FIRST_IMAGES = 200  # in the first writer's: it is still writing when the second starts
KILL_IMAGES = 150  # the killed ingest's source: three transactions of 64, so kills land between
AFFINE_WRITER = """
import sys, io, numpy as np
from PIL import Image
from sqlalchemy import select
from pathsynth.catalog.api import AffineChild, store_affine
from pathsynth.catalog.models import Image as Row, Study
from pathsynth.catalog.workspace import Workspace
space = Workspace(sys.argv[1])
with space.open_catalog() as catalog, catalog.session() as session:
    ids = list(session.scalars(select(Row.id).join(Study).where(Study.source == "source1")))
def png(seed):
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
children = [AffineChild(i, k, png(10_000 * i + k), {"k": k}) for i in ids for k in range(2)]
print(len(store_affine(space, children, {"name": "faults", "config": {}})))
"""


@dataclass
class Outcome:
    """Rows and files of one workspace after a fault, and what was expected."""

    kind: str
    rows: int
    files: int
    lost: int  # rows whose file is missing
    stray: int  # files without a row (after a completed run)
    expected: int
    errors: int  # writer processes that exited non-zero or printed a traceback


def make_source(root: Path, seed: int, images: int = IMAGES) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(images):
        pixels = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
        path = root / f"class{i % 3}" / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def count(space: Workspace) -> tuple[set[str], set[str]]:
    with space.open_catalog() as catalog, catalog.session() as session:
        rows = set(session.scalars(select(ImageRow.store_path)))
    files = {p.relative_to(space.store).as_posix() for p in space.store.rglob("*") if p.is_file()}
    return rows, files


def ingest_command(source: Path, space: Workspace) -> list[str]:
    return [sys.executable, "-m", "pathsynth", "ingest", str(source), "-m", "histology",
            "--workers", "1", "-w", str(space.root)]  # fmt: skip


def start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def failed(process: subprocess.Popen[str]) -> int:
    _, err = process.communicate(timeout=600)
    return int(process.returncode != 0 or "Traceback" in err)


def wait_for_files(space: Workspace, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while not any(p.is_file() for p in space.store.rglob("*")) and time.monotonic() < end:
        time.sleep(0.005)


def run_pair(kind: str, space: Workspace, sources: list[Path]) -> Outcome:
    """Two writers on one workspace at once; returns rows vs files afterwards."""
    if kind == "ingest+augment":
        subprocess.run(ingest_command(sources[1], space), check=True, capture_output=True)
        first = start(ingest_command(sources[0], space))
        wait_for_files(space)
        second = start([sys.executable, "-c", AFFINE_WRITER, str(space.root)])
        expected = FIRST_IMAGES + IMAGES + 2 * IMAGES
    else:
        second_source = sources[0] if kind == "same source twice" else sources[1]
        first = start(ingest_command(sources[0], space))
        wait_for_files(space)
        second = start(ingest_command(second_source, space))
        expected = FIRST_IMAGES + (0 if kind == "same source twice" else IMAGES)
    errors = failed(first) + failed(second)
    rows, files = count(space)
    return Outcome(kind, len(rows), len(files), len(rows - files), len(files - rows), expected,
                   errors)  # fmt: skip


def run_kill(space: Workspace, source: Path, rng: random.Random) -> tuple[Outcome, Outcome]:
    """kill -9 an ingest at a random moment, then rerun it; rows vs files after each."""
    process = start(ingest_command(source, space))
    wait_for_files(space)  # timed from its first store file, so the kill lands while it writes
    time.sleep(rng.uniform(0.0, 4.0))
    process.send_signal(signal.SIGKILL)
    process.wait()
    rows, files = count(space)
    killed = Outcome("after kill", len(rows), len(files), len(rows - files), 0, len(rows), 0)
    rerun = subprocess.run(ingest_command(source, space), capture_output=True, text=True)
    rows, files = count(space)
    errors = int(rerun.returncode != 0 or "Traceback" in rerun.stderr)
    done = Outcome("after rerun", len(rows), len(files), len(rows - files), len(files - rows),
                   KILL_IMAGES, errors)  # fmt: skip
    return killed, done


def new_workspace(root: Path, backend: str) -> Workspace:
    folder = root / f"ws-{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        return Workspace.create(folder)
    name = f"faults_{uuid.uuid4().hex[:10]}"  # generated here, never user input
    if backend == "mariadb":
        server = make_url(os.environ["PATHSYNTH_TEST_MYSQL_URL"])
        with create_engine(server).begin() as connection:
            connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    else:
        server = make_url(os.environ["PATHSYNTH_TEST_POSTGRES_URL"])
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
    return Workspace.create(folder, server.set(database=name).render_as_string(hide_password=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("sqlite", "mariadb", "postgres"), default="sqlite")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = [
            make_source(root / "source0", seed=0, images=FIRST_IMAGES),
            make_source(root / "source1", seed=1000),
        ]
        kill_source = make_source(root / "kill-source", seed=5000, images=KILL_IMAGES)
        pairs = []
        for i in range(args.pairs):
            kind = ("two sources", "same source twice", "ingest+augment")[i % 3]
            pairs.append(run_pair(kind, new_workspace(root, args.backend), sources))
        kills = []
        for _ in range(args.kills):
            kills.append(run_kill(new_workspace(root, args.backend), kill_source, rng))
    report(args, pairs, kills, time.perf_counter() - started)


def report(args: argparse.Namespace, pairs: list[Outcome], kills: list, seconds: float) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"backend {args.backend}; seed {args.seed}; {seconds:.0f} s")  # fmt: skip
    print("\n| fault | runs | rows (sum) | files (sum) | expected rows | lost | stray | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in ("two sources", "same source twice", "ingest+augment"):
        group = [p for p in pairs if p.kind == kind]
        if group:
            print(row(f"concurrent: {kind}", group))
    print(row("kill -9 in ingest: at the kill", [k for k, _ in kills]))
    print(row("kill -9 in ingest: after the rerun", [d for _, d in kills]))


def row(name: str, group: list[Outcome]) -> str:
    total = {f: sum(getattr(o, f) for o in group) for f in ("rows", "files", "lost", "stray",
                                                             "expected", "errors")}  # fmt: skip
    return (f"| {name} | {len(group)} | {total['rows']} | {total['files']} | {total['expected']} "
            f"| {total['lost']} | {total['stray']} | {total['errors']} |")  # fmt: skip


if __name__ == "__main__":
    main()
