"""``pathsynth reproduce``: the driver that runs the experiment's stages in order, resumably.

Each stage's domain work lives in its own module and takes a
:class:`~pathsynth.experiment.context.StageContext`; this driver owns everything around it
(MONAI's engine/handler split): the recorded state, timing, logging, and the order. A finished
stage is recorded in ``state.json`` at once, so a rerun skips it, and a killed stage restarts
cleanly (the generator from its last checkpoint, the classifiers from the last finished run).

1. ``ingest``: the source into the catalog (idempotent);
2. ``split``: the REAL images, stratified 7:3, by patient/group where the catalog knows them;
3. ``inputs``: both folds preprocessed to network inputs (cached uint8 tensors);
4. ``affine``: class-balanced affine expansion of the training fold (honest protocol) and of all
   real images (paper protocol), stored in the catalog with parents and parameters;
5. ``generator``: the configured generator trained on the expanded training fold only;
6. ``generate``: generated images per class, stored in the catalog with run, step and seed;
7. ``select``: selective synthesis (when a condition trains on selected generated images): each
   generated image scored against the real training fold, kept or rejected, into the catalog;
8. ``classify``: every protocol x condition x seed;
9. ``quality``: KID, Frechet distance, precision/recall/density/coverage and memorisation;
10. ``results``: ``results.json`` in the report's schema, and the example arrays;
11. ``report``: the HTML report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pathsynth.catalog.lock import held_alone
from pathsynth.catalog.workspace import Workspace
from pathsynth.config import to_plain
from pathsynth.devices import resolve_device
from pathsynth.errors import ConfigError, DataError
from pathsynth.executors import ExecutorSpec, Task, run_tasks
from pathsynth.experiment import (
    classification,
    crossval,
    data,
    expansion,
    quality,
    results,
    selection,
    synthesis,
)
from pathsynth.experiment.config import ExperimentConfig, experiment_presets
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.state import ExperimentPaths, ExperimentState, StageRecord
from pathsynth.files import check_name
from pathsynth.records.conditions import Condition
from pathsynth.report import write_report

Stage = Callable[[StageContext], dict[str, Any]]


def _report(context: StageContext) -> dict[str, Any]:
    """The HTML report of ``results.json``."""
    page = write_report(context.paths.results, context.paths.report)
    context.log(f"  report written to {page}")
    return {"page": str(page)}


def _folds(context: StageContext) -> dict[str, Any]:
    """Every fold of a cross-validation, run to its results (each a whole experiment): here one
    after another, or as units of the context's executor (a finished fold is not sent again)."""
    parent = context.state
    classes = tuple(parent.classes) if parent.classes else None
    units = [
        (k, dataclasses.replace(context.config, fold=k), crossval.fold_name(parent.name, k))
        for k in range(context.config.folds)
    ]
    if not context.executor.parallel:
        for k, config, name in units:

            def log(line: str, k: int = k) -> None:
                context.log(f"  fold {k}: {line}")

            run_fold(
                context.workspace.root, context.source, config, classes, name, parent.name, log
            )
        return {"folds": context.config.folds}
    root, source = context.workspace.root, context.source
    tasks = [
        Task(
            f"fold {k}", f"{__name__}:run_fold", (root, source, config, classes, name, parent.name)
        )
        for k, config, name in units
        if not _finished(context.workspace, name, "results")
    ]
    run_tasks(context.executor, tasks, context.log, context.workspace.db_url, "folds")
    return {"folds": context.config.folds}


def run_fold(
    root: Path,
    source: Path,
    config: ExperimentConfig,
    classes: tuple[str, ...] | None,
    name: str,
    parent: str,
    log: Callable[[str], None] | None = None,
) -> None:
    """One fold of the cross-validation ``parent`` run to its results (in any process that sees
    the workspace; ``log`` defaults to printing its lines under the fold's name)."""

    def printed(line: str) -> None:
        print(f"  {name}: {line}", flush=True)

    space = Workspace(root)
    fold = Experiment.create(space, source, config, classes, name, log or printed, parent=parent)
    fold.run(until="results")


def _finished(space: Workspace, name: str, stage: str) -> bool:
    """Whether the experiment ``name`` has finished ``stage``."""
    path = ExperimentPaths(folder(space, name)).state
    return path.exists() and ExperimentState.load(path).finished(stage)


STAGES: dict[str, Stage] = {
    "ingest": data.ingest,
    "split": data.split,
    "inputs": data.inputs,
    "affine": expansion.affine,
    "generator": synthesis.train_generator,
    "generate": synthesis.generate,
    "select": selection.select,
    "classify": classification.classify,
    "quality": quality.quality,
    "results": results.results,
    "report": _report,
}


# A cross-validation runs its folds as experiments of their own, then pools their numbers.
CV_STAGES: dict[str, Stage] = {
    "ingest": data.ingest,
    "folds": _folds,
    "results": crossval.pooled_results,
    "report": _report,
}


def check_stage(name: str) -> str:
    """``name`` when it is a stage.

    Raises:
        ConfigError: an unknown stage (the message lists the stages).
    """
    if name not in STAGES and name not in CV_STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return name


class Experiment:
    """One experiment in a workspace: its folder, recorded state, config and stages.

    Make one with :meth:`create` (a new or continued run of ``reproduce``) or :meth:`open` (an
    experiment already on record).
    """

    def __init__(
        self,
        workspace: Workspace,
        state: ExperimentState,
        config: ExperimentConfig,
        log: Callable[[str], None] = print,
        executor: ExecutorSpec | None = None,
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.state = state
        self.state.config = to_plain(config)
        self.paths = ExperimentPaths(folder(workspace, state.name))
        self.paths.folder.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.context = StageContext(
            workspace,
            config,
            state,
            self.paths,
            resolve_device(config.device),
            log,
            self._save,
            executor=executor or ExecutorSpec(),
        )

    @classmethod
    def create(
        cls,
        workspace: Workspace,
        source: Path,
        config: ExperimentConfig,
        classes: tuple[str, ...] | None,
        name: str,
        log: Callable[[str], None] = print,
        parent: str | None = None,
        executor: ExecutorSpec | None = None,
    ) -> Experiment:
        """A new experiment, or the recorded one of that name if it was made for the same data
        (``parent``: the cross-validation it is a fold of; ``executor``: where its folds or
        classifier fits run).

        Raises:
            DataError: an experiment of that name made for another modality or class subset,
                or a name that cannot name a folder and a web address as it is.
        """
        try:
            check_name(name, "experiment")
        except ValueError as error:
            raise DataError(str(error)) from None
        chosen = list(classes) if classes else None
        path = ExperimentPaths(folder(workspace, name)).state
        if path.exists():
            state = ExperimentState.load(path)
            if state.modality != config.modality or state.classes != chosen:
                raise DataError(
                    f"experiment {name!r} was made for {state.modality} (classes "
                    f"{state.classes}); use another --name"
                )
            recorded = to_plain(experiment_presets(state.modality).read(state.config))
            changed = _changed_keys(recorded, to_plain(config))  # new keys: their defaults
            if changed and state.stages:
                raise DataError(
                    f"experiment {name!r} was started with other settings ({', '.join(changed)}); "
                    "rerun it with the same options, or use another --name"
                )
        else:
            state = ExperimentState(
                name, str(source.resolve()), config.modality, chosen, {}, parent=parent
            )
        return cls(workspace, state, config, log, executor)

    @classmethod
    def open(
        cls,
        workspace: Workspace,
        name: str,
        overrides: Mapping[str, Any] | None = None,
        log: Callable[[str], None] = print,
        executor: ExecutorSpec | None = None,
    ) -> Experiment:
        """The experiment on record, its config with dotted-key ``overrides`` applied
        (``executor``: where its folds or classifier fits run).

        Raises:
            DataError: no such experiment, or one an older pathsynth wrote.
            ConfigError: an override the config refuses.
        """
        path = ExperimentPaths(folder(workspace, name)).state
        if not path.exists():
            raise DataError(
                f"no experiment {name!r} in {workspace.root}; run `pathsynth reproduce` first"
            )
        state = ExperimentState.load(path)
        configs = experiment_presets(state.modality)
        config = configs.override(configs.read(state.config), overrides or {})
        return cls(workspace, state, config, log, executor)

    def require(self, *stages: str) -> None:
        """Refuse to go on unless ``stages`` have finished.

        Raises:
            DataError: the stages that have not, and what to run.
        """
        self._own_stages(*stages)
        missing = [stage for stage in stages if not self.state.finished(stage)]
        if missing:
            raise DataError(
                f"experiment {self.state.name!r} has not run {', '.join(missing)}; "
                f"run `pathsynth reproduce` first"
            )

    def invalidate(self, stage: str) -> None:
        """Forget ``stage`` and every stage after it, and delete what they wrote in the experiment
        folder, so the next :meth:`run` redoes them (generator runs and catalog rows stay)."""
        self._own_stages(stage)
        if self.state.parent is not None:
            raise DataError(
                f"experiment {self.state.name!r} is a fold of the cross-validation "
                f"{self.state.parent!r}; rerun that one (its pooled results would go stale)"
            )
        order = list(self.stages)
        for later in order[order.index(stage) :]:
            self.state.stages.pop(later, None)
            for path in self.paths.written_by(later):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        self._save()

    def forget_selection(self) -> None:
        """Forget the ``select`` stage and what depends on it: the classifier runs of the
        ``:selected`` conditions, the results and the report (the other classifier runs, the
        reference classifier and the quality stage stay), so the next :meth:`run` selects again
        and retrains only the selected conditions.

        Raises:
            DataError: a fold of a cross-validation, or a cross-validation (its folds select).
        """
        self._own_stages("select")
        if self.state.parent is not None:
            raise DataError(
                f"experiment {self.state.name!r} is a fold of the cross-validation "
                f"{self.state.parent!r}; rerun that one (its pooled results would go stale)"
            )
        for stage in ("select", "classify", "results", "report"):
            self.state.stages.pop(stage, None)
        selected = [c for c in self.config.conditions if Condition.of(c).selected]
        for protocol in self.config.protocols:
            for condition in selected:
                shutil.rmtree(self.paths.classifier_run(protocol, condition, 0).parent)
        for stage in ("select", "results", "report"):
            for path in self.paths.written_by(stage):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        self._save()

    def _own_stages(self, *names: str) -> None:
        """Refuse stage names this experiment does not have (a fold's, asked of a
        cross-validation), naming what to use instead."""
        for name in names:
            check_stage(name)
            if name not in self.stages:
                raise DataError(
                    f"experiment {self.state.name!r} is a cross-validation: its folds "
                    f"({self.state.name}-fold0, ...) run {name!r}; it has "
                    f"{', '.join(self.stages)}"
                )

    @property
    def stages(self) -> dict[str, Stage]:
        """This experiment's stages: a cross-validation's (folds, pooled results) or a fold's."""
        is_parent = self.config.folds > 1 and self.state.parent is None
        return CV_STAGES if is_parent else STAGES

    def run(self, until: str = "report") -> Path:
        """Run every unfinished stage up to and including ``until``; returns ``results.json``.
        A cross-validation runs its folds to ``results``, then pools them.

        Raises:
            ConfigError: an unknown stage name.
            WorkspaceError: another process is running this experiment.
        """
        check_stage(until)
        stages = self.stages
        if until not in stages:
            raise ConfigError(
                f"a cross-validation stops after one of {', '.join(stages)}, not {until!r}"
            )
        with held_alone(self.paths.run_lock, f"experiment {self.state.name!r}"):
            if self.paths.state.exists():  # what another run finished since this one read it
                self.state.stages = ExperimentState.load(self.paths.state).stages
            for name, stage in stages.items():
                if self.state.finished(name):
                    self.log(f"stage {name}: already finished, skipped")
                else:
                    self._run_stage(name, stage)
                if name == until:
                    break
        return self.paths.results

    def _run_stage(self, name: str, stage: Stage) -> None:
        self.log(f"stage {name}: starting")
        record = self.state.stages.setdefault(name, StageRecord())
        self.context.record = record
        start = time.perf_counter()
        outputs = stage(self.context)
        seconds = time.perf_counter() - start
        record.status, record.seconds = "finished", round(seconds, 2)
        record.finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record.outputs = {**record.outputs, **outputs}
        self._save()
        self.log(f"stage {name}: finished in {seconds:.1f} s")

    def _save(self) -> None:
        self.state.save(self.paths.state)


def _changed_keys(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """The dotted keys whose values differ between two plain configs."""
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changed.extend(_changed_keys(old, new, f"{prefix}{key}."))
        elif old != new:
            changed.append(f"{prefix}{key}")
    return changed


def folder(workspace: Workspace, name: str) -> Path:
    """The folder of the experiment called ``name``."""
    return workspace.root / "experiments" / name
