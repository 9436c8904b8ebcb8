"""Patient-level cross-validation: folds run as experiments of their own, every image tested once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import Experiment

CLASSES = ("normal_intermediate", "normal_superficiel")


@pytest.fixture(scope="module")
def pooled(herlev, tmp_path_factory):
    space = Workspace.create(tmp_path_factory.mktemp("crossval") / "ws")
    overrides = {"folds": 2, "seeds": 1, "protocols": "honest", "conditions": "original,affine",
                 "stain_normalisation": "reinhard"}  # fmt: skip
    config = experiment_presets("cytology").resolve("smoke", overrides)
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


def test_each_fold_normalises_stain_to_its_own_training_fold(pooled):
    from pathsynth.classify.bundle import read_manifest
    from pathsynth.experiment.state import ExperimentPaths, ExperimentState

    space, _, _ = pooled
    references = []
    for k in (0, 1):
        folder = space.root / "experiments" / f"cv-fold{k}"
        state = ExperimentState.load(folder / "state.json")
        reference = state.stages["inputs"].outputs["stain_reference"]
        assert reference["method"] == "reinhard" and reference["fitted_images"] > 0
        bundle = ExperimentPaths(folder).classifier_run("honest", "original", 0)
        manifest = read_manifest(bundle.with_suffix(".bundle"))
        assert manifest.stain is not None and list(manifest.stain.lab_mean) == reference["lab_mean"]
        references.append(reference["lab_mean"])
    assert references[0] != references[1]  # fitted on each fold's own training images


def test_neither_the_whole_nor_a_fold_can_be_invalidated_apart(pooled):
    from pathsynth.errors import DataError

    space, _, _ = pooled
    with pytest.raises(DataError, match="'cv' is a cross-validation: its folds"):
        Experiment.open(space, "cv").invalidate("classify")
    with pytest.raises(DataError, match="'cv-fold0' is a fold of the cross-validation 'cv'"):
        Experiment.open(space, "cv-fold0").invalidate("classify")


def test_a_generator_s_costs_are_the_mean_of_a_fold_s():
    from pathsynth.experiment.crossval import _pooled_costs
    from pathsynth.records.schema import GeneratorCost

    def cost(train_s: float | None, steps: int, sample_s: float, images: int, device: str):
        return GeneratorCost(train_s, steps, None if train_s is None else steps * 32 / train_s,
                             device, sample_s, images, images / sample_s, device)  # fmt: skip

    folds = [
        {"gan": cost(100.0, 300, 2.0, 40, "cpu"), "diffusion": cost(None, 50, 8.0, 40, "cpu")},
        {"gan": cost(300.0, 300, 6.0, 60, "cuda:0"), "diffusion": cost(90.0, 50, 8.0, 40, "cpu")},
    ]
    pooled = _pooled_costs(folds)
    gan = pooled["gan"]
    assert (gan.train_seconds, gan.train_steps, gan.sampled_images) == (200.0, 300, 50)
    assert gan.train_images_per_s == pytest.approx(2 * 300 * 32 / 400)  # both folds' images
    assert gan.sample_images_per_s == pytest.approx(100 / 8)
    assert gan.train_device == gan.sample_device == "cpu; cuda:0"
    diffusion = pooled["diffusion"]  # one fold recorded no training time: no mean, no rate
    assert diffusion.train_seconds is None and diffusion.train_images_per_s is None
    assert diffusion.sample_seconds == 8.0 and diffusion.sample_device == "cpu"


def test_the_estimate_pools_each_seed_s_folds_into_one_confusion_matrix(pooled):
    _, experiment, results = pooled
    for condition in results["conditions"].values():
        # one seed: its folds' confusion matrices summed
        matrix = sum(np.asarray(run["confusion_matrix"]) for run in condition["per_seed"])
        recalls = [row[i] / row.sum() for i, row in enumerate(matrix) if row.sum()]
        assert condition["pooled_balanced_accuracy"]["mean"] == pytest.approx(np.mean(recalls))
    page = (experiment.paths.report / "report.html").read_text()
    assert "Estimate for new patients" in page and "balanced accuracy, folds pooled" in page
    # the audit of each fold's split: Herlev by slide group, no group on both sides
    audits = results["data"]["audits"]
    assert [audit["split"] for audit in audits] == ["cv-real-f0", "cv-real-f1"]
    assert all(audit["shared_units"] == 0 and not audit["image_level"] for audit in audits)
    assert "Split audit" in page and "cv-real-f1" in page


def test_a_fold_that_tests_one_class_counts_whole_in_the_pooled_estimate():
    from pathsynth.experiment.crossval import pooled_over_folds
    from pathsynth.records.schema import Curves, SeedResult

    def run(fold: int, seed: int, matrix: list[list[int]]) -> SeedResult:
        curves = Curves([], [], [], [])
        return SeedResult(seed, 0.0, 0.0, 0.0, None, matrix, {}, curves, fold)

    # fold 0 tests class a only (all right), fold 1 class b only (half right): per fold the
    # balanced accuracies are 1.0 and 0.5; pooled per seed it is (10/10 + 5/10) / 2 = 0.75
    runs = [run(0, 0, [[10, 0], [0, 0]]), run(1, 0, [[0, 0], [5, 5]])]
    runs += [run(0, 1, [[8, 2], [0, 0]]), run(1, 1, [[0, 0], [3, 7]])]
    estimate = pooled_over_folds(runs)
    assert estimate is not None and estimate.n == 2
    assert estimate.mean == pytest.approx((0.75 + 0.75) / 2)


def test_each_fold_s_seeds_averaged_are_pooled_into_one_ensemble_figure(pooled):
    space, experiment, results = pooled
    for key, condition in results["conditions"].items():
        folds = [
            json.loads((space.root / "experiments" / f"cv-fold{k}" / "results.json").read_text())
            for k in (0, 1)
        ]
        matrices = [
            np.asarray(fold["conditions"][key]["ensemble"]["confusion_matrix"]) for fold in folds
        ]
        ensemble = condition["ensemble"]
        assert ensemble["members"] == 1 and ensemble["confusion_matrix"] == sum(matrices).tolist()
        low, high = ensemble["patient_interval"]  # slide groups resampled
        assert 0.0 <= low <= ensemble["balanced_accuracy"] <= high <= 1.0
        # one seed: the ensemble of one model is that model
        assert (
            ensemble["confusion_matrix"]
            == sum(np.asarray(run["confusion_matrix"]) for run in condition["per_seed"]).tolist()
        )
    assert (
        "seeds averaged into one prediction"
        in (experiment.paths.report / "report.html").read_text()
    )


def test_a_seed_ensemble_averages_probabilities_and_needs_the_same_images():
    from pathsynth.experiment.classification import TestScore
    from pathsynth.experiment.results import seed_ensemble

    def score(probabilities: list[list[float]], ids: list[int] = [7, 8, 9]) -> TestScore:  # noqa: B006
        return TestScore(3, {}, [], {}, ids, [0, 1, 1], probabilities)

    # image 9: seed 0 says class 0 (0.6), seed 1 says class 1 (0.9): the mean says class 1
    one = score([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    two = score([[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    ensemble = seed_ensemble([one, two])
    assert ensemble is not None and ensemble.members == 2
    assert ensemble.confusion_matrix == [[1, 0], [0, 2]] and ensemble.balanced_accuracy == 1.0
    assert seed_ensemble([one, score([[0.5, 0.5]] * 3, ids=[7, 8, 10])]) is None
    assert seed_ensemble([TestScore(3, {}, [], {})]) is None  # a run recorded without them


def test_the_folds_bundles_are_gathered_so_predict_averages_what_the_estimate_describes(
    pooled, herlev
):
    from pathsynth.classify.bundle import load_bundles
    from pathsynth.classify.predict import predict_files

    _, experiment, _ = pooled
    folder = experiment.paths.folder / "classify" / "honest" / "original"
    assert sorted(p.name for p in folder.glob("*.bundle")) == [
        "fold0-seed0.bundle",
        "fold1-seed0.bundle",
    ]
    bundles = load_bundles(folder)
    assert {b.manifest.provenance.experiment for b in bundles} == {"cv-fold0", "cv-fold1"}
    files = sorted((herlev / "images" / CLASSES[0]).glob("*.jpg"))[:3]
    mean = predict_files(bundles, files).probabilities
    each = [predict_files(bundle, files).probabilities for bundle in bundles]
    assert torch.allclose(mean, (each[0] + each[1]) / 2)


def test_the_patient_interval_resamples_whole_patients():
    from pathsynth.metrics.classification import patient_bootstrap_interval

    # class 0: patients 1 (all right) and 2 (all wrong); class 1: patients 3 and 4 (all right)
    labels = [0] * 20 + [1] * 20
    predicted = [0] * 10 + [1] * 10 + [1] * 20
    patients = [1] * 10 + [2] * 10 + [3] * 10 + [4] * 10
    low, high = patient_bootstrap_interval(labels, predicted, patients, resamples=400, seed=1)
    # class 1 always scores 1; class 0 scores 0, 0.5 or 1 by which of its patients are drawn
    assert (low, high) == (0.5, 1.0)
    image_level = patient_bootstrap_interval(labels, predicted, list(range(40)), resamples=400)
    assert image_level[1] - image_level[0] < high - low  # images as units: far too narrow
