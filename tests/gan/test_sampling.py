"""Generation: byte-identical for a seed, class folders, atomic writes, the catalog record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pathsynth import files
from pathsynth.errors import CheckpointError
from pathsynth.gan.sampling import load_generator, run_provenance
from pathsynth.gan.trainer import GanTrainer
from pathsynth.generators.sampling import GeneratedImage, generate_images, write_class_folders
from pathsynth.imaging.folders import folder_files, load_image_set
from pathsynth.imaging.patches import PreprocessConfig
from pathsynth.imaging.tensorset import image_grid

from .conftest import smoke_config

SQUARE_32 = PreprocessConfig(mode="fit", size=32)  # what the GAN's default inputs are, at 32 px


@pytest.fixture(scope="module", params=["dcgan", "fastgan"])
def run_dir(
    class_folders: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path:
    folder = tmp_path_factory.mktemp("run")
    data = load_image_set(folder_files(class_folders), SQUARE_32)
    # FastGAN's untrained G in eval mode (running batch-norm statistics near their start values)
    # shrinks the noise's effect below one grey level: train it until seeds differ in pixels
    steps = 30 if request.param == "fastgan" else 2
    config = smoke_config(optim__steps=steps, run__quality_every=1, model__arch=request.param)
    GanTrainer(config, data, folder).train()
    return folder


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(run_dir: Path, tmp_path: Path) -> None:
    loaded = load_generator(run_dir, "last")
    for out in ("one", "two"):
        images = generate_images(
            loaded.network, loaded.class_names, 5, seed=3, step=loaded.step, batch_size=2
        )
        assert write_class_folders(images, tmp_path / out) == 15
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two
    assert sorted({name.split("/")[0] for name in one}) == ["alpha", "beta", "gamma"]
    assert f"alpha/gen-step={loaded.step:08d}-seed=3-000004.png" in one
    other = generate_images(
        loaded.network, loaded.class_names, 5, seed=4, step=loaded.step, batch_size=2
    )
    write_class_folders(other, tmp_path / "other")
    assert set(_files(tmp_path / "other").values()).isdisjoint(one.values())


def test_records_carry_provenance_in_a_fixed_order(run_dir: Path) -> None:
    loaded = load_generator(run_dir, "best")
    records = list(generate_images(loaded.network, loaded.class_names, 3, seed=0, step=loaded.step))
    assert [(r.class_name, r.index) for r in records] == [
        (c, i) for c in ("alpha", "beta", "gamma") for i in range(3)
    ]
    assert all(
        r.png.startswith(b"\x89PNG") and r.seed == 0 and r.step == loaded.step for r in records
    )
    provenance = run_provenance(loaded, run_dir)
    assert provenance["checkpoint_step"] == loaded.step
    assert provenance["config"]["preset"] == "smoke" and provenance["run_name"] == run_dir.name


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    image = GeneratedImage("alpha", 0, 0, 1, b"\x89PNG-not-really")

    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(files.os, "replace", crash)  # the one atomic writer
    with pytest.raises(OSError):
        write_class_folders([image], tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_grid_tiles_classes_as_rows() -> None:
    images = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    images[3:] = 255
    grid = image_grid(images, columns=3)
    assert grid.shape == (8, 12, 3)
    assert grid[:4].max() == 0 and grid[4:].min() == 255


def test_missing_or_corrupt_checkpoints_are_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "no-such-run")
    (tmp_path / "last-step=00000005.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_generator(tmp_path, "last")


def test_labels_that_look_like_paths_stay_one_class_folder_and_come_back(tmp_path) -> None:
    from pathsynth.generators.sampling import GeneratedImage, write_class_folders
    from pathsynth.imaging.folders import folder_files
    from pathsynth.imaging.png import encode_png

    pixels = np.zeros((8, 8, 3), np.uint8)
    images = [
        GeneratedImage(label, 0, 0, 1, encode_png(pixels)) for label in ("CIN 2/3", "../../x")
    ]
    assert write_class_folders(images, tmp_path / "out") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["%2E.%2F..%2Fx", "CIN 2%2F3"]
    assert sorted(label for _, label in folder_files(tmp_path / "out")) == ["../../x", "CIN 2/3"]
    assert not (tmp_path / "x").exists()
