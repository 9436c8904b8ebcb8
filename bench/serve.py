"""The web app under load: list-page latency at 100,000 images, cached thumbnails per second, and
errors under 50 concurrent clients (issue 11's targets).

    python bench/serve.py                    # about 2 minutes on 2 cores
    python bench/serve.py --images 20000 --soak 10

It builds a SQLite workspace with ``--images`` catalog rows (written straight into the tables:
patients, studies, images, a split over the real ones; only ``--files`` of them get an image file,
enough for thumbnails), starts ``pathsynth serve`` on 127.0.0.1 as its own process and drives it
with a small asyncio HTTP/1.1 client over keep-alive connections (one process, so the client
costs little of the 2 cores the server runs on). Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from hashlib import sha256
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import insert

from pathsynth.catalog.models import (
    Image as ImageRow,
)
from pathsynth.catalog.models import (
    Patient,
    Split,
    SplitMember,
    Study,
)
from pathsynth.catalog.workspace import Workspace

CLASSES = ("Normal", "Benign", "InSitu", "Invasive")


def build(root: Path, images: int, files: int, seed: int = 0) -> Path:
    """A workspace with ``images`` catalog rows, the first ``files`` with real JPEG files."""
    space = Workspace.create(root / "ws")
    rng = random.Random(seed)
    patients = max(1, images // 50)
    with space.open_catalog() as catalog, catalog.session() as session:
        session.execute(insert(Patient), [{"id": p + 1, "code": f"P{p:015x}", "key_kind": "patient"}
                                          for p in range(patients)])  # fmt: skip
        session.execute(insert(Study), [
            {"id": p + 1, "code": f"S{p:015x}", "patient_id": p + 1, "modality": "histology",
             "source": "bench-real" if p % 10 else "bench-gan"}
            for p in range(patients)
        ])  # fmt: skip
        rows = []
        for i in range(images):
            study = rng.randrange(patients) + 1
            origin = "synthetic" if study % 10 == 1 else rng.choice(("real", "real", "affine"))
            rows.append({
                "id": i + 1, "study_id": study, "store_path": f"b/{i:07d}.jpg",
                "sha256": sha256(str(i).encode()).hexdigest(), "width": 256, "height": 256,
                "channels": 3, "bit_depth": 8, "original_mode": "RGB", "original_format": "JPEG",
                "label": rng.choice(CLASSES), "origin": origin,
            })  # fmt: skip
        for start in range(0, len(rows), 20000):
            session.execute(insert(ImageRow), rows[start : start + 20000])
        session.add(Split(id=1, name="bench", unit="patient", params={}))
        session.flush()
        members = [{"split_id": 1, "image_id": r["id"], "fold": "test" if r["id"] % 3 else "train"}
                   for r in rows if r["origin"] == "real"]  # fmt: skip
        for start in range(0, len(members), 20000):
            session.execute(insert(SplitMember), members[start : start + 20000])
    pixels = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    (space.store / "b").mkdir(parents=True)
    for i in range(files):
        buffer = io.BytesIO()
        Image.fromarray(np.roll(pixels, i, axis=1)).save(buffer, format="JPEG", quality=90)
        (space.store / "b" / f"{i:07d}.jpg").write_bytes(buffer.getvalue())
    return space.root


async def fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One keep-alive GET; returns the status."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                   if k.lower() == "content-length"), 0)  # fmt: skip
    await reader.readexactly(length)
    return status


async def clients(
    port: int, paths: list[str], count: int, seconds: float
) -> tuple[int, int, list[float]]:
    """``count`` clients each looping over random ``paths`` for ``seconds``; returns (requests,
    errors, latencies in seconds)."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def one(k: int) -> int:
        nonlocal errors
        rng = random.Random(k)
        done = 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    status = await fetch(reader, writer, rng.choice(paths))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - start)
                done += 1
                if status != 200:
                    errors += 1
        finally:
            writer.close()
        return done

    done = await asyncio.gather(*(one(k) for k in range(count)))
    return sum(done), errors, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--list-requests", type=int, default=300)
    parser.add_argument("--thumb-seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=30.0, help="seconds of 50 clients")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="webapp-bench-") as tmp:
        start = time.perf_counter()
        root = build(Path(tmp), args.images, args.files)
        built = time.perf_counter() - start
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PATHSYNTH_OPERATOR_TOKEN": ""}
        server = subprocess.Popen(
            # a benchmark on this machine alone: no sign-in in the way of the timed requests
            [sys.executable, "-m", "pathsynth", "serve", "-w", str(root), "--port", str(port),
             "--no-operator-token"],
            env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    time.sleep(0.2)
            rng = random.Random(1)
            top = args.images
            list_paths = [
                "/images", "/images?origin=synthetic", "/images?label=Invasive",
                "/images?label=Benign&origin=real", "/images?split=bench&fold=test",
                "/images?source=bench-gan&label=Normal", "/patients",
            ]  # fmt: skip
            timed = [rng.choice(list_paths) for _ in range(args.list_requests // 2)]
            timed += [f"/images?after={rng.randrange(top)}" for _ in range(args.list_requests // 4)]
            timed += [f"/images?label=InSitu&after={rng.randrange(top)}"
                      for _ in range(args.list_requests // 4)]  # fmt: skip
            thumbs = [f"/images/{i + 1}/thumb.jpg" for i in range(args.files)]

            per_kind: dict[str, list[float]] = {}

            async def run() -> dict[str, object]:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                for path in timed[:10] + thumbs:  # warm: connections, filter choices, cache
                    assert await fetch(reader, writer, path) == 200, path
                latencies = []
                for path in timed:
                    begin = time.perf_counter()
                    assert await fetch(reader, writer, path) == 200, path
                    latencies.append(time.perf_counter() - begin)
                    kind = path.split("after=")[0].rstrip("&?")
                    per_kind.setdefault(kind, []).append(latencies[-1])
                writer.close()
                n, thumb_errors, _ = await clients(port, thumbs, 8, args.thumb_seconds)
                mixed = thumbs + timed + [f"/images/{i + 1}" for i in range(args.files)]
                m, errors, soak_lat = await clients(port, mixed, 50, args.soak)
                return {
                    "list_p50_ms": 1000 * statistics.median(latencies),
                    "list_p95_ms": 1000 * percentile(latencies, 0.95),
                    "list_max_ms": 1000 * max(latencies),
                    "thumbs_per_s": n / args.thumb_seconds, "thumb_errors": thumb_errors,
                    "soak_requests": m, "soak_errors": errors,
                    "soak_per_s": m / args.soak, "soak_p95_ms": 1000 * percentile(soak_lat, 0.95),
                }  # fmt: skip

            figures = asyncio.run(run())
        finally:
            server.terminate()
            server.wait(timeout=20)
    load_after = os.getloadavg()
    print(f"# bench/serve.py {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} CPUs, load {load_before[0]:.2f} before / {load_after[0]:.2f} after")  # fmt: skip
    print(f"catalog of {args.images} images built in {built:.1f} s")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| list page p50 / p95 / max ({args.list_requests} requests, one client) | "
          f"{figures['list_p50_ms']:.1f} / {figures['list_p95_ms']:.1f} / "
          f"{figures['list_max_ms']:.1f} ms | p95 <= 200 ms |")  # fmt: skip
    print(
        f"| cached thumbnails, 8 connections, {args.thumb_seconds:.0f} s | "
        f"{figures['thumbs_per_s']:.0f} req/s ({figures['thumb_errors']} errors) | >= 500 req/s |"
    )
    print(
        f"| 50 clients, {args.soak:.0f} s, mixed pages and thumbnails | "
        f"{figures['soak_requests']} requests ({figures['soak_per_s']:.0f}/s, p95 "
        f"{figures['soak_p95_ms']:.0f} ms), {figures['soak_errors']} errors | no errors |"
    )
    print("\n| list page | requests | p50 ms | p95 ms |\n|---|---:|---:|---:|")
    for kind, values in sorted(per_kind.items()):
        print(f"| `{kind}` | {len(values)} | {1000 * statistics.median(values):.1f} | "
              f"{1000 * percentile(values, 0.95):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
