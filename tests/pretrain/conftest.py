"""A tiny labelled workspace with a split and unlabelled images, shared by the pretrain tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_image

SPLIT = "honest"


def make_workspace(root: Path, backend: str | None = None) -> Path:
    """``root/ws``: 2 classes x 8 labelled images split 70/30 and 4 unlabelled images."""
    from pathsynth.catalog.api import create_split
    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.splits import SplitRequest
    from pathsynth.catalog.workspace import Workspace

    for c, label in enumerate(("benign", "tumour")):
        for i in range(8):
            write_image(root / "labelled" / label / f"{i}.png", seed=100 * c + i, size=(56, 48))
    for i in range(4):
        write_image(root / "spare" / "box" / f"u{i}.png", seed=900 + i, size=(56, 48))
    space = Workspace.create(root / "ws", backend)
    ingest_source(space, root / "labelled", IngestOptions(modality="histology", workers=0))
    ingest_source(
        space, root / "spare", IngestOptions(modality="histology", workers=0, unlabelled=True)
    )
    create_split(space, SplitRequest(name=SPLIT, unit="image", test=0.3, seed=1))
    return root / "ws"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace folder (made once per module)."""
    return make_workspace(tmp_path_factory.mktemp("lab"))
