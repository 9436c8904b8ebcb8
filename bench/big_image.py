"""Memory of ``pathsynth serve`` when several browsers ask for a very large image at once.

A workspace holding one N-megapixel PNG (default 81 MP, inside the 100 MP limit) and a small
one; ``serve`` (its own process, open operator on 127.0.0.1); then PARALLEL requests at once
for the large image's thumbnail and as many for its 1024 px view (empty cache). Prints the
server's peak resident memory (``VmHWM``) before and after, the wall time and the status codes.

    python bench/big_image.py [--megapixels 81] [--parallel 8]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=600) as response:
        response.read()
        return int(response.status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megapixels", type=float, default=81.0)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pathsynth-big-"))
    source = root / "src" / "benign"
    source.mkdir(parents=True)
    width = int((args.megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(args.megapixels * 1e6 / width)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256], -1)
    Image.fromarray(pixels.astype(np.uint8)).save(source / "huge.png", compress_level=1)
    del pixels, x, y
    Image.new("RGB", (64, 48), (200, 120, 160)).save(source / "small.png")
    workspace = root / "ws"
    run = [sys.executable, "-m", "pathsynth"]
    subprocess.run([*run, "init", str(workspace)], check=True, capture_output=True)
    subprocess.run([*run, "ingest", str(root / "src"), "-w", str(workspace), "-m", "histology"],
                   check=True, capture_output=True)  # fmt: skip
    port = _port()
    server = subprocess.Popen(
        [*run, "serve", "-w", str(workspace), "--port", str(port), "--no-operator-token"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PATHSYNTH_OPERATOR_TOKEN": ""},
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        _fetch(f"{base}/images")  # warm: the app and the catalog reader loaded
        before = _peak_mb(server.pid)
        large = 1  # the first image ingested (sorted: huge.png)
        urls = [f"{base}/images/{large}/thumb.jpg"] * args.parallel + [
            f"{base}/images/{large}/view.jpg"
        ] * args.parallel
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
            codes = list(pool.map(_fetch, urls))
        seconds = time.perf_counter() - start
        after = _peak_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"{width}x{height} PNG ({args.megapixels:.0f} MP), {args.parallel} thumbnail + "
        f"{args.parallel} view requests at once: server peak RSS {before:.0f} MB before, "
        f"{after:.0f} MB after; {seconds:.1f} s; statuses {sorted(set(codes))}"
    )


if __name__ == "__main__":
    main()
