"""Patient-level K-fold cross-validation: K fold experiments, their numbers pooled.

With ``folds = K >= 2`` the experiment deals its source's real images to K parts (whole patients
or slide groups at a time) and runs K fold experiments, each an ordinary experiment whose test set
is one part: affine expansion, the generator and every classifier see the other K-1 parts only, so
every real image is tested exactly once per seed. The parent's results pool the folds: each
condition holds folds x seeds runs, and the paired comparisons pair them by fold and seed.
Each generator's costs are the mean of a fold's (every fold trains its own). Synthesis quality,
memorisation, selection, the generators' comparison, the generator curves and the examples are
those of fold 0.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pathsynth.catalog.api import source_fold
from pathsynth.classify.bundle import BUNDLE_SUFFIX
from pathsynth.classify.listing import listing_path
from pathsynth.errors import DataError
from pathsynth.experiment.context import StageContext, real_split_name
from pathsynth.experiment.results import (
    comparisons,
    configs_of,
    ensemble_score,
    summary_over_runs,
)
from pathsynth.files import atomic_path
from pathsynth.metrics.aggregate import MeanInterval, summarise_over_seeds
from pathsynth.metrics.classification import balanced_accuracy_of
from pathsynth.records.schema import (
    ConditionResult,
    DataInfo,
    EnsembleScore,
    Examples,
    GeneratorCost,
    Results,
    SeedResult,
    SplitInfo,
    StageTiming,
    read_results,
    write_results,
)


def fold_name(name: str, fold: int) -> str:
    """The experiment name of one fold of the cross-validation ``name``."""
    return f"{name}-fold{fold}"


def pooled_results(context: StageContext) -> dict[str, Any]:
    """The parent's ``results.json``: every fold's numbers pooled."""
    folders = [
        context.paths.folder.parent / fold_name(context.name, k)
        for k in range(context.config.folds)
    ]
    folds = [read_results(folder / "results.json") for folder in folders]
    write_results(pool(context, folds, folders), context.paths.results)
    bundles = gather_bundles(folders, context.paths.folder / "classify")
    context.log(f"  {bundles} fold classifier bundles gathered under classify/ (one per condition)")
    return {"folds": len(folds), "bundles": bundles}


def gather_bundles(folders: list[Path], classify: Path) -> int:
    """Every fold's classifier bundles in the cross-validation's own ``classify/<protocol>/
    <condition>/`` as ``fold<k>-seed<s>.bundle`` (hard links where the file system allows), so
    that ``pathsynth predict`` on a condition's folder averages the folds x seeds models the
    pooled estimate describes. Returns how many were gathered."""
    gathered = 0
    for k, folder in enumerate(folders):
        for bundle in sorted((folder / "classify").rglob(f"*{BUNDLE_SUFFIX}")):
            target = classify / bundle.parent.relative_to(folder / "classify")
            target = target / f"fold{k}-{bundle.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            for source, name in ((bundle, target), (listing_path(bundle), listing_path(target))):
                if source.exists():
                    _link_or_copy(source, name)
            gathered += 1
    return gathered


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` where the file system allows, else a copy; made
    atomically."""
    with atomic_path(target) as partial:
        partial.unlink()  # made empty by atomic_path; a link takes its name
        try:
            os.link(source, partial)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source, partial)


def _pooled(
    per_fold: list[dict[str, ConditionResult]], patient_of: Mapping[int, int]
) -> dict[str, ConditionResult]:
    """Each condition's runs over the folds, fold by fold in seed order (comparisons pair runs by
    position, so every fold must hold the same seeds of every condition).

    Raises:
        DataError: a fold that lacks a condition, or a seed of one, that another fold has.
    """
    keys = sorted({key for conditions in per_fold for key in conditions})
    for k, conditions in enumerate(per_fold):
        seeds = {key: [run.seed for run in conditions[key].per_seed] for key in conditions}
        first = {key: [run.seed for run in per_fold[0][key].per_seed] for key in per_fold[0]}
        if sorted(conditions) != keys or seeds != first:
            raise DataError(
                f"fold {k} lacks runs the other folds have; rerun `pathsynth reproduce`"
            )
    pooled: dict[str, ConditionResult] = {}
    for key in per_fold[0]:
        parts = [conditions[key] for conditions in per_fold]
        runs = [
            dataclasses.replace(seed, fold=k)
            for k, part in enumerate(parts)
            for seed in part.per_seed
        ]
        train_images = round(sum(part.train_images for part in parts) / len(parts))
        pooled[key] = ConditionResult(
            parts[0].protocol,
            parts[0].train_on,
            train_images,
            runs,
            summary_over_runs(runs),
            pooled_over_folds(runs),
            _pooled_ensemble([part.ensemble for part in parts], patient_of),
        )
    return pooled


def _pooled_ensemble(
    folds: list[EnsembleScore | None], patient_of: Mapping[int, int]
) -> EnsembleScore | None:
    """Every fold's seed ensemble pooled (each real image tested once), with the interval of its
    balanced accuracy over whole patients resampled; ``None`` when a fold has none."""
    known = [fold for fold in folds if fold is not None]
    if not known or len(known) < len(folds):
        return None
    ids = [i for fold in known for i in fold.image_ids]
    labels = [label for fold in known for label in fold.labels]
    predicted = [p for fold in known for p in fold.predicted]
    if not ids or any(i not in patient_of for i in ids):  # results kept no per-image predictions
        return None
    classes = len(known[0].confusion_matrix)
    patients = [patient_of[i] for i in ids]
    return ensemble_score(known[0].members, classes, ids, labels, predicted, patients)


def pooled_over_folds(runs: list[SeedResult]) -> MeanInterval | None:
    """Per seed, the balanced accuracy of every fold's predictions pooled into one confusion
    matrix; their mean and 95% interval over the seeds. A fold that tests some classes only
    (BACH's Benign has two patient groups, so three of five folds test no Benign image) counts
    whole here, where its own balanced accuracy averages over the classes it tests."""
    matrices: dict[int, np.ndarray] = {}
    for run in runs:
        matrix = np.asarray(run.confusion_matrix, dtype=np.int64)
        matrices[run.seed] = matrices[run.seed] + matrix if run.seed in matrices else matrix
    per_seed = [{"balanced_accuracy": balanced_accuracy_of(m)} for m in matrices.values()]
    return summarise_over_seeds(per_seed, bounds=(0.0, 1.0))["balanced_accuracy"]


def _pooled_costs(per_fold: list[dict[str, GeneratorCost]]) -> dict[str, GeneratorCost]:
    """Each generator's cost in one fold, averaged over the folds that recorded it: seconds,
    steps and image counts are means, rates the folds' images over their seconds, and a device
    every fold used is named once (several are joined with "; ": a device name holds commas)."""
    pooled = {}
    for kind in dict.fromkeys(kind for costs in per_fold for kind in costs):
        parts = [costs[kind] for costs in per_fold if kind in costs]
        pooled[kind] = GeneratorCost(
            train_seconds=_mean_seconds([part.train_seconds for part in parts]),
            train_steps=round(sum(part.train_steps for part in parts) / len(parts)),
            train_images_per_s=_rate([(p.train_images_per_s, p.train_seconds) for p in parts]),
            train_device=_devices([part.train_device for part in parts]),
            sample_seconds=_mean_seconds([part.sample_seconds for part in parts]),
            sampled_images=round(sum(part.sampled_images for part in parts) / len(parts)),
            sample_images_per_s=_rate([(p.sample_images_per_s, p.sample_seconds) for p in parts]),
            sample_device=_devices([part.sample_device for part in parts]),
        )
    return pooled


def _mean_seconds(seconds: list[float | None]) -> float | None:
    """The mean, or ``None`` when a fold recorded no time."""
    known = [s for s in seconds if s is not None]
    return round(sum(known) / len(known), 3) if known and len(known) == len(seconds) else None


def _rate(parts: list[tuple[float | None, float | None]]) -> float | None:
    """Images per second over all folds: each fold's images (rate x seconds) over all seconds."""
    known = [(rate, seconds) for rate, seconds in parts if rate is not None and seconds is not None]
    if len(known) < len(parts):
        return None
    seconds = sum(s for _, s in known)
    return round(sum(r * s for r, s in known) / seconds, 3) if seconds else None


def _devices(devices: list[str | None]) -> str | None:
    named = list(dict.fromkeys(d for d in devices if d is not None))
    return "; ".join(named) if named else None


def pool(context: StageContext, folds: list[Results], folders: list[Path]) -> Results:
    """One :class:`Results` of K fold results (see the module text)."""
    config = context.config
    first = folds[0]
    source = context.source.resolve().name
    patient_of = {
        image.image_id: image.patient_id
        for image in source_fold(context.workspace, config.modality, source)
    }
    conditions = _pooled([result.conditions for result in folds], patient_of)
    # every fold tests the same external images: their seed ensembles are not pooled
    external = _pooled([result.external for result in folds], {}) if first.external else {}
    relative = Path("..") / folders[0].name
    counts = {
        f"fold {k} test": result.data.counts.get("test", {}) for k, result in enumerate(folds)
    }
    return Results(
        experiment=dataclasses.replace(first.experiment, name=context.name, folds=config.folds),
        data=DataInfo(
            first.data.source,
            first.data.licence,
            first.data.citation,
            SplitInfo(
                real_split_name(context.name) + "-f*",
                first.data.split.unit,
                1 / config.folds,
                0.0,
                config.split_seed,
                first.data.split.image_level,
            ),
            counts,
            first.data.external,
            [audit for result in folds for audit in result.data.audits],
        ),
        stages=[
            StageTiming(f"fold {k}", sum(s.seconds or 0.0 for s in result.stages), "finished")
            for k, result in enumerate(folds)
        ],
        conditions=conditions,
        comparisons=comparisons(conditions, config.protocols, config.conditions, config.kinds),
        synthesis_quality=first.synthesis_quality,
        memorisation=first.memorisation,
        selection=first.selection,
        generator=first.generator,
        generators=first.generators,
        generator_costs=_pooled_costs([result.generator_costs for result in folds]),
        configs=configs_of(config),
        examples=Examples(
            str(relative / first.examples.affine) if first.examples.affine else None,
            str(relative / first.examples.real_vs_synthetic)
            if first.examples.real_vs_synthetic
            else None,
        ),
        external=external,
        external_comparisons=comparisons(
            external, config.protocols, config.conditions, config.kinds
        ),
    )
