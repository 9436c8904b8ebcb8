"""Selective synthesis of generated images against the real training fold, on tensors.

:func:`select_generated` scores each generator's images with a classifier trained on the real
training fold (confidence in the intended class, distance to the class's nearest real images on
its penultimate features, the memorisation check), takes per-class thresholds from the real images
alone (:func:`~pathsynth.selection.criteria.class_thresholds`) and decides which to keep. The
experiment's ``select`` stage feeds it and stores the decisions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import torch

from pathsynth.classify.evaluate import ImagePredictions, evaluate_images
from pathsynth.errors import DataError
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.metrics.features import ClassifierFeatures
from pathsynth.records.schema import (
    ClassSelection,
    GeneratorSelection,
    ImageSelection,
    SelectionRecord,
    SelectionSummary,
)
from pathsynth.selection.config import SelectionConfig
from pathsynth.selection.criteria import (
    class_thresholds,
    decide,
    real_reference_distances,
    score_images,
)

FEATURE_EXTRACTOR = (
    "penultimate layer of the honest/original seed-0 classifier (trained on the real training fold)"
)


class IdentifiedImages(Protocol):
    """Images with the catalog id of each (the experiment's ``LabelledPart`` is one)."""

    @property
    def images(self) -> TensorImageSet: ...

    @property
    def ids(self) -> torch.Tensor: ...


def select_generated(
    model: torch.nn.Module,
    real_train: IdentifiedImages,
    validation: IdentifiedImages,
    generated: Mapping[str, IdentifiedImages],
    config: SelectionConfig,
    classifier: Any,
) -> SelectionRecord:
    """Score each generator's images against the real training fold and decide which to keep.

    The thresholds come from the real images alone, once; each generator's images are then
    scored and decided on their own (the keep floor is per generator and class).

    Args:
        model: the classifier trained on the real training fold (minus ``validation``).
        real_train: the real training fold (the validation groups included).
        validation: the real validation part, held out from ``model``'s training.
        generated: each generator's images, with their catalog ids, by kind (the experiment's
            first generator first: the summary's top-level counts are its).
        config: the thresholds.
        classifier: the classifier config (``eval_batch_size``, ``tta``, ``crop_size``,
            ``grid_stride``), so that confidences are read as the classifier is tested.

    Returns:
        Per-image scores and decisions (each with its generator's kind), per-class counts and
        thresholds, and each generator's counts.

    Raises:
        DataError: no generated images, generators whose images differ in size, a class without
            real training images, or what the memorisation check refuses.
    """
    if not generated:
        raise DataError("selection needs generated images, and there are none")
    sides = {kind: part.images.images.shape[-1] for kind, part in generated.items()}
    if len(set(sides.values())) > 1:
        raise DataError(
            "selection compares every generator's images with real crops of one size; these "
            f"differ: {', '.join(f'{kind} {side} px' for kind, side in sides.items())}"
        )
    class_names = list(next(iter(generated.values())).images.class_names)
    side = next(iter(sides.values()))
    scorer = _Scorer(model, classifier, config, real_train, validation, side, len(class_names))
    made: dict[str, GeneratorSelection] = {}
    image_rows: list[ImageSelection] = []
    for kind, part in generated.items():
        if list(part.images.class_names) != class_names:
            raise DataError(f"the {kind} images have another class list than the first's")
        made[kind], rows = scorer.decide(kind, part, class_names)
        image_rows += rows
    first = next(iter(made.values()))
    summary = SelectionSummary(
        feature_extractor=FEATURE_EXTRACTOR,
        settings=dataclasses.asdict(config),
        per_class=first.per_class,
        generated=first.generated,
        kept=first.kept,
        generators=made,
    )
    return SelectionRecord(summary, image_rows)


class _Scorer:
    """The classifier, the real training fold's features and the per-class thresholds, computed
    once from the real images alone; :meth:`decide` scores one generator's images against them."""

    def __init__(
        self,
        model: torch.nn.Module,
        classifier: Any,
        config: SelectionConfig,
        real_train: IdentifiedImages,
        validation: IdentifiedImages,
        side: int,
        num_classes: int,
    ) -> None:
        self.model, self.classifier, self.config = model, classifier, config
        validated = self.predict(validation.images, validation.ids)  # one row per image
        labels = validated.labels
        confidence = validated.probabilities[torch.arange(len(labels)), labels]
        # the generators make crops of the real inputs: compare with crops of the same size
        real = real_train.images.images.cpu()
        if real.shape[-1] != side:
            real = random_crops(real, side, torch.Generator().manual_seed(0))
        self.real = real
        self.extractor = ClassifierFeatures(model)
        self.real_features = self.extractor(real)
        self.real_labels = real_train.images.labels.cpu()
        reference = real_reference_distances(
            self.real_features, self.real_labels, real_train.ids.cpu(), config.neighbours
        )
        self.thresholds = class_thresholds(
            config, num_classes, reference, self.real_labels, confidence, labels
        )

    def predict(self, part: TensorImageSet, ids: torch.Tensor | None) -> ImagePredictions:
        """Class probabilities as the classifier is tested (crops, TTA)."""
        classifier = self.classifier
        return evaluate_images(
            self.model,
            part,
            image_ids=ids,
            batch_size=classifier.eval_batch_size,
            tta=classifier.tta,
            crop_size=classifier.crop_size,
            crop_stride=classifier.grid_stride,
        )

    def decide(
        self, kind: str, part: IdentifiedImages, class_names: list[str]
    ) -> tuple[GeneratorSelection, list[ImageSelection]]:
        """One generator's images scored and decided: its counts per class and each image's row."""
        labels = part.images.labels.cpu()
        images = part.images.images.cpu()
        probabilities = self.predict(part.images, None).probabilities
        scores = score_images(
            probabilities,
            labels,
            images,
            self.extractor(images),
            self.real,
            self.real_features,
            self.real_labels,
            self.config,
        )
        thresholds = self.thresholds
        decision = decide(scores, labels, thresholds, self.config.keep_floor)
        per_class = {
            name: ClassSelection(
                generated=int((labels == c).sum()),
                kept=int(decision.kept[labels == c].sum()),
                kept_by_floor=sum(
                    1
                    for i in torch.nonzero(labels == c).flatten().tolist()
                    if decision.reasons[i] == "kept:floor"
                ),
                near_copies=int(scores.near_copy[labels == c].sum()),
                min_confidence=thresholds.min_confidence[c],
                max_distance=thresholds.max_distance[c],
                confidence_from=thresholds.confidence_from[c],
            )
            for c, name in enumerate(class_names)
        }
        rows = [
            ImageSelection(
                image_id=int(part.ids[i]),
                label=class_names[int(labels[i])],
                confidence=float(scores.confidence[i]),
                distance=float(scores.distance[i]),
                copy_ratio=float(scores.copy_ratio[i]),
                near_copy=bool(scores.near_copy[i]),
                kept=bool(decision.kept[i]),
                reason=decision.reasons[i],
                generator=kind,
            )
            for i in range(len(labels))
        ]
        return GeneratorSelection(per_class, len(labels), int(decision.kept.sum())), rows
