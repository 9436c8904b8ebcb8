"""Protocol invariants: under ``honest`` no real test image, its affine child or its patient ever
reaches training or validation; ``paper`` splits pools at image level."""

from __future__ import annotations

import pytest
import torch

from pathsynth.errors import DataError
from pathsynth.experiment.protocols import (
    ExperimentSets,
    LabelledPart,
    check_honest,
    concatenate,
    honest_sets,
    paper_pool,
    paper_sets,
)
from pathsynth.imaging.tensorset import TensorImageSet
from pathsynth.records.conditions import CONDITIONS

CLASSES = ["benign", "malignant"]


def part(ids: list[int], parents: list[int], groups: list[int], labels: list[int]) -> LabelledPart:
    n = len(ids)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return LabelledPart(
        TensorImageSet(images, torch.tensor(labels), list(CLASSES)),
        torch.tensor(ids), torch.tensor(parents), torch.tensor(groups),
    )  # fmt: skip


def experiment() -> ExperimentSets:
    # real train: images 1-8 of patients 10-13; real test: images 20-23 of patients 30-31
    train = part([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8],
                 [10, 10, 11, 11, 12, 12, 13, 13], [0, 0, 1, 1, 0, 0, 1, 1])  # fmt: skip
    test = part([20, 21, 22, 23], [20, 21, 22, 23], [30, 30, 31, 31], [0, 0, 1, 1])
    affine_train = part([101, 102, 103, 105, 107], [1, 2, 3, 5, 7],
                        [10, 10, 11, 12, 13], [0, 0, 1, 0, 1])  # fmt: skip
    affine_all = part([201, 220, 222], [1, 20, 22], [10, 30, 31], [0, 0, 1])
    synthetic = part([301, 302, 303, 304], [-1] * 4, [-1] * 4, [0, 0, 1, 1])
    return ExperimentSets(train, test, affine_train, affine_all, synthetic)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_honest_training_never_holds_a_test_image_its_child_or_its_patient(condition):
    sets = experiment()
    chosen = honest_sets(sets, condition, validation_groups=torch.tensor([11]))
    test_ids = {20, 21, 22, 23}
    assert set(chosen.test.ids.tolist()) == test_ids
    assert not test_ids & set(chosen.train.ids.tolist())
    assert not test_ids & set(chosen.train.parents.tolist())
    assert not {30, 31} & set(chosen.train.groups.tolist())
    # validation is real images of the held-out training patient, and none of their children train
    assert set(chosen.validation.ids.tolist()) == {3, 4}
    assert not {3, 4} & set(chosen.train.parents.tolist())
    expected = {
        "original": {1, 2, 5, 6, 7, 8},
        "affine": {1, 2, 5, 6, 7, 8, 101, 102, 105, 107},
        "synthetic": {1, 2, 5, 6, 7, 8, 301, 302, 303, 304},
        "affine+synthetic": {1, 2, 5, 6, 7, 8, 101, 102, 105, 107, 301, 302, 303, 304},
    }
    assert set(chosen.train.ids.tolist()) == expected[condition]


def test_check_honest_refuses_every_kind_of_leak():
    sets = experiment()
    validation = sets.real_train.select(torch.zeros(8, dtype=torch.bool))
    leaked_image = concatenate(
        [sets.real_train, sets.real_test.select(torch.tensor([True, False, False, False]))]
    )
    with pytest.raises(
        DataError, match="held-out test image or its affine child is in the training"
    ):
        check_honest(leaked_image, validation, sets.real_test)
    assert sets.affine_all is not None
    leaked_child = concatenate([sets.real_train, sets.affine_all])
    with pytest.raises(DataError, match="held-out test image or its affine child"):
        check_honest(leaked_child, validation, sets.real_test)
    same_patient = part([50], [50], [30], [0])  # another image of test patient 30
    with pytest.raises(DataError, match="patient/group of the test set also has images"):
        check_honest(concatenate([sets.real_train, same_patient]), validation, sets.real_test)
    assert sets.synthetic is not None
    with pytest.raises(DataError, match="tests on real images only"):
        check_honest(sets.real_train, validation, sets.synthetic)


def test_a_selected_named_condition_trains_on_its_own_generators_kept_images_only():
    sets = experiment()
    sets.generated = {
        "gan": part([401, 402, 403, 404], [-1] * 4, [-1] * 4, [0, 0, 1, 1]),
        "diffusion": part([501, 502, 503, 504], [-1] * 4, [-1] * 4, [0, 0, 1, 1]),
    }
    sets.selected_generated = {
        "gan": part([401, 403], [-1] * 2, [-1] * 2, [0, 1]),
        "diffusion": part([502, 504], [-1] * 2, [-1] * 2, [0, 1]),
    }
    real = {1, 2, 5, 6, 7, 8}
    for condition, generated in (("original+gan:selected", {401, 403}),
                                 ("original+diffusion:selected", {502, 504}),
                                 ("original+diffusion", {501, 502, 503, 504})):  # fmt: skip
        chosen = honest_sets(sets, condition, validation_groups=torch.tensor([11]))
        assert set(chosen.train.ids.tolist()) == real | generated
    del sets.selected_generated["diffusion"]
    with pytest.raises(DataError, match="needs selected diffusion images, and there are none"):
        honest_sets(sets, "affine+diffusion:selected", torch.tensor([11]))


def test_a_condition_without_its_images_or_a_class_is_refused():
    sets = experiment()
    sets.synthetic = None
    with pytest.raises(
        DataError, match="condition 'synthetic' needs generated images, and there are none"
    ):
        honest_sets(sets, "synthetic", torch.tensor([11]))
    sets.synthetic = part([301, 302], [-1, -1], [-1, -1], [0, 0])
    with pytest.raises(DataError, match="generated images have no images of class malignant"):
        honest_sets(sets, "affine+synthetic", torch.tensor([11]))
    with pytest.raises(DataError, match="unknown condition 'gan'"):
        honest_sets(sets, "gan", torch.tensor([11]))


def test_paper_protocol_pools_and_splits_at_image_level():
    sets = experiment()
    pool = paper_pool(sets, "affine")
    assert set(pool.ids.tolist()) == {1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 22, 23, 201, 220, 222}
    assert set(paper_pool(sets, "synthetic").ids.tolist()) == {301, 302, 303, 304}
    chosen = paper_sets(pool, seed=0, test_fraction=0.3, validation_fraction=0.1)
    sides = [
        set(chosen.train.ids.tolist()),
        set(chosen.validation.ids.tolist()),
        set(chosen.test.ids.tolist()),
    ]
    assert sum(len(s) for s in sides) == 15 and not (sides[0] & sides[2])
    for side in (chosen.train, chosen.validation, chosen.test):
        assert set(side.images.labels.tolist()) == {0, 1}
    again = paper_sets(pool, seed=0)
    assert torch.equal(again.test.ids, chosen.test.ids)
    with pytest.raises(DataError, match="has 2 images; the split needs 3"):
        paper_sets(part([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 1, 1]), seed=0)


def test_dotted_overrides_reach_every_nested_config():
    from pathsynth.experiment.config import experiment_presets

    config = experiment_presets("cytology").resolve("quick", {"classifier.network": "resnet18", "gan.optim.steps": "40", "preprocess.size": "48"})  # fmt: skip
    assert config.classifier.network == "resnet18"
    assert config.classifier.epochs == 40 and config.classifier.min_epochs == 10  # the preset's
    assert config.gan.optim.steps == 40 and config.gan.loss.kind == "hinge"  # modern GAN preset
    assert config.gan.data.preprocess == config.preprocess and config.preprocess.size == 48


def test_the_gan_inputs_follow_the_experiment_inputs_and_cannot_be_set_apart():
    from pathsynth.errors import ConfigError
    from pathsynth.experiment.config import experiment_presets

    with pytest.raises(ConfigError, match=r"follows the experiment's settings; set preprocess\.\*"):
        experiment_presets("histology").resolve("quick", {"gan.data.preprocess.size": "96"})
    with pytest.raises(ConfigError, match=r"set device \(--device\)"):
        experiment_presets("histology").resolve("quick", {"gan.run.device": "cpu"})
    with pytest.raises(
        ConfigError,
        match=r"'gan\.optim\.stepz' \(did you mean gan\.optim\.steps\?\); valid keys: gan\.optim\.",
    ):
        experiment_presets("histology").resolve("quick", {"gan.optim.stepz": "1"})
    with pytest.raises(ConfigError, match=r"preprocess\.size='4': size must be at least 8"):
        experiment_presets("histology").resolve("quick", {"preprocess.size": "4"})
    with pytest.raises(ConfigError, match="at least one entry"):
        experiment_presets("histology").resolve("quick", {"protocols": ""})
    with pytest.raises(ConfigError, match="unknown experiment setting 'modality'"):
        experiment_presets("histology").resolve("quick", {"modality": "cytology"})


def test_smaller_generated_images_are_mirror_padded_to_the_real_inputs_side():
    real = part([1, 2], [1, 2], [10, 11], [0, 1])
    real.images.images = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    synthetic = part([301], [-1], [-1], [1])
    synthetic.images.images = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)

    both = concatenate([real, synthetic])

    assert both.images.images.shape == (3, 3, 12, 12)
    assert torch.equal(both.images.images[:2], real.images.images)
    padded = both.images.images[2]
    assert torch.equal(padded[:, 2:10, 2:10], synthetic.images.images[0])  # centred, unchanged
    assert torch.equal(padded[:, 1, 2:10], synthetic.images.images[0, :, 1])  # mirrored edge
    half = part([303], [-1], [-1], [1])
    half.images.images = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8)
    assert concatenate([real, half]).images.images.shape == (3, 3, 12, 12)  # quick: 64 in 128
    tiny = part([302], [-1], [-1], [1])
    with pytest.raises(DataError, match="cannot combine 4x4 images with 12x12 ones"):
        concatenate([real, tiny])
