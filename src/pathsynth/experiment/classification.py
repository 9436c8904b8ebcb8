"""The ``classify`` stage: one classifier per kind x protocol x condition x seed, each tested once.

Every run's numbers are written to its own JSON as soon as it finishes, so a killed stage goes
on from the last finished run. With several classifier kinds (``classifier_kinds``) every kind
trains on the same sets and seeds, so the results table pairs them run by run; the runs of
``classifier.kind`` keep the bare condition name, the others are ``<condition>@<kind>``
(:func:`run_label`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pathsynth.catalog.workspace import Workspace
from pathsynth.classify.bundle import Provenance, save_bundle
from pathsynth.classify.config import FROZEN_KINDS, ClassifierConfig
from pathsynth.classify.evaluate import evaluate_images
from pathsynth.classify.history import TrainingResult
from pathsynth.classify.logistic import train_logistic
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.probe import (
    FrozenFeatureClassifier,
    probe_backbone,
    train_linear_probe,
)
from pathsynth.classify.trainer import train_classifier, validation_split
from pathsynth.config import load_record, save_record
from pathsynth.devices import resolve_device
from pathsynth.errors import ConfigError
from pathsynth.executors import Task, run_tasks
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.data import stain_reference
from pathsynth.experiment.probe import ExperimentEmbeddings
from pathsynth.experiment.protocols import (
    ConditionSets,
    ExperimentSets,
    LabelledPart,
    check_external,
    honest_sets,
    paper_pool,
    paper_sets,
)
from pathsynth.experiment.state import ExperimentPaths, ExperimentState
from pathsynth.metrics.classification import ClassificationReport, RocCurve, classification_report
from pathsynth.progress import advance
from pathsynth.records.conditions import Condition, run_label
from pathsynth.records.schema import Curves, Roc
from pathsynth.timing import duration
from pathsynth.training.runs import run_identity


@dataclass(frozen=True)
class TestScore:
    """A classifier's numbers on one test set, one prediction per image; its per-image class
    probabilities (with the image's true class index) let the seeds' models be averaged into one
    prediction (empty in runs recorded before they were kept)."""

    images: int
    summary: dict[str, float | None]
    confusion_matrix: list[list[int]]
    roc: dict[str, Roc | None]
    image_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class ClassifierRun:
    """One classifier run as recorded in ``classify/<protocol>/<condition>/seed<k>.json``: its
    held-out test set's numbers and, where the experiment has one, the external test set's."""

    protocol: str
    condition: str
    seed: int
    train_inputs: int
    test: TestScore
    external: TestScore | None
    curves: Curves
    best_epoch: int
    seconds: float
    config: dict[str, Any]


def classify(context: StageContext) -> dict[str, Any]:
    """Every kind x protocol x condition x seed not yet on disk: here one after another, or as
    units of the context's executor."""
    sets = context.sets()
    config = context.config
    embeddings = _probe_embeddings(context)
    every = [
        (
            kind,
            protocol,
            condition,
            seed,
            context.paths.classifier_run(
                protocol, run_label(condition, kind, config.classifier.kind), seed
            ),
        )
        for kind in config.kinds
        for protocol in config.protocols
        for condition in config.conditions
        for seed in range(config.seeds)
    ]
    todo = [entry for entry in every if not entry[-1].exists()]
    if context.executor.parallel and len(todo) > 1:
        _fit_elsewhere(context, sets, embeddings, todo)
        return {"runs": len(todo)}
    started = time.perf_counter()
    for done, (kind, protocol, condition, seed, target) in enumerate(todo):
        run = classify_once(
            context,
            sets,
            protocol,
            condition,
            seed,
            embeddings,
            kind=kind,
            position=fit_position(done, len(todo), time.perf_counter() - started),
        )
        save_record(run, target)
        advance("classifier fits", done + 1, len(todo))
    return {"runs": len(todo)}


def _fit_elsewhere(
    context: StageContext,
    sets: ExperimentSets,
    embeddings: ExperimentEmbeddings | None,
    todo: list[tuple[str, str, str, int, Path]],
) -> None:
    """The fits of ``todo`` as units of the executor (:func:`fit_unit`); the frozen kinds'
    vectors are computed here first, so that no two units compute and store the same ones."""
    if embeddings is not None:
        for kind, protocol, condition, seed, _ in todo:
            if kind in FROZEN_KINDS:
                chosen, _ = _condition_sets(context, sets, protocol, condition, seed)
                for part in (chosen.train, chosen.validation, chosen.test, sets.external):
                    if part is not None:
                        embeddings.of(part)
    label = context.config.classifier.kind
    tasks = [
        Task(
            f"{protocol}/{run_label(condition, kind, label)} seed {seed}",
            f"{__name__}:fit_unit",
            (
                context.workspace.root,
                context.paths.folder,
                context.config,
                (kind, protocol, condition, seed),
                target,
            ),
        )
        for kind, protocol, condition, seed, target in todo
    ]
    run_tasks(context.executor, tasks, context.log, context.workspace.db_url, "classifier fits")


def fit_unit(
    root: Path,
    experiment_folder: Path,
    config: ExperimentConfig,
    fit: tuple[str, str, str, int],
    target: Path,
) -> None:
    """One classifier fit of an experiment, in any process that sees the workspace: ``fit`` is
    (kind, protocol, condition, seed); its run is written to ``target`` (nothing when it is
    there already, as after a retried unit)."""
    if target.exists():
        return
    kind, protocol, condition, seed = fit
    paths = ExperimentPaths(experiment_folder)
    context = StageContext(
        Workspace(root),
        config,
        ExperimentState.load(paths.state),
        paths,
        resolve_device(config.device),
        lambda line: print(line, flush=True),
        lambda: None,
    )
    embeddings = _probe_embeddings(context) if kind in FROZEN_KINDS else None
    run = classify_once(context, context.sets(), protocol, condition, seed, embeddings, kind=kind)
    save_record(run, target)


def fit_position(done: int, total: int, elapsed: float) -> str:
    """Where a fit stands in the stage, for its log line: ``fit 3 of 12``, and from the second
    fit on the time the rest should take at the mean pace so far (``, about 4.5 min left``)."""
    position = f"fit {done + 1} of {total}"
    if done == 0:
        return position
    left = elapsed / done * (total - done)
    return f"{position}, about {duration(left)} left"


def read_run(
    context: StageContext, protocol: str, condition: str, seed: int
) -> ClassifierRun | None:
    """The recorded run (``condition`` as :func:`run_label` names it), or ``None`` when it has
    not finished."""
    path = context.paths.classifier_run(protocol, condition, seed)
    return load_record(ClassifierRun, path, "classifier run") if path.exists() else None


def _condition_sets(
    context: StageContext, sets: ExperimentSets, protocol: str, condition: str, seed: int
) -> tuple[ConditionSets, torch.Tensor | None]:
    """The sets of one run, and the image id of each test row (``None``: rows are images)."""
    if protocol == "honest":
        generator = torch.Generator().manual_seed(10_000 + seed)
        _, held = validation_split(
            sets.real_train.images.labels,
            context.config.validation_fraction,
            generator,
            groups=sets.real_train.groups,
        )
        chosen = honest_sets(sets, condition, torch.unique(sets.real_train.groups[held]))
        return chosen, chosen.test.ids  # aggregate patches per real image
    pool = paper_pool(sets, condition)
    # the paper's unit: every pooled image on its own
    return paper_sets(pool, seed, context.config.test_fraction), None


def reference_validation(context: StageContext, sets: ExperimentSets) -> LabelledPart:
    """The real validation part of the honest/original seed-0 run: groups of the real training
    fold held out from the reference classifier's training (never the test fold)."""
    return _condition_sets(context, sets, "honest", "original", 0)[0].validation


def reference_classifier(context: StageContext, sets: ExperimentSets) -> torch.nn.Module:
    """The honest/original seed-0 classifier (trained on the real training fold minus its
    validation groups), in eval mode on the experiment's device; trained now when no run has
    saved it yet, and then recorded as that ``classify`` run when the experiment compares it (so
    the classify stage does not train it again).

    Raises:
        ConfigError: a linear-probe classifier (its features are a backbone's; the reference is a
            fine-tuned network).
    """
    config = context.config
    if config.classifier.kind == "linear-probe":
        raise ConfigError(
            "the reference classifier is fine-tuned; classifier.kind=linear-probe has none"
        )
    if not context.paths.reference_classifier.exists():
        run = classify_once(context, sets, "honest", "original", 0)
        if "honest" in config.protocols and "original" in config.conditions:
            save_record(run, context.paths.classifier_run("honest", "original", 0))
    model = build_classifier(
        dataclasses.replace(config.classifier, device="cpu"),
        len(sets.real_train.images.class_names),
    )
    state = torch.load(context.paths.reference_classifier, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(context.device).eval()


def _probe_embeddings(context: StageContext) -> ExperimentEmbeddings | None:
    """The stage's per-image embeddings when a classifier kind trains on frozen features
    (linear probe, logistic regression), else ``None``.

    Raises:
        ConfigError, CheckpointError: a backbone or weights file the loader refuses (before any
            classifier is trained or anything written).
    """
    config = context.config.classifier
    if not set(context.config.kinds) & set(FROZEN_KINDS):
        return None
    from pathsynth.experiment.probe import ExperimentEmbeddings

    backbone = probe_backbone(config)
    what = " and ".join(kind for kind in context.config.kinds if kind in FROZEN_KINDS)
    context.log(
        f"  {what.replace('-', ' ')} on {backbone.name} ({backbone.dim} dims, weights {backbone.weights}, "
        f"{backbone.spec.size} px)"
    )
    return ExperimentEmbeddings(context, backbone, str(context.device))


def classify_once(
    context: StageContext,
    sets: ExperimentSets,
    protocol: str,
    condition: str,
    seed: int,
    embeddings: ExperimentEmbeddings | None = None,
    kind: str | None = None,
    position: str = "",
) -> ClassifierRun:
    """Train one classifier of ``kind`` (default ``classifier.kind``) on the condition's
    training set and test it under the protocol (a linear head or logistic regression on
    ``embeddings`` for the frozen-feature kinds); ``position`` (:func:`fit_position`) leads its
    log line."""
    kind = kind or context.config.classifier.kind
    config = dataclasses.replace(
        context.config.classifier, kind=kind, seed=seed, device=str(context.device)
    )
    label = run_label(condition, kind, context.config.classifier.kind)
    chosen, test_ids = _condition_sets(context, sets, protocol, condition, seed)
    if sets.external is not None:
        check_external(sets.external, chosen.train, chosen.validation)
    start = time.perf_counter()
    result, test, external = _fit_and_test(sets, chosen, test_ids, config, embeddings)
    if protocol == "honest" and label == "original" and seed == 0:
        torch.save(result.model.state_dict(), context.paths.reference_classifier)
    _save_bundle(context, result.model, config, (protocol, label, seed), chosen, test)
    external_line = (
        ""
        if external is None
        else (f"; external balanced {external.summary['balanced_accuracy']:.3f}")
    )
    context.log(
        f"  {position + ': ' if position else ''}{protocol}/{label} seed {seed}: accuracy "
        f"{test.summary['accuracy']:.3f}, balanced {test.summary['balanced_accuracy']:.3f} on "
        f"{test.images} test images{external_line} ({len(chosen.train.images)} training inputs, "
        f"{time.perf_counter() - start:.0f} s)"
    )
    return ClassifierRun(
        protocol=protocol,
        condition=label,
        seed=seed,
        train_inputs=len(chosen.train.images),
        test=test,
        external=external,
        curves=_curves(result),
        best_epoch=result.best_epoch,
        seconds=round(time.perf_counter() - start, 2),
        config=dataclasses.asdict(config),
    )


def _fit_and_test(
    sets: ExperimentSets,
    chosen: ConditionSets,
    test_ids: torch.Tensor | None,
    config: ClassifierConfig,
    embeddings: ExperimentEmbeddings | None,
) -> tuple[TrainingResult, TestScore, TestScore | None]:
    """Train one classifier of ``config.kind`` on ``chosen.train`` (validated on
    ``chosen.validation``) and score it on the test part and the external set, if any.

    Raises:
        ConfigError: a frozen-feature kind without the stage's embeddings.
    """
    external = None
    if config.kind in FROZEN_KINDS:
        if embeddings is None:
            raise ConfigError(f"a {config.kind} classifier needs the stage's embeddings")
        probe = _train_probe(embeddings, chosen, config)
        test = _probe_score(probe.model, embeddings, chosen.test, probe.class_names)
        if sets.external is not None:
            external = _probe_score(probe.model, embeddings, sets.external, probe.class_names)
        return probe, test, external
    result = train_classifier(chosen.train.images, config, validation_set=chosen.validation.images)
    test = _score(result.model, chosen.test, test_ids, config)
    if sets.external is not None:
        external = _score(result.model, sets.external, sets.external.ids, config)
    return result, test, external


def _save_bundle(
    context: StageContext,
    model: torch.nn.Module,
    config: ClassifierConfig,
    run: tuple[str, str, int],
    chosen: ConditionSets,
    test: TestScore,
) -> None:
    """The trained classifier as a bundle beside its run's JSON, written before the JSON (which
    marks the run done), so a run killed in between is trained and bundled again."""
    protocol, condition, seed = run
    generator_run = None
    outputs = context.state.outputs("generator")
    kind = Condition.of(condition).generator
    trained = outputs.get("runs", {}).get(kind, {}).get("run_dir") or outputs.get("run_dir")
    if kind is not None and trained:
        generator_run = run_identity(Path(trained)).run_id
    save_bundle(
        context.paths.classifier_run(protocol, condition, seed).with_suffix(".bundle"),
        model,
        config,
        context.config.preprocess,
        list(chosen.train.images.class_names),
        Provenance(
            experiment=context.name,
            protocol=protocol,
            condition=condition,
            seed=seed,
            training_images=len(chosen.train.images),
            modality=context.config.modality,
            source=context.source.name,  # never the whole path
            generator_run_id=generator_run,
        ),
        test.summary,
        stain_reference(context),
    )


def _score(
    model: torch.nn.Module, part: LabelledPart, ids: torch.Tensor | None, config: ClassifierConfig
) -> TestScore:
    """The model's numbers on one test part (rows of one image id averaged when ids are given;
    each row's grid of crops with ``config.crop_size``, and dihedral views with ``config.tta``,
    averaged too)."""
    predictions = evaluate_images(
        model,
        part.images,
        image_ids=ids,
        batch_size=config.eval_batch_size,
        tta=config.tta,
        crop_size=config.crop_size,
        crop_stride=config.grid_stride,
    )
    image_ids = [int(str(i)) for i in predictions.image_ids]  # catalog ids or row numbers
    return _test_score(
        image_ids, predictions.labels, predictions.probabilities, predictions.class_names
    )


def _train_probe(
    embeddings: ExperimentEmbeddings, chosen: ConditionSets, config: ClassifierConfig
) -> TrainingResult:
    """A linear head (``linear-probe``) or logistic regression (``logistic``) on the per-image
    vectors of the training and validation parts."""
    class_names = list(chosen.train.images.class_names)
    model = FrozenFeatureClassifier(embeddings.backbone, len(class_names))
    train, validation = embeddings.of(chosen.train), embeddings.of(chosen.validation)
    if config.kind == "logistic":
        return train_logistic(model, train, validation, class_names, config)
    return train_linear_probe(model, train, validation, class_names, config)


def _probe_score(
    model: torch.nn.Module,
    embeddings: ExperimentEmbeddings,
    part: LabelledPart,
    class_names: list[str],
) -> TestScore:
    """The probe's numbers on one vector per test image, each named by its catalog id (as a
    fine-tuned network's are, so that seeds' and folds' predictions of one image meet)."""
    assert isinstance(model, FrozenFeatureClassifier)  # what _train_probe trains
    features = embeddings.of(part)  # in ascending catalog id order
    with torch.no_grad():
        probabilities = torch.softmax(model.head(features.features), dim=1).double()
    image_ids = torch.unique(part.ids).tolist()
    return _test_score(image_ids, features.labels, probabilities, list(class_names))


def _test_score(
    image_ids: list[int], labels: torch.Tensor, probabilities: torch.Tensor, class_names: list[str]
) -> TestScore:
    """The numbers of one test set's predictions, with the predictions themselves."""
    report = classification_report(labels.numpy(), probabilities.numpy(), class_names)
    return TestScore(
        report.n_images,
        report.summary(),
        report.confusion_matrix,
        _rocs(report),
        image_ids=image_ids,
        labels=labels.tolist(),
        probabilities=probabilities.double().round(decimals=5).tolist(),
    )


def _roc(curve: RocCurve | None) -> Roc | None:
    if curve is None:
        return None
    return Roc(curve.false_positive_rate, curve.true_positive_rate, curve.auc)


def _rocs(report: ClassificationReport) -> dict[str, Roc | None]:
    rocs = {name: _roc(curve) for name, curve in report.roc_per_class.items()}
    rocs["micro"] = _roc(report.roc_micro)
    rocs["macro"] = _roc(report.roc_macro)
    return rocs


def _curves(result: TrainingResult) -> Curves:
    history = result.history
    return Curves(
        epoch=[r.epoch for r in history],
        train_loss=[r.train_loss for r in history],
        val_loss=[r.validation_loss for r in history],
        val_balanced_accuracy=[r.validation_balanced_accuracy for r in history],
    )
