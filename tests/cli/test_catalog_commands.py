"""The catalog commands as a user runs them: output, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import write_image


def pathsynth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=300,
    )


def test_init_ingest_split_stats_export_round_trip(tmp_path, class_source):
    ws = tmp_path / "ws"
    done = pathsynth("init", str(ws))
    assert done.returncode == 0, done.stderr
    done = pathsynth(
        "ingest",
        str(class_source),
        "-m",
        "histology",
        "--workers",
        "0",
        env={"PATHSYNTH_WORKSPACE": str(ws)},
    )
    assert done.returncode == 0, done.stderr
    assert "added 12 images in 3 classes; 0 already in the catalog; 0 refused" in done.stdout
    done = pathsynth(
        "split", "-w", str(ws), "--name", "main", "--by", "image", "--test", "0.25", "--seed", "1"
    )
    assert done.returncode == 0, done.stderr
    assert "split main (by image, seed 1)" in done.stdout
    assert "image-level" in done.stdout
    stats = pathsynth("stats", "-w", str(ws))
    assert stats.returncode == 0, stats.stderr
    assert "12 images" in stats.stdout and "histology" in stats.stdout
    # class folders name no patient: each image is its own, and the line says so in words
    assert (
        "12 images in 12 studies; patients: 12 images that name no patient (each counted as its "
        "own patient)" in " ".join(stats.stdout.split())
    )
    assert "split main (by image)" in stats.stdout
    out = tmp_path / "export"
    done = pathsynth(
        "export", "-w", str(ws), "--split", "main", "--fold", "train", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    exported = sorted(p.relative_to(out).parts[0] for p in out.rglob("*.png"))
    assert exported == ["benign"] * 3 + ["insitu"] * 3 + ["invasive"] * 3
    first = next(out.rglob("*.png"))
    assert first.stat().st_nlink == 2  # a hard link into the store, not a copy


def test_refused_images_give_a_table_and_exit_1_unless_skip_bad(tmp_path):
    source = tmp_path / "src"
    write_image(source / "a" / "ok.png", seed=1)
    (source / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ws = tmp_path / "ws"
    assert pathsynth("init", str(ws)).returncode == 0
    done = pathsynth("ingest", str(source), "-m", "cytology", "-w", str(ws), "--workers", "0")
    assert done.returncode == 1
    assert "refused a/broken.png: corrupt or truncated image" in done.stderr
    assert "added 1 images in 1 classes; 0 already in the catalog; 1 refused" in done.stdout
    again = pathsynth("ingest", str(source), "-m", "cytology", "-w", str(ws), "--skip-bad")
    assert again.returncode == 0
    assert "added 0 images in 0 classes; 1 already in the catalog; 1 refused" in again.stdout


def test_errors_are_one_line_without_traceback_unless_debug(tmp_path):
    done = pathsynth("stats", "-w", str(tmp_path / "none"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none'} is not a pathsynth workspace (no pathsynth.json); "
        f"create one with `pathsynth init {tmp_path / 'none'}`"
    ]
    done = pathsynth(
        "init", str(tmp_path / "ws"), "--db-url", "mysql+pymysql://u:topsecret@127.0.0.1:1/x"
    )
    assert done.returncode == 1
    assert "topsecret" not in done.stderr and "u:***@127.0.0.1:1/x" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    debug = pathsynth("--debug", "stats", "-w", str(tmp_path / "none"))
    assert "Traceback" in debug.stderr and "WorkspaceError" in debug.stderr


def test_every_command_has_help():
    for command in ("init", "ingest", "stats", "split", "export"):
        done = pathsynth(command, "--help")
        assert done.returncode == 0 and "Usage" in done.stdout, command


def test_main_module_runs_without_database_packages_imported():
    code = (
        "import sys, pathsynth.cli; assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(sys.executable).exists()


def test_markup_in_labels_and_file_names_is_printed_as_written(tmp_path):
    source = tmp_path / "src"
    write_image(source / "a.png", seed=1)
    write_image(source / "b.png", seed=2)
    (source / "[red]broken.png").write_bytes(b"not an image")
    (source / "labels.csv").write_text(
        "path,label\na.png,[/x]\nb.png,[bold]tumour\n[red]broken.png,[/x]\n"
    )
    ws = tmp_path / "ws"
    assert pathsynth("init", str(ws)).returncode == 0
    done = pathsynth("ingest", str(source), "-m", "cytology", "-w", str(ws), "--workers", "0")
    assert done.returncode == 1, done.stderr
    assert "refused [red]broken.png: not an image file" in done.stderr
    assert "[/x]" in done.stdout and "[bold]tumour" in done.stdout
    stats = pathsynth("stats", "-w", str(ws))
    assert stats.returncode == 0, stats.stderr
    assert "[/x]" in stats.stdout and "[bold]tumour" in stats.stdout


def test_error_messages_keep_bracketed_text(tmp_path):
    done = pathsynth("stats", "-w", str(tmp_path / "[red]none"))
    assert done.returncode == 1
    assert f"error: {tmp_path / '[red]none'} is not a pathsynth workspace" in done.stderr


def test_the_patients_line_names_groups_and_the_generator_pseudo_patient_apart() -> None:
    from pathsynth.cli.catalog import _patients_line

    line = _patients_line({"group": 11, "generator": 1})
    assert line == (
        "patients: 11 patient groups from the labels "
        "(generated images belong to 1 generator pseudo-patient(s))"
    )
    assert _patients_line({}) == "patients: none"
