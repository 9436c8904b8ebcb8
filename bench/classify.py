"""The classifier targets of issue 8: patient-level cross-validation of the `original` condition.

    python bench/classify.py SET [--folds 5] [--seeds 1] [--preset quick] [--label NAME]
        [--set KEY=VALUE ...] [--json bench/out/classify.jsonl]

SET is ``bach`` (4 classes), ``herlev7`` (7 classes) or ``herlev4`` (the 4 abnormal classes),
read in place from ``$PATHSYNTH_DATA`` (default ``../shared/data``). It runs the real product:

    pathsynth reproduce DATA -m MODALITY --preset PRESET --folds K --seeds S
        --train-on original --protocols honest [--pixel-size 0.84] [--set ...]

in a fresh workspace (``bench/out/classify-<label>``), so every real image is tested exactly once
per seed on a classifier that never saw its patient (Herlev: slide group; BACH: its ``group``
column, approximate patients). The estimate for new patients (per seed, every fold's predictions
pooled; mean and 95% interval over seeds), the mean over folds x seeds of balanced accuracy and
accuracy, and the wall time go to stdout as a Markdown row and to ``--json``.
Only the `original` condition and the honest protocol run (no affine expansion, no generator);
the whole `reproduce` timing is bench/reproduce.sh's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

SETS = {
    "bach": ("bach", "histology", None, 0.84),
    "herlev7": ("herlev", "cytology", None, None),
    "herlev4": (
        "herlev",
        "cytology",
        "light_dysplastic,moderate_dysplastic,severe_dysplastic,carcinoma_in_situ",
        None,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--label", default=None)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--json", default="bench/out/classify.jsonl")
    args = parser.parse_args()

    folder, modality, classes, pixel_size = SETS[args.set]
    data = Path(os.environ.get("PATHSYNTH_DATA", "../shared/data")) / folder
    label = args.label or f"{args.set}-{args.preset}"
    workspace = Path("bench/out") / f"classify-{label}"
    shutil.rmtree(workspace, ignore_errors=True)
    command = [
        "pathsynth", "reproduce", str(data), "-m", modality, "--preset", args.preset,
        "--name", label, "--folds", str(args.folds), "--seeds", str(args.seeds),
        "--train-on", "original", "--protocols", "honest", "-w", str(workspace),
    ]  # fmt: skip
    if classes:
        command += ["--classes", classes]
    if pixel_size:
        command += ["--pixel-size", str(pixel_size)]
    for assignment in args.assignments:
        command += ["--set", assignment]
    started = time.perf_counter()
    log = workspace.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    results = json.loads((workspace / "experiments" / label / "results.json").read_text())
    condition = results["conditions"]["honest/original"]
    summary = condition["summary"]
    pooled = condition.get("pooled_balanced_accuracy")  # folds pooled per seed: the estimate
    row = {
        "label": label,
        "set": args.set,
        "preset": args.preset,
        "folds": args.folds,
        "seeds": args.seeds,
        "assignments": args.assignments,
        "balanced_accuracy": summary["balanced_accuracy"],
        "pooled_balanced_accuracy": pooled,
        "accuracy": summary["accuracy"],
        "per_run_balanced_accuracy": [
            run["balanced_accuracy"] for run in results["conditions"]["honest/original"]["per_seed"]
        ],
        "seconds": round(seconds, 1),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    balanced = summary["balanced_accuracy"]
    estimate = (
        f"{pooled['mean']:.3f} [{pooled['low'] or float('nan'):.3f}, "
        f"{pooled['high'] or float('nan'):.3f}]"
        if pooled
        else "n/a"
    )
    print(
        f"| {label} | {args.folds}x{args.seeds} | {estimate} | {balanced['mean']:.3f} "
        f"[{balanced['low']:.3f}, {balanced['high']:.3f}] | {summary['accuracy']['mean']:.3f} | "
        f"{seconds / 60:.1f} min | {' '.join(args.assignments) or '-'} |"
    )


if __name__ == "__main__":
    main()
