"""The classifier recipe against its baseline, scored on validation patients of the TRAINING fold.

    python -m pathsynth reproduce ../shared/data/herlev -m cytology --preset quick \\
        --until inputs -w /tmp/recipe/ws
    python bench/recipe.py /tmp/recipe/ws/experiments/herlev-quick/inputs.pt NAME SEEDS \\
        preset=quick epochs=12 patience=3 min_epochs=8 batch_size=64 [KEY=VALUE ...]

Only the training fold of ``inputs.pt`` is read: 30% of each class's patients (slide groups) are
held out once (seed 1234) as the assessment part; classifiers train on the rest (holding out
their own early-stopping validation patients from it) and are scored on the assessment part.
The test fold is never loaded, so recipe choices made from these figures do not tune on it.
Prints one line per seed and a summary; ``--json FILE`` appends the summary as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch
from sklearn.metrics import balanced_accuracy_score

from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.classify.trainer import train_classifier, validation_split
from pathsynth.imaging.config import COLOUR_PRESETS
from pathsynth.imaging.tensorset import TensorImageSet

ASSESS_FRACTION, ASSESS_SEED = 0.3, 1234


def assessment_parts(
    path: str,
) -> tuple[TensorImageSet, torch.Tensor, TensorImageSet, torch.Tensor]:
    """(inner training set, its patient groups, assessment set, its image ids) from a training
    fold; the assessment is scored per image (patches and crops averaged)."""
    fold = torch.load(path, weights_only=False)["train"]
    full = TensorImageSet(fold["images"], fold["labels"], fold["class_names"])
    groups = fold["groups"]
    generator = torch.Generator().manual_seed(ASSESS_SEED)
    inner, assess = validation_split(full.labels, ASSESS_FRACTION, generator, groups)
    assert not set(groups[inner].tolist()) & set(groups[assess].tolist())
    return full.subset(inner), groups[inner], full.subset(assess), fold["ids"][assess]


def one_seed(
    train_set: TensorImageSet,
    groups: torch.Tensor,
    assess_set: TensorImageSet,
    assess_ids: torch.Tensor,
    preset: str,
    overrides: dict[str, str],
    seed: int,
) -> dict[str, Any]:
    """Train one classifier and score it on the assessment part."""
    chosen: dict[str, Any] = dict(overrides)
    if "colour" in chosen:  # a named colour preset (off | histology)
        chosen["colour"] = COLOUR_PRESETS[str(chosen["colour"])]
    config = CLASSIFIER.resolve(preset, {**chosen, "seed": seed})
    started = time.perf_counter()
    result = train_classifier(train_set, config, groups=groups)
    predictions = evaluate_images(
        result.model,
        assess_set,
        image_ids=assess_ids,
        tta=config.tta,
        crop_size=config.crop_size,
        crop_stride=config.grid_stride,
    )
    predicted = predictions.probabilities.argmax(dim=1)
    return {
        "seed": seed,
        "balanced_accuracy": balanced_accuracy_score(predictions.labels, predicted),
        "accuracy": float((predicted == predictions.labels).float().mean()),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str]) -> None:
    json_path = None
    if "--json" in argv:
        at = argv.index("--json")
        json_path = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    path, name, seeds = argv[0], argv[1], int(argv[2])
    overrides = dict(item.split("=", 1) for item in argv[3:])
    preset = overrides.pop("preset", "quick")
    torch.set_num_threads(2)
    train_set, groups, assess_set, assess_ids = assessment_parts(path)
    rows = []
    for seed in range(seeds):
        rows.append(one_seed(train_set, groups, assess_set, assess_ids, preset, overrides, seed))
        print(name, rows[-1], flush=True)
    summary = {
        "name": name,
        "preset": preset,
        "overrides": overrides,
        "train": len(train_set),
        "assess": len(assess_set),
        "assess_images": len(torch.unique(assess_ids)),
        "balanced_accuracy_mean": sum(r["balanced_accuracy"] for r in rows) / len(rows),
        "accuracy_mean": sum(r["accuracy"] for r in rows) / len(rows),
        "rows": rows,
    }
    print("SUMMARY", json.dumps(summary), flush=True)
    if json_path is not None:
        with open(json_path, "a") as file:
            file.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
