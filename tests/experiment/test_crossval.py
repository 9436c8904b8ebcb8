"""Patient-level cross-validation: folds run as experiments of their own, every image tested once."""

from __future__ import annotations

import json

import pytest

from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError
from pathsynth.experiment.config import experiment_config
from pathsynth.experiment.pipeline import Experiment

CLASSES = ("normal_intermediate", "normal_superficiel")


@pytest.fixture(scope="module")
def pooled(herlev, tmp_path_factory):
    space = Workspace.create(tmp_path_factory.mktemp("crossval") / "ws")
    overrides = {"folds": 2, "seeds": 1, "protocols": "honest", "conditions": "original,affine"}
    config = experiment_config("smoke", "cytology", overrides)
    experiment = Experiment.create(space, herlev, config, CLASSES, "cv", log=lambda line: None)
    results = json.loads(experiment.run().read_text())
    return space, experiment, results


def test_every_real_image_is_tested_once_over_the_folds(pooled):
    space, _, results = pooled
    assert results["experiment"]["folds"] == 2
    images = sum(sum(counts.values()) for counts in results["data"]["counts"].values())
    assert images == 47 + 50  # the two classes' real images, each in one fold's test set
    for condition in results["conditions"].values():
        assert [run["fold"] for run in condition["per_seed"]] == [0, 1]
        tested = sum(sum(map(sum, run["confusion_matrix"])) for run in condition["per_seed"])
        assert tested == images
    folds = [space.root / "experiments" / f"cv-fold{k}" / "results.json" for k in (0, 1)]
    assert all(path.is_file() for path in folds)
    assert [c["b"] for c in results["comparisons"]] == ["affine", "affine"]  # paired by fold


def test_the_report_says_it_is_a_cross_validation(pooled):
    _, experiment, _ = pooled
    page = (experiment.paths.report / "report.html").read_text()
    assert "patient-level 2-fold cross-validation" in page and "fold 1, seed 0" in page


def test_a_fold_stage_is_no_place_to_stop_a_cross_validation(pooled):
    space, _, _ = pooled
    opened = Experiment.open(space, "cv")
    with pytest.raises(ConfigError, match="a cross-validation stops after one of ingest, folds"):
        opened.run(until="classify")
