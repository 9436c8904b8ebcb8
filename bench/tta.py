"""Test-time choices on a finished cross-validation, without training anything again.

    python bench/tta.py bench/out/classify-bach-baseline/experiments/bach-baseline [--json FILE]

For every fold of the cross-validation (``<name>-fold<k>``), the fold's own test inputs
(``inputs.pt``, stored by the ``inputs`` stage) are scored by every seed's classifier bundle
with and without dihedral test-time augmentation (8 views averaged), and the seeds' probabilities
are also averaged into one ensemble. Per variant it prints the estimate for new patients: each
seed's folds pooled into one confusion matrix, the mean over seeds, and the ensemble's pooled
balanced accuracy. Only test folds of the cross-validation are read, each by models that never
saw its patients, so the figures are the same kind as the experiment's own.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from pathsynth.classify.bundle import load_bundles
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.classification import balanced_accuracy_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="the cross-validation's folder")
    parser.add_argument("--condition", default="honest/original")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folds = sorted(args.experiment.parent.glob(f"{args.experiment.name}-fold*"))
    rows = {}
    for tta in (False, True):
        per_seed: dict[int, np.ndarray] = {}
        ensemble = None
        started = time.perf_counter()
        for fold in folds:
            test = torch.load(fold / "inputs.pt", weights_only=False)["test"]
            images = TensorImageSet(test["images"], test["labels"], test["class_names"])
            classes = len(test["class_names"])
            bundles = load_bundles(fold / "classify" / args.condition.replace("+", "-"))
            probabilities = []
            for seed, bundle in enumerate(bundles):
                config = bundle.manifest.classifier
                predictions = evaluate_images(
                    bundle.model,
                    images,
                    image_ids=test["ids"],
                    tta=tta,
                    crop_size=config.crop_size,
                    crop_stride=config.grid_stride,
                )
                labels = predictions.labels.numpy()
                probabilities.append(predictions.probabilities.numpy())
                per_seed[seed] = per_seed.get(seed, 0) + _matrix(labels, probabilities[-1], classes)
            mean = np.mean(probabilities, axis=0)
            ensemble = (0 if ensemble is None else ensemble) + _matrix(labels, mean, classes)
        scores = [balanced_accuracy_of(m) for m in per_seed.values()]
        name = "tta" if tta else "plain"
        rows[name] = {
            "per_seed_pooled": scores,
            "mean": float(np.mean(scores)),
            "ensemble": balanced_accuracy_of(ensemble),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(
            f"| {args.experiment.name} | {name} | {np.mean(scores):.3f} "
            f"({', '.join(f'{s:.3f}' for s in scores)}) | {rows[name]['ensemble']:.3f} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"experiment": str(args.experiment), **rows}) + "\n")


def _matrix(labels: np.ndarray, probabilities: np.ndarray, classes: int) -> np.ndarray:
    return confusion_matrix(labels, probabilities.argmax(axis=1), labels=range(classes))


if __name__ == "__main__":
    main()
