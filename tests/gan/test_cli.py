"""The train-gan and generate commands: one-line errors, dry run, catalog hand-offs, clean stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pathsynth.cli.app import app
from pathsynth.errors import CheckpointError, ConfigError
from pathsynth.generators.sampling import GeneratedImage
from pathsynth.training.checkpoint import find_checkpoint, load_checkpoint

from .conftest import write_class_folders

QUIET = ["--set", "run.quality_every=0", "--set", "run.sample_every=0", "--device", "cpu"]


def _pathsynth(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_importing_the_cli_and_the_trainer_never_imports_sqlalchemy() -> None:
    code = "import pathsynth.cli, pathsynth.gan.trainer, pathsynth.gan.sampling, sys; "
    code += "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_dry_run_prints_the_resolved_config_with_overrides(class_folders: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train-gan", "--data", str(class_folders), "--preset", "paper-wgan-gp", "--loss", "hinge",
         "--set", "optim.g_lr=5e-4", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["preset"] == "paper-wgan-gp"
    assert config["loss"]["kind"] == "hinge"
    assert config["optim"]["g_lr"] == 5e-4 and config["optim"]["n_critic"] == 5
    assert config["data"] == {"crop": 0, "preprocess": {"mode": "fit", "size": 128, "scale": 1.0,
                              "patches_per_image": 8, "seed": 0, "fill": "border", "stride": 0,
                              "pixel_size_um": 0.0}}  # fmt: skip


def test_unknown_key_is_one_line_naming_it_and_the_valid_keys(class_folders: Path) -> None:
    line = _one_error_line(
        _pathsynth("train-gan", "--data", str(class_folders), "--set", "model.depth=3")
    )
    assert "unknown GAN setting 'model.depth'" in line and "model.g_layers" in line


def test_impossible_image_size_is_refused_before_reading_any_data(tmp_path: Path) -> None:
    line = _one_error_line(
        _pathsynth("train-gan", "--data", str(tmp_path / "absent"), "--resolution", "96")
    )
    assert "image size 96 cannot be made" in line


def test_one_class_folder_is_one_line(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"lonely": 9})
    line = _one_error_line(_pathsynth("train-gan", "--data", str(tmp_path), "--preset", "smoke"))
    assert "one class" in line


def test_generate_from_a_missing_run_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(
        _pathsynth(
            "generate",
            str(tmp_path / "runs" / "00007-x"),
            "--per-class",
            "2",
            "--out",
            str(tmp_path),
        )
    )
    assert "does not exist" in line


def test_sigterm_writes_a_checkpoint_and_exits_cleanly(class_folders: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pathsynth", "train-gan", "--data", str(class_folders), "--preset", "smoke",
         "--steps", "100000", "--runs", str(tmp_path), *QUIET, "--set", "run.checkpoint_every=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*/stats.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "interrupted at step" in stdout and "--resume" in stdout
    (run_dir,) = tmp_path.iterdir()
    state = load_checkpoint(find_checkpoint(run_dir, "last"))
    assert 0 < state["step"] < 100000
    assert not list(run_dir.glob(".*tmp*"))


def _train_smoke(runner: CliRunner, data: Path, runs: Path, steps: int, *extra: str):
    """Train the smoke preset for ``steps`` steps into ``runs``; the CliRunner result."""
    return runner.invoke(
        app,
        ["train-gan", "--data", str(data), "--preset", "smoke", "--steps", str(steps),
         "--runs", str(runs), *extra],
    )  # fmt: skip


def test_resume_continues_the_run_in_its_folder(class_folders: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    first = _train_smoke(runner, class_folders, tmp_path, 2, *QUIET)
    assert first.exit_code == 0, first.output
    (run_dir,) = tmp_path.iterdir()
    stats = run_dir / "stats.jsonl"
    with stats.open("a") as handle:  # what a run killed after its last checkpoint leaves
        handle.write(json.dumps({"step": 3, "loss_d": 9.0}) + "\n" + '{"step": 4, "lo')
    shutil.copyfile(run_dir / "last-step=00000002.pt", run_dir / "best-step=00000004.pt")
    again = runner.invoke(app, ["train-gan", "--resume", str(run_dir), "--steps", "3"])
    assert again.exit_code == 0, again.output
    assert [p.name for p in run_dir.glob("last-*.pt")] == ["last-step=00000003.pt"]
    assert json.loads((run_dir / "config.json").read_text())["optim"]["steps"] == 3
    steps = [json.loads(line)["step"] for line in stats.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 3  # each step once, the resumed ones
    assert 9.0 not in [json.loads(line).get("loss_d") for line in stats.read_text().splitlines()]
    assert not (run_dir / "best-step=00000004.pt").exists()  # made by steps trained again


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_at_step_0(
    class_folders: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert _train_smoke(runner, class_folders, tmp_path, 2, *QUIET).exit_code == 0
    (run_dir,) = tmp_path.iterdir()
    for checkpoint in run_dir.glob("*-step=*.pt"):  # what kill -9 before step 2 leaves
        checkpoint.unlink()
    again = runner.invoke(app, ["train-gan", "--resume", str(run_dir), "--steps", "2"])
    assert again.exit_code == 0, again.output
    assert (run_dir / "last-step=00000002.pt").exists()
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # each step once


def test_resume_of_a_folder_without_run_json_is_refused_in_one_line(
    class_folders, tmp_path
) -> None:
    """Only development builds made run folders without ``run.json``; no release did, so there
    is no reader for them: resuming one is refused, naming the folder."""
    runner = CliRunner()
    assert _train_smoke(runner, class_folders, tmp_path, 2, *QUIET).exit_code == 0
    (run_dir,) = tmp_path.iterdir()
    (run_dir / "run.json").unlink()
    again = runner.invoke(app, ["train-gan", "--resume", str(run_dir), "--steps", "3"])
    assert isinstance(again.exception, CheckpointError)
    assert "has no run.json: not a pathsynth run folder" in str(again.exception)
    assert not (run_dir / "last-step=00000003.pt").exists()


def test_resume_on_other_classes_is_refused(class_folders: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert _train_smoke(runner, class_folders, tmp_path, 1, *QUIET).exit_code == 0
    (run_dir,) = tmp_path.iterdir()
    other = write_class_folders(tmp_path / "other", {"alpha": 8, "omega": 8})
    result = runner.invoke(
        app, ["train-gan", "--resume", str(run_dir), "--data", str(other), "--steps", "2"]
    )
    assert isinstance(result.exception, CheckpointError)
    assert "differ" in str(result.exception)


def test_workspace_split_data_and_catalog_generation_go_through_the_catalog_api(
    class_folders: Path, tmp_path: Path, monkeypatch
) -> None:
    calls: dict[str, object] = {}
    files = sorted((p, p.parent.name) for p in class_folders.rglob("*.png"))

    def open_workspace(root: Path) -> Path:
        return root  # stands in for the Workspace the real facade opens

    def fold_files(workspace: Path, split: str, fold: str) -> list[tuple[Path, str]]:
        calls["fold_files"] = (workspace, split, fold)
        return files

    def store_generated_ids(workspace: Path, images, run: dict) -> tuple[list[int], set[int]]:
        records = list(images)
        calls["store"] = (workspace, records, run)
        return list(range(len(records))), set(range(len(records)))

    fake = types.ModuleType("pathsynth.catalog.api")
    fake.open_workspace = open_workspace  # type: ignore[attr-defined]
    fake.fold_files = fold_files  # type: ignore[attr-defined]
    fake.store_generated_ids = store_generated_ids  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pathsynth.catalog.api", fake)
    runner = CliRunner()
    ws = tmp_path / "ws"
    trained = runner.invoke(
        app,
        [
            "train-gan",
            "-w",
            str(ws),
            "--split",
            "main",
            "--fold",
            "train",
            "--preset",
            "smoke",
            "--steps",
            "1",
            "--runs",
            str(tmp_path / "runs"),
            *QUIET,
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert calls["fold_files"] == (ws.resolve(), "main", "train")  # the stand-in workspace
    (run_dir,) = (tmp_path / "runs").iterdir()
    made = runner.invoke(
        app,
        [
            "generate",
            str(run_dir),
            "--per-class",
            "2",
            "--checkpoint",
            "last",
            "--seed",
            "9",
            "-w",
            str(ws),
            "--device",
            "cpu",
        ],
    )
    assert made.exit_code == 0, made.output
    workspace, records, run = calls["store"]  # type: ignore[misc]
    assert workspace == ws and len(records) == 6
    assert all(isinstance(r, GeneratedImage) and r.seed == 9 and r.step == 1 for r in records)
    assert run["run_name"] == run_dir.name and run["checkpoint_step"] == 1
    assert len(run["run_id"]) == 32  # made when the folder was, not taken from its name
    identity = json.loads((run_dir / "run.json").read_text())
    assert identity["run_id"] == run["run_id"] and "split main fold train" in identity["source"]


def test_giving_both_or_no_data_sources_is_refused(class_folders: Path) -> None:
    result = CliRunner().invoke(app, ["train-gan", "--preset", "smoke"])
    assert isinstance(result.exception, ConfigError)


@pytest.mark.parametrize("which", ["best", "last"])
def test_generate_out_writes_class_folders(class_folders: Path, tmp_path: Path, which: str) -> None:
    runner = CliRunner()
    trained = _train_smoke(runner, class_folders, tmp_path / "runs", 2, "--device", "cpu")
    assert trained.exit_code == 0, trained.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = runner.invoke(
        app,
        [
            "generate",
            str(run_dir),
            "--per-class",
            "3",
            "--checkpoint",
            which,
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        sorted(p.parent.name for p in (tmp_path / "out").rglob("*.png"))
        == ["alpha"] * 3 + ["beta"] * 3 + ["gamma"] * 3
    )
