"""Compare GAN architectures at equal wall-clock time on the experiment's real inputs (issue 10).

    python bench/gan_compare.py herlev7 --minutes 8 [--presets quick,fastgan] [--out DIR]
    python bench/gan_compare.py bach --minutes 8 --json bench/out/gan-compare.jsonl

SET is ``herlev7`` (cytology ``quick`` inputs: the cell at a quarter of its size on a 64 px
canvas) or ``bach`` (histology ``quick`` inputs: 128 px tiles of the field at 3.36 um/px, random
64 px crops as the classifier and the GAN see them), read in place from ``$PATHSYNTH_DATA``
(default ``../shared/data``); every image of the set is a training image (no split: this compares
generators, not classifiers).

Each preset trains for the same wall-clock budget on this machine (``quick`` is the experiment's
``quick`` GAN, i.e. ``modern`` at the CPU widths; ``fastgan`` is the ``fastgan-64`` preset), one
after the other in one process; then its EMA generator makes as many images per class as the
set has real inputs, and the project's synthesis-quality metrics (KID, FD,
precision/recall/density/coverage) compare them with the real inputs (fixed 64 px crops for BACH)
on the penultimate-layer features of one classifier trained once on the real inputs (the
``quick`` classifier, ``--classifier-epochs``), shared by all presets. Sample grids (a row per
class) go to ``--out`` (default ``/tmp/gan-compare``): they are made from licensed data and must
never be committed. Prints a Markdown table; ``--json`` appends the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.trainer import train_classifier
from pathsynth.devices import device_name
from pathsynth.experiment.config import experiment_presets
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.presets import GAN
from pathsynth.gan.trainer import GanTrainer
from pathsynth.generators.sampling import class_noise
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.folders import folder_files, load_image_set
from pathsynth.imaging.png import encode_png
from pathsynth.imaging.tensorset import TensorImageSet, image_grid, to_uint8
from pathsynth.metrics.features import ClassifierFeatures
from pathsynth.metrics.registry import synthesis_quality

SETS = {"herlev7": ("herlev", "cytology"), "bach": ("bach", "histology")}
RUN = {  # no checkpoints, grids or quality signal while the clock runs: the bench does its own
    "run.device": "cpu",
    "run.sample_every": 0,
    "run.checkpoint_every": 0,
    "run.quality_every": 0,
    "run.log_every": 1_000_000,
    "optim.steps": 10_000_000,
}


def gan_config(preset: str, modality: str) -> TrainConfig:
    """``quick``: the experiment's quick GAN; anything else: that GAN preset on the same inputs."""
    experiment = experiment_presets(modality).resolve("quick")
    base = experiment.gan if preset == "quick" else GAN.resolve(preset)
    config = dataclasses.replace(base, data=experiment.gan.data, preset=preset)
    return GAN.override(config, RUN)


def real_inputs(folder: Path, modality: str) -> tuple[TensorImageSet, TrainConfig]:
    """The set's inputs as the experiment's ``quick`` preset makes them (BACH: pixel size by the
    shared copy's 0.84 um/px times the preset's scale of 4, i.e. 3.36 um/px)."""
    experiment = experiment_presets(modality).resolve("quick")
    preprocess = experiment.preprocess
    if preprocess.pixel_size_um:  # the shared BACH copy: 0.84 um/px x scale 4 = 3.36
        preprocess = dataclasses.replace(preprocess, pixel_size_um=0.0)
    data = load_image_set(folder_files(folder / "images"), preprocess, source=folder.name)
    return data, experiment.gan


def feature_classifier(
    data: TensorImageSet, modality: str, epochs: int, cache: Path
) -> ClassifierFeatures:
    """Penultimate-layer features of the ``quick`` classifier trained on every real input once
    (kept in ``cache`` so that later runs of the bench use the very same features)."""
    config: ClassifierConfig = dataclasses.replace(
        experiment_presets(modality).resolve("quick").classifier,
        device="cpu",
        epochs=epochs,
        min_epochs=min(epochs, 5),
    )
    model = build_classifier(config, len(data.class_names))
    if cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
    else:
        model = train_classifier(data, config).model
        torch.save(model.state_dict(), cache)
    return ClassifierFeatures(model.eval())


@torch.no_grad()
def generated(trainer: GanTrainer, counts: list[int], seed: int = 0) -> torch.Tensor:
    """``counts[c]`` EMA images of each class c (uint8), from :func:`class_noise`."""
    images = []
    for class_index, count in enumerate(counts):
        noise = class_noise(seed, class_index, count, trainer.config.model.noise_dim)
        for start in range(0, count, 64):
            chunk = noise[start : start + 64]
            labels = torch.full((len(chunk),), class_index, dtype=torch.long)
            with trainer._autocast():
                images.append(to_uint8(trainer.G_ema(chunk, labels).float()))
    return torch.cat(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per preset")
    parser.add_argument("--presets", default="quick,fastgan-64")
    parser.add_argument("--classifier-epochs", type=int, default=15)
    parser.add_argument("--out", default="/tmp/gan-compare")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    folder_name, modality = SETS[args.set]
    data_root = Path(os.environ.get("PATHSYNTH_DATA", "../shared/data")) / folder_name
    out = Path(args.out) / args.set
    out.mkdir(parents=True, exist_ok=True)
    data, _ = real_inputs(data_root, modality)
    counts = torch.bincount(data.labels, minlength=len(data.class_names)).tolist()
    extractor = feature_classifier(data, modality, args.classifier_epochs, out / "features.pt")
    crop = experiment_presets(modality).resolve("quick").gan.data.crop
    real = data.images
    if crop:  # compare 64 px crops with 64 px crops, fixed for every preset
        real = random_crops(real, crop, torch.Generator().manual_seed(0))
    real_features = extractor(real)

    rows = []
    for preset in args.presets.split(","):
        config = gan_config(preset, modality)
        load = os.getloadavg()
        trainer = GanTrainer(config, data, out / f"run-{preset}")
        started, steps = time.perf_counter(), 0
        while time.perf_counter() - started < args.minutes * 60:
            trainer.train_step()
            steps += 1
        seconds = time.perf_counter() - started
        grid, columns = trainer.sample_grid()
        (out / f"grid-{preset}.png").write_bytes(encode_png(image_grid(grid, columns)))
        fake = generated(trainer, counts)
        numbers = synthesis_quality(
            real_features, extractor(fake), generator=torch.Generator().manual_seed(0)
        )
        row = {
            "set": args.set,
            "preset": preset,
            "arch": config.model.arch,
            "minutes": round(seconds / 60, 2),
            "steps": steps,
            "images_per_s": round(steps * config.optim.batch_size / seconds, 1),
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            **{k: round(v, 4) for k, v in numbers.items() if isinstance(v, float)},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    keys = ["preset", "arch", "minutes", "steps", "images_per_s", "kid_mean", "frechet_distance", "precision",
            "recall", "density", "coverage"]  # fmt: skip
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(key, "")) for key in keys) + " |")
    if args.json:
        machine = {"device": device_name(torch.device("cpu"))}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, **machine}) + "\n")


if __name__ == "__main__":
    main()
