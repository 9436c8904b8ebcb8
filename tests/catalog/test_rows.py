"""One bad row never costs its batch: lengths checked before insert, the database's refusals
isolated, text stored whole and labels compared exactly, on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import assert_consistent, throwaway_database, write_image
from sqlalchemy import insert, select

from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.queries import catalog_stats
from pathsynth.catalog.workspace import Workspace
from pathsynth.catalog.writer import BatchWriter

EMOJI_LABEL = "carcinoma \U0001f52c \u00e9\u4e2d"


def labelled_source(tmp_path, labels: list[str]):
    source = tmp_path / "src"
    lines = ["path,label"]
    for i, label in enumerate(labels):
        write_image(source / f"{i:02d}.png", seed=i)
        lines.append(f"{i:02d}.png,{label}")
    (source / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def ingest(space, source):
    return ingest_source(space, source, IngestOptions(modality="cytology", workers=0))


def test_a_too_long_label_is_refused_alone_and_the_others_are_added(workspace, tmp_path):
    labels = ["normal"] * 5 + ["x" * 65] + [EMOJI_LABEL] * 3 + ["Normal_superficiel"] * 3
    report = ingest(workspace, labelled_source(tmp_path, labels))
    assert report.added_total == 11
    assert [(r.path, r.reason) for r in report.refused] == [
        ("05.png", f"label {'x' * 20!r}... is 65 characters long; at most 64")
    ]
    with workspace.open_catalog() as catalog, catalog.session() as session:
        stored = set(session.scalars(select(ImageRow.label)))
    assert stored == {"normal", EMOJI_LABEL, "Normal_superficiel"}
    assert assert_consistent(workspace) == 11


def test_labels_differing_in_case_stay_two_classes(workspace, tmp_path):
    labels = ["Normal_superficiel"] * 2 + ["normal_superficiel"] * 3
    ingest(workspace, labelled_source(tmp_path, labels))
    with workspace.open_catalog() as catalog:
        counts = catalog_stats(catalog).images
    assert counts == {
        ("cytology", "Normal_superficiel", "real"): 2,
        ("cytology", "normal_superficiel", "real"): 3,
    }


@pytest.fixture
def latin1_mariadb_url(mariadb_url: str) -> Iterator[str]:
    """A database whose server default is latin1 with a case-insensitive collation."""
    with throwaway_database(
        mariadb_url, "pathsynth_latin1",
        "CREATE DATABASE {name} CHARACTER SET latin1 COLLATE latin1_swedish_ci",
        "DROP DATABASE IF EXISTS {name}",
    ) as url:  # fmt: skip
        yield url


def test_a_latin1_mariadb_database_gets_utf8mb4_tables_with_exact_labels(
    latin1_mariadb_url, tmp_path
):
    space = Workspace.create(tmp_path / "ws", latin1_mariadb_url)
    labels = [EMOJI_LABEL] * 2 + ["Normal_superficiel"] * 2 + ["normal_superficiel"] * 2
    report = ingest(space, labelled_source(tmp_path, labels))
    assert report.refused == [] and report.added_total == 6
    with space.open_catalog() as catalog:
        counts = catalog_stats(catalog).images
        with catalog.engine.connect() as connection:
            collation = connection.exec_driver_sql(
                "SELECT TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'images'"
            ).scalar()
    assert collation == "utf8mb4_bin"
    assert {label: n for (_, label, _), n in counts.items()} == {
        EMOJI_LABEL: 2,
        "Normal_superficiel": 2,
        "normal_superficiel": 2,
    }


def test_a_row_the_database_refuses_is_reported_and_its_batch_neighbours_commit(
    workspace, class_source, tmp_path
):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    with workspace.open_catalog() as catalog:
        with catalog.session() as session:
            template = session.scalars(select(ImageRow)).first()
            assert template is not None
            study_id, taken_sha = template.study_id, template.sha256
        rejected: list[tuple[str, str]] = []
        writer = BatchWriter(
            workspace.store, catalog.session, batch_size=10,
            on_reject=lambda path, reason: rejected.append((path, reason)),
        )  # fmt: skip

        def row(store_path: str, sha: str):
            values = dict(
                study_id=study_id, store_path=store_path, sha256=sha, width=1, height=1,
                channels=3, bit_depth=8, original_mode="RGB", original_format="PNG",
                label="benign", origin="real",
            )  # fmt: skip
            return lambda session: session.execute(insert(ImageRow), [values])

        for i in range(3):
            sha = taken_sha if i == 1 else f"{i:064x}"
            writer.add(f"extra/{i}.png", b"bytes", row(f"extra/{i}.png", sha))
        writer.commit()
    assert [path for path, _ in rejected] == ["extra/1.png"]
    assert not (workspace.store / "extra/1.png").exists()
    assert assert_consistent(workspace) == 12 + 2
