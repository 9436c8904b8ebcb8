"""Shared fixtures: the catalog backends (SQLite, a real MariaDB and a real PostgreSQL server),
workspaces, the shared data sets, and small generated image sources."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import throwaway_database, write_image

REPO = Path(__file__).resolve().parents[1]
MYSQL_ENV = "PATHSYNTH_TEST_MYSQL_URL"
POSTGRES_ENV = "PATHSYNTH_TEST_POSTGRES_URL"


def shared_data() -> Path:
    """The shared real data sets (``../shared/data`` beside the checkout, or $PATHSYNTH_DATA)."""
    return Path(os.environ.get("PATHSYNTH_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def herlev() -> Path:
    path = shared_data() / "herlev"
    if not path.is_dir():
        pytest.skip(f"shared data set {path} is not here")
    return path


@pytest.fixture(scope="session")
def bach() -> Path:
    path = shared_data() / "bach"
    if not path.is_dir():
        pytest.skip(f"shared data set {path} is not here")
    return path


def _server_url(variable: str, server: str, script: str) -> str:
    url = os.environ.get(variable)
    if url:
        return url
    reason = f"{server} tests need {variable}: run them through scripts/{script} (make test)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI=true they must not be skipped")
    pytest.skip(reason)


def _mariadb_server_url() -> str:
    return _server_url(MYSQL_ENV, "MariaDB", "with-mariadb")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty database on the test MariaDB server, dropped afterwards."""
    with throwaway_database(
        _mariadb_server_url(), "pathsynth",
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "DROP DATABASE IF EXISTS {name}",
    ) as url:  # fmt: skip
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server, dropped afterwards."""
    with throwaway_database(
        _server_url(POSTGRES_ENV, "PostgreSQL", "with-postgres"), "pathsynth",
        "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0",
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)",
    ) as url:  # fmt: skip
        yield url


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each catalog test runs on the embedded SQLite default and on real MariaDB and PostgreSQL
    servers (started by scripts/with-mariadb and scripts/with-postgres)."""
    if request.param == "mariadb":
        return request.getfixturevalue("mariadb_url")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return "sqlite"


@pytest.fixture
def workspace(tmp_path: Path, backend: str):
    """A new workspace on the backend under test."""
    from pathsynth.catalog.workspace import Workspace

    return Workspace.create(tmp_path / "ws", None if backend == "sqlite" else backend)


@pytest.fixture
def class_source(tmp_path: Path) -> Path:
    """``source/<class>/<image>``: 3 classes x 4 PNG images, all different."""
    root = tmp_path / "source"
    for c, label in enumerate(("benign", "insitu", "invasive")):
        for i in range(4):
            write_image(root / label / f"img{i}.png", seed=100 * c + i)
    return root


@pytest.fixture(scope="session")
def bach_patches(bach: Path) -> object:
    """Four real H&E patches (one per BACH class), uint8 (4, 3, 128, 128), read in place."""
    import numpy as np
    import torch
    from PIL import Image

    patches = []
    for name in ("Benign/b000.jpg", "InSitu/is005.jpg", "Invasive/iv001.jpg", "Normal/n003.jpg"):
        with Image.open(bach / "images" / name) as image:
            crop = image.convert("RGB").crop((512, 512, 640, 640))
            patches.append(torch.from_numpy(np.array(crop)).permute(2, 0, 1))
    return torch.stack(patches).contiguous()
