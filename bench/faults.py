"""Fault injection for pathsynth's writers: concurrent writers, kill -9, database restarts.

    python bench/faults.py                      # SQLite: 50 kills, about 14 minutes on 2 cores
    python bench/faults.py --pairs 12           # and 12 concurrent pairs (about 10 minutes more)
    scripts/with-mariadb python bench/faults.py --backend mariadb --restarts 4
    scripts/with-postgres python bench/faults.py --backend postgres --restarts 4

Everything runs on generated images (never the licensed data sets) in a temporary folder, as real
``pathsynth`` processes:

- **pairs**: two writers started together on one workspace, in three kinds taken in turn: two
  ingests of different sources, the same source twice, and an ingest beside an affine expansion
  (``store_affine``) of images already catalogued. The second starts once the first has files in
  the store whose rows are not committed yet (the moment the old start-up sweep deleted them).
- **kills**: ``ingest`` (a fresh workspace each), ``augment`` and ``generate`` (one workspace
  each, a new ``--seed`` per kill) killed with SIGKILL at a random moment (seeded) after their
  first new store file, then run again to the end. ``generate`` samples from a 4-step GAN trained
  once per script run.
- **train-gan kills**: a 40-step training killed at a random moment after its first step, then
  ``train-gan --resume`` to the end; the run folder is checked: the last checkpoint loads at the
  last step, ``stats.jsonl`` lists each step (and quality signal) once and in order, no best
  checkpoint newer than the resumed step survives, the best is the lowest signal, and the stats
  equal an uninterrupted run's.
- **restarts** (MariaDB, PostgreSQL; SQLite has no server): the server started by
  ``scripts/with-*`` is found in /proc by its port, stopped while an ingest writes (clean and
  crash in turn: SIGTERM/SIGKILL for MariaDB, fast/immediate shutdown for PostgreSQL) and
  started again with the same command line, then the ingest is rerun.

After each, rows and files are compared: a row without its file is a **lost** image; a file
without a row after a completed run is a stray. Prints Markdown tables for BENCHMARKS.md; the
goal is zero lost in every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
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
from sqlalchemy.engine import URL, make_url

from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.workspace import Workspace
from pathsynth.training.checkpoint import (
    checkpoint_step,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
)

IMAGES = 60  # in the second writer's source of a pair
FIRST_IMAGES = 200  # in the first writer's: it is still writing when the second starts
KILL_IMAGES = 150  # the killed ingest's source: three transactions of 64, so kills land between
SMALL_IMAGES = 60  # the augment and generate workspaces' real images, and the GAN's data
AUGMENT_PER_CLASS = 100  # augment: 3 classes of 14 train images each grow to 100 (258 children)
GENERATE_PER_CLASS = 200  # generate: 600 images per kill, several transactions
# GAN training kills: a last checkpoint every 5 steps, a quality signal (and maybe a best
# checkpoint) every 3, so a kill can leave a best checkpoint newer than the last one
TRAIN_STEPS, TRAIN_EVERY, TRAIN_QUALITY = 40, 5, 3
# seconds after the first new store file (train-gan: after stats.jsonl appears) a kill may wait
KILL_WINDOW_S = {"ingest": 4.0, "augment": 3.0, "generate": 4.0, "train-gan": 3.0, "restart": 2.0}
PATHSYNTH = [sys.executable, "-m", "pathsynth"]
URL_VARIABLES = {"mariadb": "PATHSYNTH_TEST_MYSQL_URL", "postgres": "PATHSYNTH_TEST_POSTGRES_URL"}
AFFINE_WRITER = """
import sys, io, numpy as np
from PIL import Image
from sqlalchemy import select
from pathsynth.catalog.api import AffineChild, store_affine
from pathsynth.catalog.models import Image as Row, Study
from pathsynth.catalog.workspace import Workspace
from pathsynth.training.checkpoint import (
    checkpoint_step,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
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
    exits: int = 0  # non-zero exits that were expected (an ingest whose server went away)
    overlapped: int = 0  # the kill or server stop came while the writer still ran


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


def store_files(space: Workspace) -> int:
    return sum(1 for p in space.store.rglob("*") if p.is_file())


def wait_for_new_files(space: Workspace, before: int, deadline_s: float = 120) -> None:
    """Wait until the store holds more files than ``before`` (a writer has begun writing)."""
    end = time.monotonic() + deadline_s
    while store_files(space) <= before and time.monotonic() < end:
        time.sleep(0.02)


def stopped(process: subprocess.Popen[str]) -> int:
    """Drain a killed process; 1 if it printed a traceback before the kill."""
    _, err = process.communicate(timeout=60)
    return int("Traceback" in err)


def kill_and_rerun(
    kind: str, space: Workspace, command: list[str], rng: random.Random, expected: int
) -> tuple[Outcome, Outcome]:
    """kill -9 ``command`` at a random moment after its first new store file, then run it again
    to the end. Rows and files are counted as the ones added since before the kill; lost and
    stray over the whole workspace. ``expected`` < 0: the rerun's printed count (augment)."""
    rows0, files0 = count(space)
    process = start(command)
    wait_for_new_files(space, len(files0))
    time.sleep(rng.uniform(0.0, KILL_WINDOW_S[kind]))
    landed = int(process.poll() is None)  # 0: it had finished before the kill
    process.send_signal(signal.SIGKILL)
    errors = stopped(process)
    rows, files = count(space)
    killed = Outcome(kind, len(rows - rows0), len(files - files0), len(rows - files), 0,
                     len(rows - rows0), errors, overlapped=landed)  # fmt: skip
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    rows, files = count(space)
    if expected < 0:
        found = re.search(r"stored (\d+) affine children", rerun.stdout)
        expected = int(found.group(1)) if found else -1
    errors = int(rerun.returncode != 0 or "Traceback" in rerun.stderr)
    done = Outcome(kind, len(rows - rows0), len(files - files0), len(rows - files),
                   len(files - rows), expected, errors)  # fmt: skip
    return killed, done


def derived_workspace(root: Path, backend: str, source: Path) -> Workspace:
    """A workspace holding ``source`` and a split of it, for augment and generate kills."""
    space = new_workspace(root, backend)
    subprocess.run(ingest_command(source, space), check=True, capture_output=True)
    subprocess.run([*PATHSYNTH, "split", "--name", "s", "--by", "image", "-w", str(space.root)],
                   check=True, capture_output=True)  # fmt: skip
    return space


def augment_command(space: Workspace, seed: int) -> list[str]:
    return [*PATHSYNTH, "augment", "--split", "s", "--per-class", str(AUGMENT_PER_CLASS),
            "--seed", str(seed), "-w", str(space.root)]  # fmt: skip


def generate_command(space: Workspace, run_dir: Path, seed: int) -> list[str]:
    return [*PATHSYNTH, "generate", str(run_dir), "--per-class", str(GENERATE_PER_CLASS),
            "--checkpoint", "last", "--seed", str(seed), "--device", "cpu",
            "-w", str(space.root)]  # fmt: skip


def train_command(data: Path, runs: Path, steps: int, every: int, quality: int) -> list[str]:
    return [*PATHSYNTH, "train-gan", "--data", str(data), "--preset", "smoke", "--steps",
            str(steps), "--device", "cpu", "--runs", str(runs), "--set", "run.sample_every=0",
            "--set", f"run.checkpoint_every={every}", "--set", f"run.quality_every={quality}"]  # fmt: skip


def train_small_gan(data: Path, runs: Path) -> Path:
    """The one small GAN run that ``generate`` kills sample from (4 steps, no quality)."""
    command = train_command(data, runs, 4, 0, 0)
    subprocess.run(command, check=True, capture_output=True)
    return next(runs.iterdir())


@dataclass
class TrainOutcome:
    """One GAN training run killed with SIGKILL and resumed to the end."""

    landed: int  # the process still ran when killed
    resumed_from: int  # step of the last checkpoint at the kill (0: none yet)
    best_after: int  # best checkpoints newer than that step which the kill left
    stale_best: int  # best checkpoints after the resumed step that a kill left and survived
    last_bad: int  # the last checkpoint does not load or is not at the final step
    stats_bad: int  # stats.jsonl does not list each step (and quality signal) once, in order
    best_bad: int  # the best checkpoint is not the lowest quality signal of stats.jsonl
    differs: int  # stats.jsonl differs from the uninterrupted run's
    errors: int  # tracebacks before the kill, or a resume that failed


def read_stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def comparable(records: list[dict]) -> list[tuple]:
    """The stats lines without their timings (which differ run to run)."""
    skip = {"sec_per_step", "images_per_s"}
    return [tuple(sorted((k, v) for k, v in r.items() if k not in skip)) for r in records]


def check_run(run_dir: Path, reference: list[dict]) -> tuple[int, int, int, int]:
    """last_bad, stats_bad, best_bad, differs for a finished run folder."""
    try:
        last_bad = int(load_checkpoint(find_checkpoint(run_dir, "last"))["step"] != TRAIN_STEPS)
    except Exception:  # any failure to load is what is counted
        last_bad = 1
    records = read_stats(run_dir)
    steps = [r["step"] for r in records if "loss_d" in r]
    signals = [(r["step"], r["quality_kid"]) for r in records if "quality_kid" in r]
    every = sorted(
        {*range(TRAIN_QUALITY, TRAIN_STEPS + 1, TRAIN_QUALITY), TRAIN_STEPS}
    )  # and the last
    stats_bad = int(steps != list(range(1, TRAIN_STEPS + 1)) or [s for s, _ in signals] != every)
    best = [checkpoint_step(p) for p in list_checkpoints(run_dir, "best")]
    lowest = min(signals, key=lambda signal: signal[1])[0] if signals else None
    best_bad = int(best != [lowest])
    return last_bad, stats_bad, best_bad, int(comparable(records) != comparable(reference))


def run_train_kill(
    data: Path, runs: Path, rng: random.Random, reference: list[dict]
) -> TrainOutcome:
    """kill -9 a GAN training at a random moment after its first step, then resume it."""
    process = start(train_command(data, runs, TRAIN_STEPS, TRAIN_EVERY, TRAIN_QUALITY))
    end = time.monotonic() + 120
    while not list(runs.glob("*/stats.jsonl")) and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, KILL_WINDOW_S["train-gan"]))
    landed = int(process.poll() is None)  # 0: it had finished before the kill
    process.send_signal(signal.SIGKILL)
    errors = stopped(process)
    run_dir = next(runs.iterdir())
    resumed_from = max((checkpoint_step(p) for p in list_checkpoints(run_dir, "last")), default=0)
    newer = {p: p.stat().st_mtime_ns for p in list_checkpoints(run_dir, "best")
             if checkpoint_step(p) > resumed_from}  # fmt: skip
    resume = subprocess.run([*PATHSYNTH, "train-gan", "--resume", str(run_dir), "--device", "cpu"],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    errors += int(resume.returncode != 0 or "Traceback" in resume.stderr)
    stale = sum(1 for p, mtime in newer.items() if p.exists() and p.stat().st_mtime_ns == mtime)
    return TrainOutcome(
        landed, resumed_from, len(newer), stale, *check_run(run_dir, reference), errors
    )


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


@dataclass
class Server:
    """The throwaway database server of scripts/with-mariadb or with-postgres, found by its port
    in /proc, so this script can stop it and start it again with the same command line."""

    backend: str
    url: URL
    pid: int
    argv: list[str]
    cwd: str
    uid: int
    gid: int
    own: subprocess.Popen[bytes] | None = None  # the server as restarted by this script

    @classmethod
    def find(cls, backend: str) -> Server:
        url = make_url(os.environ[URL_VARIABLES[backend]])
        names = {"mariadb": ("mariadbd", "mysqld"), "postgres": ("postgres",)}[backend]
        for proc in Path("/proc").iterdir():
            try:
                argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
                if (
                    argv
                    and Path(argv[0]).name in names
                    and (f"--port={url.port}" in argv or str(url.port) in argv)
                ):
                    status = (proc / "status").read_text()
                    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
                    gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))
                    return cls(backend, url, int(proc.name), argv, os.readlink(proc / "cwd"),
                               uid, gid)  # fmt: skip
            except (OSError, ValueError, AttributeError):
                continue
        raise SystemExit(f"no {backend} server on port {url.port} found in /proc")

    def restart(self, crash: bool, log: Path) -> float:
        """Stop the server (crash: SIGKILL for MariaDB, immediate shutdown for PostgreSQL;
        else a clean fast shutdown), start it again and wait until it answers; seconds down."""
        down = time.monotonic()
        signals = {"mariadb": (signal.SIGTERM, signal.SIGKILL),
                   "postgres": (signal.SIGINT, signal.SIGQUIT)}  # fmt: skip
        os.kill(self.pid, signals[self.backend][crash])
        if self.own is not None:
            self.own.wait(timeout=120)
        while Path(f"/proc/{self.pid}").exists() and "\nState:\tZ" not in _status(self.pid):
            time.sleep(0.05)
        as_owner = {"user": self.uid, "group": self.gid, "extra_groups": []} if self.uid else {}
        with log.open("ab") as out:
            self.own = subprocess.Popen(self.argv, cwd=self.cwd, stdout=out, stderr=out,
                                        start_new_session=True, **as_owner)  # fmt: skip
        self.pid = self.own.pid
        engine = create_engine(self.url)
        for _ in range(600):
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                break
            except Exception:  # not up yet
                time.sleep(0.1)
        engine.dispose()
        return time.monotonic() - down

    def stop(self) -> None:
        """Stop a server this script started (with-* scripts stop only the one they started)."""
        if self.own is not None and self.own.poll() is None:
            self.own.send_signal(signal.SIGTERM if self.backend == "mariadb" else signal.SIGINT)
            self.own.wait(timeout=120)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "\nState:\tZ"


def run_restart(
    space: Workspace, source: Path, server: Server, rng: random.Random, crash: bool, log: Path
) -> tuple[Outcome, Outcome]:
    """Restart the database server while an ingest writes, then rerun the ingest."""
    process = start(ingest_command(source, space))
    wait_for_new_files(space, 0)
    time.sleep(rng.uniform(0.0, KILL_WINDOW_S["restart"]))
    overlapped = int(process.poll() is None)
    down = server.restart(crash, log)
    print(f"{'crash' if crash else 'clean'} restart: server down {down:.1f} s, ingest "
          f"{'running' if overlapped else 'already done'}", file=sys.stderr)  # fmt: skip
    try:
        _, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # a hang is an error too
        process.kill()
        _, err = process.communicate()
    if "Traceback" in err or process.returncode:
        print(f"ingest exit {process.returncode}, stderr ends:\n{err[-1500:]}", file=sys.stderr)
    rows, files = count(space)
    kind = "crash" if crash else "clean"
    during = Outcome(kind, len(rows), len(files), len(rows - files), 0, len(rows),
                     int("Traceback" in err), int(process.returncode != 0), overlapped)  # fmt: skip
    rerun = subprocess.run(ingest_command(source, space), capture_output=True, text=True)
    rows, files = count(space)
    errors = int(rerun.returncode != 0 or "Traceback" in rerun.stderr)
    done = Outcome(kind, len(rows), len(files), len(rows - files), len(files - rows),
                   KILL_IMAGES, errors)  # fmt: skip
    return during, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=0)
    parser.add_argument("--kills", type=int, default=12, help="kill -9 in ingest")
    parser.add_argument("--augment-kills", type=int, default=12)
    parser.add_argument("--generate-kills", type=int, default=12)
    parser.add_argument("--train-kills", type=int, default=14)
    parser.add_argument("--restarts", type=int, default=4, help="MariaDB/PostgreSQL only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("sqlite", "mariadb", "postgres"), default="sqlite")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {
            "pairs": run_pairs(root, args),
            "kills": run_kills(root, args, rng),
            "train": run_train_kills(root, args, rng),
            "restarts": run_restarts(root, args, rng),
        }
    report(args, results, time.perf_counter() - started)


def run_pairs(root: Path, args: argparse.Namespace) -> list[Outcome]:
    sources = [
        make_source(root / "source0", seed=0, images=FIRST_IMAGES),
        make_source(root / "source1", seed=1000),
    ]
    pairs = []
    for i in range(args.pairs):
        kind = ("two sources", "same source twice", "ingest+augment")[i % 3]
        pairs.append(run_pair(kind, new_workspace(root, args.backend), sources))
    return pairs


def run_kills(root: Path, args: argparse.Namespace, rng: random.Random) -> list:
    """kill -9 in ingest (a fresh workspace each), augment and generate (one workspace each,
    a new --seed per kill, so every kill writes new images beside the earlier ones)."""
    kill_source = make_source(root / "kill-source", seed=5000, images=KILL_IMAGES)
    kills = []
    for _ in range(args.kills):
        space = new_workspace(root, args.backend)
        kills.append(kill_and_rerun("ingest", space, ingest_command(kill_source, space), rng,
                                    KILL_IMAGES))  # fmt: skip
    small = make_source(root / "small-source", seed=7000, images=SMALL_IMAGES)
    if args.augment_kills:
        space = derived_workspace(root, args.backend, small)
        for seed in range(args.augment_kills):
            kills.append(kill_and_rerun("augment", space, augment_command(space, seed), rng, -1))
    if args.generate_kills:
        space = derived_workspace(root, args.backend, small)
        run_dir = train_small_gan(small, root / "gan-runs")
        for seed in range(args.generate_kills):
            command = generate_command(space, run_dir, seed)
            kills.append(kill_and_rerun("generate", space, command, rng, 3 * GENERATE_PER_CLASS))
    return kills


def run_train_kills(root: Path, args: argparse.Namespace, rng: random.Random) -> list:
    if not args.train_kills:
        return []
    data = make_source(root / "gan-source", seed=9000, images=SMALL_IMAGES)
    command = train_command(data, root / "reference", TRAIN_STEPS, TRAIN_EVERY, TRAIN_QUALITY)
    subprocess.run(command, check=True, capture_output=True)
    reference = read_stats(next((root / "reference").iterdir()))
    return [
        run_train_kill(data, root / f"train-kill-{i}", rng, reference)
        for i in range(args.train_kills)
    ]


def run_restarts(root: Path, args: argparse.Namespace, rng: random.Random) -> list:
    """Server restarts during an ingest, clean and crash in turn (not for SQLite: no server)."""
    if args.backend == "sqlite" or not args.restarts:
        return []
    source = root / "kill-source"
    server = Server.find(args.backend)
    log = root / "server.log"
    try:
        return [
            run_restart(new_workspace(root, args.backend), source, server, rng, i % 2 == 1, log)
            for i in range(args.restarts)
        ]
    finally:
        server.stop()


def report(args: argparse.Namespace, results: dict, seconds: float) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; backend "
          f"{args.backend}; seed {args.seed}; {seconds:.0f} s")  # fmt: skip
    print("\n| fault | runs | rows | files | expected rows | lost | stray | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in ("two sources", "same source twice", "ingest+augment"):
        group = [p for p in results["pairs"] if p.kind == kind]
        if group:
            print(row(f"concurrent: {kind}", group))
    for kind in ("ingest", "augment", "generate"):
        group = [k for k in results["kills"] if k[0].kind == kind]
        if group:
            landed = sum(k.overlapped for k, _ in group)
            print(row(f"kill -9 in {kind}: at the kill ({landed} landed while it ran)",
                      [k for k, _ in group]))  # fmt: skip
            print(row(f"kill -9 in {kind}: after the rerun", [d for _, d in group]))
    for kind in ("clean", "crash"):
        group = [r for r in results["restarts"] if r[0].kind == kind]
        if group:
            exits = sum(d.exits for d, _ in group)
            during = sum(d.overlapped for d, _ in group)
            print(row(f"{kind} server restart in ingest: after it ({during} while it ran, "
                      f"{exits} exited non-zero)", [d for d, _ in group]))  # fmt: skip
            print(row(f"{kind} server restart in ingest: after the rerun", [d for _, d in group]))
    if args.backend == "sqlite":
        print("| server restart | n/a (SQLite has no server) | | | | | | |")
    report_train(results["train"])


TRAIN_COLUMNS = {
    "landed": "kills that landed while it ran",
    "best_after": "best newer than the last checkpoint at the kill",
    "stale_best": "of those, left after the resume",
    "last_bad": "last checkpoint bad",
    "stats_bad": "stats.jsonl bad",
    "best_bad": "best not the lowest signal",
    "differs": "stats differ from an uninterrupted run",
    "errors": "errors",
}


def report_train(train: list[TrainOutcome]) -> None:
    if not train:
        return
    froms = sorted(t.resumed_from for t in train)
    print(f"\nkill -9 in train-gan ({TRAIN_STEPS} steps, last checkpoint every {TRAIN_EVERY}, "
          f"quality signal every {TRAIN_QUALITY}), then --resume; resumed from steps {froms}")  # fmt: skip
    print("\n| runs | " + " | ".join(TRAIN_COLUMNS.values()) + " |")
    print("|---:" * (len(TRAIN_COLUMNS) + 1) + "|")
    totals = [str(sum(getattr(t, field) for t in train)) for field in TRAIN_COLUMNS]
    print(f"| {len(train)} | " + " | ".join(totals) + " |")


def row(name: str, group: list[Outcome]) -> str:
    total = {f: sum(getattr(o, f) for o in group) for f in ("rows", "files", "lost", "stray",
                                                             "expected", "errors")}  # fmt: skip
    return (f"| {name} | {len(group)} | {total['rows']} | {total['files']} | {total['expected']} "
            f"| {total['lost']} | {total['stray']} | {total['errors']} |")  # fmt: skip


if __name__ == "__main__":
    main()
