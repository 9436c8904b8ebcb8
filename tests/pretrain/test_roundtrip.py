"""``pathsynth pretrain`` from the command line, and its backbone file as --backbone-weights in
``embed``, in a linear-probe ``classify`` and in the experiment ``reproduce`` runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_pathsynth, write_image
from sqlalchemy import select

from pathsynth.backbones.load import load_backbone

from .conftest import SPLIT


@pytest.fixture(scope="module")
def weights(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    done = run_pathsynth("pretrain", "-w", str(lab), "--split", SPLIT, "--fold", "train",
                         "--preset", "smoke", "--runs", str(runs), "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = re.search(r"backbone weights (\S+backbone\.safetensors)", done.stdout)
    assert found, done.stdout
    return Path(found.group(1))


def test_the_command_trains_on_the_fold_and_the_unlabelled_images_and_says_where(
    weights: Path,
) -> None:
    identity = json.loads((weights.parent / "run.json").read_text())

    assert identity["data"]["split"] == SPLIT and identity["data"]["unlabelled"] == "True"
    assert "+ unlabelled" in identity["source"]
    assert json.loads((weights.parent / "config.json").read_text())["preset"] == "smoke"


def test_embed_uses_the_pretrained_weights(lab: Path, weights: Path) -> None:
    done = run_pathsynth("embed", "--backbone", "resnet18", "--backbone-weights", str(weights),
                         "--input-size", "32", "--split", SPLIT, "--fold", "train", "-w", str(lab))  # fmt: skip

    assert done.returncode == 0, done.stderr
    expected = load_backbone("resnet18", weights, input_size=32).weights_sha256
    assert f"weights {expected[:12]}" in done.stdout
    assert expected != load_backbone("resnet18", input_size=32).weights_sha256


def test_an_experiment_probes_on_the_pretrained_backbone(tmp_path: Path, weights: Path) -> None:
    """What ``reproduce --set classifier.kind=linear-probe --set classifier.backbone_weights=F``
    and ``classify`` run: the probes' embeddings are keyed on the pretrained tensors."""
    from pathsynth.catalog.models import Embedding
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment

    source = tmp_path / "source"
    for c, label in enumerate(("a", "b")):
        for i in range(10):
            write_image(source / label / f"img{i}.png", seed=300 * c + i, size=(48, 48))
    space = Workspace.create(tmp_path / "ws")
    overrides = {
        "protocols": ("honest",), "conditions": ("original",), "seeds": 1, "device": "cpu",
        "classifier.kind": "linear-probe", "classifier.backbone": "resnet18",
        "classifier.backbone_weights": str(weights), "classifier.backbone_input_size": 32,
        "classifier.epochs": 3,
    }  # fmt: skip
    config = experiment_presets("cytology").resolve("smoke", overrides)
    experiment = Experiment.create(space, source, config, None, "ssl", log=lambda line: None)
    experiment.run("classify")

    recorded = json.loads(experiment.paths.classifier_run("honest", "original", 0).read_text())
    assert recorded["config"]["backbone_weights"] == str(weights)
    expected = load_backbone("resnet18", weights, input_size=32).weights_sha256
    with space.open_catalog() as catalog, catalog.session() as session:
        keys = set(session.scalars(select(Embedding.weights_sha256)))
    assert keys == {expected}
