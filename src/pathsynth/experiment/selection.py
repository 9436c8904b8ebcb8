"""The ``select`` stage: selective synthesis of the generated images, from the real training fold.

Each generated image of every generator the experiment trained (the stage reads each kind's
generated part, not the generator) is scored against the experiment's REAL TRAINING FOLD only:

- the confidence of the honest/original seed-0 classifier (trained on the training fold minus its
  validation groups) in the image's intended class;
- its distance, on that classifier's penultimate features, to the nearest real training images of
  the class;
- the memorisation check (near-copies of a real training image are rejected).

Per-class thresholds come from :class:`~pathsynth.selection.SelectionConfig`: the confidence
quantile is taken over the real validation images (training fold, held out from the classifier),
the distance quantile over the real training images' own distances to their class. They are
computed once and applied to each generator's images alike (the keep floor is per generator and
class). The test fold and any external test set are never read here. Each image's scores and
decision go into the catalog (``selection_scores``, under the experiment's name) and
``selection.json``; a condition with the ``:selected`` suffix trains on the kept images of the
generator it adds (``synthetic``: the first one).
"""

from __future__ import annotations

from typing import Any

from pathsynth.catalog.api import SelectionRow, store_selection
from pathsynth.config import save_record, to_plain
from pathsynth.experiment.classification import reference_classifier, reference_validation
from pathsynth.experiment.context import StageContext
from pathsynth.selection.generated import select_generated


def select(context: StageContext) -> dict[str, Any]:
    """Score and select every generator's images; skipped when no condition trains on selected
    ones."""
    if not context.config.selects:
        return {"skipped": "no condition trains on selected generated images"}
    sets = context.sets()
    generated = {
        kind: sets.generated[kind]
        for kind in context.config.generator_kinds
        if kind in sets.generated
    }
    if not generated:
        return {"skipped": "no generated images"}
    model = reference_classifier(context, sets)
    record = select_generated(
        model,
        sets.real_train,
        reference_validation(context, sets),
        generated,
        context.config.selection,
        context.config.classifier,
    )
    method = {"experiment": context.name, **to_plain(record.summary)}
    rows = [
        SelectionRow(
            image.image_id,
            image.confidence,
            record.summary.per_class[image.label].min_confidence,
            image.distance,
            record.summary.per_class[image.label].max_distance,
            image.copy_ratio,
            image.near_copy,
            image.kept,
            image.reason,
        )
        for image in record.images
    ]
    store_selection(context.workspace, context.name, rows, method)
    save_record(record, context.paths.selection)
    for kind, made in record.summary.generators.items():
        prefix = f"{kind} " if len(generated) > 1 else ""
        for name, counts in made.per_class.items():
            context.log(
                f"  {prefix}{name}: kept {counts.kept} of {counts.generated} "
                f"({counts.fraction:.0%}; {counts.kept_by_floor} by the floor, "
                f"{counts.near_copies} near-copies)"
            )
    outputs: dict[str, Any] = {"generated": record.summary.generated, "kept": record.summary.kept}
    if len(generated) > 1:
        outputs["by_generator"] = {
            kind: {"generated": made.generated, "kept": made.kept}
            for kind, made in record.summary.generators.items()
        }
    return outputs
