"""How long the web app's experiments page takes to list a workspace (``workspace_inventory``):
the first listing in a fresh process (torch imported to read the bundles), then repeated ones
(files unchanged since they were read are not parsed again).

    python bench/inventory.py WORKSPACE [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from pathsynth.inventory import workspace_inventory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    found = workspace_inventory(args.workspace)
    first = time.perf_counter() - start
    again = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        workspace_inventory(args.workspace)
        again.append(time.perf_counter() - start)
    print(
        f"{len(found.experiments)} experiments, {len(found.bundles)} bundles, "
        f"{len(found.generator_runs)} generator runs: first listing {first * 1000:.0f} ms, "
        f"then median {statistics.median(again) * 1000:.1f} ms (min {min(again) * 1000:.1f}, "
        f"max {max(again) * 1000:.1f}) over {args.repeat}"
    )


if __name__ == "__main__":
    main()
