"""The whole experiment on real cytology images with the smoke preset: every stage, resumed."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from pathsynth.catalog.models import Image, Run, SplitMember, Study, image_parents
from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError, DataError
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import STAGES, Experiment

CLASSES = ("normal_intermediate", "normal_superficiel")


def two_sites(herlev: Path, root: Path) -> tuple[Path, Path]:
    """Herlev's slide groups dealt to two sources, as two sites would hold them, each in a folder
    called ``cervix``: ``site-a/cervix`` (the experiment's, with a LICENSE file) and
    ``site-b/cervix`` (an external test set whose labels.csv states its licence, with a few cells
    of a class the experiment does not have)."""
    with (herlev / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    sites = {name: root / name / "cervix" for name in ("site-a", "site-b")}
    listed: dict[str, list[str]] = {name: [] for name in sites}
    for row in rows:
        digest = int(hashlib.sha256(row["slide_group"].encode()).hexdigest(), 16)
        name = "site-b" if digest % 4 == 0 else "site-a"
        if row["label"] not in CLASSES and (name == "site-a" or len(listed[name]) > 60):
            continue
        target = sites[name] / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(herlev / row["path"], target)  # ingest refuses links out of a source
        extra = ",CC0 (test copy)" if name == "site-b" else ""
        listed[name].append(f"{row['path']},{row['label']},{row['slide_group']}{extra}")
    (sites["site-a"] / "labels.csv").write_text(
        "path,label,slide_group\n" + "\n".join(listed["site-a"])
    )
    (sites["site-b"] / "labels.csv").write_text(
        "path,label,slide_group,licence\n" + "\n".join(listed["site-b"])
    )
    (sites["site-a"] / "LICENSE").write_text("Herlev test copy, for research\n")
    return sites["site-a"], sites["site-b"]


@pytest.fixture(scope="module")
def finished(herlev, tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    site_a, site_b = two_sites(herlev, root)
    space = Workspace.create(root / "ws")
    lines: list[str] = []
    config = experiment_presets("cytology").resolve("smoke", {"external_test": str(site_b)})
    experiment = Experiment.create(space, site_a, config, CLASSES, "smoke", log=lines.append)
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
    assert isinstance(results["synthesis_quality"]["kid_mean"], float)
    assert isinstance(results["synthesis_quality"]["frechet_distance"], float)
    memorisation = results["memorisation"]
    assert memorisation["total"] == 8 * len(CLASSES)
    assert 0.0 <= memorisation["pixel"]["real_flag_rate"] <= 1.0
    # every stage before `results` finished and is timed (results and report come after)
    assert [stage["name"] for stage in results["stages"]] == list(STAGES)[:-2]
    assert results["data"]["licence"] == "Herlev test copy, for research"  # its LICENSE file
    assert len(results["generator"]["run_id"]) == 32


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
    generator = experiment.state.outputs("generator")
    inputs = experiment.state.outputs("inputs")["rows"]["train"]
    affine = experiment.state.outputs("affine")["train_children"]
    assert generator["training_images"] == inputs + affine


def test_the_report_stage_wrote_the_page_with_the_measured_quality(finished):
    _, experiment, results, _ = finished
    page = experiment.paths.report / "report.html"
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page.read_text())
    assert "honest" in text and "95.5" in text
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    kid = results["synthesis_quality"]["kid_mean"]
    assert f"{kid:.5f}" in text  # the page shows what quality.json holds, not n/a
    assert f"{results['synthesis_quality']['frechet_distance']:.2f}" in text


def test_one_generator_is_timed_and_shown_beside_the_real_images(finished):
    _, experiment, results, _ = finished
    cost = results["generator_costs"]["gan"]
    assert list(results["generator_costs"]) == ["gan"]
    assert cost["train_seconds"] > 0 and cost["sample_images_per_s"] > 0
    assert cost["train_steps"] == experiment.config.gan.optim.steps
    assert cost["sampled_images"] == experiment.config.synthetic_per_class * len(CLASSES)
    with np.load(experiment.paths.examples / "real_vs_synthetic.npz") as examples:
        assert list(examples["sources"]) == ["real", "gan"]
        assert {key for key in examples.files if key != "sources"} == {
            f"{source}_{name}" for source in ("real", "gan") for name in CLASSES
        }
    page = (experiment.paths.report / "report.html").read_text()
    table = page[page.index('<table id="generators">') :].split("</table>")[0]
    measured = [row for row in table.split("<tr")[2:] if 'class="measured"' in row]
    assert len(measured) == 1 and f"{cost['sample_images_per_s']:.2f}" in measured[0]


def test_a_rerun_skips_finished_stages_and_a_lost_run_is_redone(finished, herlev):
    space, experiment, _, _ = finished
    lost = experiment.paths.classifier_run("paper", "synthetic", 1)
    lost.unlink()
    state = experiment.state  # as if killed during classify: its record says running
    state.stages["classify"].status = "running"
    for later in ("quality", "results", "report"):
        state.stages.pop(later)
    state.save(experiment.paths.state)
    lines: list[str] = []
    again = Experiment.create(space, herlev, experiment.config, CLASSES, "smoke", log=lines.append)
    again.run()
    skipped = [line for line in lines if "already finished" in line]
    assert len(skipped) == list(STAGES).index("classify")
    retrained = [line for line in lines if "seed" in line and "accuracy" in line]
    assert len(retrained) == 1 and "paper/synthetic seed 1" in retrained[0]
    assert lost.exists()


def test_an_experiment_of_another_modality_is_refused(finished, herlev):
    space, _, _, _ = finished
    other = experiment_presets("histology").resolve("smoke")
    with pytest.raises(DataError, match="experiment 'smoke' was made for cytology"):
        Experiment.create(space, herlev, other, CLASSES, "smoke")


def test_other_settings_for_a_started_experiment_are_refused(finished):
    space, experiment, _, _ = finished
    other = experiment_presets("cytology").resolve("smoke", {"external_test": experiment.config.external_test,
                                                    "affine_per_class": 151})  # fmt: skip
    with pytest.raises(DataError, match=r"other settings \(affine_per_class\); rerun it"):
        Experiment.create(space, Path(experiment.state.source), other, CLASSES, "smoke")


def test_the_experiment_opens_from_its_record_with_overrides(finished):
    space, experiment, _, _ = finished
    opened = Experiment.open(space, "smoke", {"seeds": 1, "classifier.epochs": "1"})
    assert opened.config.seeds == 1 and opened.config.classifier.epochs == 1
    assert opened.config.gan == experiment.config.gan
    with pytest.raises(ConfigError, match="unknown stage 'clasify'; stages: ingest, split"):
        opened.run(until="clasify")
    with pytest.raises(ConfigError, match=r"gan\.data\.preprocess\.size follows"):
        Experiment.open(space, "smoke", {"gan.data.preprocess.size": "64"})


def test_a_folder_an_older_version_wrote_is_refused_with_what_to_do(finished, tmp_path):
    space, _, _, _ = finished
    old = space.root / "experiments" / "old"
    old.mkdir()
    (old / "state.json").write_text(json.dumps({"experiment": {}, "stages": {}, "config": {}}))
    with pytest.raises(
        DataError,
        match=r"another pathsynth version \(format none.*another --name, or delete the folder",
    ):
        Experiment.open(space, "old")


def test_every_classifier_is_tested_on_the_external_set_it_never_saw(finished):
    space, _, results, lines = finished
    external = results["data"]["external"]
    assert external["licence"] == "CC0 (test copy)" and external["images"] > 10
    assert external["other_classes"] and sum(external["other_classes"].values()) <= 61
    assert set(results["external"]) == set(results["conditions"])
    for condition in results["external"].values():
        for seed in condition["per_seed"]:
            assert sum(map(sum, seed["confusion_matrix"])) == external["images"]
    with space.open_catalog() as catalog, catalog.session() as session:
        sources = dict(
            session.execute(
                select(SplitMember.image_id, Study.source)
                .join(Image, Image.id == SplitMember.image_id)
                .join(Study, Study.id == Image.study_id)
            ).all()
        )
    assert set(sources.values()) == {"cervix"}  # no external image is in the split
    assert any("left out classes" in line for line in lines)


def test_a_training_set_that_holds_an_external_image_is_refused(finished):
    from pathsynth.experiment.protocols import check_external

    _, experiment, _, _ = finished
    sets = experiment.context.sets()
    assert sets.external is not None
    with pytest.raises(DataError, match="external test image or its affine child reached training"):
        check_external(sets.external, sets.real_train, sets.external.select(sets.external.ids >= 0))


def test_every_classifier_is_kept_as_a_bundle_that_predicts_as_tested(finished):
    from pathsynth.classify.bundle import read_manifest

    _, experiment, results, _ = finished
    for protocol, condition in (("honest", "original"), ("paper", "synthetic")):
        for seed in range(experiment.config.seeds):
            manifest = read_manifest(
                experiment.paths.classifier_run(protocol, condition, seed).with_suffix(".bundle")
            )
            assert (manifest.provenance.protocol, manifest.provenance.condition) == (
                protocol,
                condition,
            )
            assert manifest.class_names == list(CLASSES)
            recorded = results["conditions"][f"{protocol}/{condition}"]["per_seed"][seed]
            assert manifest.metrics["accuracy"] == recorded["accuracy"]
    synthetic = read_manifest(
        experiment.paths.classifier_run("honest", "synthetic", 0).with_suffix(".bundle")
    )
    assert synthetic.provenance.generator_run_id == results["generator"]["run_id"]
    # no absolute path leaves the workspace in a bundle or the results: the folders' own names
    assert synthetic.provenance.source == "cervix"
    assert results["experiment"]["source"] == results["data"]["source"] == "cervix"
    # a folder named like the source is known by its parent's name too (a lab's two sites)
    assert results["data"]["external"]["source"] == "site-b-cervix"
    assert str(experiment.state.source) not in json.dumps(results)


def test_a_record_without_a_newer_setting_resumes_with_its_default(finished):
    space, experiment, _, _ = finished
    state = json.loads(experiment.paths.state.read_text())
    del state["config"]["classifier"]["tta"]  # as written before the setting existed
    experiment.paths.state.write_text(json.dumps(state))
    again = Experiment.create(
        space, Path(experiment.state.source), experiment.config, CLASSES, "smoke"
    )
    assert again.state.finished("report")


def test_a_split_of_the_same_name_made_otherwise_is_refused(finished):
    from pathsynth.catalog.api import create_split
    from pathsynth.catalog.splits import SplitRequest

    space, experiment, _, _ = finished
    create_split(space, SplitRequest("other-real", unit="group", seed=99, source="cervix"))
    other = Experiment.create(
        space, Path(experiment.state.source), experiment.config, CLASSES, "other"
    )
    with pytest.raises(DataError, match=r"split 'other-real' made with other settings \(classes"):
        other.run(until="split")


def test_an_external_set_sharing_patients_with_the_source_is_refused_before_training():
    import torch

    from pathsynth.experiment.data import _check_patients_apart
    from pathsynth.experiment.protocols import LabelledPart
    from pathsynth.imaging.tensorset import TensorImageSet

    def part(groups: list[int]) -> LabelledPart:
        images = TensorImageSet(
            torch.zeros(len(groups), 3, 8, 8, dtype=torch.uint8),
            torch.zeros(len(groups), dtype=torch.long),
            ["a"],
        )
        ids = torch.arange(len(groups)) + 100 * groups[0]
        return LabelledPart(images, ids, ids, torch.tensor(groups))

    _check_patients_apart({"train": part([1, 2]), "test": part([3]), "external": part([7, 8])})
    with pytest.raises(DataError, match="shares 1 patient"):
        _check_patients_apart({"train": part([1, 2]), "test": part([3]), "external": part([2, 9])})
