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
from pathsynth.classify.config import CLASSIFIER
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

    config = CLASSIFIER.resolve(
        "linear-probe", {"patience": 10, "batch_size": 16, "learning_rate": 1e-2}
    )
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
    config = CLASSIFIER.resolve("linear-probe", {"backbone": "resnet18", "backbone_input_size": 32})
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
        CLASSIFIER.resolve("quick", {"kind": "probe"})


def test_classify_trains_probes_on_stored_embeddings_computed_once(tmp_path):
    """An experiment fine-tuned first, then ``pathsynth classify --set classifier.kind=
    linear-probe`` replaces its classifiers by probes; a rerun embeds nothing again."""
    from helpers import run_pathsynth

    from pathsynth.catalog.models import Embedding, Image, Run
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment

    source = tmp_path / "source"
    for c, label in enumerate(("a", "b")):
        for i in range(10):
            write_image(source / label / f"img{i}.png", seed=100 * c + i, size=(48, 48))
    space = Workspace.create(tmp_path / "ws")
    overrides = {"protocols": ("honest",), "conditions": ("original", "affine"), "seeds": 1,
                 "device": "cpu"}  # fmt: skip
    config = experiment_presets("cytology").resolve("smoke", overrides)
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
    test_ids = sorted(experiment.context.sets().real_test.ids.unique().tolist())
    for condition in ("original", "affine"):
        for seed in (0, 1):
            recorded = json.loads(
                experiment.paths.classifier_run("honest", condition, seed).read_text()
            )
            assert recorded["config"]["kind"] == "linear-probe" and recorded["test"]["images"] > 0
            # each prediction is named by its image's catalog id, as a fine-tuned run's are
            assert recorded["test"]["image_ids"] == test_ids
    done = run_pathsynth(*probe)
    assert done.returncode == 0, done.stderr
    assert counts()[0] == stored  # every vector came from the catalog the second time


def test_synthetic_images_go_through_the_same_backbone_one_vector_per_image(tmp_path, tiny):
    """Real and GAN images of one training part: each catalog image's rows (here two patches)
    are averaged into one vector by the same backbone, stored under its content hash, and found
    again by a second stage instead of being recomputed."""
    import io
    from dataclasses import dataclass
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image as PILImage

    from pathsynth.backbones import embed_inputs
    from pathsynth.catalog.api import (
        all_images,
        image_sha256s,
        store_generated,
        stored_embeddings,
    )
    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.probe import ExperimentEmbeddings
    from pathsynth.experiment.protocols import LabelledPart
    from pathsynth.imaging.tensorset import TensorImageSet

    @dataclass(frozen=True)
    class Generated:
        class_name: str
        seed: int
        index: int
        step: int
        png: bytes

    def png(seed: int) -> bytes:
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    source = tmp_path / "source"
    for i in range(2):
        write_image(source / "a" / f"img{i}.png", seed=i)
    space = Workspace.create(tmp_path / "ws")
    ingest_source(space, source, IngestOptions(modality="histology", workers=0))
    run = {"run_id": "cd" * 16, "run_name": "gan", "run_dir": "/runs/gan", "checkpoint_step": 1}
    store_generated(space, [Generated("a", 3, i, 1, png(50 + i)) for i in range(2)], run)
    ids = torch.tensor([image.image_id for image in all_images(space)]).repeat_interleave(2)
    rows = torch.randint(0, 256, (len(ids), 3, 32, 32), dtype=torch.uint8)
    part = LabelledPart(TensorImageSet(rows, torch.zeros(len(ids), dtype=torch.int64), ["a"]),
                        ids, ids, torch.zeros(len(ids), dtype=torch.int64))  # fmt: skip
    context = SimpleNamespace(
        workspace=space,
        config=SimpleNamespace(preprocess=PreprocessConfig(size=32)),
        state=SimpleNamespace(outputs=lambda stage: {}),
    )
    features = ExperimentEmbeddings(context, tiny).of(part)
    expected = embed_inputs(tiny, rows, torch.arange(4).repeat_interleave(2))
    assert features.features.shape == (4, 512)
    assert torch.allclose(features.features, expected, atol=1e-5)
    again = ExperimentEmbeddings(context, tiny)
    shas = image_sha256s(space, ids.tolist())
    stored = stored_embeddings(space, again.key, shas.values())
    assert len(stored) == 4  # two real and two synthetic images, one vector each
    assert torch.allclose(again.of(part).features, expected, atol=1e-5)
