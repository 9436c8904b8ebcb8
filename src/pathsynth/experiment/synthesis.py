"""The ``generator`` and ``generate`` stages: train the configured generator(s) on the expanded
training fold only, then sample each into the catalog.

With one generator the stages' outputs are as they always were; with ``generator: both`` they
also hold one entry per kind under ``runs`` (``generator``) and ``by_generator`` (``generate``),
the first kind's run stays the stage's ``run_dir`` and its images ``synthetic.pt``, and every
kind's images are saved as ``synthetic-<kind>.pt`` for the conditions that name it.

Both speak only the :class:`~pathsynth.generators.ImageGenerator` interface, so a new generator
kind plugs in through :data:`pathsynth.generators.GENERATORS` and the experiment's config.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathsynth.devices import device_name
from pathsynth.errors import DataError
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.context import StageContext, save_tensors
from pathsynth.experiment.protocols import LabelledPart, concatenate
from pathsynth.generators import ImageGenerator, generator_for, store_samples
from pathsynth.imaging.png import decode_png
from pathsynth.imaging.tensorset import TensorImageSet


def experiment_generator(
    config: ExperimentConfig, device: torch.device, kind: str | None = None
) -> ImageGenerator:
    """The experiment's generator of ``kind`` (default: its first) with its config, computing
    on ``device``.

    Raises:
        ConfigError: a kind the experiment has no config for.
    """
    kind = kind or config.generator_kinds[0]
    own = config.generator_config(kind)
    run = dataclasses.replace(own.run, device=str(device))
    return generator_for(kind, dataclasses.replace(own, run=run))


def train_generator(context: StageContext) -> dict[str, Any]:
    """Each configured generator trained on the real training fold and its affine children,
    continuing the run this stage started before a kill (from its last checkpoint); skipped when
    no condition trains on generated images.

    Each run's record holds ``train_seconds``, the wall time of its training calls (summed over
    a SIGTERM and the rerun that continues it; a process killed outright loses the time since
    its last resume) and ``train_device``.

    Raises:
        DataError: a run was interrupted (rerun to resume it).
    """
    if not context.config.trains_on("synthetic"):
        return {"skipped": "no condition trains on generated images"}
    sets = context.sets()
    assert sets.affine_train is not None  # the affine stage ran
    training = concatenate([sets.real_train, sets.affine_train]).images
    record = context.record
    kinds = context.config.generator_kinds
    runs: dict[str, dict[str, Any]] = record.outputs.setdefault("runs", {})
    for kind in kinds:
        if not runs.get(kind, {}).get("finished"):
            _train_one(context, kind, training, runs)
    first = {key: value for key, value in runs[kinds[0]].items() if key != "finished"}
    outputs = {**first, "training_images": len(training)}
    if len(kinds) > 1:
        outputs["runs"] = runs
    return outputs


def _train_one(
    context: StageContext, kind: str, training: TensorImageSet, runs: dict[str, dict[str, Any]]
) -> None:
    """Train (or continue) the ``kind`` generator's run, recording it in ``runs`` as it goes.

    Raises:
        DataError: the run was interrupted (rerun to resume it).
    """
    record, first = context.record, kind == context.config.generator_kinds[0]
    started = runs.get(kind, {}).get("run_dir")
    resume_dir = Path(started) if started and Path(started).is_dir() else None
    if resume_dir is not None:
        context.log(f"  continuing the {kind} run {resume_dir}")

    def opened(run_dir: Path) -> None:
        runs[kind] = {"run_dir": str(run_dir)}
        if first:
            record.outputs["run_dir"] = str(run_dir)
        context.checkpoint()

    trained_before = float(runs.get(kind, {}).get("train_seconds", 0.0))
    generator = experiment_generator(context.config, context.device, kind)
    started_at = time.perf_counter()
    run = generator.train(
        training,
        context.workspace.runs,
        f"{context.name}-{generator.kind}",
        f"experiment {context.name}: real training fold and its affine children",
        resume_dir=resume_dir,
        log=lambda line: context.log(f"  {line}"),
        on_open=opened,
    )
    timing = {
        "train_seconds": round(trained_before + time.perf_counter() - started_at, 3),
        "train_device": device_name(context.device),
    }
    if run.status != "finished":
        runs[kind].update(timing)  # a SIGTERM'd run's time counts when it is continued
        context.checkpoint()
        raise DataError(f"{kind} training was interrupted at step {run.step}; rerun to resume")
    runs[kind] = {"kind": kind, "run_dir": str(run.run_dir), "steps": run.step, "finished": True,
                  **timing, **run.numbers}  # fmt: skip
    context.checkpoint()


def generate(context: StageContext) -> dict[str, Any]:
    """Images of every class from each trained generator, into the catalog with provenance
    (skipped with the generator)."""
    trained = context.state.outputs("generator")
    if "run_dir" not in trained:
        return {"skipped": "no generator was trained"}
    kinds = context.config.generator_kinds
    run_dirs = {kind: trained.get("runs", {}).get(kind, {}).get("run_dir") for kind in kinds}
    run_dirs[kinds[0]] = trained["run_dir"]
    made: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        part, made[kind] = _sample_into_catalog(context, kind, Path(str(run_dirs[kind])))
        if kind == kinds[0]:
            save_tensors(context.paths.synthetic, part.to_state())
        if len(kinds) > 1:
            save_tensors(context.paths.generated(kind), part.to_state())
    outputs = dict(made[kinds[0]])
    if len(kinds) > 1:
        outputs["by_generator"] = made
    return outputs


def _sample_into_catalog(
    context: StageContext, kind: str, run_dir: Path
) -> tuple[LabelledPart, dict[str, Any]]:
    """One generator's images stored in the catalog, as a labelled part, and what to record
    (with ``sample_seconds``: the wall time of loading the checkpoint and sampling, storing
    excluded, and ``sample_device``)."""
    generator = experiment_generator(context.config, context.device, kind)
    started_at = time.perf_counter()  # loading the checkpoint and sampling; not the catalog
    samples = generator.sample(
        run_dir,
        context.config.synthetic_per_class,
        context.config.generate_seed,
        device=str(context.device),
    )
    images = list(samples.images)
    sample_seconds = time.perf_counter() - started_at
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
    return part, {
        "images": len(images),
        "checkpoint_step": samples.step,
        "checkpoint": str(samples.checkpoint),
        "sample_seconds": round(sample_seconds, 3),
        "sample_device": device_name(context.device),
    }
