"""What pretraining learns from: the training fold and unlabelled images, never the test fold;
and unlabelled images reach no split, export or classifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathsynth.catalog.api import fold_files, open_workspace, split_fold, unlabelled_images
from pathsynth.errors import ConfigError
from pathsynth.pretrain.config import PRETRAIN
from pathsynth.pretrain.data import image_pool, pretrain_images

from .conftest import SPLIT, make_workspace


def test_pretraining_takes_the_train_fold_and_the_unlabelled_images_never_the_test_fold(
    lab: Path,
) -> None:
    space = open_workspace(lab)
    train = {image.sha256 for image in split_fold(space, SPLIT, "train")}
    test = {image.sha256 for image in split_fold(space, SPLIT, "test")}
    spare = {image.sha256 for image in unlabelled_images(space)}

    chosen = {image.sha256 for image in pretrain_images(space, SPLIT, "train")}
    without = {image.sha256 for image in pretrain_images(space, SPLIT, "train", unlabelled=False)}

    assert len(spare) == 4 and len(test) > 0
    assert chosen == train | spare and without == train
    assert not chosen & test


def test_the_test_fold_is_refused_in_one_line(lab: Path) -> None:
    with pytest.raises(ConfigError, match="test fold") as error:
        pretrain_images(open_workspace(lab), SPLIT, "test")

    assert "\n" not in str(error.value)


def test_unlabelled_images_are_in_no_split_and_no_export(lab: Path) -> None:
    space = open_workspace(lab)
    spare = {image.image_id for image in unlabelled_images(space)}
    in_splits = {
        image.image_id for fold in ("train", "test") for image in split_fold(space, SPLIT, fold)
    }
    exported = [label for fold in ("train", "test") for _, label in fold_files(space, SPLIT, fold)]

    assert len(in_splits) == 16 and not spare & in_splits
    assert set(exported) == {"benign", "tumour"}


def test_the_pool_holds_every_input_of_every_image(lab: Path) -> None:
    images = pretrain_images(open_workspace(lab), SPLIT, "train")
    preprocess = PRETRAIN.resolve("smoke").data.preprocess

    pool = image_pool(images, preprocess)

    assert pool.shape == (len(images), 3, preprocess.size, preprocess.size)


def test_unlabelled_ingest_and_the_migration_work_on_every_backend(
    tmp_path: Path, backend: str
) -> None:
    """The origin constraint accepts 'unlabelled' on SQLite, MariaDB and PostgreSQL."""
    space = open_workspace(make_workspace(tmp_path, None if backend == "sqlite" else backend))

    assert len(unlabelled_images(space)) == 4
    assert len(split_fold(space, SPLIT, "train")) + len(split_fold(space, SPLIT, "test")) == 16
