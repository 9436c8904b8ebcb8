"""The experiment commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select

from pathsynth.catalog.models import Image
from pathsynth.catalog.workspace import Workspace


def pathsynth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pathsynth", *args], capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200"}, timeout=300,
    )  # fmt: skip


def test_augment_expands_only_the_asked_fold_into_the_catalog(tmp_path, class_source):
    ws = str(tmp_path / "ws")
    assert pathsynth("init", ws).returncode == 0
    assert (
        pathsynth(
            "ingest", str(class_source), "-m", "cytology", "-w", ws, "--workers", "0"
        ).returncode
        == 0
    )
    assert (
        pathsynth("split", "-w", ws, "--name", "s", "--by", "image", "--test", "0.25").returncode
        == 0
    )
    done = pathsynth(
        "augment", "-w", ws, "--split", "s", "--fold", "train", "--per-class", "7", "--size", "32"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "stored 12 affine children of 9 train images: benign 4, insitu 4, invasive 4" in done.stdout
    )
    space = Workspace(tmp_path / "ws")
    with space.open_catalog() as catalog, catalog.session() as session:
        children = session.scalars(select(Image).where(Image.origin == "affine")).all()
        parent_folds = {parent.id for child in children for parent in child.parents}
    assert len(children) == 12
    from pathsynth.catalog.api import split_fold

    train = {image.image_id for image in split_fold(space, "s", "train")}
    assert parent_folds <= train
    assert all(
        set(child.transform) >= {"dx", "dy", "zoom", "angle", "hflip", "vflip"}
        for child in children
    )


def test_report_and_classify_refuse_what_does_not_exist(tmp_path):
    done = pathsynth("report", str(tmp_path))
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"error: {tmp_path} holds no results.json; run `pathsynth reproduce` to the end first"
    )
    assert pathsynth("init", str(tmp_path / "ws")).returncode == 0
    done = pathsynth("classify", "-w", str(tmp_path / "ws"), "--experiment", "nope")
    assert done.returncode == 1
    assert "no experiment 'nope'" in done.stderr
    done = pathsynth(
        "reproduce", str(tmp_path), "-m", "cytology", "--preset", "fast", "-w", str(tmp_path / "ws")
    )
    assert done.returncode == 1
    assert "unknown experiment preset 'fast'; known: smoke, quick, paper" in done.stderr
    assert not (tmp_path / "ws2").exists()
    done = pathsynth(
        "reproduce", str(tmp_path), "-m", "cytology", "--until", "gan", "-w", str(tmp_path / "ws2")
    )
    assert done.returncode == 1
    assert "unknown stage 'gan'; stages: ingest, split, inputs, affine, generator" in done.stderr
    assert not (tmp_path / "ws2").exists()  # refused before anything was made


def test_reproduce_dry_run_prints_the_resolved_config(tmp_path):
    done = pathsynth(
        "reproduce", str(tmp_path), "-m", "histology", "--preset", "smoke", "--dry-run",
        "--set", "gan.optim.steps=9", "--set", "classifier.epochs=3", "--seeds", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["gan"]["optim"]["steps"] == 9 and config["classifier"]["epochs"] == 3
    assert config["seeds"] == 4 and config["preset"] == "smoke"
    assert config["gan"]["data"]["preprocess"] == config["preprocess"]


def test_options_are_named_as_the_user_typed_them_and_unknown_classes_listed(
    tmp_path, class_source
):
    ws = str(tmp_path / "ws")
    assert pathsynth("init", ws).returncode == 0
    done = pathsynth("augment", "-w", ws, "--split", "s", "--per-class", "7", "--total", "9")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: give exactly one of --per-class and --total"
    done = pathsynth(
        "reproduce", str(class_source), "-m", "cytology", "--preset", "smoke", "-w", ws,
        "--classes", "benign,benignn", "--until", "split",
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        "error: class(es) benignn are not in "
        f"{class_source.name}; its classes: benign, insitu, invasive" in done.stderr
    )


def test_an_executor_that_is_not_one_is_refused_before_any_work(tmp_path, class_source):
    ws = tmp_path / "ws"
    command = ["reproduce", str(class_source), "-m", "cytology", "--executor", "local:zero"]
    done = pathsynth(*command, "-w", str(ws))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "error: --executor local:N needs a worker count N >= 1, got 'local:zero'"
    )
    assert not ws.exists()  # refused before a workspace was made


def test_the_results_table_says_the_reference_figures_are_published_not_measured(tmp_path, capsys):
    from report.test_report import example_results

    from pathsynth.cli import experiment as commands

    commands._print_results(example_results(tmp_path))
    printed = " ".join(capsys.readouterr().out.split())
    assert "published, not measured here" in printed
    assert "0.840 trained on original images and 0.965 with generated ones" in printed
    assert "paper (" not in printed  # the old line read like a pathsynth 'paper' protocol result
