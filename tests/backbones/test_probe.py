"""Frozen-feature classifiers: a linear head on stored embeddings, early stopping on validation
images, inside the experiment beside fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_image
from sqlalchemy import func, select

from pathsynth.backbones import load_backbone
from pathsynth.classify.bundle import Provenance, load_bundle, save_bundle
from pathsynth.classify.config import classifier_config
from pathsynth.classify.probe import FeatureSet, FrozenFeatureClassifier, train_linear_probe
from pathsynth.errors import ConfigError
from pathsynth.imaging.patches import PreprocessConfig


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("resnet18", input_size=32)


def _clusters(n: int, seed: int) -> FeatureSet:
    """Three classes around orthogonal centres, with noise that a 512-d head overfits."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.eye(3, 512) * 8.0
    return FeatureSet(centres[labels] + torch.randn(n, 512, generator=generator), labels)


def test_the_head_stops_on_validation_images_and_keeps_its_best_epoch(tiny):
    from sklearn.metrics import balanced_accuracy_score

    config = classifier_config("linear-probe", patience=10, batch_size=16, learning_rate=1e-2)
    model = FrozenFeatureClassifier(tiny, 3)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    validation = _clusters(30, 1)
    result = train_linear_probe(model, _clusters(60, 0), validation, ["a", "b", "c"], config)
    assert result.stopped_early and len(result.history) < config.epochs
    best = result.history[result.best_epoch - 1]
    assert best.validation_balanced_accuracy == max(
        r.validation_balanced_accuracy for r in result.history
    )
    with torch.no_grad():
        predicted = model.head(validation.features).argmax(1)
    restored = balanced_accuracy_score(validation.labels.numpy(), predicted.numpy())
    assert restored == pytest.approx(best.validation_balanced_accuracy) and restored > 0.6
    # the backbone is frozen: training the head changed none of its tensors
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_a_probe_bundle_predicts_images_as_the_trained_network(tiny, tmp_path):
    config = classifier_config("linear-probe", backbone="resnet18", backbone_input_size=32)
    model = FrozenFeatureClassifier(load_backbone("resnet18", input_size=32, seed=5), 2).eval()
    path = tmp_path / "probe.bundle"
    save_bundle(path, model, config, PreprocessConfig(size=32), ["a", "b"],
                Provenance(experiment=None, protocol="honest", condition="original", seed=0,
                           training_images=4, modality="histology", source="x"), {})  # fmt: skip
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    loaded = load_bundle(path)
    with torch.no_grad():
        assert torch.allclose(loaded.model(images), model(images), atol=1e-5)


def test_an_unknown_kind_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="kind must be one of fine-tune, linear-probe"):
        classifier_config("quick", kind="probe")


def test_classify_trains_probes_on_stored_embeddings_computed_once(tmp_path):
    """An experiment fine-tuned first, then ``pathsynth classify --set classifier.kind=
    linear-probe`` replaces its classifiers by probes; a rerun embeds nothing again."""
    from helpers import run_pathsynth

    from pathsynth.catalog.models import Embedding, Image, Run
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_config
    from pathsynth.experiment.pipeline import Experiment

    source = tmp_path / "source"
    for c, label in enumerate(("a", "b")):
        for i in range(10):
            write_image(source / label / f"img{i}.png", seed=100 * c + i, size=(48, 48))
    space = Workspace.create(tmp_path / "ws")
    overrides = {"protocols": ("honest",), "conditions": ("original", "affine"), "seeds": 1,
                 "device": "cpu"}  # fmt: skip
    config = experiment_config("smoke", "cytology", overrides)
    Experiment.create(space, source, config, None, "probe", log=lambda line: None).run("classify")
    probe = (
        "classify", "--experiment", "probe", "--train-on", "original,affine", "--seeds", "2",
        "--set", "classifier.kind=linear-probe", "--set", "classifier.backbone=resnet18",
        "--set", "classifier.backbone_input_size=32", "--set", "classifier.epochs=5",
        "-w", str(tmp_path / "ws"),
    )  # fmt: skip
    done = run_pathsynth(*probe)
    assert done.returncode == 0, done.stderr
    assert "linear probe on resnet18 (512 dims, weights random-init, 32 px)" in done.stdout

    def counts() -> tuple[int, int, list[str]]:
        with space.open_catalog() as catalog, catalog.session() as session:
            vectors = int(session.scalar(select(func.count(Embedding.id))) or 0)
            images = int(session.scalar(select(func.count(Image.id))) or 0)
            runs = list(session.scalars(select(Run.name).where(Run.kind == "embed")))
        return vectors, images, runs

    stored, catalogued, embed_runs = counts()
    # one vector per image the runs used (children of validation images are kept out)
    assert 0 < stored <= catalogued and len(embed_runs) == 1
    experiment = Experiment.open(space, "probe")
    for condition in ("original", "affine"):
        for seed in (0, 1):
            recorded = json.loads(
                experiment.paths.classifier_run("honest", condition, seed).read_text()
            )
            assert recorded["config"]["kind"] == "linear-probe" and recorded["test"]["images"] > 0
    done = run_pathsynth(*probe)
    assert done.returncode == 0, done.stderr
    assert counts()[0] == stored  # every vector came from the catalog the second time
