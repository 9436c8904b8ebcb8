"""The split audit: it finds patients on both sides and says so, passes a patient-level split, and
says plainly when it cannot measure (no patient keys)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_pathsynth

from pathsynth.catalog.audit import _Rows, audit_rows, audit_split
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.splits import SplitRequest, make_split
from pathsynth.errors import SplitError
from pathsynth.imaging.features import COLOUR_FEATURES, FEATURE_NAMES


def test_bach_by_group_is_clean_and_by_image_is_flagged_with_its_optimism(workspace, bach):
    ingest_source(workspace, bach, IngestOptions(modality="histology", workers=2))
    with workspace.open_catalog() as catalog:
        make_split(catalog, SplitRequest("by-group", unit="group", seed=1))
        make_split(catalog, SplitRequest("by-image", unit="image", seed=1))
        clean = audit_split(catalog, "by-group")
        leaky = audit_split(catalog, "by-image")
        with pytest.raises(SplitError, match="no split named 'nope'"):
            audit_split(catalog, "nope")
    assert (clean.shared_units, clean.image_level, clean.likely_optimistic) == (0, False, False)
    assert (clean.train_images, clean.test_images) == (179, 89)
    for block in clean.blocks:
        assert block.probe_gap == 0.0  # no test patient in training: the probe cannot differ
        assert block.close_excess is not None and abs(block.close_excess) < 0.05
    assert clean.verdict.startswith("No sign of leakage")

    assert leaky.image_level and leaky.likely_optimistic
    assert leaky.shared_units == leaky.test_units == 11  # every group on both sides
    # the patients on both sides lift a nearest-neighbour probe by 25+ points on both blocks
    assert all(block.probe_gap is not None and block.probe_gap > 0.25 for block in leaky.blocks)
    assert leaky.optimism == max(block.probe_gap or 0.0 for block in leaky.blocks)
    assert "11 of 11 test patient(s)/group(s) also have training images" in leaky.verdict
    assert "likely optimistic" in leaky.verdict


def _rows(features: np.ndarray, labels: list[str], units: list[int], keyed: bool) -> _Rows:
    colour = [FEATURE_NAMES.index(name) for name in COLOUR_FEATURES]
    return _Rows(
        features={"colour": features[:, colour], "all": features},
        labels=np.array(labels),
        units=np.array(units),
        sha256=[f"{i}-{u}" for i, u in enumerate(units)],
        keyed=keyed,
    )


def _patients(count: int, per_patient: int, seed: int) -> tuple[np.ndarray, list[str], list[int]]:
    """Patients as tight clusters of images around their own centre, two classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (count, len(FEATURE_NAMES)))
    images = np.repeat(centres, per_patient, axis=0)
    images += rng.normal(0.0, 0.3, images.shape)
    units = [p for p in range(count) for _ in range(per_patient)]
    labels = ["a" if p % 2 else "b" for p in units]
    return images, labels, units


def test_a_patient_split_of_clustered_patients_is_clean_and_an_image_split_is_not():
    images, labels, units = _patients(16, 6, seed=3)
    test_patients = set(range(12, 16))
    by_patient_test = [i for i, u in enumerate(units) if u in test_patients]
    by_patient_train = [i for i, u in enumerate(units) if u not in test_patients]
    by_image_test = list(range(0, len(units), 4))  # every 4th image: all patients on both sides
    by_image_train = [i for i in range(len(units)) if i % 4]

    def rows(index: list[int]) -> _Rows:
        return _rows(images[index], [labels[i] for i in index], [units[i] for i in index], True)

    clean = audit_rows("p", "patient", False, rows(by_patient_train), rows(by_patient_test))
    leaky = audit_rows("i", "image", True, rows(by_image_train), rows(by_image_test))
    assert not clean.likely_optimistic and clean.shared_units == 0
    assert leaky.likely_optimistic and leaky.shared_units == 16
    for block in leaky.blocks:  # every test image sits inside its own patient's training cluster
        assert block.close_share > 0.6 and block.new_patient_share == 0.0
        assert block.probe_split == 1.0


def test_a_near_duplicate_across_the_split_is_counted():
    images, labels, units = _patients(8, 4, seed=5)
    copy = images[0] + 1e-4  # another patient's image, all but identical to patient 0's first
    test = _rows(np.vstack([images[28:], copy]), [*labels[28:], labels[0]], [*units[28:], 99], True)
    train = _rows(images[:28], labels[:28], units[:28], True)
    audit = audit_rows("d", "patient", False, train, test)
    assert [block.near_duplicates for block in audit.blocks] == [1, 1]


def test_without_patient_keys_the_audit_says_it_cannot_measure(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    with workspace.open_catalog() as catalog:
        make_split(catalog, SplitRequest("s", unit="patient", test=0.25, seed=2))
        audit = audit_split(catalog, "s")
    assert audit.image_level and audit.likely_optimistic and audit.optimism is None
    assert all(b.new_patient_share is None and b.probe_leak_free is None for b in audit.blocks)
    assert "cannot measure without patient keys" in audit.verdict


def test_split_audit_command_audits_an_existing_split(tmp_path, class_source):
    space = str(tmp_path / "ws")
    assert run_pathsynth("init", space).returncode == 0
    ingest = run_pathsynth("ingest", str(class_source), "--modality", "histology", "-w", space)
    assert ingest.returncode == 0, ingest.stderr
    made = run_pathsynth("split", "--name", "s", "--test", "0.25", "-w", space)
    assert made.returncode == 0, made.stderr
    audited = run_pathsynth("split", "--name", "s", "--audit", "-w", space)
    assert audited.returncode == 0, audited.stderr
    assert "audit of split s" in audited.stdout and "verdict:" in audited.stdout
    assert "cannot measure without patient keys" in " ".join(audited.stdout.split())
    missing = run_pathsynth(
        "split", "--name", "s", "--audit", "--replace", "--test", "2", "-w", space
    )
    assert missing.returncode != 0 and "must be fractions" in missing.stderr
