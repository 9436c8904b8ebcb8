"""Selective synthesis in the experiment, on real cytology images with the smoke preset: the
select stage, the ':selected' conditions beside the unselected ones, the catalog rows, the CLI,
and that selection never reads the test fold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from pathsynth.catalog.api import selection_scores
from pathsynth.catalog.workspace import Workspace
from pathsynth.config import load_record
from pathsynth.errors import ConfigError, DataError
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import Experiment
from pathsynth.experiment.selection import select
from pathsynth.records.schema import SelectionRecord
from pathsynth.selection.config import SELECTION

CLASSES = ("normal_intermediate", "normal_superficiel")


@pytest.fixture(scope="module")
def selected(herlev, tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    space = Workspace.create(root / "ws")
    overrides = {
        "protocols": ("honest",),
        "conditions": ("original", "affine", "affine+synthetic"),
        "selection": SELECTION.resolve("default"),
        "synthetic_per_class": 20,
    }
    config = experiment_presets("cytology").resolve("smoke", overrides)
    experiment = Experiment.create(space, herlev, config, CLASSES, "sel", log=lambda _: None)
    results = json.loads(experiment.run().read_text())
    return space, experiment, results


def _record(experiment: Experiment) -> dict:
    return json.loads(experiment.paths.selection.read_text())


def test_selected_conditions_are_compared_with_and_without_selection(selected):
    _, experiment, results = selected
    assert experiment.config.conditions == (
        "original", "affine", "affine+synthetic", "affine+synthetic:selected"
    )  # fmt: skip
    assert set(results["conditions"]) == {f"honest/{c}" for c in experiment.config.conditions}
    pairs = {(c["a"], c["b"]) for c in results["comparisons"] if c["metric"] == "balanced_accuracy"}
    assert ("affine+synthetic", "affine+synthetic:selected") in pairs
    assert ("affine", "affine+synthetic:selected") in pairs
    assert ("original", "affine+synthetic:selected") in pairs
    summary = results["selection"]
    rejected = summary["generated"] - summary["kept"]
    assert summary["generated"] == 40
    assert summary["generators"] == {
        "gan": {key: summary[key] for key in ("per_class", "generated", "kept")}
    }
    unselected = results["conditions"]["honest/affine+synthetic"]["train_images"]
    assert results["conditions"]["honest/affine+synthetic:selected"]["train_images"] == (
        unselected - rejected
    )
    page = (experiment.paths.report / "report.html").read_text()
    assert "Selective synthesis" in page and 'id="selection"' in page


def test_every_generated_image_has_its_scores_in_the_catalog_and_each_class_keeps_the_floor(
    selected,
):
    space, experiment, results = selected
    record = _record(experiment)
    stored = {row.image_id: row for row in selection_scores(space, "sel")}
    assert set(stored) == {image["image_id"] for image in record["images"]}
    synthetic = torch.load(experiment.paths.synthetic, weights_only=False)
    assert set(stored) == set(synthetic["ids"].tolist())
    for image in record["images"]:
        row = stored[image["image_id"]]
        assert (row.kept, row.reason, row.near_copy) == (
            image["kept"], image["reason"], image["near_copy"]
        )  # fmt: skip
        assert row.confidence == pytest.approx(image["confidence"])
        limits = record["summary"]["per_class"][image["label"]]
        assert row.min_confidence == pytest.approx(limits["min_confidence"])
        if image["reason"] == "kept":
            assert row.confidence >= row.min_confidence and row.distance <= row.max_distance
            assert not row.near_copy
    for name, counts in results["selection"]["per_class"].items():
        kept = sum(1 for i in record["images"] if i["label"] == name and i["kept"])
        assert counts["kept"] == kept and counts["generated"] == 20
        assert kept >= 0.2 * 20  # the default preset's floor


def test_a_selection_record_without_per_generator_counts_is_refused_in_one_line(selected, tmp_path):
    """Only development builds wrote selection records without per-generator counts; no
    release did, so there is no reader for them: one line names the file and the missing part."""
    _, experiment, _ = selected
    record = _record(experiment)
    del record["summary"]["generators"]
    for image in record["images"]:
        del image["generator"]
    older = tmp_path / "selection.json"
    older.write_text(json.dumps(record))
    with pytest.raises(DataError, match="does not match its schema") as refused:
        load_record(SelectionRecord, older, "selection record")
    assert str(older) in str(refused.value) and "generators" in str(refused.value)


def test_selection_never_reads_the_test_fold(selected):
    """Poison the held-out real images (noise, swapped labels, other ids): the scores, thresholds
    and decisions must not move."""
    _, experiment, _ = selected
    before = experiment.paths.selection.read_text()
    backup = experiment.paths.inputs.with_suffix(".bak")
    shutil.copyfile(experiment.paths.inputs, backup)
    try:
        inputs = torch.load(experiment.paths.inputs, weights_only=False)
        test = inputs["test"]
        test["images"] = torch.randint(0, 256, test["images"].shape, dtype=torch.uint8)
        test["labels"] = 1 - test["labels"]
        test["ids"] = test["ids"] + 10_000_000
        test["parents"] = test["ids"].clone()
        torch.save(inputs, experiment.paths.inputs)
        assert torch.equal(experiment.context.sets().real_test.images.images, test["images"])
        select(experiment.context)
        assert experiment.paths.selection.read_text() == before
    finally:
        shutil.move(backup, experiment.paths.inputs)


def test_select_command_reselects_and_retrains_only_the_selected_condition(selected):
    space, experiment, _ = selected
    untouched = experiment.paths.classifier_run("honest", "affine+synthetic", 0)
    stamp = untouched.stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-m", "pathsynth", "select", "sel", "--preset", "strict",
         "--set", "selection.keep_floor=0.5", "-w", str(space.root)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "normal_superficiel" in done.stdout and "by floor" in done.stdout
    record = _record(experiment)
    assert record["summary"]["settings"]["preset"] == "strict"
    assert record["summary"]["settings"]["keep_floor"] == 0.5
    assert untouched.stat().st_mtime_ns == stamp  # the unselected runs are kept
    for counts in record["summary"]["per_class"].values():
        assert counts["kept"] >= 10
    results = json.loads(experiment.paths.results.read_text())
    assert results["selection"]["kept"] == record["summary"]["kept"]
    kept_rows = [row for row in selection_scores(space, "sel") if row.kept]
    assert len(kept_rows) == record["summary"]["kept"]


def test_select_refuses_keys_other_than_selection(selected):
    space, _, _ = selected
    done = subprocess.run(
        [sys.executable, "-m", "pathsynth", "select", "sel", "--set", "seeds=3",
         "-w", str(space.root)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "selection.* keys only" in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1


def test_a_cross_validation_fold_cannot_be_reselected_alone(selected):
    _, experiment, _ = selected
    experiment.state.parent = "cv"
    try:
        with pytest.raises(DataError, match="fold of the cross-validation"):
            experiment.forget_selection()
    finally:
        experiment.state.parent = None


def test_the_selection_option_adds_a_selected_variant_of_each_condition_with_generated_images():
    config = experiment_presets("histology").resolve(
        "smoke", {"selection": SELECTION.resolve("strict")}
    )
    assert config.conditions == (
        "original", "affine", "synthetic", "synthetic:selected", "affine+synthetic",
        "affine+synthetic:selected",
    )  # fmt: skip
    assert config.selects and config.trains_on("synthetic")
    listed = experiment_presets("histology").resolve(
        "smoke", {"conditions": ("original", "synthetic:selected")}
    )
    assert listed.selects and listed.trains_on("synthetic") and not listed.trains_on("affine")
    assert not experiment_presets("histology").resolve("smoke").selects
    both = experiment_presets("histology").resolve(
        "smoke", {"generator": "both", "selection": SELECTION.resolve("default")}
    )
    assert both.conditions == (
        "original", "affine", "original+gan", "original+gan:selected", "affine+gan",
        "affine+gan:selected", "original+diffusion", "original+diffusion:selected",
        "affine+diffusion", "affine+diffusion:selected",
    )  # fmt: skip


@pytest.mark.parametrize("condition", ["affine:selected", "original:selected", "gan:selected"])
def test_a_selected_condition_without_generated_images_is_refused_naming_it(condition):
    with pytest.raises(ConfigError, match=f"unknown condition '{condition}'"):
        experiment_presets("histology").resolve("smoke", {"conditions": ("original", condition)})
