"""``pathsynth predict`` and ``pathsynth runs`` as a user runs them: CSV, exit codes, tables."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundles import CLASS_NAMES, image_folder, make_bundle

from pathsynth.experiment.state import ExperimentState, StageRecord
from pathsynth.metrics.aggregate import MeanInterval
from pathsynth.records.schema import (
    ConditionResult,
    DataInfo,
    ExperimentInfo,
    Results,
    SplitInfo,
    write_results,
)


def pathsynth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=300,
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "model.bundle")


def test_predict_writes_every_readable_image_and_lists_the_corrupt_one(tmp_path, bundle) -> None:
    files = image_folder(tmp_path / "images", count=3)
    (tmp_path / "images" / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    out = tmp_path / "predictions.csv"

    done = pathsynth("predict", str(bundle), str(tmp_path / "images"), "--out", str(out))

    assert done.returncode == 1
    assert "broken.jpg" in done.stderr and "refused" in done.stderr
    assert "wrote 3 predictions" in done.stdout
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "predicted", *(f"p_{name}" for name in CLASS_NAMES)]
    assert [row["path"] for row in rows] == [str(p) for p in files]
    for row in rows:
        probabilities = [float(row[f"p_{name}"]) for name in CLASS_NAMES]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted"] == CLASS_NAMES[probabilities.index(max(probabilities))]


def test_skip_bad_exits_zero_and_files_can_be_named_one_by_one(tmp_path, bundle) -> None:
    files = image_folder(tmp_path / "images", count=2)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out" / "p.csv"

    done = pathsynth(
        "predict", str(bundle), *map(str, files), str(bad), "-o", str(out), "--skip-bad",
        "--batch-size", "1", "--device", "cpu",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "bad.png: not an image file" in done.stderr
    assert len(out.read_text().splitlines()) == 3  # header and two images


def test_a_foreign_bundle_is_refused_in_one_line_and_nothing_is_written(tmp_path) -> None:
    files = image_folder(tmp_path / "images", count=1)
    fake = tmp_path / "model.bundle"
    fake.write_text("path,label\n")
    out = tmp_path / "p.csv"

    done = pathsynth("predict", str(fake), str(files[0]), "--out", str(out))

    assert done.returncode == 1
    assert done.stderr.strip().startswith("error:")
    assert "cannot be read (UnpicklingError): it is damaged or another kind of" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_image_folder_is_refused_before_anything_runs(tmp_path, bundle) -> None:
    done = pathsynth("predict", str(bundle), str(tmp_path / "nowhere"), "--out", "p.csv")

    assert done.returncode == 1
    assert "nowhere does not exist" in done.stderr


def test_runs_on_an_empty_workspace_says_so(tmp_path) -> None:
    (tmp_path / "ws").mkdir()

    done = pathsynth("runs", "-w", str(tmp_path / "ws"))

    assert done.returncode == 0, done.stderr
    assert "no experiments, classifier bundles or generator runs" in done.stdout
    missing = pathsynth("runs", "-w", str(tmp_path / "elsewhere"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_runs_lists_experiments_bundles_and_gan_runs_with_their_numbers(tmp_path) -> None:
    ws = tmp_path / "ws"
    populate_workspace(ws)

    done = pathsynth("runs", "-w", str(ws))

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "demo" in out and "histology" in out and "benign, insitu" in out
    assert "2 stages finished, last classify" in out
    assert "honest/original 0.612" in out and "honest/affine 0.655" in out
    assert "experiment state" in out and "another pathsynth version" in out  # the old one
    bundle = ws / "experiments" / "demo" / "classify" / "honest" / "affine" / "seed3.bundle"
    # whole and absolute on a line of its own, to paste into `pathsynth predict` from anywhere
    assert any(line.endswith(f": {bundle.resolve()}") for line in out.splitlines())
    assert "honest/affine" in out and "0.750" in out and "0.700" in out
    assert "cannot be read" in out  # the empty one, on its own row
    assert "00000-demo-gan" in out and "smoke" in out and "40/50" in out
    assert "0.1234" in out  # the best KID of the run
    diffusion_row = next(line for line in out.splitlines() if "00001-demo-diffusion" in line)
    assert "diffusion" in diffusion_row and "20/30" in diffusion_row
    assert "0.432" in diffusion_row and "0.568" not in out  # its last logged loss


def populate_workspace(ws: Path) -> None:
    """An experiment with results and a bundle, an old experiment, a damaged bundle, a GAN run."""
    demo = ws / "experiments" / "demo"
    demo.mkdir(parents=True)
    state = ExperimentState("demo", "/data/bach", "histology", ["benign", "insitu"], {})
    state.stages = {
        "ingest": StageRecord("finished", 1.0),
        "classify": StageRecord("finished", 9.0),
    }
    state.save(demo / "state.json")
    write_results(
        results({"honest/original": 0.612, "honest/affine": 0.655}), demo / "results.json"
    )
    make_bundle(demo / "classify" / "honest" / "affine" / "seed3.bundle")
    (demo / "classify" / "honest" / "original").mkdir(parents=True)
    (demo / "classify" / "honest" / "original" / "seed0.bundle").write_bytes(b"")
    old = ws / "experiments" / "old"
    old.mkdir()
    (old / "state.json").write_text(json.dumps({"name": "old", "format": 1}))
    run = ws / "runs" / "00000-demo-gan"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "f" * 32, "created": "2026-01-02"}))
    (run / "config.json").write_text(json.dumps({"preset": "smoke", "optim": {"steps": 50}}))
    stats = [
        {"step": 20, "loss_d": 1.1, "loss_g": 0.9},
        {"step": 20, "quality_kid": 0.1234},
        {"step": 40, "loss_d": 1.2, "loss_g": 0.8},
        {"step": 40, "quality_kid": 0.2},
    ]
    lines = [json.dumps(record) for record in stats] + ['{"step": 45, "loss']  # cut by a kill
    (run / "stats.jsonl").write_text("\n".join(lines))
    diffusion = ws / "runs" / "00001-demo-diffusion"
    diffusion.mkdir()
    identity = {"run_id": "e" * 32, "created": "2026-01-03", "kind": "diffusion"}
    (diffusion / "run.json").write_text(json.dumps(identity))
    (diffusion / "config.json").write_text(json.dumps({"preset": "quick", "optim": {"steps": 30}}))
    records = [{"step": 10, "loss": 0.5678}, {"step": 20, "loss": 0.4321}]
    (diffusion / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in records))


def results(balanced: dict[str, float]) -> Results:
    """A results record holding only what ``runs`` shows: balanced accuracy per condition."""
    conditions = {
        key: ConditionResult(
            protocol=key.split("/")[0],
            train_on=key.split("/")[1],
            train_images=10,
            per_seed=[],
            summary={"balanced_accuracy": MeanInterval(value, None, None, None, 1, 0.95)},
        )
        for key, value in balanced.items()
    }
    split = SplitInfo("s", "patient", 0.3, 0.0, 0, False)
    classes = ["benign", "insitu"]
    info = ExperimentInfo(
        "demo", "histology", "/data/bach", "smoke", ["honest"], 1, classes, "2026-01-02", "0.1.0"
    )
    return Results(
        experiment=info,
        data=DataInfo("/data/bach", "CC BY", "", split, {}),
        stages=[],
        conditions=conditions,
        comparisons=[],
        synthesis_quality=None,
        memorisation=None,
        generator=None,
        configs={},
    )


def test_the_predictions_csv_never_hands_a_spreadsheet_a_formula() -> None:
    import csv
    import io

    import torch

    from pathsynth.classify.predict import FilePredictions
    from pathsynth.cli.predict import predictions_csv

    result = FilePredictions(
        [Path("=cmd|calc!A0.jpg"), Path("plain.png")],
        torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64),
        ["@risk", "benign"],
    )
    rows = list(csv.reader(io.StringIO(predictions_csv(result))))
    assert rows[0] == ["path", "predicted", "p_@risk", "p_benign"]
    assert rows[1][:2] == ["'=cmd|calc!A0.jpg", "'@risk"]
    assert rows[2][:2] == ["plain.png", "benign"]


def test_each_unusable_path_is_listed_and_skipped_and_the_rest_predicted(tmp_path, bundle) -> None:
    """Links to nothing (dangling, a loop), a FIFO (reading it would block forever) and a
    1-pixel image, named or inside a folder: each refused with its reason, none stops the rest."""
    from PIL import Image

    good = image_folder(tmp_path / "images", count=2)
    folder = tmp_path / "images"
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "loop1.png").symlink_to(folder / "loop2.png")
    (folder / "loop2.png").symlink_to(folder / "loop1.png")
    os.mkfifo(folder / "pipe.png")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    named_fifo = tmp_path / "named.png"
    os.mkfifo(named_fifo)
    out = tmp_path / "p.csv"

    done = pathsynth(
        "predict", str(bundle), str(folder), str(folder / "loop1.png"), str(named_fifo),
        "-o", str(out), "--device", "cpu",
    )  # fmt: skip

    assert done.returncode == 1  # some images refused, without --skip-bad
    rows = list(csv.DictReader(out.open()))
    assert sorted(row["path"] for row in rows) == sorted(map(str, good))
    said = " ".join(done.stderr.split())
    assert f"{folder / 'dangling.png'}: is a link to nothing" in said
    assert f"{folder / 'loop1.png'}: is a link to nothing" in said
    assert said.count(f"{folder / 'loop1.png'}:") == 1  # named and in the folder: listed once
    assert f"{folder / 'pipe.png'}: is not a regular file" in said
    assert f"{named_fifo}: is not a regular file" in said
    assert f"{folder / 'dot.png'}: a 1x1 image is under 8 px a side" in said
