"""The whole experiment on real cytology images with the smoke preset: every stage, resumed."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from pathsynth.catalog.models import Image, Run, SplitMember, image_parents
from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import DataError
from pathsynth.experiment.config import experiment_config
from pathsynth.experiment.pipeline import STAGES, Experiment

CLASSES = ("normal_intermediate", "normal_superficiel")


@pytest.fixture(scope="module")
def finished(herlev, tmp_path_factory):
    space = Workspace.create(tmp_path_factory.mktemp("reproduce") / "ws")
    lines: list[str] = []
    config = experiment_config("smoke", "cytology")
    experiment = Experiment(space, herlev, "cytology", config, CLASSES, "smoke", log=lines.append)
    results_path = experiment.run()
    return space, experiment, json.loads(results_path.read_text()), lines


def test_every_condition_of_both_protocols_has_a_result_per_seed(finished):
    _, experiment, results, _ = finished
    assert set(results["conditions"]) == {
        f"{p}/{c}" for p in ("honest", "paper")
        for c in ("original", "affine", "synthetic", "affine+synthetic")
    }  # fmt: skip
    test_images = sum(results["data"]["counts"]["test"].values())
    for key, condition in results["conditions"].items():
        assert len(condition["per_seed"]) == experiment.config.seeds
        for seed in condition["per_seed"]:
            assert 0.0 <= seed["accuracy"] <= 1.0
            matrix = seed["confusion_matrix"]
            if key.startswith("honest"):  # per real test image, patches aggregated
                assert sum(map(sum, matrix)) == test_images
    assert results["paper_reference"]["cytology"] == {"original": 0.75, "synthetic": 0.955}
    compared = {(c["protocol"], c["b"], c["metric"]) for c in results["comparisons"]}
    assert ("honest", "synthetic", "accuracy") in compared
    assert all(isinstance(c["difference"], float) for c in results["comparisons"])
    assert results["synthesis_quality"]["kid_mean"] is not None or results["synthesis_quality"]
    assert results["memorisation"]["total"] == 8 * len(CLASSES)
    assert [stage["name"] for stage in results["stages"]][: len(STAGES) - 1] == list(STAGES[:-1])


def test_affine_children_and_the_gan_only_saw_the_training_fold(finished):
    space, experiment, _, _ = finished
    with space.open_catalog() as catalog, catalog.session() as session:
        split_train = set(
            session.scalars(select(SplitMember.image_id).where(SplitMember.fold == "train"))
        )
        honest_run = session.scalar(select(Run.id).where(Run.name == "smoke-affine-train"))
        parents = set(
            session.scalars(
                select(image_parents.c.parent_id)
                .join(Image, Image.id == image_parents.c.image_id)
                .where(Image.run_id == honest_run)
            )
        )
        synthetic = session.scalars(select(Image).where(Image.origin == "synthetic")).all()
    assert parents and parents <= split_train
    assert len(synthetic) == 8 * len(CLASSES)
    assert {image.label for image in synthetic} == set(CLASSES)
    gan_outputs = experiment.state["stages"]["gan"]["outputs"]
    inputs = experiment.state["stages"]["inputs"]["outputs"]["rows"]["train"]
    affine = experiment.state["stages"]["affine"]["outputs"]["train_children"]
    assert gan_outputs["training_images"] == inputs + affine


def test_report_page_holds_the_accuracy_table(finished):
    _, experiment, _, _ = finished
    from pathsynth.report import write_report

    page = write_report(experiment.folder / "results.json", experiment.folder / "report")
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page.read_text())
    assert "honest" in text and "95.5" in text
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)


def test_a_rerun_skips_finished_stages_and_a_lost_run_is_redone(finished, herlev):
    space, experiment, _, _ = finished
    lost = experiment.folder / "classify" / "paper" / "synthetic" / "seed1.json"
    lost.unlink()
    state = json.loads(experiment.state_path.read_text())
    for stage in ("classify", "quality", "results"):  # as if killed during classify
        state["stages"].pop(stage)
    experiment.state_path.write_text(json.dumps(state))
    lines: list[str] = []
    again = Experiment(
        space, herlev, "cytology", experiment.config, CLASSES, "smoke", log=lines.append
    )
    again.run()
    skipped = [line for line in lines if "already finished" in line]
    assert len(skipped) == STAGES.index("classify")
    retrained = [line for line in lines if "seed" in line and "accuracy" in line]
    assert len(retrained) == 1 and "paper/synthetic seed 1" in retrained[0]
    assert lost.exists()


def test_an_experiment_of_another_modality_is_refused(finished, herlev):
    space, experiment, _, _ = finished
    with pytest.raises(DataError, match="experiment 'smoke' was made for cytology"):
        Experiment(space, herlev, "histology", experiment.config, CLASSES, "smoke")
