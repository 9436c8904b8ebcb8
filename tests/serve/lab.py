"""A small lab workspace for the web app's tests: real images in three classes and a split,
affine children, a generator run's images with its run folder and sample grid, and an experiment
whose state points at them (what ``pathsynth reproduce`` leaves, without training anything)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import write_image
from PIL import Image

CLASSES = ("benign", "insitu", "invasive")
RUN_ID = "cd" * 16
RUN_NAME = "00000-demo-gan"
EXPERIMENT = "demo"
REAL_PER_CLASS = 8
GENERATED_PER_CLASS = 6


@dataclass(frozen=True)
class Generated:
    class_name: str
    seed: int
    index: int
    step: int
    png: bytes


def png(seed: int, side: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_lab(root: Path, db_url: str | None = None) -> Path:
    """Build the lab workspace at ``root / "ws"``; returns the workspace folder."""
    from pathsynth.catalog.api import AffineChild, create_split, store_affine, store_generated
    from pathsynth.catalog.ingest import IngestOptions, ingest_source
    from pathsynth.catalog.splits import SplitRequest
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.state import ExperimentState, StageRecord

    source = root / "lab-source"
    for c, label in enumerate(CLASSES):
        for i in range(REAL_PER_CLASS):
            write_image(source / label / f"img{i}.png", seed=1000 + 100 * c + i, size=(72, 56))
    space = Workspace.create(root / "ws", db_url)
    ingest_source(space, source, IngestOptions(modality="histology", workers=0))
    create_split(space, SplitRequest(name=f"{EXPERIMENT}-real", unit="image", test=0.5, seed=1))
    store_affine(space, [AffineChild(1, 0, png(7), {"angle": 12.5, "hflip": True})],
                 {"name": "expand-demo", "config": {}})  # fmt: skip
    images = [
        Generated(label, 3, c * GENERATED_PER_CLASS + i, 40, png(5000 + 10 * c + i))
        for c, label in enumerate(CLASSES)
        for i in range(GENERATED_PER_CLASS)
    ]
    run_dir = space.runs / RUN_NAME
    store_generated(space, images, {"run_id": RUN_ID, "run_name": RUN_NAME,
                                    "run_dir": str(run_dir), "checkpoint_step": 40})  # fmt: skip
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": RUN_ID, "created": "today"}))
    (run_dir / "config.json").write_text(json.dumps({"preset": "smoke", "optim": {"steps": 40}}))
    (run_dir / "stats.jsonl").write_text('{"step": 40, "loss_d": 1.2, "loss_g": 0.8}\n')
    for step in (20, 40):
        (run_dir / "samples" / f"grid-step={step:08d}.png").write_bytes(png(step, 64))
    folder = space.root / "experiments" / EXPERIMENT
    (folder / "report").mkdir(parents=True)
    (folder / "report" / "report.html").write_text(
        "<!doctype html><title>report</title><h1>Report of demo</h1>"
    )
    state = ExperimentState(
        name=EXPERIMENT, source=str(source), modality="histology", classes=None,
        config={"preprocess": {"mode": "resize", "size": 32}},
        stages={"generator": StageRecord("finished", outputs={"run_dir": str(run_dir)}),
                "generate": StageRecord("finished", outputs={"images": len(images)})},
    )  # fmt: skip
    state.save(folder / "state.json")
    return space.root
