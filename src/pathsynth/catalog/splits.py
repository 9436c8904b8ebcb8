"""Stratified splits that never put one patient (or group) on two sides.

A split assigns every real image to ``train``, ``val`` or ``test``. The unit that is kept whole is
the patient row of the catalog: a real patient where the source named one, the slide/group
identifier where it named that instead, or the image itself where nothing was known (then the split
is image-level, and :class:`SplitResult` says so). Derived images (affine, synthetic) are not split
members: they inherit the fold of the real images they come from.

The assignment is greedy: units in a seeded random order, largest first, each placed in the fold
where it most reduces the squared distance between each fold's per-class counts (and its size)
and their targets.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import FOLDS, Image, Patient, Split, SplitMember, Study
from pathsynth.errors import SplitError

SPLIT_UNITS = ("patient", "group", "image")


@dataclass(frozen=True)
class SplitRequest:
    """What split to make.

    Attributes:
        name: the split's name in the catalog.
        unit: what is kept whole: ``patient`` or ``group`` (the catalog's patient rows), ``image``.
        test: fraction of each class for the test fold.
        val: fraction of each class for the validation fold (0 for none).
        seed: seed of the random order.
        modality: only images of this modality (None: all).
        classes: only these labels (None: all).
        source: only images of this ingested source (its folder's name; None: all).
    """

    name: str
    unit: str = "patient"
    test: float = 0.3
    val: float = 0.0
    seed: int = 0
    modality: str | None = None
    classes: tuple[str, ...] | None = None
    source: str | None = None


@dataclass
class SplitResult:
    """A split as made: the fold of each image and per-class counts per fold."""

    name: str
    unit: str
    folds: dict[int, str]
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    image_level: bool = False


def assign_folds(
    units: dict[object, Counter[str]],
    fractions: dict[str, float],
    seed: int,
) -> dict[object, str]:
    """Place each unit (with its per-class image counts) in one fold.

    Args:
        units: per unit, how many images of each class it holds.
        fractions: target fraction per fold (summing to 1).
        seed: seed of the random order.

    Returns:
        The fold of each unit.
    """
    totals: Counter[str] = Counter()
    for counts in units.values():
        totals.update(counts)
    target = {fold: {c: share * n for c, n in totals.items()} for fold, share in fractions.items()}
    current: dict[str, Counter[str]] = {fold: Counter() for fold in fractions}
    order = list(units)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda unit: -sum(units[unit].values()))  # stable: ties keep the random order

    everything = sum(totals.values())

    def cost_of_adding(fold: str, counts: Counter[str]) -> float:
        cost = 0.0
        for label, count in counts.items():
            before = current[fold][label] - target[fold][label]
            after = before + count
            cost += (after * after - before * before) / (totals[label] ** 2)
        # the fold's size as a whole too: with units larger than a class's share per fold
        # (BACH's groups of 25 in 5 folds) the per-class terms tie, and the first fold would
        # take every class's first unit
        before = sum(current[fold].values()) - fractions[fold] * everything
        after = before + sum(counts.values())
        return cost + (after * after - before * before) / (everything**2)

    assignment: dict[object, str] = {}
    for unit in order:
        fold = min(fractions, key=lambda f: cost_of_adding(f, units[unit]))
        assignment[unit] = fold
        current[fold].update(units[unit])
    return assignment


def make_split(catalog: Catalog, request: SplitRequest, replace: bool = False) -> SplitResult:
    """Make a split of the catalog's real images and store it.

    Args:
        catalog: the open catalog.
        request: what to split and how.
        replace: replace an existing split of the same name.

    Returns:
        The split with per-class counts per fold.

    Raises:
        SplitError: an unknown unit, fractions outside (0, 1), a name already taken (without
            ``replace``), no images, or a class with too few patients/groups to appear in
            every fold.
    """
    fractions = _fractions(request)
    with catalog.session() as session:
        if session.scalar(select(Split.id).where(Split.name == request.name)) is not None:
            if not replace:
                raise SplitError(f"split {request.name!r} exists; use --replace to remake it")
            session.execute(delete(Split).where(Split.name == request.name))
        rows = _real_images(session, request)
        folds, counts = _assign(rows, request, fractions)
        image_level = request.unit == "image" or all(kind == "image" for *_, kind in rows)
        _store(session, request, folds, image_level)
    return SplitResult(request.name, request.unit, folds, counts, image_level)


def make_cv_splits(catalog: Catalog, request: SplitRequest, folds: int) -> list[str]:
    """Patient-level K-fold cross-validation: the real images dealt to ``folds`` parts (whole
    patients/groups at a time, stratified by class) and stored as ``folds`` train/test splits
    named ``<request.name>-f<k>``, split k testing part k: every image is tested exactly once.

    A class with fewer patients/groups than folds (BACH's Benign: two groups) is tested in as
    many folds as it has groups and trained on in every fold: pooled over the folds every image
    is still tested once, by a classifier that never saw its patient.

    Returns:
        The split names, fold by fold.

    Raises:
        SplitError: fewer than 2 folds, an unknown unit, a name already taken, no images, or a
            class held by a single patient/group (every fold must train on every class).
    """
    if folds < 2:
        raise SplitError(f"cross-validation needs at least 2 folds, got {folds}")
    _fractions(dataclasses.replace(request, test=1 / folds, val=0.0))
    names = [f"{request.name}-f{k}" for k in range(folds)]
    with catalog.session() as session:
        taken = session.scalars(select(Split.name).where(Split.name.in_(names))).all()
        if taken:
            raise SplitError(f"split(s) {', '.join(taken)} exist; use another name")
        rows = _real_images(session, request)
        parts = {f"part{k}": 1 / folds for k in range(folds)}
        part_of, part_counts = _assign(rows, request, parts, every_part_holds_each_class=False)
        empty = [k for k in range(folds) if not sum(part_counts[f"part{k}"].values())]
        if empty:
            units = len({patient for _, _, patient, _ in rows})
            raise SplitError(
                f"{units} {request.unit}(s) cannot fill {folds} folds (fold(s) "
                f"{', '.join(map(str, empty))} would test nothing); use fewer folds"
            )
        image_level = request.unit == "image" or all(kind == "image" for *_, kind in rows)
        for k, name in enumerate(names):
            assignment = {
                image: "test" if part == f"part{k}" else "train" for image, part in part_of.items()
            }
            fold_request = dataclasses.replace(request, name=name, test=1 / folds, val=0.0)
            _store(session, fold_request, assignment, image_level, {"folds": folds, "fold": k})
    return names


def _fractions(request: SplitRequest) -> dict[str, float]:
    """The share of each fold, checked."""
    if request.unit not in SPLIT_UNITS:
        raise SplitError(
            f"unknown split unit {request.unit!r}; choose one of patient, group, image"
        )
    if not 0 < request.test < 1 or not 0 <= request.val < 1 or request.test + request.val >= 1:
        raise SplitError(
            f"test={request.test} and val={request.val} must be fractions leaving room for train"
        )
    fractions = {"train": 1 - request.test - request.val, "test": request.test}
    if request.val > 0:
        fractions["val"] = request.val
    return fractions


def _real_images(session: Session, request: SplitRequest) -> list[Any]:
    """(image id, label, patient id, patient key kind) of the real images the request covers."""
    query = (
        select(Image.id, Image.label, Study.patient_id, Patient.key_kind)
        .join(Study, Image.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
        .where(Image.origin == "real")
    )
    if request.modality is not None:
        query = query.where(Study.modality == request.modality)
    if request.classes is not None:
        query = query.where(Image.label.in_(request.classes))
    if request.source is not None:
        query = query.where(Study.source == request.source)
    rows = list(session.execute(query).all())
    if not rows:
        raise SplitError("no real images to split (ingest some first)")
    return rows


def _assign(
    rows: list[Any],
    request: SplitRequest,
    fractions: dict[str, float],
    every_part_holds_each_class: bool = True,
) -> tuple[dict[int, str], dict[str, Counter[str]]]:
    """The fold of every image (whole units at a time) and per-class counts per fold.

    Args:
        every_part_holds_each_class: refuse a class missing from a fold (a train/val/test
            split); False for cross-validation parts, where a class needs units in two parts
            only (so that the training side of every fold holds it).

    Raises:
        SplitError: a class with too few units to appear in every fold (in two parts).
    """
    units: dict[object, Counter[str]] = defaultdict(Counter)
    unit_of: dict[int, object] = {}
    for image_id, label, patient_id, _ in rows:
        unit = image_id if request.unit == "image" else patient_id
        units[unit][label] += 1
        unit_of[image_id] = unit
    assignment = assign_folds(units, fractions, request.seed)
    folds = {image_id: assignment[unit] for image_id, unit in unit_of.items()}
    names = [fold for fold in FOLDS if fold in fractions] or list(fractions)
    counts: dict[str, Counter[str]] = {fold: Counter() for fold in names}
    for image_id, label, _, _ in rows:
        counts[folds[image_id]][label] += 1
    for label in sorted({label for _, label, _, _ in rows}):
        empty = [fold for fold in counts if counts[fold][label] == 0]
        if not empty:
            continue
        holders = sum(1 for c in units.values() if c[label])
        if every_part_holds_each_class:
            raise SplitError(
                f"class {label!r} has {holders} {request.unit}(s) with images, too few to "
                f"appear in every fold ({', '.join(empty)} would have none)"
            )
        if len(counts) - len(empty) < 2:
            raise SplitError(
                f"class {label!r} has {holders} {request.unit}(s) with images; "
                "cross-validation needs two, so that every fold trains on it"
            )
    return folds, counts


def _store(
    session: Session,
    request: SplitRequest,
    folds: dict[int, str],
    image_level: bool,
    cross_validation: dict[str, int] | None = None,
) -> None:
    split = Split(
        name=request.name,
        unit=request.unit,
        params={
            "test": request.test,
            "val": request.val,
            "seed": request.seed,
            "modality": request.modality,
            "classes": list(request.classes) if request.classes else None,
            "source": request.source,
            "method": "greedy stratified assignment of whole units",
            "image_level": image_level,
            **({"cross_validation": cross_validation} if cross_validation else {}),
        },
    )
    session.add(split)
    session.flush()
    session.execute(
        insert(SplitMember),
        [
            {"split_id": split.id, "image_id": image_id, "fold": fold}
            for image_id, fold in folds.items()
        ],
    )
