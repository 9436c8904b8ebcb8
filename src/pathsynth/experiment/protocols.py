"""Training and test sets of each protocol and condition, with the invariants that make them honest.

Conditions (what a classifier trains on) are :mod:`pathsynth.records.conditions`'s.

Protocols say what it is tested on:

- ``honest`` (default): the REAL images were split first by patient/group (the catalog split);
  affine expansion and the GAN saw the training fold only; every classifier is tested on the
  held-out real images only. Validation for early stopping is a patient-aware part of the real
  training fold, and the affine children of validation images are kept out of training.
- ``paper``: the reference work's protocol: each condition's pool (real; real + affine children of
  every real image; GAN images; affine + GAN) is split 7:3 at image level, so near-copies of one
  image, and generated images, can sit in the test set. It is here to show the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pathsynth.errors import DataError
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.records.conditions import Condition, check_condition


@dataclass
class LabelledPart:
    """Images of one origin with the catalog ids that tie them to real images.

    Attributes:
        images: the images.
        ids: (N,) catalog image id of each image (for derived images, their own id).
        parents: (N,) catalog id of the real image each one derives from (for real images their
            own id; -1 for GAN images, which derive from the whole training fold).
        groups: (N,) patient/group id of the real image behind each one (-1 for GAN images).
    """

    images: TensorImageSet
    ids: torch.Tensor
    parents: torch.Tensor
    groups: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.ids) == len(self.parents) == len(self.groups) == n):
            raise DataError("ids, parents and groups must have one entry per image")

    def select(self, mask: torch.Tensor) -> LabelledPart:
        """The images where ``mask`` is true."""
        return LabelledPart(
            self.images.subset(mask), self.ids[mask], self.parents[mask], self.groups[mask]
        )

    def to_state(self) -> dict[str, Any]:
        """The part as a dict of tensors and names (what the experiment's ``.pt`` files hold)."""
        return {
            "images": self.images.images,
            "labels": self.images.labels,
            "class_names": self.images.class_names,
            "ids": self.ids,
            "parents": self.parents,
            "groups": self.groups,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LabelledPart:
        """The part :meth:`to_state` saved."""
        return cls(
            TensorImageSet(state["images"], state["labels"], list(state["class_names"])),
            state["ids"],
            state["parents"],
            state["groups"],
        )


def concatenate(parts: list[LabelledPart]) -> LabelledPart:
    """One part holding the images of all ``parts`` (which share class names).

    Parts of smaller images (generated at the classifier's crop size, from a GAN trained on
    crops of the larger real inputs) are mirror-padded to the largest side, centred, so that
    random crops can be drawn from every training image alike; a crop of a padded image shows
    the generated image with a mirrored margin, the usual pad-and-crop augmentation.
    """
    names = parts[0].images.class_names
    if any(part.images.class_names != names for part in parts):
        raise DataError("cannot combine image sets with different class lists")
    side = max(p.images.resolution for p in parts)
    return LabelledPart(
        TensorImageSet(
            torch.cat([_mirror_padded(p.images.images, side) for p in parts]),
            torch.cat([p.images.labels for p in parts]),
            list(names),
        ),
        torch.cat([p.ids for p in parts]),
        torch.cat([p.parents for p in parts]),
        torch.cat([p.groups for p in parts]),
    )


def _mirror_padded(images: torch.Tensor, side: int) -> torch.Tensor:
    """Square uint8 images centred on a ``side`` canvas by mirroring their edges (unchanged when
    already that size).

    Raises:
        DataError: images that are not square, or too small to mirror up to ``side``.
    """
    height, width = images.shape[-2:]
    if (height, width) == (side, side):
        return images
    before = (side - height) // 2
    after = side - height - before
    if height != width or after >= height:  # a mirror cannot reach further than the image
        raise DataError(
            f"cannot combine {width}x{height} images with {side}x{side} ones (the smaller must "
            "be square and more than a third of the larger side)"
        )
    padded = F.pad(images.float(), (before, after, before, after), mode="reflect")
    return padded.to(torch.uint8)


@dataclass
class ExperimentSets:
    """Everything the conditions draw from.

    Attributes:
        real_train: real images of the training fold.
        real_test: real images of the held-out fold.
        affine_train: affine children of the training fold's images (honest protocol).
        affine_all: affine children of every real image (paper protocol); may be None.
        synthetic: generated images of the experiment's (first) generator, trained on the
            training fold; may be None.
        selected_synthetic: those of them selective synthesis kept; may be None.
        generated: each generator's images by kind (with one generator, its ``synthetic``).
        selected_generated: each generator's images that selective synthesis kept, by kind.
        external: real images of an external test source (other patients, another site); never
            used for training, validation or the generator; may be None.
    """

    real_train: LabelledPart
    real_test: LabelledPart
    affine_train: LabelledPart | None = None
    affine_all: LabelledPart | None = None
    synthetic: LabelledPart | None = None
    external: LabelledPart | None = None
    generated: dict[str, LabelledPart] = field(default_factory=dict)
    selected_synthetic: LabelledPart | None = None
    selected_generated: dict[str, LabelledPart] = field(default_factory=dict)

    def generated_for(self, condition: str) -> LabelledPart:
        """The generated images ``condition`` adds (``synthetic``: the first generator's, a named
        kind: that generator's; with ``:selected``, the ones selective synthesis kept of them).

        Raises:
            DataError: there are none, or a class has none.
        """
        parsed = Condition.of(condition)
        kind, selected = parsed.generator, parsed.selected
        if selected and kind == "synthetic":
            return _needs(self.selected_synthetic, "selected generated images", condition)
        if selected:
            part = self.selected_generated.get(kind or "")
            return _needs(part, f"selected {kind} images", condition)
        part = self.synthetic if kind == "synthetic" else self.generated.get(kind or "")
        return _needs(part, f"{kind if kind != 'synthetic' else 'generated'} images", condition)


@dataclass
class ConditionSets:
    """The sets one classifier run uses."""

    train: LabelledPart
    validation: LabelledPart
    test: LabelledPart


def _needs(part: LabelledPart | None, what: str, condition: str) -> LabelledPart:
    if part is None or len(part.images) == 0:
        raise DataError(f"condition {condition!r} needs {what}, and there are none")
    counts = part.images.class_counts()
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise DataError(
            f"condition {condition!r}: {what} have no images of class {', '.join(missing)}"
        )
    return part


def honest_sets(
    sets: ExperimentSets, condition: str, validation_groups: torch.Tensor
) -> ConditionSets:
    """Train, validation and test sets of one condition under the honest protocol.

    Args:
        sets: the experiment's images.
        condition: one of :data:`CONDITIONS`, or a ``:selected`` variant.
        validation_groups: patient/group ids of the real training fold held out for validation.

    Returns:
        Training images (real training fold minus validation, plus the condition's derived
        images), the validation real images, and the held-out real test images.

    Raises:
        DataError: an unknown condition, a derived set the condition needs that is missing or
            lacks a class, or any leak of a test patient into training (see :func:`check_honest`).
    """
    check_condition(condition)
    in_validation = torch.isin(sets.real_train.groups, validation_groups)
    validation = sets.real_train.select(in_validation)
    parts = [sets.real_train.select(~in_validation)]
    validation_ids = validation.ids
    parsed = Condition.of(condition)
    if "affine" in parsed.origins:
        affine = _needs(sets.affine_train, "affine children of the training fold", condition)
        parts.append(affine.select(~torch.isin(affine.parents, validation_ids)))
    if parsed.generator is not None:
        parts.append(sets.generated_for(condition))
    train = concatenate(parts)
    check_honest(train, validation, sets.real_test)
    return ConditionSets(train, validation, sets.real_test)


def check_honest(train: LabelledPart, validation: LabelledPart, test: LabelledPart) -> None:
    """Refuse any way a test patient's image could reach training or validation.

    Raises:
        DataError: a test image, an image derived from one, or any image of a test patient or
            group in the training or validation set; or a test set that is not all real.
    """
    test_ids = test.ids
    if not torch.equal(test.parents, test.ids):
        raise DataError("the honest protocol tests on real images only")
    test_groups = test.groups[test.groups >= 0]
    for name, part in (("training", train), ("validation", validation)):
        if torch.isin(part.ids, test_ids).any() or torch.isin(part.parents, test_ids).any():
            raise DataError(f"a held-out test image or its affine child is in the {name} set")
        if torch.isin(part.groups[part.groups >= 0], test_groups).any():
            raise DataError(
                f"a patient/group of the test set also has images in the {name} set; "
                "the split must keep patients whole for the honest protocol"
            )


def check_external(external: LabelledPart, *seen: LabelledPart) -> None:
    """Refuse an external test set that any training or validation image comes from.

    Raises:
        DataError: an external image, an image derived from one, or an image of an external
            patient among the ``seen`` parts.
    """
    groups = external.groups[external.groups >= 0]
    for part in seen:
        if torch.isin(part.ids, external.ids).any() or torch.isin(part.parents, external.ids).any():
            raise DataError("an external test image or its affine child reached training")
        if torch.isin(part.groups[part.groups >= 0], groups).any():
            raise DataError("a patient of the external test set has images in training")


def paper_pool(sets: ExperimentSets, condition: str) -> LabelledPart:
    """The image pool the paper's protocol splits 7:3 for one condition.

    Raises:
        DataError: an unknown condition, or a set the condition needs that is missing.
    """
    base = Condition.of(check_condition(condition)).base
    reals = concatenate([sets.real_train, sets.real_test])
    if base == "original":
        return reals
    if base == "affine":
        return concatenate([reals, _needs(sets.affine_all, "affine children", condition)])
    if base == "synthetic":  # the paper's pool: generated images alone
        return sets.generated_for(condition)
    parts = [reals, sets.generated_for(condition)]
    if base.startswith("affine+"):
        parts.insert(1, _needs(sets.affine_all, "affine children", condition))
    return concatenate(parts)


def paper_sets(
    pool: LabelledPart, seed: int, test_fraction: float = 0.3, validation_fraction: float = 0.1
) -> ConditionSets:
    """The paper's image-level stratified split of a pool into train, validation and test.

    Raises:
        DataError: a class with fewer than three images (it cannot reach all three sides).
    """
    labels = pool.images.labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    fold = torch.zeros(len(labels), dtype=torch.int64)  # 0 train, 1 validation, 2 test
    for label in range(len(pool.images.class_names)):
        members = torch.nonzero(labels == label).flatten()
        if len(members) < 3:
            name = pool.images.class_names[label]
            raise DataError(f"class {name!r} has {len(members)} images; the split needs 3")
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = max(1, round(test_fraction * len(members)))
        n_val = max(1, round(validation_fraction * len(members)))
        fold[members[:n_test]] = 2
        fold[members[n_test : n_test + n_val]] = 1
    return ConditionSets(pool.select(fold == 0), pool.select(fold == 1), pool.select(fold == 2))
