"""Migration 0005 lets the catalog hold unlabelled images and keeps everything stored before."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def _insert_image(connection, sha: str, origin: str) -> None:
    connection.execute(
        text(
            "INSERT INTO images (study_id, store_path, sha256, width, height, channels, bit_depth,"
            " original_mode, original_format, label, origin) VALUES (1, :path, :sha, 8, 8, 3, 8,"
            " 'RGB', 'PNG', :label, :origin)"
        ),
        {
            "path": f"a/{sha}.png",
            "sha": sha,
            "label": "x" if origin == "real" else "",
            "origin": origin,
        },
    )


def test_a_catalog_at_0004_keeps_its_rows_and_accepts_unlabelled_images(
    tmp_path: Path, backend: str
) -> None:
    from alembic import command

    from pathsynth.catalog.db import (
        Catalog,
        _migrations_config,
        create_catalog_engine,
        schema_revision,
    )
    from pathsynth.imaging.features import FEATURE_NAMES

    url = f"sqlite:///{tmp_path / 'c.sqlite'}" if backend == "sqlite" else backend
    engine = create_catalog_engine(url)
    config = _migrations_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO patients (code, key_kind) VALUES ('P1', 'image')"))
        connection.execute(
            text("INSERT INTO studies (code, patient_id, modality) VALUES ('S1', 1, 'histology')")
        )
        _insert_image(connection, "aa", "real")
        features = ", ".join(FEATURE_NAMES)
        values = ", ".join("0.5" for _ in FEATURE_NAMES)
        connection.execute(
            text(f"INSERT INTO image_features (image_id, {features}) VALUES (1, {values})")
        )
        connection.execute(
            text("INSERT INTO splits (name, unit, params) VALUES ('s', 'image', '{}')")
        )
        connection.execute(
            text("INSERT INTO split_members (split_id, image_id, fold) VALUES (1, 1, 'train')")
        )
    engine.dispose()

    with Catalog(url) as catalog:  # migrates to the head
        assert schema_revision(catalog.engine) == "0007"
        with catalog.engine.begin() as connection:
            _insert_image(connection, "bb", "unlabelled")
            kept = [
                connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("images", "image_features", "split_members")
            ]
        assert kept == [2, 1, 1]
        # a check failure is an IntegrityError on SQLite and PostgreSQL, error 4025 on MariaDB
        with pytest.raises(DBAPIError), catalog.engine.begin() as connection:
            _insert_image(connection, "cc", "imagined")
