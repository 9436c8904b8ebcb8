"""SSL-pretrained vs random-init ResNet-18 under a linear probe, on BACH and Herlev (7 classes).

For each set, end to end: a fresh workspace, ingest, one patient/slide-group split fixed before
any result is seen (test 0.3, val 0.15, seed 1), ``pathsynth pretrain --preset quick`` on the
train fold only, then one vector per image from the random-init backbone and from the pretrained
one (same architecture, same preprocessing, same input side), and linear probes (the eva
protocol: ``classifier.kind=linear-probe``, early stopping on the validation fold) trained on the
train fold for 3 probe seeds. The figure is the balanced accuracy on the test fold (images of
patients / slide groups in neither train nor val), mean over probe seeds; the test fold is used
for nothing else.

    flock /tmp/pathsynth-heavy.lock python bench/pretrain.py [--sets bach,herlev] [--steps N]

Writes ``bench/out/pretrain/results.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "pretrain"
SPLIT = "ssl-bench"
SETS = {
    # name: (modality, ingest options, the pool's and the probes' preprocessing)
    "bach": (
        "histology",
        ["--pixel-size", "0.84"],
        {"mode": "patches-random", "size": 128, "pixel_size_um": 3.36, "patches_per_image": 8},
    ),
    "herlev": ("cytology", [], {"mode": "pad", "size": 128, "scale": 2.0}),
}
PROBE_SEEDS = (0, 1, 2)


def cli(*args: str) -> str:
    """Run ``pathsynth ARGS`` as a user would; its output, or exit with it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "pathsynth", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"pathsynth {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(name: str, fresh: bool) -> Path:
    """The set's workspace with its images and the split (made once)."""
    modality, options, _ = SETS[name]
    space = OUT / f"{name}-ws"
    if fresh and space.exists():
        shutil.rmtree(space)
    if not space.exists():
        cli("init", str(space))
        cli("ingest", str(DATA / name), "-m", modality, "-w", str(space), *options)
        cli("split", "-w", str(space), "--name", SPLIT, "--by", "patient", "--test", "0.3",
            "--val", "0.15", "--seed", "1")  # fmt: skip
    return space


def pretrain(name: str, space: Path, steps: int | None) -> tuple[Path, float, dict[str, object]]:
    """Run ``pathsynth pretrain`` on the train fold; its backbone file, seconds and config."""
    _, _, preprocess = SETS[name]
    sets = [f"--set=data.preprocess.{key}={value}" for key, value in preprocess.items()]
    if steps is not None:
        sets.append(f"--steps={steps}")
    started = time.perf_counter()
    out = cli("pretrain", "-w", str(space), "--split", SPLIT, "--fold", "train", "--preset",
              "quick", "--name", f"{name}-quick", *sets)  # fmt: skip
    seconds = time.perf_counter() - started
    print(out.strip().splitlines()[-1], flush=True)
    run_dir = sorted((space / "pretrain").glob(f"*-{name}-quick"))[-1]
    config = json.loads((run_dir / "config.json").read_text())
    return run_dir / "backbone.safetensors", seconds, config


def probe_scores(name: str, space: Path, weights: Path | None, view_size: int) -> list[float]:
    """Test-fold balanced accuracy of linear probes on one backbone's vectors, per probe seed."""
    from pathsynth.backbones.load import load_backbone
    from pathsynth.backbones.stored import image_embeddings
    from pathsynth.catalog.api import open_workspace, split_fold
    from pathsynth.classify.config import CLASSIFIER
    from pathsynth.classify.probe import FeatureSet, FrozenFeatureClassifier, train_linear_probe
    from pathsynth.imaging.patches import PreprocessConfig

    workspace = open_workspace(space)
    backbone = load_backbone("resnet18", weights, seed=0, input_size=view_size)
    preprocess = PreprocessConfig(**SETS[name][2])  # type: ignore[arg-type]
    folds = {fold: split_fold(workspace, SPLIT, fold) for fold in ("train", "val", "test")}
    classes = sorted({image.label for image in folds["train"]})
    index = {label: i for i, label in enumerate(classes)}

    def features(fold: str) -> FeatureSet:
        vectors = image_embeddings(workspace, folds[fold], backbone, preprocess)
        labels = torch.tensor([index[image.label] for image in folds[fold]])
        return FeatureSet(torch.from_numpy(vectors), labels)

    train, val, test = features("train"), features("val"), features("test")
    scores = []
    for seed in PROBE_SEEDS:
        model = FrozenFeatureClassifier(backbone, len(classes))
        train_linear_probe(
            model, train, val, classes, CLASSIFIER.resolve("linear-probe", {"seed": seed})
        )
        with torch.no_grad():
            predicted = model.head(test.features).argmax(1)
        scores.append(float(balanced_accuracy_score(test.labels.numpy(), predicted.numpy())))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="bach,herlev")
    parser.add_argument("--steps", type=int, default=None, help="override the quick preset's steps")
    parser.add_argument("--fresh", action="store_true", help="remake the workspaces")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    results = {}
    for name in args.sets.split(","):
        space = prepare(name, args.fresh)
        weights, seconds, config = pretrain(name, space, args.steps)
        view = int(config["data"]["view_size"])
        random_init = probe_scores(name, space, None, view)
        pretrained = probe_scores(name, space, weights, view)
        results[name] = {
            "pretrain_seconds": round(seconds, 1),
            "pretrain_steps": config["optim"]["steps"],
            "batch_size": config["optim"]["batch_size"],
            "view_size": view,
            "random_init": random_init,
            "ssl": pretrained,
            "gain": float(np.mean(pretrained) - np.mean(random_init)),
        }
        print(json.dumps({name: results[name]}), flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'set':8} {'pretrain':>10} {'random-init':>12} {'SSL':>8} {'gain':>7}")
    for name, row in results.items():
        print(
            f"{name:8} {row['pretrain_seconds']:>9.0f}s {np.mean(row['random_init']):>12.3f} "
            f"{np.mean(row['ssl']):>8.3f} {row['gain']:>+7.3f}"
        )


if __name__ == "__main__":
    main()
