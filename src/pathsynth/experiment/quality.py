"""The ``quality`` stage: how close the generated images are to the real training fold.

KID, Frechet distance and precision/recall/density/coverage on the penultimate-layer features of
the honest/original seed-0 classifier (trained on the real training fold), standard KID/FID on
Inception-v3 features when the user supplied its weights, and the memorisation check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from pathsynth.classify.networks import build_classifier
from pathsynth.config import sanitise, save_record
from pathsynth.experiment.context import StageContext
from pathsynth.imaging.crops import random_crops
from pathsynth.metrics.features import ClassifierFeatures, InceptionFeatures
from pathsynth.metrics.memorisation import NearestRealNeighbours, memorisation_check
from pathsynth.metrics.registry import synthesis_quality
from pathsynth.report.schema import Memorisation, Neighbours, QualityRecord, SynthesisQuality

FEATURE_EXTRACTOR = (
    "penultimate layer of the honest/original seed-0 classifier (trained on the real training fold)"
)


def quality(context: StageContext) -> dict[str, Any]:
    """Synthesis quality and memorisation of the generated images, into ``quality.json``."""
    sets = context.sets()
    if sets.synthetic is None:
        return {"skipped": "no generated images"}
    if not context.paths.reference_classifier.exists():
        return {"skipped": "no honest/original classifier to take features from"}
    config = context.config.classifier
    model = build_classifier(
        dataclasses.replace(config, device="cpu"), len(sets.real_train.images.class_names)
    )
    model.load_state_dict(torch.load(context.paths.reference_classifier, weights_only=True))
    extractor = ClassifierFeatures(model)
    synthetic = sets.synthetic.images.images
    real = sets.real_train.images.images
    if real.shape[-1] != synthetic.shape[-1]:  # the generator made crops: compare with crops
        real = random_crops(real, synthetic.shape[-1], torch.Generator().manual_seed(0))
    real_features = extractor(real)
    synthetic_features = extractor(synthetic)
    numbers: dict[str, Any] = synthesis_quality(
        real_features, synthetic_features, generator=torch.Generator().manual_seed(0)
    )
    if context.config.inception_weights:
        inception = InceptionFeatures(context.config.inception_weights, device=context.device)
        standard = synthesis_quality(
            inception(real), inception(synthetic), names=("kid", "fd"),
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        numbers.update({f"inception_{name}": value for name, value in standard.items()})
    memorised = memorisation_check(
        synthetic, real, synthetic_features=synthetic_features, real_features=real_features
    )
    record = QualityRecord(
        quality=SynthesisQuality(feature_extractor=FEATURE_EXTRACTOR, **sanitise(numbers)),
        memorisation=Memorisation(
            threshold_ratio=memorised.near_copy_ratio,
            flagged=memorised.n_near_copies,
            total=len(synthetic),
            pixel=_neighbours(memorised.pixel),
            feature=_neighbours(memorised.feature) if memorised.feature else None,
        ),
    )
    save_record(record, context.paths.quality)
    return {"flagged": memorised.n_near_copies}


def _neighbours(neighbours: NearestRealNeighbours) -> Neighbours:
    distances = neighbours.distance.double()
    return Neighbours(
        median_distance=float(distances.median()),
        min_distance=float(distances.min()),
        real_median_nn_distance=float(neighbours.real_median_distance),
        real_flag_rate=float(neighbours.real_flag_rate),
    )
