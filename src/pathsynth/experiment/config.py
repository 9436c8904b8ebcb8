"""The experiment's configuration: one frozen dataclass that holds every stage's config.

The GAN, diffusion and classifier configs are nested whole, so ``--set gan.optim.steps=500``,
``--set diffusion.sampling.guidance=3``,
``--set classifier.epochs=30`` or ``--set preprocess.size=96`` reach any key through the one
mechanism of :mod:`pathsynth.config`. The GAN trains on the experiment's network inputs, so its
``data`` group always follows ``preprocess`` (set ``preprocess.*``, never ``gan.data.*``); so does the diffusion model's.

``smoke`` is for tests (under a minute on 2 CPU cores); ``quick`` finishes on 2 CPU cores within
20 minutes per modality (BACH: 16.7 minutes measured) and shows real, if modest, results; ``paper`` is the reference work's full
schedule (128x128, 3000 GAN epochs over a 1000-image expansion, 5 seeds) and wants a GPU;
``gpu`` is quick's design (fields at a magnification, random crops, grid testing) at twice the
magnification and crop size, for one GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pathsynth.classify.config import CLASSIFIER, FROZEN_KINDS, KINDS, ClassifierConfig
from pathsynth.config import Presets, to_plain
from pathsynth.diffusion.config import DIFFUSION, DiffusionConfig
from pathsynth.errors import ConfigError, DataError
from pathsynth.gan.config import TrainConfig
from pathsynth.gan.presets import GAN
from pathsynth.imaging.config import STAIN_METHODS, AffineConfig
from pathsynth.imaging.patches import PREPROCESS, PreprocessConfig
from pathsynth.records.conditions import (
    CONDITIONS,
    GENERATOR_KINDS,
    NAMED_CONDITIONS,
    PROTOCOLS,
    SELECTED,
    Condition,
    check_condition,
)
from pathsynth.selection.config import SelectionConfig
from pathsynth.training.config import DataConfig

MODALITIES = ("histology", "cytology")
QUALITY_FEATURES = ("auto", "backbone", "classifier")


@dataclass(frozen=True)
class QualityConfig:
    """Which features the ``quality`` stage measures synthesis quality on (experiment/quality.py).

    ``auto`` takes a backbone when the experiment has one with weights: ``backbone`` below when
    named, else the classifier's own ``backbone_weights`` (where an SSL backbone from
    ``pathsynth pretrain`` or a foundation model's file is given). Without any backbone weights it
    falls back to ``classifier`` (the honest/original seed-0 classifier's penultimate features):
    a random-init backbone is no domain feature either, and that classifier at least learnt this
    fold; ``features=backbone`` asks for the random-init backbone all the same.

    Args: see the comment on each field.
    """

    features: str = "auto"  # "auto" | "backbone" (always a timm backbone, random init when no
    #   weights) | "classifier" (penultimate layer of the honest/original seed-0 classifier)
    backbone: str = ""  # timm architecture or hf-hub:org/name; "" = classifier.backbone
    backbone_weights: str | None = None  # its state dict / .safetensors / hf-hub id; None with
    #   backbone "" = classifier.backbone_weights (an SSL backbone file when the experiment has one)
    backbone_input_size: int = 0  # side the backbone sees; 0 = its pretrained config's
    compare_classifier: bool = True  # with backbone features, also report FD and KID on the
    #   reference classifier's features (classifier_* numbers), for comparison

    def __post_init__(self) -> None:
        if self.features not in QUALITY_FEATURES:
            raise ConfigError(
                f"quality.features must be one of {', '.join(QUALITY_FEATURES)}, "
                f"got {self.features!r}"
            )
        if self.backbone_input_size != 0 and self.backbone_input_size < 16:
            raise ConfigError(
                f"quality.backbone_input_size must be 0 or at least 16, got "
                f"{self.backbone_input_size}"
            )


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one ``reproduce`` run does, resolved and saved with its results.

    Args: see the comment on each field.
    """

    preset: str = "quick"  # the named preset this was resolved from
    modality: str = "histology"  # "histology" | "cytology": chooses the inputs of each preset
    test_fraction: float = 0.3  # real images held out per class (the paper's 7:3); folds == 1
    folds: int = 1  # 1: one split; K >= 2: patient-level K-fold cross-validation, each real image
    #   tested once, every stage after ingest run per fold (generator included)
    fold: int = -1  # the fold this experiment is, in a cross-validation (set by its parent)
    split_seed: int = 0  # seeds the patient-aware split of the real images
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)  # network inputs
    stain_normalisation: str = "none"  # "none" | "macenko" | "reinhard": the network inputs
    #   mapped to a reference fitted on the training fold only (external and test sets too)
    affine: AffineConfig = field(default_factory=AffineConfig)  # expansion ranges
    affine_per_class: int = 250  # training images per class after expansion (originals included)
    generator: str = "gan"  # "gan" | "diffusion" | "both": trained on the expanded training fold
    gan: TrainConfig = field(default_factory=lambda: GAN.resolve("modern"))  # the GAN's config
    diffusion: DiffusionConfig = field(default_factory=lambda: DIFFUSION.resolve("quick"))  # the
    #   diffusion model's config
    synthetic_per_class: int = 250  # generated images per class
    generate_seed: int = 0  # seed of the generation noise
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)  # seed/device per run
    classifier_kinds: tuple[str, ...] = ()  # classifier kinds run side by side on the same sets
    #   and seeds ("linear-probe", "logistic", "fine-tune"); () = classifier.kind alone. The first
    #   becomes classifier.kind: its results keep the bare condition name (and give the quality
    #   stage its reference classifier), the others' are "<condition>@<kind>"
    protocols: tuple[str, ...] = PROTOCOLS  # "honest" | "paper"
    conditions: tuple[str, ...] = CONDITIONS  # training sets compared; a ":selected" suffix
    #   (e.g. "affine+synthetic:selected", "affine+gan:selected") trains on the generated images
    #   selection kept of that generator only
    selection: SelectionConfig = field(default_factory=SelectionConfig)  # selective synthesis:
    #   selection.enabled adds the ":selected" variant of every condition with generated images
    seeds: int = 5  # classifier runs per condition (paired across conditions)
    validation_fraction: float = 0.15  # real training groups held out for early stopping
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda"
    inception_weights: str | None = None  # local Inception-v3 state dict: adds standard FID/KID
    quality: QualityConfig = field(default_factory=QualityConfig)  # synthesis-quality features
    external_test: str | None = None  # folder of real images from other patients/sites: every
    #   classifier is also tested there; never used for training, validation or the generator
    source_pixel_size_um: float | None = None  # micrometres per pixel of the source's images,
    #   recorded at ingest (a labels.csv pixel_size_um column wins); presets whose inputs choose
    #   a magnification (preprocess.pixel_size_um) need it
    external_pixel_size_um: float | None = None  # the same for the external test set

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"unknown modality {self.modality!r}; choose histology or cytology")
        _known("protocol", self.protocols, PROTOCOLS)
        for condition in self.conditions:
            try:
                check_condition(condition)
            except DataError as error:
                raise ConfigError(str(error)) from None
        if not self.protocols or not self.conditions:
            raise ConfigError("protocols and conditions need at least one entry each")
        _known("generator", (self.generator,), GENERATORS)
        self._check_conditions()
        _known("stain normalisation", (self.stain_normalisation,), ("none", *STAIN_METHODS))
        if self.folds < 1 or not -1 <= self.fold < max(self.folds, 1):
            raise ConfigError(f"folds must be at least 1 (got {self.folds}), fold within them")
        _known("classifier kind", self.classifier_kinds, KINDS)
        if len(set(self.classifier_kinds)) != len(self.classifier_kinds):
            raise ConfigError(f"classifier_kinds names a kind twice: {self.classifier_kinds}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {self.seeds}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        for name in ("affine_per_class", "synthetic_per_class"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    def _check_conditions(self) -> None:
        """With both generators the conditions name the generator (the default list, which the
        resolver names, aside); a condition naming a generator the experiment does not train is
        refused."""
        kinds = self.generator_kinds
        unnamed = "synthetic" in {Condition.of(c).generator for c in self.conditions}
        if len(kinds) > 1 and unnamed and self.conditions != CONDITIONS:
            raise ConfigError(
                "with generator 'both' name the generator in each condition: "
                f"{', '.join(NAMED_CONDITIONS)}"
            )
        for condition in self.conditions:
            kind = Condition.of(condition).generator
            if kind in GENERATOR_KINDS and kind not in kinds:
                raise ConfigError(
                    f"condition {condition!r} needs the {kind} generator; this experiment trains "
                    f"{' and '.join(kinds)} (set generator)"
                )

    @property
    def generator_kinds(self) -> tuple[str, ...]:
        """The generators trained, in order (the first one's images are ``synthetic``)."""
        return GENERATOR_KINDS if self.generator == "both" else (self.generator,)

    def generator_config(self, kind: str) -> TrainConfig | DiffusionConfig:
        """The resolved config of the generator ``kind`` (the field of that name).

        Raises:
            ConfigError: a kind the experiment has no config for.
        """
        if kind not in GENERATOR_KINDS:
            known = ", ".join(GENERATOR_KINDS)
            raise ConfigError(f"no config for generator {kind!r}; known: {known}")
        config: TrainConfig | DiffusionConfig = getattr(self, kind)
        return config

    def quality_backbone(self) -> tuple[str, str | None, int] | None:
        """The backbone the quality stage (and the GAN's best-checkpoint signal) measures on, as
        ``(name, weights, input_size)``, or ``None`` for the reference classifier's features
        (see :class:`QualityConfig`)."""
        chosen = self.quality
        if chosen.features == "classifier":
            return None
        if chosen.backbone:
            return chosen.backbone, chosen.backbone_weights, chosen.backbone_input_size
        classifier = self.classifier
        uses_backbone = classifier.kind in FROZEN_KINDS or classifier.network == "backbone"
        uses_backbone = uses_backbone or bool(set(self.classifier_kinds) & set(FROZEN_KINDS))
        weights = chosen.backbone_weights or (
            classifier.backbone_weights if uses_backbone else None
        )
        if chosen.features == "auto" and weights is None:
            return None
        size = chosen.backbone_input_size or classifier.backbone_input_size
        return classifier.backbone, weights, size

    @property
    def kinds(self) -> tuple[str, ...]:
        """The classifier kinds run, ``classifier.kind`` first."""
        others = tuple(kind for kind in self.classifier_kinds if kind != self.classifier.kind)
        return (self.classifier.kind, *others)

    def trains_on(self, origin: str) -> bool:
        """True when a compared condition trains on ``origin`` images ("affine", "synthetic":
        images of any generator)."""
        if origin == "synthetic":
            return any(Condition.of(c).generator is not None for c in self.conditions)
        return any(origin in Condition.of(condition).origins for condition in self.conditions)

    @property
    def selects(self) -> bool:
        """True when a compared condition trains on selected generated images."""
        return any(Condition.of(condition).selected for condition in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (saved with the state and the results)."""
        return to_plain(self)


GENERATORS = (*GENERATOR_KINDS, "both")


def _known(what: str, given: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")


# Per modality, the network inputs of each preset (see pathsynth.imaging.patches for the reasons)
# and how the classifier reads them (chosen on validation images of the training fold only,
# BENCHMARKS.md, issue 8):
# - histology ``quick``: the whole field at 3.36 um/px (BACH's shared copy, 0.84 um/px, shrunk 4x
#   to 256x192) as overlapping 128 px tiles 64 px apart that cover it; training draws random
#   64 px crops (215 um, a few glands or ducts), a new one each time, and the GAN learns from the
#   same crops; the test averages a grid of crops per image. Needs the source's pixel size
#   (reproduce --pixel-size, or a CSV column); preprocess.pixel_size_um=0 shrinks by
#   preprocess.scale instead. On validation images this beat two random patches per image
#   (balanced accuracy 0.64 vs 0.50). Those figures came from an image-level split of BACH; by
#   its patient groups (5-fold CV, 3 seeds, BENCHMARKS.md "Figures that hold on new patients") the
#   same classifier estimates 0.39 on new patients (0.45 with the seeds averaged), and neither
#   colour jitter (HED, saturation, contrast: 0.38) nor early stopping on the validation loss
#   (0.36) did better, so both stay off.
# - cytology ``quick``: the cell at a quarter of its size on a 64 px canvas (absolute size kept),
#   trained for 40 epochs: random crops of a larger canvas did not help here (0.53 vs 0.56).
#   ``smoke`` uses crops so that the tests run the crop path end to end.
_INPUTS = {
    ("histology", "smoke"): PREPROCESS.resolve(
        "histology", {"size": 32, "scale": 8.0, "patches_per_image": 2}
    ),
    ("histology", "quick"): PREPROCESS.resolve(
        "histology-grid", {"size": 128, "stride": 64, "scale": 4.0, "pixel_size_um": 3.36}
    ),
    ("histology", "paper"): PREPROCESS.resolve("histology-whole", {"size": 128}),
    ("cytology", "smoke"): PREPROCESS.resolve("cytology", {"size": 48, "scale": 8.0}),
    ("cytology", "quick"): PREPROCESS.resolve("cytology", {"size": 64, "scale": 4.0}),
    ("cytology", "paper"): PREPROCESS.resolve("cytology-resize", {"size": 128}),
    ("histology", "gpu"): PREPROCESS.resolve(
        "histology-grid", {"size": 256, "stride": 128, "scale": 2.0, "pixel_size_um": 1.68}
    ),
    ("cytology", "gpu"): PREPROCESS.resolve("cytology", {"size": 192, "scale": 2.0}),
}
# classifier fields per modality, and what else differs by modality (a BACH image is six tiles,
# so each affine child costs six inputs)
_CLASSIFIER: dict[tuple[str, str], dict[str, Any]] = {
    ("histology", "quick"): {
        "crop_size": 64,
        "crops_per_image": 2,
        "crop_stride": 64,
        "batch_size": 64,  # validation 0.664 vs 0.641 (3 seeds); epochs as fast or faster
    },
    ("cytology", "smoke"): {"crop_size": 32, "crop_stride": 16},
    ("cytology", "quick"): {"epochs": 40, "patience": 12, "min_epochs": 10},
    ("histology", "gpu"): {"crop_size": 128, "crops_per_image": 4, "crop_stride": 64},
    ("cytology", "gpu"): {"crop_size": 128, "crops_per_image": 4, "crop_stride": 32},
}
_BY_MODALITY: dict[tuple[str, str], dict[str, Any]] = {
    ("histology", "quick"): {"affine_per_class": 100},
    ("histology", "gpu"): {"affine_per_class": 150},
}

# quick's generator budget: the README's command (BACH, quick) must finish within 20 minutes on
# 2 CPU cores; 800 GAN steps of 32 took 7.5 to 11 minutes on the 2-core development VM (38 to 58
# images/s, by load) beside about 9.5 minutes of classifier fits (3 seeds x 4 conditions, NHWC,
# batches of 64), so quick trains 600: the whole command then took 16.7 minutes there
# (BENCHMARKS.md, "The README's main command")
QUICK_GENERATOR_STEPS = 600

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "affine_per_class": 150,
        "synthetic_per_class": 8,
        "gan": GAN.resolve(
            "smoke",
            {
                "optim.steps": 6,
                "run.quality_every": 3,
                "run.sample_every": 3,
                "run.checkpoint_every": 3,
            },
        ),
        "diffusion": DIFFUSION.resolve(
            "smoke", {"optim.steps": 6, "run.checkpoint_every": 3, "run.sample_every": 3}
        ),
        "classifier": CLASSIFIER.resolve("smoke"),
        "seeds": 2,
    },
    "quick": {
        "affine_per_class": 200,
        "synthetic_per_class": 150,
        "gan": GAN.resolve(
            "modern",
            {
                "model.g_channel_base": 2048,
                "model.g_channel_max": 128,
                "model.d_channel_base": 2048,
                "model.d_channel_max": 128,
                "optim.batch_size": 32,
                "optim.steps": QUICK_GENERATOR_STEPS,
                "run.quality_every": 200,
                "run.sample_every": 200,
                "run.checkpoint_every": 200,
                "run.log_every": 50,
            },
        ),
        # the GAN stage's steps: both trained about 32 images/s on the 2-core CPU for herlev
        # (bench/generators.py, BENCHMARKS.md), so equal steps are equal wall clock; sampling
        # 150 images per class at 25 guided steps adds about 1.9 images/s (9 minutes for 7)
        "diffusion": DIFFUSION.resolve(
            "quick",
            {
                "optim.steps": QUICK_GENERATOR_STEPS,
                "run.sample_every": 200,
                "run.checkpoint_every": 200,
            },
        ),
        "classifier": CLASSIFIER.resolve("quick", {"epochs": 15, "patience": 5, "min_epochs": 8}),
        "seeds": 3,
        # the leaky protocol of the reference study is a comparison, not the result: quick runs
        # the honest one alone so that the README's command fits 20 minutes on 2 CPU cores
        # (--protocols honest,paper adds it; the paper and gpu presets run both)
        "protocols": ("honest",),
    },
    "paper": {
        "affine_per_class": 250,  # 4 classes x 250 = the paper's 1000-image expansion
        "synthetic_per_class": 400,  # the paper generated about 320-475 per class
        "gan": GAN.resolve("paper", {"optim.epochs": 3000}),
        "diffusion": DIFFUSION.resolve("gpu"),
        "classifier": CLASSIFIER.resolve("paper"),
        "seeds": 5,
    },
    # quick's design at twice the magnification and crop size, for one GPU (not yet measured on
    # one: see BENCHMARKS.md); the classifier stage is meant to fit in 5 minutes on an H100
    "gpu": {
        "affine_per_class": 250,
        "synthetic_per_class": 250,
        "gan": GAN.resolve(
            "modern",
            {
                "optim.batch_size": 64,
                "optim.steps": 20000,
                "run.quality_every": 1000,
                "run.sample_every": 1000,
                "run.checkpoint_every": 1000,
            },
        ),
        "diffusion": DIFFUSION.resolve("gpu"),
        "classifier": CLASSIFIER.resolve(
            "quick",
            {"epochs": 40, "patience": 10, "min_epochs": 10, "batch_size": 128, "device": "auto"},
        ),
        "seeds": 5,
    },
}


# keys the experiment sets from one of its own, and what to set instead
_FOLLOWING = {
    "gan.data": "preprocess.* (e.g. --set preprocess.size=96)",
    "gan.run.device": "device (--device)",
    "diffusion.data": "preprocess.* (e.g. --set preprocess.size=96)",
    "diffusion.run.device": "device (--device)",
    "gan.run.quality_backbone": "quality.backbone (--quality-backbone)",
    "classifier.device": "device (--device)",
    "classifier.seed": "seeds (every seed 0..seeds-1 is run)",
}


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse keys the experiment sets itself from another one.

    Raises:
        ConfigError: the key and what to set instead.
    """
    for key in overrides:
        for following, instead in _FOLLOWING.items():
            if key == following or key.startswith(following + "."):
                raise ConfigError(f"{key} follows the experiment's settings; set {instead}")


def followed(config: ExperimentConfig, modality: str) -> ExperimentConfig:
    """``config`` for ``modality`` with the settings that follow from others set from them (the
    one place they are set; applying it twice changes nothing):

    - with both generators, the default conditions name the generator (``original+gan``, ...);
    - with selection on, each condition that adds generated images is followed by its
      ``:selected`` variant;
    - the first of ``classifier_kinds`` is ``classifier.kind``;
    - the generators learn from the experiment's inputs, cropped as the classifier sees them
      (``gan.data``, ``diffusion.data``: one concept, set by ``preprocess`` and
      ``classifier.crop_size``);
    - the GAN's best checkpoint is chosen on the features the quality stage reports on.
    """
    conditions = config.conditions
    if len(config.generator_kinds) > 1 and conditions == CONDITIONS:
        conditions = ("original", "affine", *NAMED_CONDITIONS)
    if config.selection.enabled:  # the selected variant right after each condition it selects
        conditions = tuple(
            dict.fromkeys(
                name
                for condition in conditions
                for name in (condition, condition + SELECTED)
                if name == condition or Condition.of(condition).adds_every_generated_image
            )
        )
    classifier = config.classifier
    if config.classifier_kinds and classifier.kind != config.classifier_kinds[0]:
        classifier = dataclasses.replace(classifier, kind=config.classifier_kinds[0])
    config = dataclasses.replace(
        config, modality=modality, conditions=conditions, classifier=classifier
    )
    data = DataConfig(preprocess=config.preprocess, crop=classifier.crop_size)
    gan = dataclasses.replace(config.gan, data=data)
    chosen = config.quality_backbone()
    if chosen is not None:
        name, weights, size = chosen
        run = dataclasses.replace(
            gan.run,
            quality_backbone=name,
            quality_backbone_weights=weights,
            quality_backbone_size=size,
        )
        gan = dataclasses.replace(gan, run=run)
    diffusion = dataclasses.replace(config.diffusion, data=data)  # refuses a side the UNet's
    #   levels cannot halve
    return dataclasses.replace(config, gan=gan, diffusion=diffusion)


def experiment_presets(modality: str) -> Presets[ExperimentConfig]:
    """The experiment's configs for a modality: each preset with that modality's inputs and
    classifier, overrides checked against the keys the experiment sets itself, and every config
    :func:`followed`. ``experiment_presets(m).resolve(preset, overrides)`` makes a new one;
    ``.read(plain)`` and ``.override(config, overrides)`` reopen a saved one.

    Raises:
        ConfigError: an unknown modality.
    """
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; choose histology or cytology")
    presets = {
        name: {
            **values,
            **_BY_MODALITY.get((modality, name), {}),
            "preprocess": _INPUTS[(modality, name)],
            "classifier": dataclasses.replace(
                values["classifier"], **_CLASSIFIER.get((modality, name), {})
            ),
        }
        for name, values in PRESETS.items()
    }
    return Presets(
        ExperimentConfig,
        presets,
        "experiment",
        finish=lambda config: followed(config, modality),
        check=check_overrides,
    )
