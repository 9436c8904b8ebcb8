"""What every stage gets: the workspace, the resolved config, the folder, the device, the state.

Stages read what earlier stages recorded through :class:`StageContext` and return their own
outputs; they never write ``state.json`` themselves (the driver in ``pipeline`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pathsynth.catalog.workspace import Workspace
from pathsynth.config import load_record
from pathsynth.executors import ExecutorSpec
from pathsynth.experiment.config import ExperimentConfig
from pathsynth.experiment.protocols import ExperimentSets, LabelledPart
from pathsynth.experiment.state import ExperimentPaths, ExperimentState, StageRecord
from pathsynth.files import atomic_path
from pathsynth.records.schema import SelectionRecord


@dataclass
class StageContext:
    """One experiment as its stages see it.

    Args:
        workspace: the workspace (its catalog, store, runs and cache).
        config: the resolved experiment config.
        state: the recorded state (stages read earlier stages' outputs here).
        paths: the experiment folder's files.
        device: where networks run.
        log: called with one line of progress text.
        checkpoint: saves the state now (a stage records a run folder before a long step).
        record: the record of the stage now running (its outputs so far).
        executor: where the stage's independent units (folds, classifier fits) run.
    """

    workspace: Workspace
    config: ExperimentConfig
    state: ExperimentState
    paths: ExperimentPaths
    device: torch.device
    log: Callable[[str], None]
    checkpoint: Callable[[], None]
    record: StageRecord = field(default_factory=StageRecord)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)

    @property
    def source(self) -> Path:
        """The folder of real images."""
        return Path(self.state.source)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.state.name

    @property
    def split_name(self) -> str:
        """The catalog split of the real images this experiment uses (in a cross-validation, its
        fold's split of those its parent made)."""
        if self.state.parent is not None:
            return real_split_name(self.state.parent, self.config.fold)
        return real_split_name(self.name)

    def sets(self) -> ExperimentSets:
        """The real folds and whatever affine and synthetic images the stages have made."""
        inputs = torch.load(self.paths.inputs, weights_only=False)
        sets = ExperimentSets(
            LabelledPart.from_state(inputs["train"]), LabelledPart.from_state(inputs["test"])
        )
        if "external" in inputs:
            sets.external = LabelledPart.from_state(inputs["external"])
        if self.paths.affine.exists():
            affine = torch.load(self.paths.affine, weights_only=False)
            sets.affine_train = LabelledPart.from_state(affine["train"])
            if "all" in affine:  # the paper protocol's children of every real image
                sets.affine_all = LabelledPart.from_state(affine["all"])
        if self.paths.synthetic.exists():
            synthetic = torch.load(self.paths.synthetic, weights_only=False)
            sets.synthetic = LabelledPart.from_state(synthetic)
        for kind in self.config.generator_kinds:
            if self.paths.generated(kind).exists():
                state = torch.load(self.paths.generated(kind), weights_only=False)
                sets.generated[kind] = LabelledPart.from_state(state)
        if sets.synthetic is not None and len(self.config.generator_kinds) == 1:
            sets.generated[self.config.generator_kinds[0]] = sets.synthetic
        if self.paths.selection.exists():  # catalog ids are unique: one list serves every kind
            kept = kept_image_ids(self.paths.selection)
            if sets.synthetic is not None:
                sets.selected_synthetic = sets.synthetic.select(
                    torch.isin(sets.synthetic.ids, kept)
                )
            for kind, part in sets.generated.items():
                sets.selected_generated[kind] = part.select(torch.isin(part.ids, kept))
        return sets


def kept_image_ids(path: Path) -> torch.Tensor:
    """The catalog ids of the generated images a ``selection.json`` kept."""
    record = load_record(SelectionRecord, path, "selection record")
    return torch.tensor(
        [image.image_id for image in record.images if image.kept], dtype=torch.int64
    )


def real_split_name(experiment: str, fold: int | None = None) -> str:
    """The catalog split of an experiment's real images (``fold``: one fold's, in a
    cross-validation; the folds' splits are ``<name>-real-f<k>``)."""
    return f"{experiment}-real" if fold is None else f"{experiment}-real-f{fold}"


def save_tensors(path: Path, data: dict[str, Any]) -> None:
    """``torch.save`` of ``data``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
