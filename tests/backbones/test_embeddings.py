"""Embeddings as catalog data: computed once per image content, backbone and preprocessing;
recomputed, never reused, when any of them changes; nothing written for a bad backbone file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import torch
from helpers import write_image
from sqlalchemy import func, select

from pathsynth.backbones import embed_inputs, load_backbone
from pathsynth.backbones.stored import embed_catalog_images, embedding_key, image_embeddings
from pathsynth.catalog.api import all_images, stored_embeddings
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Embedding, Run
from pathsynth.imaging.cache import file_sha256
from pathsynth.imaging.decode import load_rgb
from pathsynth.imaging.patches import PreprocessConfig, preprocess_image

WHOLE = PreprocessConfig(mode="resize", size=32)


@pytest.fixture(scope="module")
def tiny() -> object:
    return load_backbone("resnet18", input_size=32)


def _rows(workspace) -> int:
    with workspace.open_catalog() as catalog, catalog.session() as session:
        return int(session.scalar(select(func.count(Embedding.id))) or 0)


def test_one_vector_per_image_stored_once_and_equal_to_a_direct_forward_pass(
    workspace, class_source, tiny
):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    images = all_images(workspace)
    first = embed_catalog_images(workspace, images, tiny, WHOLE, chunk=5)
    again = embed_catalog_images(workspace, images, tiny, WHOLE)
    assert (first.computed, first.reused) == (12, 0)
    assert (again.computed, again.reused) == (0, 12)
    assert _rows(workspace) == 12
    stored = image_embeddings(workspace, images[:2], tiny, WHOLE)
    direct = embed_inputs(
        tiny, torch.cat([preprocess_image(load_rgb(i.path), WHOLE) for i in images[:2]])
    )
    assert stored.shape == (2, 512) and torch.allclose(torch.from_numpy(stored), direct, atol=1e-5)
    with workspace.open_catalog() as catalog, catalog.session() as session:
        run = session.scalar(select(Run).where(Run.kind == "embed"))
    assert run is not None and run.config["aggregation"] == "mean"
    assert run.config["preprocess"]["size"] == 32 and run.config["weights"] == "random-init"


def test_patches_are_averaged_and_their_count_recorded(workspace, class_source, tiny):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    image = all_images(workspace)[0]  # 40x32
    grid = PreprocessConfig(mode="patches-grid", size=16)  # 2x2 tiles
    embed_catalog_images(workspace, [image], tiny, grid)
    tiles = preprocess_image(load_rgb(image.path), grid, image.sha256)
    expected = embed_inputs(tiny, tiles).mean(dim=0)  # each tile on its own, then averaged
    key = embedding_key(tiny, grid)
    vector = stored_embeddings(workspace, key, [image.sha256])[image.sha256]
    assert len(tiles) == 4 and torch.allclose(torch.from_numpy(vector), expected, atol=1e-5)
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.scalar(select(Embedding.inputs)) == 4


def test_other_weights_preprocessing_or_image_content_are_recomputed(
    workspace, class_source, tiny, tmp_path
):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    images = all_images(workspace)
    embed_catalog_images(workspace, images, tiny, WHOLE)
    other_weights = load_backbone("resnet18", input_size=32, seed=1)
    assert other_weights.weights_sha256 != tiny.weights_sha256
    assert embed_catalog_images(workspace, images, other_weights, WHOLE).computed == 12
    other_inputs = PreprocessConfig(mode="crop", size=32)
    assert embed_catalog_images(workspace, images, tiny, other_inputs).computed == 12
    # the same catalog image whose file changed: its content hash is new
    changed = write_image(tmp_path / "changed.png", seed=999)
    edited = dataclasses.replace(images[0], path=changed, sha256=file_sha256(changed))
    summary = embed_catalog_images(workspace, [edited, *images[1:]], tiny, WHOLE)
    assert (summary.computed, summary.reused) == (1, 11)
    key = embedding_key(tiny, WHOLE)
    both = stored_embeddings(workspace, key, [images[0].sha256, edited.sha256])
    assert not torch.allclose(
        torch.from_numpy(both[images[0].sha256]), torch.from_numpy(both[edited.sha256])
    )
    assert _rows(workspace) == 12 * 3 + 1


def _pathsynth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_embed_command_reuses_vectors_and_refuses_bad_weights_writing_nothing(
    tmp_path, class_source
):
    import timm

    ws = tmp_path / "ws"
    assert _pathsynth("init", str(ws)).returncode == 0
    done = _pathsynth(
        "ingest", str(class_source), "-m", "histology", "--workers", "0", "-w", str(ws)
    )
    assert done.returncode == 0, done.stderr
    wrong = tmp_path / "r34.safetensors"
    from safetensors.torch import save_file

    save_file(
        {
            k: v.contiguous()
            for k, v in timm.create_model("resnet34", num_classes=0).state_dict().items()
        },
        wrong,
    )
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(wrong.read_bytes()[:1000])
    for bad in (wrong, truncated):
        done = _pathsynth(
            "embed",
            "--backbone",
            "resnet18",
            "--backbone-weights",
            str(bad),
            "--input-size",
            "32",
            "-w",
            str(ws),
        )
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], (
            done.stderr
        )
    from pathsynth.catalog.workspace import Workspace

    assert _rows(Workspace(ws)) == 0
    args = ("embed", "--backbone", "resnet18", "--input-size", "32", "-w", str(ws))
    done = _pathsynth(*args)
    assert done.returncode == 0, done.stderr
    assert "12 embeddings computed, 0 already stored (resnet18, 512 dims" in done.stdout
    done = _pathsynth(*args)
    assert "0 embeddings computed, 12 already stored" in done.stdout
