"""The same sweep sequential, on local worker processes and on a Ray cluster (issue 22).

    python bench/sweep.py [--set herlev7] [--folds 2] [--seeds 2] [--workers 2]
        [--modes sequential,local,ray] [--json bench/out/sweep.jsonl]

Each mode runs the real product in a fresh workspace:

    pathsynth reproduce DATA -m MODALITY --preset quick --folds K --seeds S --train-on original
        --protocols honest --executor sequential | local:W | ray:127.0.0.1:PORT

(``ray``: a head started here with ``ray start --head --num-cpus W``, stopped afterwards). The
wall time of the whole command, the estimate it reports and the cost of one unit that does
nothing (``--units`` no-op units through the same executor: process start, imports, scheduling)
go to stdout as Markdown rows and to ``--json``. Run it alone: the ratio is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETS = {"herlev7": ("herlev", "cytology", None), "bach": ("bach", "histology", 0.84)}


def reproduce(args: argparse.Namespace, executor: str, label: str) -> tuple[float, dict]:
    """Wall seconds of one ``reproduce`` and its pooled estimate."""
    folder, modality, pixel_size = SETS[args.data_set]
    data = Path(os.environ.get("PATHSYNTH_DATA", "../shared/data")) / folder
    workspace = Path("bench/out") / f"sweep-{label}"
    shutil.rmtree(workspace, ignore_errors=True)
    command = [
        sys.executable, "-m", "pathsynth", "reproduce", str(data), "-m", modality,
        "--preset", "quick", "--name", label, "--folds", str(args.folds),
        "--seeds", str(args.seeds), "--train-on", "original", "--protocols", "honest",
        "--executor", executor, "-w", str(workspace),
    ]  # fmt: skip
    if pixel_size:
        command += ["--pixel-size", str(pixel_size)]
    log = workspace.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    results = json.loads((workspace / "experiments" / label / "results.json").read_text())
    return seconds, results["conditions"]["honest/original"]["pooled_balanced_accuracy"]


def unit_cost(executor: str, units: int) -> float:
    """Seconds per no-op unit through ``executor`` (``units`` of them, all at once)."""
    from pathsynth.executors import ExecutorSpec, Task, run_tasks

    tasks = [
        Task(f"u{k}", "pathsynth.files:check_name", (f"unit{k}", "unit")) for k in range(units)
    ]
    started = time.perf_counter()
    run_tasks(ExecutorSpec.parse(executor), tasks, lambda line: None)
    return (time.perf_counter() - started) / units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="data_set", default="herlev7", choices=sorted(SETS))
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--modes", default="sequential,local,ray")
    parser.add_argument("--json", default="bench/out/sweep.jsonl")
    args = parser.parse_args()
    port = 6400 + os.getpid() % 500
    head = None
    rows = []
    for mode in args.modes.split(","):
        executor = {"sequential": "sequential", "local": f"local:{args.workers}"}.get(mode)
        if mode == "ray":
            temp = tempfile.mkdtemp(prefix="ray-bench-")
            head = [
                "ray", "start", "--head", f"--port={port}", f"--num-cpus={args.workers}",
                "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats",
                "--object-store-memory=100000000",
            ]  # fmt: skip
            subprocess.run(head, check=True, capture_output=True)
            executor = f"ray:127.0.0.1:{port}"
        assert executor is not None, f"unknown mode {mode}"
        try:
            label = f"{args.data_set}-{mode}"
            load = os.getloadavg()
            seconds, pooled = reproduce(args, executor, label)
            per_unit = unit_cost(executor, args.units)
        finally:
            if mode == "ray":
                subprocess.run(["ray", "stop", "--force"], capture_output=True)
        rows.append(
            {
                "mode": mode, "executor": executor, "set": args.data_set, "folds": args.folds,
                "seeds": args.seeds, "seconds": round(seconds, 1),
                "pooled_balanced_accuracy": pooled, "noop_unit_seconds": round(per_unit, 3),
                "load_average_before": load, "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M"),
            }
        )  # fmt: skip
        print(
            f"| {mode} | {seconds / 60:.1f} min | "
            f"{seconds / rows[0]['seconds']:.2f} | {pooled['mean']:.3f} | {per_unit:.2f} s | "
            f"{load[0]:.1f} |",
            flush=True,
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
