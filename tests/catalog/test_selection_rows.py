"""Selective synthesis in the catalog: each generated image's scores and decision, replaced as a
whole on a rerun, refused whole on bad input, and shown with the image."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select
from test_derived import Generated, png

from pathsynth.catalog.api import (
    SelectionRow,
    open_reader,
    selection_scores,
    store_generated,
    store_selection,
)
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.models import Run
from pathsynth.errors import DataError


def generated_ids(workspace, class_source) -> tuple[list[int], int]:
    """Four generated images in the catalog, and one real image's id."""
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    images = [Generated("benign", 7, i, 500, png(100 + i)) for i in range(4)]
    run = {"run_id": "cd" * 16, "run_name": "00001-smoke", "run_dir": "/runs/00001-smoke",
           "checkpoint_step": 500}  # fmt: skip
    store_generated(workspace, images, run)
    with workspace.open_catalog() as catalog, catalog.session() as session:
        fake = list(session.scalars(select(ImageRow.id).where(ImageRow.origin == "synthetic")))
        real = session.scalar(select(ImageRow.id).where(ImageRow.origin == "real"))
    assert real is not None
    return sorted(fake), real


def rows(ids: list[int], kept: bool) -> list[SelectionRow]:
    return [
        SelectionRow(i, 0.5 + 0.1 * k, 0.55, 1.0 + k, 2.5, 0.9, False, kept or k == 0,
                     "kept" if kept or k == 0 else "confidence")
        for k, i in enumerate(ids)
    ]  # fmt: skip


def test_scores_are_stored_per_image_and_a_rerun_replaces_them(workspace, class_source):
    ids, _ = generated_ids(workspace, class_source)
    assert store_selection(workspace, "exp-a", rows(ids, kept=False), {"preset": "default"}) == 4
    assert store_selection(workspace, "exp-b", rows(ids[:2], kept=True), {"preset": "strict"}) == 2
    again = rows(ids, kept=True)
    store_selection(workspace, "exp-a", again, {"preset": "lenient"})
    assert selection_scores(workspace, "exp-a") == again
    assert [row.kept for row in selection_scores(workspace, "exp-b")] == [True, True]
    with workspace.open_catalog() as catalog, catalog.session() as session:
        configs = {
            r.name: r.config for r in session.scalars(select(Run).where(Run.kind == "select"))
        }
    assert configs == {"exp-a": {"preset": "lenient"}, "exp-b": {"preset": "strict"}}


@pytest.mark.parametrize("problem", ["unknown", "real", "twice", "not finite"])
def test_bad_rows_are_refused_in_one_line_and_nothing_is_written(workspace, class_source, problem):
    ids, real = generated_ids(workspace, class_source)
    store_selection(workspace, "exp", rows(ids, kept=False), {})
    bad = rows(ids, kept=True)
    if problem == "unknown":
        bad[1] = dataclasses.replace(bad[1], image_id=max(ids) + 1000)
    elif problem == "real":
        bad[1] = dataclasses.replace(bad[1], image_id=real)
    elif problem == "twice":
        bad[1] = dataclasses.replace(bad[1], image_id=ids[0])
    else:
        bad[1] = dataclasses.replace(bad[1], distance=float("nan"))
    expected = {"unknown": "not in the catalog", "real": "is real, not generated",
                "twice": "scored twice", "not finite": "not finite"}[problem]  # fmt: skip
    with pytest.raises(DataError, match=expected) as refused:
        store_selection(workspace, "exp", bad, {})
    assert "\n" not in str(refused.value)
    assert selection_scores(workspace, "exp") == rows(ids, kept=False)


def test_the_image_page_data_holds_every_selection_that_scored_it(workspace, class_source):
    ids, real = generated_ids(workspace, class_source)
    store_selection(workspace, "exp-b", rows(ids, kept=False), {})
    store_selection(workspace, "exp-a", rows(ids, kept=True), {})
    reader = open_reader(workspace)
    try:
        detail = reader.image(ids[1])
        plain = reader.image(real)
    finally:
        reader.close()
    assert detail is not None and plain is not None
    assert [(name, row.kept, row.reason) for name, row in detail.selections] == [
        ("exp-a", True, "kept"), ("exp-b", False, "confidence")
    ]  # fmt: skip
    assert plain.selections == []
