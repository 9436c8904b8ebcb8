"""Classifier training speed by memory layout and batch size, side by side in one process.

    python -m pathsynth reproduce ../shared/data/bach -m histology --preset quick \\
        --pixel-size 0.84 --until inputs -w /tmp/speed/ws
    python bench/classifier_speed.py /tmp/speed/ws/experiments/bach-quick/inputs.pt \\
        [--epochs 3] [--batches 32,64] [--repeats 2] [--set KEY=VALUE ...]

Trains the experiment's ``quick`` classifier (BACH's crops: ``crop_size=64 crop_stride=64
crops_per_image=2`` unless ``--set`` says otherwise) for a fixed number of epochs (no early
stopping) on the training fold of ``inputs.pt``, once per layout (NCHW, NHWC) and batch size,
the variants interleaved ``--repeats`` times so that load changes hit them alike. Prints the
seconds of each and, per batch size, the ratio NCHW / NHWC. Speed only: accuracy choices are
bench/recipe.py's (validation images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.trainer import train_classifier
from pathsynth.imaging.tensorset import TensorImageSet

BACH_CROPS = {"crop_size": 64, "crop_stride": 64, "crops_per_image": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batches", default="32,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    fold = torch.load(args.inputs, weights_only=False)["train"]
    train_set = TensorImageSet(fold["images"], fold["labels"], fold["class_names"])
    fixed: dict[str, Any] = {**BACH_CROPS, "epochs": args.epochs, "min_epochs": args.epochs}
    fixed.update(item.split("=", 1) for item in args.set)
    for key in ("crop_size", "crop_stride", "crops_per_image"):
        fixed[key] = int(fixed[key])
    batches = [int(size) for size in args.batches.split(",")]
    print(
        f"{len(train_set.labels)} training inputs, {args.epochs} epochs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}"
    )
    seconds: dict[tuple[bool, int], list[float]] = {}
    for _ in range(args.repeats):
        for batch in batches:
            for channels_last in (False, True):
                config = CLASSIFIER.resolve(
                    "quick",
                    {**fixed, "batch_size": batch, "channels_last": channels_last, "seed": 0},
                )
                started = time.perf_counter()
                train_classifier(train_set, config, groups=fold["groups"])
                elapsed = time.perf_counter() - started
                seconds.setdefault((channels_last, batch), []).append(elapsed)
                layout = "NHWC" if channels_last else "NCHW"
                print(f"batch {batch:4d} {layout}: {elapsed:6.1f} s", flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")
    print("| batch | NCHW s | NHWC s | NCHW / NHWC |\n|---:|---:|---:|---:|")
    for batch in batches:
        nchw = statistics.median(seconds[(False, batch)])
        nhwc = statistics.median(seconds[(True, batch)])
        print(f"| {batch} | {nchw:.1f} | {nhwc:.1f} | {nchw / nhwc:.2f} |")


if __name__ == "__main__":
    main()
