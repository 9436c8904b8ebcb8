"""Workspaces and the catalog connection."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect

from pathsynth.catalog.db import Catalog, head_revision, masked_url, schema_revision
from pathsynth.catalog.workspace import CONFIG_NAME, Workspace
from pathsynth.errors import CatalogUnavailable, WorkspaceError


def test_new_workspace_has_config_store_and_migrated_catalog(workspace):
    assert (workspace.root / CONFIG_NAME).is_file()
    assert workspace.store.is_dir()
    with workspace.open_catalog() as catalog:
        assert schema_revision(catalog.engine) == head_revision() == "0007"
        tables = set(inspect(catalog.engine).get_table_names())
    assert {"patients", "studies", "images", "image_features", "splits", "runs"} <= tables


def test_patient_codes_are_salted_hashes_not_identifiers(tmp_path):
    one = Workspace.create(tmp_path / "one")
    two = Workspace.create(tmp_path / "two")
    code = one.pseudonym("patient", "MRN-0042")
    assert code == one.pseudonym("patient", "MRN-0042")
    assert "0042" not in code and code.startswith("P")
    assert code != two.pseudonym("patient", "MRN-0042")  # another salt, another code
    assert code != one.pseudonym("study", "MRN-0042")
    salt = json.loads((one.root / CONFIG_NAME).read_text())["salt"]
    assert len(bytes.fromhex(salt)) == 16


def test_init_refuses_an_existing_workspace_and_a_non_empty_folder(tmp_path):
    Workspace.create(tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="already a pathsynth workspace"):
        Workspace.create(tmp_path / "ws")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="exists and is not empty"):
        Workspace.create(tmp_path / "full")
    with pytest.raises(WorkspaceError, match="is not a pathsynth workspace"):
        Workspace(tmp_path / "full")


def test_unreachable_database_names_the_url_with_the_password_masked(tmp_path):
    url = "mysql+pymysql://lab:s3cret-pw@127.0.0.1:1/catalog"
    with pytest.raises(CatalogUnavailable) as caught:
        Catalog(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "mysql+pymysql://lab:***@127.0.0.1:1/catalog" in message
    assert "\n" not in message
    assert not (tmp_path / "ws").exists()
    with pytest.raises(CatalogUnavailable):
        Workspace.create(tmp_path / "ws", url)
    assert not (tmp_path / "ws").exists()  # nothing half-made


def test_a_raw_at_sign_in_the_password_is_refused_without_showing_any_of_it(tmp_path):
    """``p@ssW0rd`` unescaped: SQLAlchemy takes ``ssW0rd@127.0.0.1`` for the host, and the
    driver's error printed it; the URL is refused before any connection, naming the fix."""
    url = "mysql+pymysql://ps:p@ssW0rd@127.0.0.1:1/catalog"
    with pytest.raises(CatalogUnavailable) as caught:
        Catalog(url)
    message = str(caught.value)
    assert "ssW0rd" not in message and "p@ss" not in message
    assert "raw '@'" in message and "%40" in message and "PATHSYNTH_DB_PASSWORD" in message
    with pytest.raises(CatalogUnavailable, match="raw '@'"):
        Workspace.create(tmp_path / "ws", url)
    assert not (tmp_path / "ws").exists()
    escaped = "mysql+pymysql://ps:p%40ssW0rd@127.0.0.1:1/catalog"  # refused only as unreachable
    with pytest.raises(CatalogUnavailable, match="cannot reach") as unreachable:
        Catalog(escaped)
    assert "ssW0rd" not in str(unreachable.value)


def test_unknown_driver_is_a_clear_error():
    with pytest.raises(CatalogUnavailable, match="cannot use catalog database nosuchdb://"):
        Catalog("nosuchdb://x")
    assert masked_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
