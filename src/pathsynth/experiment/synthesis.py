"""The ``generator`` and ``generate`` stages: train the configured generator on the expanded
training fold only, then sample it into the catalog.

Both speak only the :class:`~pathsynth.generators.ImageGenerator` interface, so a new generator
kind plugs in through :data:`pathsynth.generators.GENERATORS` and the experiment's config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathsynth.errors import DataError
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.context import StageContext, save_tensors
from pathsynth.experiment.protocols import LabelledPart, concatenate
from pathsynth.generators import ImageGenerator, generator_for, store_samples
from pathsynth.imaging.png import decode_png
from pathsynth.imaging.tensorset import TensorImageSet


def experiment_generator(config: ExperimentConfig, device: torch.device) -> ImageGenerator:
    """The experiment's generator with its config, computing on ``device``."""
    if config.generator == "gan":
        gan = dataclasses.replace(
            config.gan, run=dataclasses.replace(config.gan.run, device=str(device))
        )
        return generator_for("gan", gan)
    return generator_for(config.generator)


def train_generator(context: StageContext) -> dict[str, Any]:
    """The generator trained on the real training fold and its affine children, continuing the
    run this stage started before a kill (from its last checkpoint); skipped when no condition
    trains on generated images."""
    if not context.config.trains_on("synthetic"):
        return {"skipped": "no condition trains on generated images"}
    sets = context.sets()
    assert sets.affine_train is not None  # the affine stage ran
    training = concatenate([sets.real_train, sets.affine_train]).images
    record = context.record
    started = record.outputs.get("run_dir")
    resume_dir = Path(started) if started and Path(started).is_dir() else None
    if resume_dir is not None:
        context.log(f"  continuing the generator run {resume_dir}")

    def opened(run_dir: Path) -> None:
        record.outputs["run_dir"] = str(run_dir)
        context.checkpoint()

    generator = experiment_generator(context.config, context.device)
    run = generator.train(
        training, context.workspace.runs, f"{context.name}-{generator.kind}",
        f"experiment {context.name}: real training fold and its affine children",
        resume_dir=resume_dir, log=lambda line: context.log(f"  {line}"), on_open=opened,
    )  # fmt: skip
    if run.status != "finished":
        raise DataError(f"generator training was interrupted at step {run.step}; rerun to resume")
    return {
        "kind": generator.kind,
        "run_dir": str(run.run_dir),
        "steps": run.step,
        "training_images": len(training),
        **run.numbers,
    }


def generate(context: StageContext) -> dict[str, Any]:
    """Images of every class from the trained generator, into the catalog with provenance
    (skipped with the generator)."""
    if "run_dir" not in context.state.outputs("generator"):
        return {"skipped": "no generator was trained"}
    run_dir = Path(context.state.outputs("generator")["run_dir"])
    generator = experiment_generator(context.config, context.device)
    samples = generator.sample(
        run_dir, context.config.synthetic_per_class, context.config.generate_seed,
        device=str(context.device),
    )  # fmt: skip
    images = list(samples.images)
    samples.images = iter(images)
    ids, _ = store_samples(context.workspace, samples, context.config.modality)
    pixels = np.stack([decode_png(image.png) for image in images])
    labels = torch.tensor([samples.class_names.index(image.class_name) for image in images])
    part = LabelledPart(
        TensorImageSet(
            torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
            labels,
            list(samples.class_names),
        ),
        torch.tensor(ids, dtype=torch.int64),
        torch.full((len(ids),), -1),
        torch.full((len(ids),), -1),
    )
    save_tensors(context.paths.synthetic, part.to_state())
    return {
        "images": len(images),
        "checkpoint_step": samples.step,
        "checkpoint": str(samples.checkpoint),
    }
