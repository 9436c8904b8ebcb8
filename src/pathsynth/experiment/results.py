"""The ``results`` stage: every number of the experiment in the report's schema, in one place,
and the example arrays the report draws its figures from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from pathsynth import __version__
from pathsynth.catalog.api import split_audit
from pathsynth.catalog.licence import source_licence
from pathsynth.config import load_record, to_plain
from pathsynth.errors import DataError
from pathsynth.experiment.classification import ClassifierRun, TestScore, read_run
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.data import external_source_name
from pathsynth.experiment.protocols import ExperimentSets
from pathsynth.experiment.synthesis import experiment_generator
from pathsynth.imaging.crops import random_crops
from pathsynth.metrics.aggregate import (
    MeanInterval,
    paired_comparison,
    summarise_over_seeds,
)
from pathsynth.metrics.classification import balanced_accuracy_of, patient_bootstrap_interval
from pathsynth.records.conditions import GENERATOR_KINDS, Condition, run_label
from pathsynth.records.schema import (
    SUMMARY_METRICS,
    Comparison,
    ConditionResult,
    DataInfo,
    EnsembleScore,
    Examples,
    ExperimentInfo,
    ExternalInfo,
    GeneratorCost,
    GeneratorInfo,
    GeneratorQualities,
    QualityRecord,
    Results,
    SeedResult,
    SelectionRecord,
    SplitInfo,
    StageTiming,
    write_results,
)

COMPARED_METRICS = ("accuracy", "balanced_accuracy")
EXAMPLES_PER_CLASS = 8  # images of each class and source kept for the report's grid


def results(context: StageContext) -> dict[str, Any]:
    """Write ``results.json`` and the example arrays."""
    built = build_results(context)
    write_results(built, context.paths.results)
    write_examples(context)
    return {"conditions": len(built.conditions)}


def build_results(context: StageContext) -> Results:
    """Every number of the experiment, typed."""
    config = context.config
    conditions = _conditions(context)
    external = _conditions(context, external=True)
    quality = (
        load_record(QualityRecord, context.paths.quality, "quality record")
        if context.paths.quality.exists()
        else None
    )
    selection = (
        load_record(SelectionRecord, context.paths.selection, "selection record").summary
        if context.paths.selection.exists()
        else None
    )
    generators = (
        load_record(
            GeneratorQualities, context.paths.generator_quality, "generator quality record"
        ).generators
        if context.paths.generator_quality.exists()
        else {}
    )
    return Results(
        experiment=ExperimentInfo(
            name=context.name,
            modality=config.modality,
            source=context.source.name,  # the folder's own name: paths tell user and patient names
            preset=config.preset,
            protocols=list(config.protocols),
            seeds=config.seeds,
            classes=list(context.state.outputs("inputs")["class_names"]),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            pathsynth_version=__version__,
        ),
        data=_data(context),
        stages=[
            StageTiming(name, record.seconds, record.status)
            for name, record in context.state.stages.items()
            if record.status == "finished"
        ],
        conditions=conditions,
        comparisons=comparisons(conditions, config.protocols, config.conditions, config.kinds),
        external=external,
        external_comparisons=comparisons(
            external, config.protocols, config.conditions, config.kinds
        ),
        synthesis_quality=quality.quality if quality else None,
        memorisation=quality.memorisation if quality else None,
        generator=_generator(context),
        configs=configs_of(config),
        examples=Examples("examples/affine.npz", "examples/real_vs_synthetic.npz"),
        selection=selection,
        generators=generators,
        generator_costs=generator_costs(context),
    )


def configs_of(config: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The resolved configs, one per concern (the report shows one block each)."""
    everything = to_plain(config)
    nested = ("preprocess", "affine", *GENERATOR_KINDS, "classifier", "quality", "selection")
    configs = {name: everything.pop(name) for name in nested}
    return {"experiment": everything, **configs}


def _data(context: StageContext) -> DataInfo:
    split = context.state.outputs("split")
    licence = source_licence(context.source)
    return DataInfo(
        source=context.source.name,
        licence=licence.licence,
        citation=licence.citation,
        split=SplitInfo(
            name=context.split_name,
            unit=split["unit"],
            test=context.config.test_fraction,
            val=0.0,
            seed=context.config.split_seed,
            image_level=bool(split.get("image_level")),
        ),
        counts=split.get("counts", {}),
        external=_external_data(context),
        audits=[split_audit(context.workspace, context.split_name)],
    )


def _external_data(context: StageContext) -> ExternalInfo | None:
    if not context.config.external_test:
        return None
    folder = Path(context.config.external_test)
    licence = source_licence(folder)
    inputs = context.state.outputs("inputs")
    return ExternalInfo(
        source=external_source_name(context),
        licence=licence.licence,
        citation=licence.citation,
        images=int(inputs["images"]["external"]),
        other_classes=inputs.get("external_other_classes", {}),
    )


def _generator(context: StageContext) -> GeneratorInfo | None:
    if not context.state.finished("generator"):
        return None
    record = context.state.stages["generator"]
    if "run_dir" not in record.outputs:  # skipped: no condition trained on generated images
        return None
    generator = experiment_generator(context.config, context.device)
    summary = generator.describe(Path(record.outputs["run_dir"]))
    return GeneratorInfo(
        kind=summary.kind,
        run_id=summary.run_id,
        run_dir=summary.run_dir,
        stats_jsonl=summary.stats_jsonl,
        seconds=record.seconds,
        steps=int(record.outputs["steps"]),
    )


def generator_costs(context: StageContext) -> dict[str, GeneratorCost]:
    """Training and sampling wall time of each generator the experiment trained and sampled,
    from what the ``generator`` and ``generate`` stages recorded (``None`` where a stage of an
    older pathsynth recorded no time); empty when no generator was trained."""
    config = context.config
    if not (context.state.finished("generator") and context.state.finished("generate")):
        return {}
    trained, made = context.state.outputs("generator"), context.state.outputs("generate")
    if "run_dir" not in trained or "images" not in made:
        return {}
    first = config.generator_kinds[0]
    runs = trained.get("runs", {first: trained})
    sampled = made.get("by_generator", {first: made})
    costs = {}
    for kind in config.generator_kinds:
        run, samples = runs[kind], sampled[kind]
        steps, images = int(run["steps"]), int(samples["images"])
        batch_size = config.generator_config(kind).optim.batch_size
        train_seconds, sample_seconds = run.get("train_seconds"), samples.get("sample_seconds")
        costs[kind] = GeneratorCost(
            train_seconds=train_seconds,
            train_steps=steps,
            train_images_per_s=_per_second(steps * batch_size, train_seconds),
            train_device=run.get("train_device"),
            sample_seconds=sample_seconds,
            sampled_images=images,
            sample_images_per_s=_per_second(images, sample_seconds),
            sample_device=samples.get("sample_device"),
        )
    return costs


def _per_second(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 3) if seconds else None


def _conditions(context: StageContext, external: bool = False) -> dict[str, ConditionResult]:
    """Every kind x protocol x condition with a finished run, scored on the held-out test set or
    (with ``external``) on the external test set; keyed ``<protocol>/<label>`` (:func:`run_label`)."""
    config = context.config
    found: dict[str, ConditionResult] = {}
    for kind in config.kinds:
        for protocol in config.protocols:
            for condition in config.conditions:
                label = run_label(condition, kind, config.classifier.kind)
                runs = [read_run(context, protocol, label, seed) for seed in range(config.seeds)]
                scored = [
                    (run, run.external if external else run.test) for run in runs if run is not None
                ]
                done = [(run, score) for run, score in scored if score is not None]
                if done:
                    found[f"{protocol}/{label}"] = _condition(protocol, label, done)
    return found


def _condition(
    protocol: str, condition: str, runs: list[tuple[ClassifierRun, TestScore]]
) -> ConditionResult:
    per_seed = [
        SeedResult(
            seed=run.seed,
            accuracy=_defined(score.summary["accuracy"]),
            balanced_accuracy=_defined(score.summary["balanced_accuracy"]),
            macro_f1=_defined(score.summary["macro_f1"]),
            macro_auc=score.summary.get("macro_auc"),
            confusion_matrix=score.confusion_matrix,
            roc=score.roc,
            curves=run.curves,
        )
        for run, score in runs
    ]
    return ConditionResult(
        protocol,
        condition,
        runs[0][0].train_inputs,
        per_seed,
        summary_over_runs(per_seed),
        ensemble=seed_ensemble([score for _, score in runs]),
    )


def seed_ensemble(scores: list[TestScore]) -> EnsembleScore | None:
    """The seeds' models averaged into one prediction per image: their class probabilities'
    mean, scored. ``None`` when a run kept no per-image probabilities or the runs tested
    different images (the paper protocol draws its test set per seed)."""
    first = scores[0]
    if not first.probabilities or any(
        score.image_ids != first.image_ids or score.labels != first.labels for score in scores
    ):
        return None
    mean = np.mean([np.asarray(score.probabilities) for score in scores], axis=0)
    predicted = mean.argmax(axis=1).tolist()
    return ensemble_score(len(scores), mean.shape[1], first.image_ids, first.labels, predicted)


def ensemble_score(
    members: int,
    classes: int,
    image_ids: list[int],
    labels: list[int],
    predicted: list[int],
    patients: list[int] | None = None,
) -> EnsembleScore:
    """An ensemble's predictions of ``classes`` classes scored (with ``patients``, one per
    image, also the interval with whole patients resampled)."""
    matrix = confusion_matrix(labels, predicted, labels=range(classes))
    interval = None
    if patients is not None:
        interval = list(patient_bootstrap_interval(labels, predicted, patients))
    return EnsembleScore(
        members=members,
        accuracy=float(np.trace(matrix) / matrix.sum()),
        balanced_accuracy=balanced_accuracy_of(matrix),
        confusion_matrix=matrix.tolist(),
        image_ids=image_ids,
        labels=labels,
        predicted=predicted,
        patient_interval=interval,
    )


def summary_over_runs(runs: list[SeedResult]) -> dict[str, MeanInterval | None]:
    """Mean and 95% interval of each summary metric over runs (seeds, or folds x seeds)."""
    # every summary metric is a fraction: with few runs the t-interval can pass [0, 1]
    return summarise_over_seeds(
        [{metric: getattr(run, metric) for metric in SUMMARY_METRICS} for run in runs],
        bounds=(0.0, 1.0),
    )


def _defined(value: float | None) -> float:
    if value is None:  # accuracy, balanced accuracy and F1 exist for any non-empty test set
        raise DataError("a classifier run recorded no accuracy; rerun `pathsynth classify`")
    return float(value)


def comparisons(
    conditions: dict[str, ConditionResult],
    protocols: tuple[str, ...],
    names: tuple[str, ...],
    kinds: tuple[str, ...] = (),
) -> list[Comparison]:
    """Every condition against ``original`` under the same protocol and classifier kind, every
    ``:selected`` condition against the same condition without selection, every condition that
    adds generated images to affine ones against ``affine`` alone, and with several ``kinds``
    (``classifier.kind`` first) every other kind against the first on the same condition; all
    paired by seed (and fold)."""
    pairs: list[tuple[str, str]] = []
    primary = kinds[0] if kinds else ""
    for kind in kinds or ("",):

        def label(condition: str, kind: str = kind) -> str:
            return run_label(condition, kind, primary)

        pairs += [(label("original"), label(c)) for c in names if c != "original"]
        for name in names:
            parsed = Condition.of(name)
            if parsed.selected and parsed.base in names:
                pairs.append((label(parsed.base), label(name)))
            if parsed.base.startswith("affine+") and "affine" in names:
                pairs.append((label("affine"), label(name)))
    for kind in kinds[1:]:
        pairs += [(c, run_label(c, kind, primary)) for c in names]
    found = []
    for protocol in protocols:
        for a_name, b_name in dict.fromkeys(pairs):
            a_result = conditions.get(f"{protocol}/{a_name}")
            b_result = conditions.get(f"{protocol}/{b_name}")
            if a_result is None or b_result is None:
                continue
            for metric in COMPARED_METRICS:
                a = [getattr(seed, metric) for seed in a_result.per_seed]
                b = [getattr(seed, metric) for seed in b_result.per_seed]
                if len(a) != len(b) or len(a) < 2:
                    continue
                paired = paired_comparison(a, b)
                difference: MeanInterval = paired.difference
                found.append(
                    Comparison(
                        protocol=protocol,
                        a=a_name,
                        b=b_name,
                        metric=metric,
                        difference=difference.mean,
                        difference_interval=[difference.low, difference.high],
                        t_p_value=paired.t_p_value,
                        wilcoxon_p_value=paired.wilcoxon_p_value,
                        n=paired.n,
                    )
                )
    return found


def write_examples(context: StageContext) -> None:
    """The arrays behind the report's example figures: affine children, and per class the real
    training images beside each generator's (``real_vs_synthetic.npz``: ``sources`` names the
    sources in order, ``real`` first, and ``<source>_<class>`` holds up to
    :data:`EXAMPLES_PER_CLASS` images of each)."""
    sets = context.sets()
    folder = context.paths.examples
    folder.mkdir(exist_ok=True)
    affine = _affine_examples(sets)
    if affine is not None:
        np.savez_compressed(folder / "affine.npz", originals=affine[0], children=affine[1])
    if sets.generated:
        arrays: dict[str, Any] = {"sources": np.array(["real", *sets.generated])}
        side = next(iter(sets.generated.values())).images.images.shape[-1]
        for i, name in enumerate(sets.real_train.images.class_names):
            real = sets.real_train.images.images[sets.real_train.images.labels == i]
            real = real[:EXAMPLES_PER_CLASS]
            for kind, part in sets.generated.items():
                fake = part.images.images[part.images.labels == i][:EXAMPLES_PER_CLASS]
                arrays[f"{kind}_{name}"] = fake.permute(0, 2, 3, 1).numpy()
            if real.shape[-1] != side:  # generated crops: show real crops beside them
                real = random_crops(real, side, torch.Generator().manual_seed(i))
            arrays[f"real_{name}"] = real.permute(0, 2, 3, 1).numpy()
        np.savez_compressed(folder / "real_vs_synthetic.npz", **arrays)


def _affine_examples(sets: ExperimentSets) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to four training images with the most affine children, each beside up to five of its
    own children: one row per image and per child (in a patch mode an image has a row per tile;
    its first tile stands for it)."""
    children = sets.affine_train
    if children is None or not len(children.images):
        return None
    first_real = _first_rows(sets.real_train.ids)
    rows_of: dict[int, list[int]] = {}
    for row in _first_rows(children.ids).values():
        rows_of.setdefault(int(children.parents[row]), []).append(row)
    ranked = [i for i in first_real if i in rows_of]
    ranked = sorted(ranked, key=lambda i: len(rows_of[i]), reverse=True)[:4]
    if not ranked:
        return None
    per_row = min(5, *(len(rows_of[i]) for i in ranked))
    originals = sets.real_train.images.images[[first_real[i] for i in ranked]]
    made = torch.stack([children.images.images[rows_of[i][:per_row]] for i in ranked])
    return originals.permute(0, 2, 3, 1).numpy(), made.permute(0, 1, 3, 4, 2).numpy()


def _first_rows(ids: torch.Tensor) -> dict[int, int]:
    """Each catalog id's first row, in the order the ids first appear."""
    first: dict[int, int] = {}
    for row, image_id in enumerate(ids.tolist()):
        first.setdefault(int(image_id), row)
    return first
