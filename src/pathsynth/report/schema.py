"""The schema of ``results.json``: one typed record of every number an experiment produced.

The experiment fills a :class:`Results` in one place (``pathsynth.experiment.results``) and writes
it with :func:`write_results`; the report reads it back with :func:`read_results` and hands the
typed objects to the template, which renders under ``StrictUndefined``: a field the template names
that the schema lacks fails the render (and the tests), instead of printing ``n/a``.

Numbers that can be undefined are ``float | None``; NaN and infinities never reach the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathsynth.config import load_record, save_record
from pathsynth.metrics.aggregate import MeanInterval

SCHEMA_VERSION = 1
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
PAPER_REFERENCE = {  # Berezsky et al. 2019: CNN accuracy, image-level 7:3 split after expansion
    "histology": {"original": 0.84, "synthetic": 0.965},
    "cytology": {"original": 0.75, "synthetic": 0.955},
}


@dataclass(frozen=True)
class ExperimentInfo:
    """What ran: name, modality, source, preset, protocols, seeds, classes, when and with what."""

    name: str
    modality: str
    source: str
    preset: str
    protocols: list[str]
    seeds: int
    classes: list[str]
    created: str
    pathsynth_version: str
    folds: int = 1  # K >= 2: patient-level K-fold cross-validation, every real image tested once


@dataclass(frozen=True)
class SplitInfo:
    """How the real images were split (``image_level``: no patient kept whole)."""

    name: str
    unit: str
    test: float
    val: float
    seed: int
    image_level: bool


@dataclass(frozen=True)
class ExternalInfo:
    """The external test set: its source, licence, images tested, and the images of classes the
    classifiers do not know (left out, per class)."""

    source: str
    licence: str
    citation: str
    images: int
    other_classes: dict[str, int]


@dataclass(frozen=True)
class DataInfo:
    """The real data: source, its licence and citation, the split and per-fold class counts, and
    the external test set where there is one."""

    source: str
    licence: str
    citation: str
    split: SplitInfo
    counts: dict[str, dict[str, int]]
    external: ExternalInfo | None = None


@dataclass(frozen=True)
class StageTiming:
    """One stage of the run with its wall time."""

    name: str
    seconds: float | None
    status: str


@dataclass(frozen=True)
class Roc:
    """A one-vs-rest ROC curve and its area."""

    fpr: list[float]
    tpr: list[float]
    auc: float | None


@dataclass(frozen=True)
class Curves:
    """A classifier's training curves, one entry per epoch."""

    epoch: list[int]
    train_loss: list[float | None]
    val_loss: list[float | None]
    val_balanced_accuracy: list[float | None]


@dataclass(frozen=True)
class SeedResult:
    """One classifier run: its test numbers, confusion matrix, ROC curves and training curves."""

    seed: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    macro_auc: float | None
    confusion_matrix: list[list[int]]
    roc: dict[str, Roc | None]
    curves: Curves
    fold: int | None = None  # in a cross-validation, the fold it was trained and tested on


@dataclass(frozen=True)
class ConditionResult:
    """One protocol x training condition over its seeds; ``summary`` maps each of
    :data:`SUMMARY_METRICS` to its mean and interval (``None`` where undefined in a seed)."""

    protocol: str
    train_on: str
    train_images: int
    per_seed: list[SeedResult]
    summary: dict[str, MeanInterval | None]


@dataclass(frozen=True)
class Comparison:
    """``b - a`` of one metric on the same splits and seeds, with paired tests."""

    protocol: str
    a: str
    b: str
    metric: str
    difference: float
    difference_interval: list[float | None]
    t_p_value: float | None
    wilcoxon_p_value: float | None
    n: int


@dataclass(frozen=True)
class SynthesisQuality:
    """Distribution distances between real training and synthetic images on one feature space;
    ``inception_*`` only where the user supplied Inception-v3 weights, ``classifier_*`` only
    where the main numbers are on a backbone's features."""

    feature_extractor: str
    kid_mean: float | None
    kid_std: float | None
    kid_subset_size: int
    frechet_distance: float | None
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None
    inception_kid_mean: float | None = None
    inception_kid_std: float | None = None
    inception_kid_subset_size: int | None = None
    inception_frechet_distance: float | None = None
    classifier_kid_mean: float | None = None  # on the reference classifier's features, where
    classifier_kid_std: float | None = None  #   the main numbers are on a backbone's
    classifier_kid_subset_size: int | None = None
    classifier_frechet_distance: float | None = None


@dataclass(frozen=True)
class Neighbours:
    """Nearest-real-image distances in one space, and how often real images themselves would be
    flagged as near-copies of another real image (the baseline flag rate)."""

    median_distance: float
    min_distance: float
    real_median_nn_distance: float
    real_flag_rate: float


@dataclass(frozen=True)
class Memorisation:
    """The memorisation check: synthetic images flagged as near-copies of a training image."""

    threshold_ratio: float
    flagged: int
    total: int
    pixel: Neighbours
    feature: Neighbours | None


@dataclass(frozen=True)
class QualityRecord:
    """What the quality stage measured (the file ``quality.json``)."""

    quality: SynthesisQuality
    memorisation: Memorisation


@dataclass(frozen=True)
class GeneratorQualities:
    """Quality and memorisation of each generator an experiment trained, measured alike (the file
    ``quality-generators.json``, written when it trains more than one)."""

    generators: dict[str, QualityRecord]


@dataclass(frozen=True)
class ClassSelection:
    """Selective synthesis of one class: how many generated images were kept, and the class's
    thresholds (``confidence_from``: ``validation`` quantile or ``fixed``)."""

    generated: int
    kept: int
    kept_by_floor: int
    near_copies: int
    min_confidence: float
    max_distance: float
    confidence_from: str

    @property
    def fraction(self) -> float:
        """The kept fraction (0 for a class with no generated image)."""
        return self.kept / self.generated if self.generated else 0.0


@dataclass(frozen=True)
class SelectionSummary:
    """Selective synthesis of the generated images: settings and per-class kept counts."""

    feature_extractor: str
    settings: dict[str, Any]
    per_class: dict[str, ClassSelection]
    generated: int
    kept: int


@dataclass(frozen=True)
class ImageSelection:
    """One generated image's selection scores and decision."""

    image_id: int
    label: str
    confidence: float
    distance: float
    copy_ratio: float
    near_copy: bool
    kept: bool
    reason: str


@dataclass(frozen=True)
class SelectionRecord:
    """What the select stage decided (the file ``selection.json``)."""

    summary: SelectionSummary
    images: list[ImageSelection]


@dataclass(frozen=True)
class GeneratorInfo:
    """The generator run of the experiment."""

    kind: str
    run_id: str
    run_dir: str
    stats_jsonl: str
    seconds: float | None
    steps: int


@dataclass(frozen=True)
class Examples:
    """Example arrays for the report's figures, relative to the results file."""

    affine: str | None = None
    real_vs_synthetic: str | None = None


@dataclass(frozen=True)
class Results:
    """Every number of one experiment (the file ``results.json``)."""

    experiment: ExperimentInfo
    data: DataInfo
    stages: list[StageTiming]
    conditions: dict[str, ConditionResult]
    comparisons: list[Comparison]
    synthesis_quality: SynthesisQuality | None
    memorisation: Memorisation | None
    generator: GeneratorInfo | None
    configs: dict[str, dict[str, Any]]
    examples: Examples = field(default_factory=Examples)
    external: dict[str, ConditionResult] = field(default_factory=dict)  # on the external test set
    external_comparisons: list[Comparison] = field(default_factory=list)
    selection: SelectionSummary | None = None  # selective synthesis, where the experiment ran it
    generators: dict[str, QualityRecord] = field(default_factory=dict)  # per generator kind, when
    #   the experiment trained several (--generator both)
    paper_reference: dict[str, dict[str, float]] = field(default_factory=lambda: PAPER_REFERENCE)
    schema: int = SCHEMA_VERSION


def write_results(results: Results, path: Path) -> None:
    """Write ``results`` as strict JSON, atomically."""
    save_record(results, path)


def read_results(path: Path) -> Results:
    """Read a ``results.json`` written by :func:`write_results`.

    Raises:
        DataError: the file is missing or unreadable, is not JSON, is of another schema version,
            or does not match the schema (the message names the field).
    """
    remedy = "rerun `pathsynth reproduce` to remake it"
    return load_record(Results, path, "results file", ("schema", SCHEMA_VERSION, remedy))
