"""The ``quality`` stage: how close the generated images are to the real training fold.

KID, Frechet distance and precision/recall/density/coverage on the features ``quality``
(:class:`~pathsynth.experiment.config.QualityConfig`) chooses:

- **a backbone** (``--quality-backbone NAME --quality-backbone-weights FILE``, or the
  experiment's own classifier backbone when it has weights, e.g. an SSL file from
  ``pathsynth pretrain``): one vector per image, real and generated alike, from the image's first
  input centre-cropped to the generated images' side. Real images' vectors come from, and go
  into, the catalog's embeddings table, so a rerun or another experiment on the same images and
  backbone computes none of them again. The reference classifier's numbers are added as
  ``classifier_*`` for comparison.
- **the reference classifier**: the penultimate layer of the honest/original seed-0 classifier
  (trained on the real training fold), on random crops of the real inputs at the generated
  side; the default when no backbone has weights (see ``QualityConfig``).

Standard KID/FID on Inception-v3 features are added when the user supplied its weights (never
downloaded), and the memorisation check runs in pixel space and in the chosen feature space.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from pathsynth.backbones.load import Backbone, load_backbone
from pathsynth.classify.networks import build_classifier
from pathsynth.config import sanitise, save_record
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.probe import ExperimentEmbeddings
from pathsynth.experiment.protocols import ExperimentSets, LabelledPart
from pathsynth.imaging.crops import random_crops
from pathsynth.metrics.features import ClassifierFeatures, InceptionFeatures
from pathsynth.metrics.memorisation import NearestRealNeighbours, memorisation_check
from pathsynth.metrics.registry import synthesis_quality
from pathsynth.records.schema import (
    GeneratorQualities,
    Memorisation,
    Neighbours,
    QualityRecord,
    SynthesisQuality,
)

FEATURE_EXTRACTOR = (
    "penultimate layer of the honest/original seed-0 classifier (trained on the real training fold)"
)
NO_BACKBONE = (
    "; no backbone with weights was configured (--quality-backbone/--quality-backbone-weights or "
    "classifier.backbone_weights), so the reference classifier's features are used"
)


def quality(context: StageContext) -> dict[str, Any]:
    """Synthesis quality and memorisation of the generated images, into ``quality.json`` (the
    experiment's first generator) and, when it trains several, ``quality-generators.json`` (one
    record per generator, measured alike, for the report's comparison).

    Raises:
        ConfigError, CheckpointError: a quality backbone or weights file the loader refuses.
    """
    sets = context.sets()
    if sets.synthetic is None:
        return {"skipped": "no generated images"}
    if (
        context.config.quality_backbone() is None
        and not context.paths.reference_classifier.exists()
    ):
        return {"skipped": "no honest/original classifier to take features from"}
    record = _measure(context, sets, sets.synthetic)
    save_record(record, context.paths.quality)
    outputs: dict[str, Any] = {
        "flagged": record.memorisation.flagged,
        "features": record.quality.feature_extractor,
    }
    if len(context.config.generator_kinds) > 1:
        each = {kind: _measure(context, sets, part) for kind, part in sets.generated.items()}
        save_record(GeneratorQualities(each), context.paths.generator_quality)
        outputs["generators"] = sorted(each)
    return outputs


def _measure(context: StageContext, sets: ExperimentSets, part: LabelledPart) -> QualityRecord:
    """KID, FD, precision/recall/density/coverage and the memorisation check of one generator's
    images ``part`` against the real training fold."""
    chosen = context.config.quality_backbone()
    has_reference = context.paths.reference_classifier.exists()
    synthetic = part.images.images
    generator = torch.Generator().manual_seed(0)
    if chosen is not None:
        name, weights, size = chosen
        backbone = load_backbone(name, weights, input_size=size or None)
        context.log(f"  quality on {backbone.name} features (weights {backbone.weights})")
        embeddings = ExperimentEmbeddings(
            context, backbone, str(context.device), view_side=synthetic.shape[-1]
        )
        real = embeddings.views(sets.real_train)
        synthetic = embeddings.views(part)
        real_features = embeddings.of(sets.real_train).features
        synthetic_features = embeddings.of(part).features
        extractor = _backbone_name(backbone)
        numbers: dict[str, Any] = synthesis_quality(
            real_features, synthetic_features, generator=generator
        )
        if has_reference and context.config.quality.compare_classifier:
            features = _reference_features(context, sets)
            compared = synthesis_quality(
                features(real),
                features(synthetic),
                names=("kid", "fd"),
                generator=torch.Generator().manual_seed(0),
            )
            numbers.update({f"classifier_{key}": value for key, value in compared.items()})
    else:
        real = sets.real_train.images.images
        if real.shape[-1] != synthetic.shape[-1]:  # the generator made crops: compare with crops
            real = random_crops(real, synthetic.shape[-1], torch.Generator().manual_seed(0))
        features = _reference_features(context, sets)
        real_features, synthetic_features = features(real), features(synthetic)
        extractor = FEATURE_EXTRACTOR + NO_BACKBONE
        numbers = synthesis_quality(real_features, synthetic_features, generator=generator)
    if context.config.inception_weights:
        numbers.update(_inception_numbers(context, real, synthetic))
    memorised = memorisation_check(
        synthetic, real, synthetic_features=synthetic_features, real_features=real_features
    )
    return QualityRecord(
        quality=SynthesisQuality(feature_extractor=extractor, **sanitise(numbers)),
        memorisation=Memorisation(
            threshold_ratio=memorised.near_copy_ratio, flagged=memorised.n_near_copies,
            total=len(synthetic), pixel=_neighbours(memorised.pixel),
            feature=_neighbours(memorised.feature) if memorised.feature else None,
        ),
    )  # fmt: skip


def _inception_numbers(
    context: StageContext, real: torch.Tensor, synthetic: torch.Tensor
) -> dict[str, Any]:
    """KID and FD on the Inception-v3 features of the weights file the user gave."""
    assert context.config.inception_weights
    inception = InceptionFeatures(context.config.inception_weights, device=context.device)
    standard = synthesis_quality(
        inception(real),
        inception(synthetic),
        names=("kid", "fd"),
        generator=torch.Generator().manual_seed(0),
    )
    return {f"inception_{name}": value for name, value in standard.items()}


def _backbone_name(backbone: Backbone) -> str:
    return (
        f"{backbone.name} backbone ({backbone.dim} dims, weights {backbone.weights}, "
        f"sha256 {backbone.weights_sha256[:12]}, {backbone.spec.size} px), one vector per image "
        "from its first input centre-cropped to the generated side"
    )


def _reference_features(context: StageContext, sets: ExperimentSets) -> ClassifierFeatures:
    """Penultimate features of the honest/original seed-0 classifier."""
    config = context.config.classifier
    model = build_classifier(
        dataclasses.replace(config, device="cpu"),
        len(sets.real_train.images.class_names),
        weights=False,
    )
    model.load_state_dict(torch.load(context.paths.reference_classifier, weights_only=True))
    return ClassifierFeatures(model)


def _neighbours(neighbours: NearestRealNeighbours) -> Neighbours:
    distances = neighbours.distance.double()
    return Neighbours(
        median_distance=float(distances.median()),
        min_distance=float(distances.min()),
        real_median_nn_distance=float(neighbours.real_median_distance),
        real_flag_rate=float(neighbours.real_flag_rate),
    )
