"""Fixtures of the web app's tests: the lab workspace (built once per module) and a client."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lab import make_lab


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab workspace, built once per module (SQLite)."""
    return make_lab(tmp_path_factory.mktemp("lab"))


@pytest.fixture
def lab(lab_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the lab workspace for one test."""
    copy = tmp_path / "ws"
    shutil.copytree(lab_template, copy)
    (copy / "pathsynth.json").chmod(0o600)
    return copy


@pytest.fixture
def client(lab: Path) -> Iterator[object]:
    """A test client of the app over ``lab``, as the operator's browser on 127.0.0.1 of a trusted
    single-user machine would reach it (``serve --no-operator-token``)."""
    from starlette.testclient import TestClient

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, create_app

    app = create_app(Workspace(lab), ServeSettings(open_operator=True))
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client
