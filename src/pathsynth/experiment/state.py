"""An experiment's folder and its recorded state: what was asked, which stages finished, and how.

``<workspace>/experiments/<name>/`` holds ``state.json`` (this module's :class:`ExperimentState`),
the stages' tensors and JSON, ``results.json`` and ``report/``. :class:`ExperimentPaths` is the one
place that knows the layout. The state is written atomically after every stage, so a killed run
leaves the last finished stage on record and a rerun continues from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathsynth.config import load_record, save_record
from pathsynth.records.conditions import GENERATOR_KINDS

STATE_FORMAT = 2  # 1: pathsynth 0.1 before the typed state (refused with a message)


@dataclass(frozen=True)
class ExperimentPaths:
    """Every file of one experiment folder.

    Args:
        folder: ``<workspace>/experiments/<name>``.
    """

    folder: Path

    @property
    def state(self) -> Path:
        """The recorded state."""
        return self.folder / "state.json"

    @property
    def run_lock(self) -> Path:
        """Held by the process running the experiment (one at a time)."""
        return self.folder / ".run.lock"

    @property
    def inputs(self) -> Path:
        """The real training and test inputs, as tensors."""
        return self.folder / "inputs.pt"

    @property
    def affine(self) -> Path:
        """The affine children of the training fold and of the whole pool."""
        return self.folder / "affine.pt"

    @property
    def synthetic(self) -> Path:
        """The generated images, as tensors."""
        return self.folder / "synthetic.pt"

    def generated(self, kind: str) -> Path:
        """One generator's images, as tensors, when the experiment trains more than one."""
        return self.folder / f"synthetic-{kind}.pt"

    @property
    def selection(self) -> Path:
        """Selective synthesis: every generated image's scores and decision, per-class counts."""
        return self.folder / "selection.json"

    @property
    def reference_classifier(self) -> Path:
        """Weights of the honest/original seed-0 classifier (the quality stage's features)."""
        return self.folder / "reference-classifier.pt"

    @property
    def quality(self) -> Path:
        """Synthesis quality and the memorisation check."""
        return self.folder / "quality.json"

    @property
    def generator_quality(self) -> Path:
        """The same for each generator, when the experiment trains several."""
        return self.folder / "quality-generators.json"

    @property
    def results(self) -> Path:
        """Every number of the experiment (:class:`pathsynth.records.schema.Results`)."""
        return self.folder / "results.json"

    @property
    def examples(self) -> Path:
        """Example arrays for the report's figures."""
        return self.folder / "examples"

    @property
    def report(self) -> Path:
        """The HTML report's folder."""
        return self.folder / "report"

    def written_by(self, stage: str) -> list[Path]:
        """The files and folders ``stage`` writes here (what :meth:`Experiment.invalidate`
        deletes; generator runs live under the workspace's ``runs/`` and stay)."""
        return {
            "inputs": [self.inputs],
            "affine": [self.affine],
            "generate": [self.synthetic, *(self.generated(k) for k in GENERATOR_KINDS)],
            "select": [self.selection],
            "classify": [self.folder / "classify", self.reference_classifier],
            "quality": [self.quality, self.generator_quality],
            "results": [self.results, self.examples],
            "report": [self.report],
        }.get(stage, [])

    def classifier_run(self, protocol: str, condition: str, seed: int) -> Path:
        """One classifier run's JSON (its folder is created)."""
        folder = self.folder / "classify" / protocol / condition.replace("+", "-").replace(":", "-")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"seed{seed}.json"


@dataclass
class StageRecord:
    """One stage as recorded: ``running`` while it works, ``finished`` with its time and outputs."""

    status: str = "running"
    seconds: float | None = None
    finished: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentState:
    """What an experiment was asked to do and how far it got.

    Args:
        name: the experiment's name (its folder).
        source: the folder of real images, absolute.
        modality: ``histology`` or ``cytology``.
        classes: the class subset, or ``None`` for every class of the source.
        config: the resolved :class:`~pathsynth.experiment.config.ExperimentConfig` as plain data.
        stages: the record of every stage started, in order.
        parent: the cross-validation experiment this one is a fold of, if any.
        format: the state format (:data:`STATE_FORMAT`).
    """

    name: str
    source: str
    modality: str
    classes: list[str] | None
    config: dict[str, Any]
    stages: dict[str, StageRecord] = field(default_factory=dict)
    parent: str | None = None
    format: int = STATE_FORMAT

    def finished(self, stage: str) -> bool:
        """Whether ``stage`` has finished."""
        record = self.stages.get(stage)
        return record is not None and record.status == "finished"

    def outputs(self, stage: str) -> dict[str, Any]:
        """The outputs ``stage`` recorded (empty when it has not run)."""
        record = self.stages.get(stage)
        return record.outputs if record is not None else {}

    def save(self, path: Path) -> None:
        """Write the state atomically."""
        save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> ExperimentState:
        """Read a saved state.

        Raises:
            DataError: an unreadable or damaged file, or one an older pathsynth wrote (the
                message says to run the experiment again under another name).
        """
        remedy = "run `pathsynth reproduce` again with another --name, or delete the folder"
        return load_record(cls, path, "experiment state", ("format", STATE_FORMAT, remedy))
