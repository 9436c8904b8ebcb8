"""Two writers on one workspace at once, as two real processes: no file lost, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import assert_consistent, write_image

from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.lock import write_lock
from pathsynth.catalog.workspace import Workspace

IMAGES_PER_SOURCE = 90


def make_source(root: Path, seed: int, count: int = IMAGES_PER_SOURCE) -> Path:
    """3 classes of 160x160 images: 90 keep an ingest busy for a few seconds."""
    for i in range(count):
        write_image(root / f"class{i % 3}" / f"img{i:03d}.png", seed=seed + i, size=(160, 160))
    return root


def start_ingest(source: Path, workspace: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "pathsynth", "ingest", str(source), "-m", "histology",
        "--workers", "0", "-w", str(workspace),
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def wait_for_store_files(space: Workspace, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.is_file() for p in space.store.rglob("*")):
        assert time.monotonic() < deadline, "the first ingest never wrote a file"
        time.sleep(0.01)


def test_a_second_ingest_started_midway_deletes_nothing_and_both_complete(tmp_path, backend):
    space = Workspace.create(tmp_path / "ws", None if backend == "sqlite" else backend)
    first_source = make_source(tmp_path / "first", seed=0, count=2 * IMAGES_PER_SOURCE)
    second_source = make_source(tmp_path / "second", seed=1000)
    first = start_ingest(first_source, space.root)
    wait_for_store_files(space)  # the first has files on disk whose rows are not committed yet
    second = start_ingest(second_source, space.root)
    first_out, first_err = first.communicate(timeout=300)
    second_out, second_err = second.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert f"added {2 * IMAGES_PER_SOURCE} images in 3 classes" in first_out
    assert f"added {IMAGES_PER_SOURCE} images in 3 classes" in second_out
    assert "waiting: another run is writing to this workspace (pid" in second_err
    assert "removed" not in second_out  # no sweep of the first run's files
    assert assert_consistent(space) == 3 * IMAGES_PER_SOURCE


def test_the_same_source_twice_at_once_is_stored_once_without_a_traceback(tmp_path):
    space = Workspace.create(tmp_path / "ws")
    source = make_source(tmp_path / "source", seed=0)
    runs = [start_ingest(source, space.root), start_ingest(source, space.root)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert not any("Traceback" in err or "IntegrityError" in err for _, err in outputs)
    summaries = sorted(out.splitlines()[-1] for out, _ in outputs)
    assert summaries == [
        f"added 0 images in 0 classes; {IMAGES_PER_SOURCE} already in the catalog; 0 refused",
        f"added {IMAGES_PER_SOURCE} images in 3 classes; 0 already in the catalog; 0 refused",
    ]
    assert assert_consistent(space) == IMAGES_PER_SOURCE


def test_a_writer_waits_for_the_lock_holder_and_is_told_who_it_is(tmp_path, class_source):
    space = Workspace.create(tmp_path / "ws")
    told: list[str] = []
    finished = threading.Event()

    def ingest_in_thread() -> None:
        options = IngestOptions(modality="histology", workers=0)
        ingest_source(space, class_source, options, on_wait=told.append)
        finished.set()

    with write_lock(space.root, on_wait=None):
        thread = threading.Thread(target=ingest_in_thread)
        thread.start()
        time.sleep(1.0)
        assert not finished.is_set(), "the ingest must wait while another run holds the lock"
        assert told and told[0].startswith(f"pid {os.getpid()} on ")
    thread.join(timeout=60)
    assert finished.is_set()
    assert assert_consistent(space) == 12


def test_a_killed_lock_holder_does_not_block_the_next_run(tmp_path, class_source):
    space = Workspace.create(tmp_path / "ws")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathsynth.catalog.lock import write_lock\n"
         "with write_lock(sys.argv[1], None):\n    print('held', flush=True); time.sleep(600)",
         str(space.root)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    started = time.monotonic()
    report = ingest_source(
        space, class_source, IngestOptions(modality="histology", workers=0), on_wait=None
    )
    assert report.added_total == 12 and time.monotonic() - started < 30


@pytest.mark.parametrize("label", ["../../pwned_label", "CIN 2/3"])
def test_generated_images_with_path_like_labels_stay_in_their_study_folder(tmp_path, label):
    from test_derived import Generated, png

    from pathsynth.catalog.api import store_generated

    space = Workspace.create(tmp_path / "ws")
    write_image(tmp_path / "src" / "a" / "x.png", seed=1)
    ingest_source(space, tmp_path / "src", IngestOptions(modality="histology", workers=0))
    run = {"run_id": "ab" * 16, "run_name": "00000-smoke", "checkpoint_step": 10}
    assert store_generated(space, [Generated(label, 1, 0, 10, png(5))], run) == 1
    generated = [p for p in space.store.rglob("*-s1-000000.png")]
    assert len(generated) == 1 and generated[0].parent.parent.parent == space.store
    assert not (tmp_path / "pwned_label-s1-000000.png").exists()
    assert assert_consistent(space) == 2
