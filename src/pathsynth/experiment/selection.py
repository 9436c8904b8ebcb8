"""The ``select`` stage: selective synthesis of the generated images, from the real training fold.

Each generated image (of any generator kind: the stage reads the experiment's generated part, not
the generator) is scored against the experiment's REAL TRAINING FOLD only:

- the confidence of the honest/original seed-0 classifier (trained on the training fold minus its
  validation groups) in the image's intended class;
- its distance, on that classifier's penultimate features, to the nearest real training images of
  the class;
- the memorisation check (near-copies of a real training image are rejected).

Per-class thresholds come from :class:`~pathsynth.selection.SelectionConfig`: the confidence
quantile is taken over the real validation images (training fold, held out from the classifier),
the distance quantile over the real training images' own distances to their class. The test fold
and any external test set are never read here. Each image's scores and decision go into the
catalog (``selection_scores``, under the experiment's name) and ``selection.json``; conditions
with the ``:selected`` suffix train on the kept images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from pathsynth.catalog.api import SelectionRow, store_selection
from pathsynth.classify.evaluate import ImagePredictions, evaluate_images
from pathsynth.config import save_record, to_plain
from pathsynth.experiment.classification import reference_classifier, reference_validation
from pathsynth.experiment.context import StageContext
from pathsynth.experiment.protocols import LabelledPart
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.features import ClassifierFeatures
from pathsynth.report.schema import (
    ClassSelection,
    ImageSelection,
    SelectionRecord,
    SelectionSummary,
)
from pathsynth.selection import (
    SelectionConfig,
    class_thresholds,
    decide,
    real_reference_distances,
    score_images,
)

FEATURE_EXTRACTOR = (
    "penultimate layer of the honest/original seed-0 classifier (trained on the real training fold)"
)


def select(context: StageContext) -> dict[str, Any]:
    """Score and select the generated images; skipped when no condition trains on selected ones."""
    if not context.config.selects:
        return {"skipped": "no condition trains on selected generated images"}
    sets = context.sets()
    if sets.synthetic is None:
        return {"skipped": "no generated images"}
    model = reference_classifier(context, sets)
    record = select_generated(
        model,
        sets.real_train,
        reference_validation(context, sets),
        sets.synthetic,
        context.config.selection,
        context.config.classifier,
    )
    method = {"experiment": context.name, **to_plain(record.summary)}
    rows = [
        SelectionRow(
            image.image_id, image.confidence,
            record.summary.per_class[image.label].min_confidence, image.distance,
            record.summary.per_class[image.label].max_distance, image.copy_ratio,
            image.near_copy, image.kept, image.reason,
        )
        for image in record.images
    ]  # fmt: skip
    store_selection(context.workspace, context.name, rows, method)
    save_record(record, context.paths.selection)
    for name, counts in record.summary.per_class.items():
        context.log(
            f"  {name}: kept {counts.kept} of {counts.generated} ({counts.fraction:.0%}; "
            f"{counts.kept_by_floor} by the floor, {counts.near_copies} near-copies)"
        )
    return {"generated": record.summary.generated, "kept": record.summary.kept}


def select_generated(
    model: torch.nn.Module,
    real_train: LabelledPart,
    validation: LabelledPart,
    generated: LabelledPart,
    config: SelectionConfig,
    classifier: Any,
) -> SelectionRecord:
    """Score ``generated`` against the real training fold and decide which to keep.

    Args:
        model: the classifier trained on the real training fold (minus ``validation``).
        real_train: the real training fold (the validation groups included).
        validation: the real validation part, held out from ``model``'s training.
        generated: the generated images, with their catalog ids.
        config: the thresholds.
        classifier: the classifier config (``eval_batch_size``, ``tta``, ``crop_size``,
            ``grid_stride``), so that confidences are read as the classifier is tested.

    Returns:
        Per-image scores and decisions, and per-class counts and thresholds.

    Raises:
        DataError: a class without real training images, or what the memorisation check refuses.
    """
    class_names = list(generated.images.class_names)
    labels = generated.images.labels.cpu()
    images = generated.images.images.cpu()

    def predict(part: TensorImageSet, ids: torch.Tensor | None) -> ImagePredictions:
        return evaluate_images(
            model, part, image_ids=ids, batch_size=classifier.eval_batch_size,
            tta=classifier.tta, crop_size=classifier.crop_size,
            crop_stride=classifier.grid_stride,
        )  # fmt: skip

    generated_probabilities = predict(generated.images, None).probabilities
    validated = predict(validation.images, validation.ids)  # one row per validation image
    validation_labels = validated.labels
    validation_confidence = validated.probabilities[
        torch.arange(len(validation_labels)), validation_labels
    ]
    # the generator makes crops of the real inputs: compare with crops of the same size
    real = real_train.images.images.cpu()
    if real.shape[-1] != images.shape[-1]:
        real = random_crops(real, images.shape[-1], torch.Generator().manual_seed(0))
    extractor = ClassifierFeatures(model)
    real_features = extractor(real)
    real_labels = real_train.images.labels.cpu()
    scores = score_images(
        generated_probabilities, labels, images, extractor(images), real, real_features,
        real_labels, config,
    )  # fmt: skip
    reference = real_reference_distances(
        real_features, real_labels, real_train.ids.cpu(), config.neighbours
    )
    thresholds = class_thresholds(
        config, len(class_names), reference, real_labels, validation_confidence, validation_labels
    )
    decision = decide(scores, labels, thresholds, config.keep_floor)
    per_class = {
        name: ClassSelection(
            generated=int((labels == c).sum()),
            kept=int(decision.kept[labels == c].sum()),
            kept_by_floor=sum(
                1 for i in torch.nonzero(labels == c).flatten().tolist()
                if decision.reasons[i] == "kept:floor"
            ),
            near_copies=int(scores.near_copy[labels == c].sum()),
            min_confidence=thresholds.min_confidence[c],
            max_distance=thresholds.max_distance[c],
            confidence_from=thresholds.confidence_from[c],
        )
        for c, name in enumerate(class_names)
    }  # fmt: skip
    summary = SelectionSummary(
        feature_extractor=FEATURE_EXTRACTOR,
        settings=dataclasses.asdict(config),
        per_class=per_class,
        generated=len(labels),
        kept=int(decision.kept.sum()),
    )
    image_rows = [
        ImageSelection(
            image_id=int(generated.ids[i]), label=class_names[int(labels[i])],
            confidence=float(scores.confidence[i]), distance=float(scores.distance[i]),
            copy_ratio=float(scores.copy_ratio[i]), near_copy=bool(scores.near_copy[i]),
            kept=bool(decision.kept[i]), reason=decision.reasons[i],
        )
        for i in range(len(labels))
    ]  # fmt: skip
    return SelectionRecord(summary, image_rows)
