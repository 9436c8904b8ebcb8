"""``reproduce --generator both`` at smoke size: both generators trained on the training fold
only, each one's images in the catalog, the conditions named for the generator, and each
generator's images selected against the same real-fold thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from experiment.test_reproduce import CLASSES, two_sites
from sqlalchemy import select

from pathsynth.catalog.api import selection_scores
from pathsynth.catalog.models import Image, Run
from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import Experiment
from pathsynth.selection.config import SELECTION

NAMED = ("original+gan", "affine+gan", "original+diffusion", "affine+diffusion")
SELECTED = tuple(name for condition in NAMED for name in (condition, f"{condition}:selected"))


def test_both_generators_train_generate_select_and_name_their_conditions(
    herlev: Path, tmp_path: Path
) -> None:
    site_a, _ = two_sites(herlev, tmp_path)
    space = Workspace.create(tmp_path / "ws")
    config = experiment_presets("cytology").resolve("smoke", {"generator": "both", "seeds": 1, "protocols": ("honest",), "classifier.epochs": 2,
         "selection": SELECTION.resolve("default")})  # fmt: skip
    assert config.conditions == ("original", "affine", *SELECTED)
    experiment = Experiment.create(space, site_a, config, CLASSES, "both", log=lambda line: None)
    results = json.loads(experiment.run(until="report").read_text())

    trained = experiment.state.outputs("generator")
    assert set(trained["runs"]) == {"gan", "diffusion"}
    assert trained["run_dir"] == trained["runs"]["gan"]["run_dir"]
    assert trained["runs"]["diffusion"]["steps"] == config.diffusion.optim.steps
    run_kind = json.loads((Path(trained["runs"]["diffusion"]["run_dir"]) / "run.json").read_text())
    assert run_kind["kind"] == "diffusion"
    made = experiment.state.outputs("generate")["by_generator"]
    per_kind = config.synthetic_per_class * len(CLASSES)
    assert made["gan"]["images"] == made["diffusion"]["images"] == per_kind
    with space.open_catalog() as catalog, catalog.session() as session:
        kinds = dict(session.execute(select(Run.name, Run.kind)).all())
        diffusion_run = next(name for name, kind in kinds.items() if kind == "diffusion")
        run_id = session.scalar(select(Run.id).where(Run.name == diffusion_run))
        transforms = session.scalars(select(Image.transform).where(Image.run_id == run_id)).all()
    assert len(transforms) == per_kind
    assert all(t["guidance"] == config.diffusion.sampling.guidance for t in transforms)
    conditions = {key.split("/")[1] for key in results["conditions"]}
    assert conditions == {"original", "affine", *SELECTED}
    # each generator measured alike against the real training fold, side by side in the report
    assert set(results["generators"]) == {"gan", "diffusion"}
    gan, diffusion = results["generators"]["gan"], results["generators"]["diffusion"]
    assert results["synthesis_quality"] == gan["quality"]  # the first generator's, as before
    assert gan["quality"]["feature_extractor"] == diffusion["quality"]["feature_extractor"]
    assert diffusion["memorisation"]["total"] == per_kind
    assert gan["quality"]["kid_mean"] != diffusion["quality"]["kid_mean"]
    # what each generator cost, measured where it trained and sampled
    costs = results["generator_costs"]
    assert list(costs) == ["gan", "diffusion"]
    for kind, cost in costs.items():
        assert cost["train_seconds"] > 0 and cost["train_images_per_s"] > 0, kind
        assert cost["sample_seconds"] > 0 and cost["sample_images_per_s"] > 0, kind
        assert cost["train_steps"] == trained["runs"][kind]["steps"]
        assert cost["sampled_images"] == per_kind
        assert cost["train_device"] == cost["sample_device"] and cost["train_device"]
    assert costs["diffusion"]["sample_seconds"] == made["diffusion"]["sample_seconds"]
    # real training images beside each generator's, per class, in one figure
    with np.load(experiment.paths.examples / "real_vs_synthetic.npz") as examples:
        assert list(examples["sources"]) == ["real", "gan", "diffusion"]
        for name in CLASSES:
            assert len(examples[f"real_{name}"]) == len(examples[f"diffusion_{name}"]) == 8
    figures = json.loads((experiment.paths.report / "report.json").read_text())["figures"]
    assert "real_vs_generated" in figures
    report = (experiment.paths.report / "report.html").read_text()
    assert "Generators compared" in report and "<th>diffusion</th>" in report
    table = report[report.index('<table id="generators">') :].split("</table>")[0]
    measured = [row for row in table.split("<tr")[2:] if 'class="measured"' in row]
    assert len(measured) == 2 and all("not recorded" not in row for row in measured)
    assert "FID 0.63" in table and "not measured here" in table
    downstream = report[report.index('<table id="generator-downstream">') :].split("</table>")[0]
    for kind in ("gan", "diffusion"):  # each generator's honest conditions, selected ones too
        assert f"<code>affine+{kind}</code>" in downstream
        assert f"<code>affine+{kind}:selected</code>" in downstream

    # selection: each generator's images scored against the same real-fold thresholds
    record = json.loads(experiment.paths.selection.read_text())
    ids = {
        kind: set(torch.load(experiment.paths.generated(kind), weights_only=False)["ids"].tolist())
        for kind in ("gan", "diffusion")
    }
    assert not ids["gan"] & ids["diffusion"]
    stored = {row.image_id: row for row in selection_scores(space, "both")}
    assert set(stored) == ids["gan"] | ids["diffusion"]
    for image in record["images"]:
        assert image["image_id"] in ids[image["generator"]]
        assert stored[image["image_id"]].kept == image["kept"]
    kept = {
        kind: {i["image_id"] for i in record["images"] if i["generator"] == kind and i["kept"]}
        for kind in ("gan", "diffusion")
    }
    selection = results["selection"]
    assert list(selection["generators"]) == ["gan", "diffusion"]
    assert selection["kept"] == len(kept["gan"])  # the top level stays the first generator's
    for kind, made in selection["generators"].items():
        assert made["generated"] == per_kind and made["kept"] == len(kept[kind])
        assert 0 < made["kept"] <= per_kind
        for name, counts in made["per_class"].items():  # one set of thresholds for both
            limits = selection["per_class"][name]
            assert counts["min_confidence"] == limits["min_confidence"]
            assert counts["max_distance"] == limits["max_distance"]
        # each selected condition trains on its own generator's kept images only
        for base in ("original", "affine"):
            unselected = results["conditions"][f"honest/{base}+{kind}"]["train_images"]
            chosen = results["conditions"][f"honest/{base}+{kind}:selected"]["train_images"]
            assert chosen == unselected - (per_kind - made["kept"])
        part = experiment.context.sets().generated_for(f"affine+{kind}:selected")
        assert set(part.ids.tolist()) == kept[kind]
    shown = report[report.index('<table id="selection-generators">') :].split("</table>")[0]
    for kind, made in selection["generators"].items():
        assert f'<th>{kind}</th><th>all</th><td class="num">{made["kept"]}</td>' in shown


def test_both_generators_refuse_an_unnamed_synthetic_condition() -> None:
    with pytest.raises(ConfigError, match="with generator 'both' name the generator"):
        experiment_presets("cytology").resolve(
            "smoke", {"generator": "both", "conditions": "original,synthetic"}
        )
    with pytest.raises(ConfigError, match="needs the diffusion generator"):
        experiment_presets("cytology").resolve(
            "smoke", {"conditions": "original,original+diffusion"}
        )
    with pytest.raises(ConfigError, match="needs the diffusion generator"):
        experiment_presets("cytology").resolve("smoke", {"conditions": "original,affine+diffusion:selected",
             "selection": SELECTION.resolve("default")})  # fmt: skip
    with pytest.raises(ConfigError, match="needs the gan generator"):
        experiment_presets("cytology").resolve(
            "smoke", {"generator": "diffusion", "conditions": "affine+gan:selected"}
        )
