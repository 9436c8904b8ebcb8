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
    audits: list[dict[str, Any]] = field(default_factory=list)  # the split's leakage audit
    #   (pathsynth.catalog.audit, as audit_to_plain writes it), one per fold in a cross-validation


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
class EnsembleScore:
    """A condition's seeds averaged into one prediction per test image (the mean of their class
    probabilities): what one ensemble of the seeds' models scores. In a cross-validation the
    folds' ensembles are pooled into one confusion matrix."""

    members: int  # models averaged per image (the seeds)
    accuracy: float
    balanced_accuracy: float
    confusion_matrix: list[list[int]]
    image_ids: list[int] = field(default_factory=list)  # the predictions scored: catalog ids,
    labels: list[int] = field(default_factory=list)  # true and predicted class index per image
    predicted: list[int] = field(default_factory=list)
    patient_interval: list[float] | None = None  # 95% interval of balanced accuracy with whole
    #   patients (groups) resampled, where the experiment knows them (a cross-validation)


@dataclass(frozen=True)
class ConditionResult:
    """One protocol x training condition over its seeds; ``summary`` maps each of
    :data:`SUMMARY_METRICS` to its mean and interval (``None`` where undefined in a seed)."""

    protocol: str
    train_on: str
    train_images: int
    per_seed: list[SeedResult]
    summary: dict[str, MeanInterval | None]
    pooled_balanced_accuracy: MeanInterval | None = None  # in a cross-validation: per seed, the
    #   balanced accuracy of every fold's predictions pooled (one confusion matrix per seed), over
    #   the seeds: the estimate for new patients, whole even where a fold tests some classes only
    ensemble: EnsembleScore | None = None  # the seeds' models averaged (None where runs kept no
    #   per-image probabilities, or tested different images)


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
class GeneratorSelection:
    """Selective synthesis of one generator's images: per-class kept counts (with the
    thresholds, which are the experiment's and the same for every generator)."""

    per_class: dict[str, ClassSelection]
    generated: int
    kept: int

    @property
    def fraction(self) -> float:
        """The kept fraction (0 when the generator made no image)."""
        return self.kept / self.generated if self.generated else 0.0


@dataclass(frozen=True)
class SelectionSummary:
    """Selective synthesis of the generated images: settings and per-class kept counts.

    ``per_class``, ``generated`` and ``kept`` are the experiment's first generator's;
    ``generators`` holds each generator's counts by kind, the first included.
    """

    feature_extractor: str
    settings: dict[str, Any]
    per_class: dict[str, ClassSelection]
    generated: int
    kept: int
    generators: dict[str, GeneratorSelection]


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
    generator: str  # the kind that made it


@dataclass(frozen=True)
class SelectionRecord:
    """What the select stage decided (the file ``selection.json``): every generator's images,
    each with the kind that made it, and the summary."""

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
class GeneratorCost:
    """What one generator of the experiment cost in wall time: training (the generator stage's
    calls, checkpoints and quality checks included) and sampling its images (loading the
    checkpoint and sampling; storing in the catalog excluded), each with the device it ran on.
    ``None`` where an older run did not record it."""

    train_seconds: float | None
    train_steps: int
    train_images_per_s: float | None  # training images seen (steps x batch) per wall second
    train_device: str | None
    sample_seconds: float | None
    sampled_images: int
    sample_images_per_s: float | None
    sample_device: str | None


@dataclass(frozen=True)
class PublishedGenerator:
    """A generator's figures as a publication states them, shown beside this run's own and
    never measured here (``fid`` and ``inception_score`` on Inception-v3 features of that
    study's data; ``None`` where it states none)."""

    citation: str
    modality: str
    generator: str
    fid: float | None = None
    inception_score: float | None = None
    train_hours: float | None = None
    generated_images: int | None = None
    generation_minutes: float | None = None
    device: str | None = None

    @property
    def train_seconds(self) -> float | None:
        """The stated training time in seconds (``None`` where none is stated)."""
        return None if self.train_hours is None else self.train_hours * 3600.0

    @property
    def generation_seconds(self) -> float | None:
        """The stated time to generate and save the images, in seconds."""
        return None if self.generation_minutes is None else self.generation_minutes * 60.0

    @property
    def generation_images_per_s(self) -> float | None:
        """Images generated (and saved) per second, as stated."""
        if not self.generated_images or not self.generation_minutes:
            return None
        return self.generated_images / (self.generation_minutes * 60.0)


REFERENCE_STUDY = (
    "Berezsky, Liashchynskyi et al., Synthesis of biomedical images based on generative "
    "adversarial networks, Ukrainian Journal of Information Technology 1(1), 2019"
)
LATER_STUDY = (
    "Berezsky, Liashchynskyi et al., IDDM 2024, CEUR-WS vol. 3892, paper 23 (GANs compared on "
    "cytology by FID and training time, and a diffusion model beside them)"
)
PUBLISHED_GENERATORS = (  # the reference study's GAN, and the authors' later GAN-vs-diffusion
    PublishedGenerator(
        REFERENCE_STUDY,
        "histology",
        "gan (CWGAN-based, 128 px)",
        train_hours=9.0,
        generated_images=1600,
        generation_minutes=27.0,
        device="Tesla K80",
    ),
    PublishedGenerator(
        REFERENCE_STUDY,
        "cytology",
        "gan (CWGAN-based, 128 px)",
        train_hours=8.5,
        generated_images=1900,
        generation_minutes=41.0,
        device="Tesla K80",
    ),
    PublishedGenerator(
        LATER_STUDY, "cytology", "gan (the authors' GAN)", fid=3.39, inception_score=3.95
    ),
    PublishedGenerator(
        LATER_STUDY, "cytology", "diffusion (Stable Diffusion)", fid=0.63, inception_score=3.99
    ),
)


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
    generator_costs: dict[str, GeneratorCost] = field(default_factory=dict)  # per generator kind
    published_generators: list[PublishedGenerator] = field(
        default_factory=lambda: list(PUBLISHED_GENERATORS)
    )
    paper_reference: dict[str, dict[str, float]] = field(default_factory=lambda: PAPER_REFERENCE)
    schema: int = SCHEMA_VERSION

    def generator_qualities(
        self,
    ) -> dict[str, tuple[SynthesisQuality | None, Memorisation | None]]:
        """Each generator of the run, in training order, with its synthesis quality and
        memorisation: the quality stage's record of that kind, or with one generator the run's own
        fields; ``(None, None)`` where none was measured."""
        kinds = list(dict.fromkeys([*self.generator_costs, *self.generators]))
        if not kinds and self.generator is not None:
            kinds = [self.generator.kind]
        found: dict[str, tuple[SynthesisQuality | None, Memorisation | None]] = {}
        for kind in kinds:
            record = self.generators.get(kind)
            if record is not None:
                found[kind] = (record.quality, record.memorisation)
            elif not self.generators and len(kinds) == 1:
                found[kind] = (self.synthesis_quality, self.memorisation)
            else:
                found[kind] = (None, None)
        return found


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
