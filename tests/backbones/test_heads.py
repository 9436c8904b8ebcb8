"""Logistic regression on embeddings, fine-tuning a timm backbone (last blocks, layer-wise
learning-rate decay), several classifier kinds side by side in one experiment, and the quality
stage on a backbone's features with real vectors from the catalog."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_image
from sklearn.linear_model import LogisticRegression

from pathsynth.backbones import load_backbone
from pathsynth.classify.config import CLASSIFIER
from pathsynth.classify.finetune import BackboneClassifier, optimiser_groups
from pathsynth.classify.logistic import chosen_c, train_logistic
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.probe import FeatureSet, FrozenFeatureClassifier
from pathsynth.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("resnet18", input_size=32)


def _clusters(n: int, seed: int, classes: int = 3, noise: float = 3.0) -> FeatureSet:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.eye(classes, 512) * 4.0
    return FeatureSet(centres[labels] + noise * torch.randn(n, 512, generator=generator), labels)


@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_head_is_sklearn_predict_proba_with_c_chosen_on_validation(tiny, classes):
    config = CLASSIFIER.resolve("logistic", {"logistic_c": (1e-4, 0.01, 1.0, 100.0)})
    train, validation = _clusters(60, 0, classes), _clusters(45, 1, classes)
    model = FrozenFeatureClassifier(tiny, classes)
    names = [f"c{k}" for k in range(classes)]
    result = train_logistic(model, train, validation, names, config)
    assert len(result.history) == 4
    best = result.history[result.best_epoch - 1]
    assert best.validation_balanced_accuracy == max(
        r.validation_balanced_accuracy for r in result.history
    )
    # the head reproduces scikit-learn's probabilities for the chosen C (standardised inputs)
    x = train.features.double().numpy()
    mean, scale = x.mean(0), x.std(0)
    reference = LogisticRegression(C=chosen_c(result), max_iter=2000, class_weight="balanced")
    reference.fit((x - mean) / scale, train.labels.numpy())
    expected = reference.predict_proba((validation.features.double().numpy() - mean) / scale)
    with torch.no_grad():
        got = torch.softmax(model.head(validation.features), dim=1).double().numpy()
    assert got == pytest.approx(expected, abs=1e-4)


def test_logistic_refuses_a_class_without_training_vectors(tiny):
    train = _clusters(30, 0, classes=2)
    with pytest.raises(Exception, match="no training image of class"):
        train_logistic(
            FrozenFeatureClassifier(tiny, 3), train, _clusters(9, 1), ["a", "b", "c"],
            CLASSIFIER.resolve("logistic"),
        )  # fmt: skip


def test_fine_tuning_the_last_blocks_freezes_the_rest_and_decays_rates_by_layer():
    config = CLASSIFIER.resolve(
        "fine-tune",
        {
            "backbone_input_size": 32,
            "finetune_blocks": 2,
            "layer_decay": 0.5,
            "learning_rate": 1e-3,
        },
    )
    model = build_classifier(config, 3)
    assert isinstance(model, BackboneClassifier) and model.layers == 9  # stem + 8 blocks
    trained = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("layer4.") for n in trained)  # ResNet's last two blocks
    rates = sorted({g["lr"] for g in optimiser_groups(model, config)})
    assert rates == pytest.approx([5e-4, 1e-3])  # top block and head 1e-3, the one below x0.5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.AdamW(optimiser_groups(model, config))
    model.train()
    loss = model(torch.rand(4, 3, 32, 32) * 2 - 1).logsumexp(1).mean()
    loss.backward()
    optimiser.step()
    after = model.state_dict()
    frozen = [k for k in before if k.startswith("backbone.layer1.")]
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # batch-norm statistics too
    assert not torch.equal(before["backbone.layer4.1.conv2.weight"], after[
        "backbone.layer4.1.conv2.weight"])  # fmt: skip


def test_more_blocks_than_the_backbone_has_is_refused_naming_the_count():
    config = CLASSIFIER.resolve("fine-tune", {"backbone_input_size": 32, "finetune_blocks": 12})
    with pytest.raises(ConfigError, match="more than the 9 layer groups of resnet18"):
        build_classifier(config, 2)


def test_fine_tuning_starts_from_the_backbone_file(tmp_path, tiny):
    path = tmp_path / "ssl.pt"
    torch.save(load_backbone("resnet18", seed=7).model.state_dict(), path)
    config = CLASSIFIER.resolve(
        "fine-tune", {"backbone_weights": str(path), "backbone_input_size": 32}
    )
    model = build_classifier(config, 2)
    state = torch.load(path, weights_only=True)
    assert torch.equal(model.backbone.state_dict()["conv1.weight"], state["conv1.weight"])


def test_probe_logistic_and_fine_tune_side_by_side_then_quality_on_backbone_features(tmp_path):
    """One smoke experiment with ``--classifier-kinds linear-probe,logistic,fine-tune`` and a
    quality backbone: one results table holding every kind on the same seeds, paired kind
    comparisons, quality numbers on the backbone's features, and the real images' vectors in
    the catalog, found there again by a rerun of the quality stage."""
    from sqlalchemy import func, select

    from pathsynth.catalog.models import Embedding
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment

    source = tmp_path / "source"
    for c, label in enumerate(("a", "b")):
        for i in range(10):
            write_image(source / label / f"img{i}.png", seed=100 * c + i, size=(48, 48))
    space = Workspace.create(tmp_path / "ws")
    overrides = {
        "protocols": ("honest",), "conditions": ("original", "synthetic"), "seeds": 2,
        "device": "cpu", "classifier_kinds": ("linear-probe", "logistic", "fine-tune"),
        "classifier.network": "backbone", "classifier.backbone_input_size": 32,
        "classifier.epochs": 2, "quality.backbone": "resnet18",
        "quality.backbone_input_size": 32,
    }  # fmt: skip
    config = experiment_presets("cytology").resolve("smoke", overrides)
    assert config.classifier.kind == "linear-probe" and config.kinds[1:] == (
        "logistic",
        "fine-tune",
    )
    experiment = Experiment.create(space, source, config, None, "kinds", log=lambda line: None)
    results = json.loads(experiment.run("report").read_text())
    page = (experiment.paths.report / "report.html").read_text()
    assert "original@fine-tune" in page and "original@logistic" in page
    keys = set(results["conditions"])
    assert keys == {
        f"honest/{c}{k}" for c in ("original", "synthetic") for k in ("", "@logistic", "@fine-tune")
    }
    assert all(len(results["conditions"][k]["per_seed"]) == 2 for k in keys)
    kinds = {(c["a"], c["b"]) for c in results["comparisons"]}
    assert ("original", "original@fine-tune") in kinds and ("original", "synthetic") in kinds
    assert ("original@logistic", "synthetic@logistic") in kinds
    run = json.loads(experiment.paths.classifier_run("honest", "original@fine-tune", 1).read_text())
    assert run["config"]["kind"] == "fine-tune" and run["config"]["network"] == "backbone"
    quality = results["synthesis_quality"]
    assert quality["feature_extractor"].startswith("resnet18 backbone (512 dims, weights random")
    assert quality["frechet_distance"] > 0 and quality["classifier_frechet_distance"] is not None

    def vectors() -> int:
        with space.open_catalog() as catalog, catalog.session() as session:
            return int(session.scalar(select(func.count(Embedding.id))) or 0)

    stored = vectors()
    experiment.invalidate("quality")
    experiment.run("quality")
    assert vectors() == stored  # real and generated vectors came from the catalog
    again = json.loads(experiment.paths.quality.read_text())["quality"]
    assert again["frechet_distance"] == pytest.approx(quality["frechet_distance"])


def test_the_quality_backbone_is_the_classifier_backbone_file_by_default(tmp_path):
    """With backbone weights (an SSL file) the quality stage and the GAN's best-checkpoint signal
    use them; without any weights the default stays the reference classifier, and saying
    features=backbone takes the random-init backbone."""
    from pathsynth.experiment.config import experiment_presets

    path = str(tmp_path / "ssl.pt")
    config = experiment_presets("histology").resolve("smoke", {"classifier.kind": "linear-probe", "classifier.backbone_weights": path,
         "classifier.backbone_input_size": 32})  # fmt: skip
    assert config.quality_backbone() == ("resnet18", path, 32)
    assert (config.gan.run.quality_backbone, config.gan.run.quality_backbone_weights) == (
        "resnet18", path)  # fmt: skip
    plain = experiment_presets("histology").resolve("smoke")
    assert plain.quality_backbone() is None and plain.gan.run.quality_backbone == ""
    chosen = experiment_presets("histology").resolve("smoke", {"quality.features": "backbone"})
    assert chosen.quality_backbone() == ("resnet18", None, 0)
    with pytest.raises(ConfigError, match=r"set quality\.backbone"):
        experiment_presets("histology").resolve("smoke", {"gan.run.quality_backbone": "resnet18"})


def test_reproduce_takes_kinds_and_a_quality_backbone_and_refuses_an_unknown_kind(tmp_path):
    from helpers import run_pathsynth

    source = tmp_path / "source"
    (source / "a").mkdir(parents=True)
    weights = tmp_path / "ssl.safetensors"
    common = ("reproduce", str(source), "-m", "cytology", "--preset", "smoke", "--dry-run")
    done = run_pathsynth(
        *common, "--classifier-kinds", "logistic,fine-tune", "--quality-backbone",
        "vit_small_patch16_224", "--quality-backbone-weights", str(weights),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["classifier_kinds"] == ["logistic", "fine-tune"]
    assert config["classifier"]["kind"] == "logistic"
    assert config["quality"]["backbone"] == "vit_small_patch16_224"
    assert config["gan"]["run"]["quality_backbone_weights"] == str(weights)
    refused = run_pathsynth(*common, "--classifier-kinds", "logistic,probe")
    assert refused.returncode != 0
    assert "unknown classifier kind(s) probe; known: fine-tune, linear-probe, logistic" in (
        refused.stdout + refused.stderr
    )
    assert "Traceback" not in refused.stderr
