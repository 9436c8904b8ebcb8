"""Affine children and GAN images in the catalog: provenance, lineage, idempotence."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import assert_consistent
from PIL import Image
from sqlalchemy import select

from pathsynth.catalog.api import AffineChild, store_affine, store_generated
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.models import Patient, Run, image_parents
from pathsynth.errors import DataError


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Generated:
    class_name: str
    seed: int
    index: int
    step: int
    png: bytes


def real_ids(workspace) -> list[tuple[int, str, str]]:
    with workspace.open_catalog() as catalog, catalog.session() as session:
        return list(session.execute(select(ImageRow.id, ImageRow.label, ImageRow.store_path)).all())


def test_affine_children_sit_beside_their_parent_with_parameters(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    parent_id, label, parent_path = real_ids(workspace)[0]
    children = [
        AffineChild(parent_id, k, png(k), {"angle": 10.0 * k, "hflip": k % 2 == 1})
        for k in range(3)
    ]
    run = {"name": "expand-1", "config": {"per_class": 3}}
    ids = store_affine(workspace, children, run)
    assert len(set(ids)) == 3
    assert store_affine(workspace, children, run) == ids  # a rerun stores nothing new
    with workspace.open_catalog() as catalog, catalog.session() as session:
        rows = session.scalars(select(ImageRow).where(ImageRow.id.in_(ids))).all()
        lineage = session.execute(select(image_parents)).all()
        augment_runs = session.scalars(select(Run.name).where(Run.kind == "augment")).all()
    assert {row.origin for row in rows} == {"affine"} and {row.label for row in rows} == {label}
    assert sorted(row.transform["angle"] for row in rows) == [0.0, 10.0, 20.0]
    assert all(row.store_path.rsplit("/", 1)[0] == parent_path.rsplit("/", 1)[0] for row in rows)
    assert sorted(lineage) == sorted((i, parent_id) for i in ids)
    assert augment_runs == ["expand-1"]
    assert assert_consistent(workspace) == 12 + 3
    with pytest.raises(DataError, match="image 99999 is not a real image"):
        store_affine(workspace, [AffineChild(99999, 0, png(50), {})], run)
    assert assert_consistent(workspace) == 15


def test_generated_images_carry_run_step_seed_and_class(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    images = [Generated("benign", 7, i, 500, png(100 + i)) for i in range(4)]
    run = {"run_id": "ab" * 16, "run_name": "00003-paper", "run_dir": "/runs/00003-paper",
           "checkpoint_step": 500}  # fmt: skip
    assert store_generated(workspace, images, run) == 4
    assert store_generated(workspace, images, run) == 0
    with workspace.open_catalog() as catalog, catalog.session() as session:
        rows = session.scalars(select(ImageRow).where(ImageRow.origin == "synthetic")).all()
        gan = session.scalar(select(Run).where(Run.kind == "gan"))
        kinds = set(session.scalars(select(Patient.key_kind)))
    assert len(rows) == 4 and gan is not None and gan.name == "00003-paper-" + "ab" * 6
    assert {(r.seed, r.checkpoint_step, r.label, r.run_id) for r in rows} == {
        (7, 500, "benign", gan.id)
    }
    assert sorted(r.store_path.rsplit("/", 1)[1] for r in rows)[0] == "benign-s7-000000.png"
    assert "generator" in kinds
    assert assert_consistent(workspace) == 16


def test_two_runs_with_the_same_folder_name_stay_two_runs(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    for number, run_id in enumerate(("11" * 16, "22" * 16)):
        images = [Generated("benign", 0, i, 4, png(200 + 10 * number + i)) for i in range(2)]
        run = {"run_id": run_id, "run_name": "00000-smoke", "run_dir": f"/runs{number}/00000-smoke",
               "checkpoint_step": 4}  # fmt: skip
        assert store_generated(workspace, images, run) == 2
    with workspace.open_catalog() as catalog, catalog.session() as session:
        runs = session.execute(select(Run.name, Run.metrics).where(Run.kind == "gan")).all()
    assert sorted(name for name, _ in runs) == [
        "00000-smoke-111111111111",
        "00000-smoke-222222222222",
    ]
    assert {metrics["run_dir"] for _, metrics in runs} == {
        "/runs0/00000-smoke",
        "/runs1/00000-smoke",
    }
    assert assert_consistent(workspace) == 12 + 4


def test_a_run_that_draws_the_same_pixels_as_another_finds_the_images_it_made(
    workspace, class_source
):
    """Stored once by content, linked to both runs: each run's images are all it drew."""
    from pathsynth.catalog.queries import generated_by

    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    drawn = [Generated("benign", 0, i, 4, png(300 + i)) for i in range(3)]
    first = {"run_id": "33" * 16, "run_name": "00000-a", "run_dir": "/r/a", "checkpoint_step": 4}
    again = {"run_id": "44" * 16, "run_name": "00001-b", "run_dir": "/r/b", "checkpoint_step": 4}
    assert store_generated(workspace, drawn, first) == 3
    # the second run draws the same three images and one of its own
    assert store_generated(workspace, [*drawn, Generated("benign", 0, 3, 4, png(399))], again) == 1
    with workspace.open_catalog() as catalog:
        made_first = generated_by(catalog, workspace.store, "33" * 16)
        made_again = generated_by(catalog, workspace.store, "44" * 16)
    assert len(made_first) == 3 and len(made_again) == 4
    assert {image.image_id for image in made_first} < {image.image_id for image in made_again}
    assert assert_consistent(workspace) == 12 + 4
