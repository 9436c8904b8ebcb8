"""Splits: stratified, seeded, and never one patient or group on two sides."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from helpers import write_image
from sqlalchemy import select

from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image, SplitMember, Study
from pathsynth.catalog.queries import fold_images
from pathsynth.catalog.splits import SplitRequest, assign_folds, make_split
from pathsynth.errors import SplitError


def test_herlev_split_by_slide_group_puts_no_group_on_both_sides(workspace, herlev):
    ingest_source(workspace, herlev, IngestOptions(modality="cytology", workers=2))
    with workspace.open_catalog() as catalog:
        result = make_split(catalog, SplitRequest("honest", unit="group", test=0.3, seed=7))
        with catalog.session() as session:
            rows = session.execute(
                select(SplitMember.fold, Study.patient_id, Image.label)
                .join(Image, Image.id == SplitMember.image_id)
                .join(Study, Study.id == Image.study_id)
            ).all()
    folds_of_group: dict[int, set[str]] = defaultdict(set)
    for fold, patient_id, _ in rows:
        folds_of_group[patient_id].add(fold)
    assert len(rows) == 631
    assert len(folds_of_group) == 223
    assert all(len(folds) == 1 for folds in folds_of_group.values())
    # stratified: every class close to 30% test despite whole groups
    totals = Counter(label for _, _, label in rows)
    tests = Counter(label for fold, _, label in rows if fold == "test")
    for label, total in totals.items():
        assert abs(tests[label] / total - 0.3) < 0.06, (label, tests[label], total)
    assert result.counts["test"] == tests
    assert not result.image_level


def test_split_is_seeded_and_has_train_val_test(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    with workspace.open_catalog() as catalog:
        first = make_split(catalog, SplitRequest("a", unit="image", test=0.25, val=0.25, seed=3))
        again = make_split(catalog, SplitRequest("b", unit="image", test=0.25, val=0.25, seed=3))
        other = make_split(catalog, SplitRequest("c", unit="image", test=0.25, val=0.25, seed=4))
        assert list(first.folds.values()) == list(again.folds.values())
        assert list(first.folds.values()) != list(other.folds.values())
        for fold in ("train", "val", "test"):
            assert set(first.counts[fold]) == {"benign", "insitu", "invasive"}
        assert first.counts["train"] == Counter(benign=2, insitu=2, invasive=2)
        assert first.image_level  # the class-folder source names no patients
        test_fold = fold_images(catalog, workspace.store, "a", "test")
    assert len(test_fold) == 3 and all(image.path.is_file() for image in test_fold)


def test_split_refusals_name_the_problem(workspace, class_source, tmp_path):
    with workspace.open_catalog() as catalog, pytest.raises(SplitError, match="no real images"):
        make_split(catalog, SplitRequest("empty"))
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    lonely = tmp_path / "lonely"
    write_image(lonely / "rare" / "only.png", seed=999)
    ingest_source(workspace, lonely, IngestOptions(modality="histology", workers=0))
    with workspace.open_catalog() as catalog:
        with pytest.raises(SplitError, match=r"class 'rare' has 1 patient\(s\) with images"):
            make_split(catalog, SplitRequest("x", unit="patient"))
        make_split(catalog, SplitRequest("ok", classes=("benign", "insitu")))
        with pytest.raises(SplitError, match="split 'ok' exists; use --replace"):
            make_split(catalog, SplitRequest("ok", classes=("benign", "insitu")))
        make_split(catalog, SplitRequest("ok", classes=("benign",)), replace=True)
        with pytest.raises(SplitError, match="must be fractions"):
            make_split(catalog, SplitRequest("bad", test=0.7, val=0.4))
        with pytest.raises(SplitError, match="no split named 'nope'"):
            fold_images(catalog, Path(), "nope", "train")
        with pytest.raises(SplitError, match="unknown fold 'dev'"):
            fold_images(catalog, Path(), "ok", "dev")


def test_assign_folds_keeps_units_whole_and_tracks_targets():
    units: dict[object, Counter[str]] = {
        f"g{i}": Counter({"a": 1 + i % 3, "b": i % 2}) for i in range(60)
    }
    assignment = assign_folds(units, {"train": 0.7, "test": 0.3}, seed=0)
    test = Counter()
    total = Counter()
    for unit, counts in units.items():
        total.update(counts)
        if assignment[unit] == "test":
            test.update(counts)
    for label in total:
        assert abs(test[label] / total[label] - 0.3) < 0.05


def test_cross_validation_tests_every_image_once_and_never_splits_a_group(workspace, herlev):
    from pathsynth.catalog.splits import make_cv_splits

    ingest_source(workspace, herlev, IngestOptions(modality="cytology", workers=2))
    request = SplitRequest("cv", unit="group", seed=5, source="herlev")
    with workspace.open_catalog() as catalog:
        names = make_cv_splits(catalog, request, folds=5)
        with pytest.raises(SplitError, match="cv-f0, cv-f1"):
            make_cv_splits(catalog, request, folds=5)
        with pytest.raises(SplitError, match="at least 2 folds"):
            make_cv_splits(catalog, SplitRequest("one"), folds=1)
        with catalog.session() as session:
            rows = session.execute(
                select(SplitMember.image_id, SplitMember.fold, Study.patient_id, Image.label)
                .join(Image, Image.id == SplitMember.image_id)
                .join(Study, Study.id == Image.study_id)
            ).all()
    assert names == [f"cv-f{k}" for k in range(5)]
    tested = Counter(image for image, fold, _, _ in rows if fold == "test")
    assert len(tested) == 631 and set(tested.values()) == {1}  # every image tested exactly once
    test_groups: dict[int, set[int]] = defaultdict(set)
    for name_index, name in enumerate(names):
        with workspace.open_catalog() as catalog:
            for image in fold_images(catalog, workspace.store, name, "test"):
                test_groups[image.patient_id].add(name_index)
    assert all(len(parts) == 1 for parts in test_groups.values())  # a group is in one test part
    assert len(test_groups) == 223


def test_bach_cross_validation_by_group_tests_each_image_once_with_folds_of_similar_size(
    tmp_path, bach
):
    """BACH's group column (blocks of 25 numbers per class, approximate patients) gives 11 groups,
    two of them Benign: 5 folds still test every image once, never split a group, and train on
    every class in every fold (Benign is tested in two folds only)."""
    from pathsynth.catalog.splits import make_cv_splits
    from pathsynth.catalog.workspace import Workspace

    space = Workspace.create(tmp_path / "ws", None)
    ingest_source(space, bach, IngestOptions(modality="histology", workers=2))
    with space.open_catalog() as catalog:
        names = make_cv_splits(catalog, SplitRequest("cv", unit="group", seed=0), folds=5)
        with pytest.raises(SplitError, match=r"11 group\(s\) cannot fill 12 folds"):
            make_cv_splits(catalog, SplitRequest("many", unit="group"), folds=12)
        parts = {
            name: {
                fold: fold_images(catalog, space.store, name, fold) for fold in ("train", "test")
            }
            for name in names
        }
    tested = Counter(image.image_id for part in parts.values() for image in part["test"])
    assert len(tested) == 268 and set(tested.values()) == {1}
    sizes = []
    for part in parts.values():
        train_groups = {image.patient_id for image in part["train"]}
        assert not train_groups & {image.patient_id for image in part["test"]}
        assert {image.label for image in part["train"]} == {
            "Benign",
            "InSitu",
            "Invasive",
            "Normal",
        }
        sizes.append(len(part["test"]))
    assert max(sizes) - min(sizes) <= 27  # whole groups of about 25: within one group of even
    benign_folds = [
        name for name, part in parts.items() if any(i.label == "Benign" for i in part["test"])
    ]
    assert len(benign_folds) == 2


def test_cross_validation_refuses_a_class_of_one_group(workspace, class_source, tmp_path):
    from pathsynth.catalog.splits import make_cv_splits

    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    lonely = tmp_path / "lonely"
    write_image(lonely / "rare" / "only.png", seed=999)
    ingest_source(workspace, lonely, IngestOptions(modality="histology", workers=0))
    with (
        workspace.open_catalog() as catalog,
        pytest.raises(
            SplitError,
            match=r"class 'rare' has 1 patient\(s\) with images; cross-validation needs two",
        ),
    ):
        make_cv_splits(catalog, SplitRequest("cv", unit="patient"), folds=3)
