"""train-diffusion and generate on a diffusion run: dry run, one-line errors, the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pathsynth.cli.app import app


def _pathsynth(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_dry_run_prints_the_resolved_config_with_overrides(class_folders: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train-diffusion", "--data", str(class_folders), "--preset", "quick", "--steps", "7",
         "--set", "sampling.guidance=3", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["preset"] == "quick" and config["optim"]["steps"] == 7
    assert config["sampling"] == {
        "sampler": "dpm++", "steps": 25, "guidance": 3.0, "guidance_interval": [0.0, 1.0],
        "compile": False,
    }  # fmt: skip
    assert config["model"]["channels"] == [16, 32, 64, 128]


def test_a_value_no_run_can_use_is_one_line(class_folders: Path) -> None:
    line = _one_error_line(
        _pathsynth(
            "train-diffusion",
            "--data",
            str(class_folders),
            "--preset",
            "smoke",
            "--set",
            "sampling.sampler=euler",
        )
    )
    assert "sampling.sampler 'euler' is not one of ddim, dpm++" in line


def test_train_then_generate_tells_the_kind_and_refuses_gan_runs_sampler_options(
    class_folders: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runner = CliRunner()
    done = runner.invoke(app, ["train-diffusion", "--data", str(class_folders), "--preset",
                               "smoke", "--steps", "1", "--device", "cpu", "--runs", str(runs)])  # fmt: skip
    assert done.exit_code == 0, done.output
    (run,) = runs.glob("*-diffusion-smoke")
    out = tmp_path / "out"
    done = runner.invoke(app, ["generate", str(run), "--per-class", "2", "--out", str(out),
                               "--device", "cpu", "--sampler", "ddim", "--sampling-steps", "2",
                               "--guidance", "1.5", "--guidance-interval", "0.2,0.9", "--no-compile"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (
        sorted(p.parent.name for p in out.rglob("*.png"))
        == ["alpha"] * 2 + ["beta"] * 2 + ["gamma"] * 2
    )
    gan = tmp_path / "gan"
    gan.mkdir()
    (gan / "run.json").write_text(json.dumps({"run_id": "0" * 32, "kind": "gan"}))
    line = _one_error_line(
        _pathsynth("generate", str(gan), "--per-class", "1", "--guidance", "2", "--out", str(out))
    )
    assert "are for diffusion runs" in line and "is a gan run" in line
    line = _one_error_line(
        _pathsynth("generate", str(run), "--per-class", "1", "--guidance-interval", "0.9,0.2",
                   "--device", "cpu", "--out", str(tmp_path / "refused"))
    )  # fmt: skip
    assert "sampling.guidance_interval must be lo,hi" in line
    assert not (tmp_path / "refused").exists()
