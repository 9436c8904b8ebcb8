"""Ingest throughput (images/s, feature extraction included) on the shared real data sets.

    scripts/with-mariadb python bench/ingest.py          # SQLite and MariaDB
    python bench/ingest.py --backends sqlite             # SQLite only

Each measurement ingests a set into a fresh workspace (decode, validate, features, atomic copy into
the store, catalog rows), then times the idempotent rerun (hash only, nothing added). Prints a
Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.workspace import Workspace

DATA = Path(
    os.environ.get("PATHSYNTH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SETS = {"herlev": "cytology", "bach": "histology"}


def fresh_mariadb(server_url: str) -> str:
    server = make_url(server_url)
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with create_engine(server).begin() as connection:
        connection.execute(
            text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        )
    return server.set(database=name).render_as_string(hide_password=False)


def measure(name: str, backend: str, workers: int) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = None if backend == "sqlite" else fresh_mariadb(os.environ["PATHSYNTH_TEST_MYSQL_URL"])
        space = Workspace.create(Path(tmp) / "ws", url)
        options = IngestOptions(modality=SETS[name], workers=workers)
        start = time.perf_counter()
        report = ingest_source(space, DATA / name, options)
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = ingest_source(space, DATA / name, options)
        rerun = time.perf_counter() - start
        assert again.added_total == 0 and not report.refused
        return report.added_total, first, rerun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "mariadb" in backends and "PATHSYNTH_TEST_MYSQL_URL" not in os.environ:
        raise SystemExit("mariadb needs PATHSYNTH_TEST_MYSQL_URL: run under scripts/with-mariadb")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; workers={args.workers}"
    )
    print("| set | backend | images | first ingest s | images/s | rerun s (adds 0) |")
    print("|---|---|---:|---:|---:|---:|")
    for name in SETS:
        for backend in backends:
            count, first, rerun = measure(name, backend, args.workers)
            print(
                f"| {name} | {backend} | {count} | {first:.2f} | {count / first:.0f} | {rerun:.2f} |"
            )


if __name__ == "__main__":
    main()
