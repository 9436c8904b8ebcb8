"""``pathsynth check``: rows without files, files without rows, hash mismatches, temporary files
and an old schema are listed with exit status 1; ``--repair`` fixes what can be fixed."""

from __future__ import annotations

from helpers import assert_consistent
from helpers import run_pathsynth as pathsynth
from sqlalchemy import text

from pathsynth.catalog.check import check_workspace
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow


def damaged_workspace(workspace, class_source):
    """12 images, then: one file deleted, one corrupted, a stray file and a temporary file."""
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    files = sorted(p for p in workspace.store.rglob("*.png"))
    files[0].unlink()
    files[1].write_bytes(b"not the same bytes")
    folder = files[2].parent
    (folder / "stray.png").write_bytes(b"x")
    (folder / ".I1.png.tmp-abc").write_bytes(b"half")
    return [p.relative_to(workspace.store).as_posix() for p in files[:3]], folder


def test_a_sound_workspace_passes(workspace, class_source):
    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    assert check_workspace(workspace).problems == []


def test_every_kind_of_damage_is_listed_and_repair_fixes_all_but_the_hash(workspace, class_source):
    (missing, corrupt, _), folder = damaged_workspace(workspace, class_source)
    stray = (folder / "stray.png").relative_to(workspace.store).as_posix()
    temp = (folder / ".I1.png.tmp-abc").relative_to(workspace.store).as_posix()
    report = check_workspace(workspace)
    assert report.problems == [
        ("row without file", missing),
        ("file without row", stray),
        ("hash mismatch", corrupt),
        ("temporary file", temp),
    ]
    repaired = check_workspace(workspace, repair=True)
    assert repaired.repaired
    assert check_workspace(workspace).problems == [("hash mismatch", corrupt)]
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.query(ImageRow).count() == 11
    assert assert_consistent(workspace) == 11


def test_check_command_exits_1_with_the_list_and_0_when_sound(tmp_path, class_source):
    from pathsynth.catalog.workspace import Workspace

    space = Workspace.create(tmp_path / "ws")
    (missing, corrupt, _), _ = damaged_workspace(space, class_source)
    done = pathsynth("check", "-w", str(space.root))
    assert done.returncode == 1, done.stderr
    for expected in ("row without file", missing, "hash mismatch", corrupt, "4 problems"):
        assert expected in done.stdout
    done = pathsynth("check", "-w", str(space.root), "--repair")
    assert done.returncode == 1 and "1 hash mismatches left to inspect" in done.stdout
    (space.store / corrupt).unlink()
    assert pathsynth("check", "-w", str(space.root), "--repair").returncode == 0
    done = pathsynth("check", "-w", str(space.root))
    assert done.returncode == 0 and "catalog and store agree" in done.stdout


def test_an_old_schema_is_reported_and_repair_migrates_it(workspace):
    with workspace.open_catalog() as catalog, catalog.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        for table in (
            "image_runs",
            "selection_scores",
            "embeddings",
            "turing_answers",
            "turing_items",
            "turing_raters",
            "turing_tests",
        ):
            connection.execute(text(f"DROP TABLE {table}"))  # what 0001 did not have
    assert check_workspace(workspace).problems == [("schema", "at 0001, newest is 0007")]
    check_workspace(workspace, repair=True)
    assert check_workspace(workspace).problems == []


def test_check_waits_for_a_writer_instead_of_reporting_its_unfinished_files(
    workspace, class_source
):
    """A writer's file in the store before its row is committed is no problem: ``check`` takes
    the shared side of the workspace lock, waits for the writer, then finds the workspace sound
    (before, it listed such files as stray and exited 1 during an ingest)."""
    import threading

    from pathsynth.catalog.lock import write_lock

    ingest_source(workspace, class_source, IngestOptions(modality="histology", workers=0))
    unfinished = workspace.store / "P" / "S" / "img-unfinished.png"
    reports = []
    with write_lock(workspace.root, on_wait=None):
        unfinished.parent.mkdir(parents=True, exist_ok=True)
        unfinished.write_bytes(b"half a file a writer has not committed yet")
        checker = threading.Thread(target=lambda: reports.append(check_workspace(workspace)))
        checker.start()
        checker.join(timeout=2)
        assert checker.is_alive() and not reports  # waiting for the writer
        unfinished.unlink()  # the writer finishes (here: gives up and cleans up)
    checker.join(timeout=30)
    assert len(reports) == 1 and reports[0].problems == [], reports
