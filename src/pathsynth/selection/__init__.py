"""Selective synthesis: keep a generated image only where criteria computed from the real
training fold accept it (:mod:`.criteria`), with thresholds from one config (:mod:`.config`).

This package takes tensors and a classifier (probabilities, feature vectors, images;
:func:`select_generated` scores every generator's images with them); the experiment's ``select``
stage feeds it and stores its decisions in the catalog.
"""

from pathsynth.selection.config import SELECTION, SELECTION_PRESETS, SelectionConfig
from pathsynth.selection.criteria import (
    ClassThresholds,
    SelectionDecision,
    SelectionScores,
    class_thresholds,
    decide,
    distances_to_class,
    real_reference_distances,
    score_images,
)
from pathsynth.selection.generated import IdentifiedImages, select_generated

__all__ = [
    "SELECTION",
    "SELECTION_PRESETS",
    "ClassThresholds",
    "IdentifiedImages",
    "SelectionConfig",
    "SelectionDecision",
    "SelectionScores",
    "class_thresholds",
    "decide",
    "distances_to_class",
    "real_reference_distances",
    "score_images",
    "select_generated",
]
