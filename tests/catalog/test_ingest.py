"""Ingest: real data sets, formats, idempotence, and every kind of bad input, on SQLite and MariaDB."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_consistent, catalog_files, write_image
from PIL import Image
from sqlalchemy import func, select

from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.models import Patient, Study, image_features
from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError, IngestError
from pathsynth.imaging.features import FEATURE_NAMES


def ingest(workspace, source: Path, **options):
    options.setdefault("modality", "histology")
    options.setdefault("workers", 0)
    return ingest_source(workspace, source, IngestOptions(**options))


def reasons(report) -> dict[str, str]:
    return {refusal.path: refusal.reason for refusal in report.refused}


def rows_by_source_file(workspace, source_map: Path) -> dict[str, ImageRow]:
    """The catalog's image rows by source file name, found through the private source map."""
    with open(source_map, newline="") as handle:
        names = {
            row["source_code"]: Path(row["source_file"]).name for row in csv.DictReader(handle)
        }
    with workspace.open_catalog() as catalog, catalog.session() as session:
        return {names[r.source_path]: r for r in session.scalars(select(ImageRow))}


def test_herlev_ingests_631_images_in_7_classes_and_a_rerun_adds_none(workspace, herlev):
    first = ingest(workspace, herlev, modality="cytology", workers=2)
    assert first.added_total == 631
    assert len(first.added) == 7
    assert first.added["severe_dysplastic"] == 136
    assert first.refused == []
    second = ingest(workspace, herlev, modality="cytology", workers=2)
    assert second.added_total == 0
    assert second.already_present == 631
    assert assert_consistent(workspace) == 631
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(image_features)) == 631
        # slide_group became the patient key, pseudonymised: 223 groups, no raw identifier
        codes = session.scalars(select(Patient.code)).all()
        kinds = set(session.scalars(select(Patient.key_kind)))
    assert len(codes) == 223 and kinds == {"group"}
    assert not any("149146635" in code for code in codes)


def test_store_mirrors_patient_study_layout_and_records_features(workspace, class_source):
    ingest(workspace, class_source)
    with workspace.open_catalog() as catalog, catalog.session() as session:
        row = session.scalars(select(ImageRow).order_by(ImageRow.id)).first()
        assert row is not None
        patient_code, study_code, name = row.store_path.split("/")
        study = session.get(Study, row.study_id)
        assert study is not None and study.code == study_code
        assert study.patient.code == patient_code
        assert study.modality == "histology" and study.stain == "H&E"
        assert (row.width, row.height, row.channels, row.bit_depth) == (40, 32, 3, 8)
        assert (row.original_mode, row.original_format, row.origin) == ("RGB", "PNG", "real")
        features = session.execute(
            select(image_features).where(image_features.c.image_id == row.id)
        ).one()
    assert re.fullmatch(r"I[0-9a-f]{15}-[0-9a-f]{8}\.png", name), "named by codes, not the source"
    assert (workspace.store / row.store_path).read_bytes() == (
        class_source / "benign/img0.png"
    ).read_bytes()
    values = features._mapping
    assert all(np.isfinite(values[name]) for name in FEATURE_NAMES)
    assert 0.0 <= values["rgb_mean_r"] <= 1.0


def test_odd_formats_are_converted_to_rgb_and_their_original_mode_recorded(workspace, tmp_path):
    source = tmp_path / "formats"
    (source / "a").mkdir(parents=True)
    ramp = (np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30).astype(np.uint16)
    Image.fromarray(ramp).save(source / "a/grey16.tif")
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:10, :, 3] = 255  # the bottom half is transparent
    Image.fromarray(rgba, "RGBA").save(source / "a/alpha.png")
    write_image(source / "a/palette.png", seed=1, mode="P")
    write_image(source / "a/grey.bmp", seed=2, mode="L")
    pages = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    pages[0].save(source / "a/pages.tif", save_all=True, append_images=pages[1:])
    write_image(source / "b/plain.jpg", seed=3)
    report = ingest(workspace, source, source_map=tmp_path / "map.csv")
    assert report.refused == [] and report.added_total == 6
    rows = rows_by_source_file(workspace, tmp_path / "map.csv")
    assert (rows["grey16.tif"].original_mode, rows["grey16.tif"].bit_depth) == ("I;16", 16)
    assert rows["alpha.png"].original_mode == "RGBA" and rows["alpha.png"].channels == 4
    assert rows["palette.png"].original_mode == "P"
    assert rows["grey.bmp"].original_mode == "L" and rows["grey.bmp"].original_format == "BMP"
    assert rows["pages.tif"].transform == {"pages": 3}
    assert rows["plain.jpg"].original_format == "JPEG"


def test_bad_images_are_refused_with_reasons_and_the_rest_is_ingested(workspace, tmp_path):
    source = tmp_path / "mixed"
    good = write_image(source / "normal/good.png", seed=1)
    jpeg = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(jpeg, format="JPEG")
    (source / "normal/truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (source / "normal/notes.jpg").write_text("this is not an image")
    (source / "normal/zcopy.png").write_bytes(good.read_bytes())
    write_image(source / "tumour/huge.png", seed=2, size=(300, 300))
    write_image(source / "tumour/fine.png", seed=3)
    (source / "empty").mkdir()
    workspace.config.pixel_limit = 200 * 200
    report = ingest(workspace, source)
    why = reasons(report)
    assert report.added_total == 2
    assert "truncated" in why["normal/truncated.jpg"]
    assert why["normal/notes.jpg"] == "not an image file"
    assert why["normal/zcopy.png"] == "duplicate of normal/good.png"
    assert why["tumour/huge.png"] == "300x300 = 90000 pixels is over the limit of 40000"
    assert why["empty/"] == "empty class folder"
    assert assert_consistent(workspace) == 2


def test_labels_csv_rows_escaping_the_source_are_refused(workspace, tmp_path):
    outside = write_image(tmp_path / "secret/patient.png", seed=9)
    source = tmp_path / "src"
    write_image(source / "images/ok.png", seed=1)
    write_image(source / "images/nolabel.png", seed=2)
    write_image(source / "images/unlisted.png", seed=3)
    (source / "images/link.png").symlink_to(outside)
    (source / "labels.csv").write_text(
        "path,label\n"
        "images/ok.png,benign\n"
        "../secret/patient.png,benign\n"
        f"{outside},benign\n"
        "images/link.png,benign\n"
        "images/nolabel.png,\n"
        "images/missing.png,benign\n"
    )
    report = ingest(workspace, source)
    why = reasons(report)
    assert report.added_total == 1
    assert why["../secret/patient.png"] == "path escapes SOURCE"
    assert why[str(outside)].startswith("absolute path in labels CSV")
    assert why["images/link.png"] == "link points outside SOURCE"
    assert why["images/nolabel.png"] == "missing label"
    assert why["images/missing.png"] == "file not found"
    assert why["images/unlisted.png"] == "not listed in labels CSV"
    assert assert_consistent(workspace) == 1


def test_labels_outside_the_accepted_classes_are_refused(workspace, class_source):
    report = ingest(workspace, class_source, classes=("benign", "invasive"))
    assert report.added_total == 8
    assert {r.reason for r in report.refused} == {"unknown label 'insitu'"}
    assert len(report.refused) == 4


def test_same_content_from_another_source_is_a_duplicate(workspace, class_source, tmp_path):
    ingest(workspace, class_source)
    other = tmp_path / "other"
    (other / "benign").mkdir(parents=True)
    (other / "benign/again.png").write_bytes((class_source / "benign/img1.png").read_bytes())
    report = ingest(workspace, other)
    assert report.added_total == 0
    assert list(reasons(report)) == ["benign/again.png"]
    assert re.fullmatch(
        r"duplicate of D[0-9a-f]{15}/I[0-9a-f]{15}", reasons(report)["benign/again.png"]
    )


def test_patient_study_tree_takes_patients_and_labels_from_metadata(workspace, tmp_path):
    source = tmp_path / "cards"
    for p, patient in enumerate(("card-001", "card-002")):
        for s, study in enumerate(("s1", "s2")):
            for i in range(2):  # seeds fixed and distinct (hash() differs from run to run)
                write_image(source / patient / study / f"{i}.png", seed=100 * p + 10 * s + i)
    (source / "meta.csv").write_text(
        "patient,study,label,age,sex\n"
        "card-001,s1,benign,54,F\ncard-001,s2,insitu,54,F\ncard-002,s1,benign,61,F\n"
    )
    report = ingest(workspace, source, labels_csv=source / "meta.csv", layout="patient-study")
    assert report.added_total == 6
    assert set(reasons(report)) == {"card-002/s2/0.png", "card-002/s2/1.png"}
    with workspace.open_catalog() as catalog, catalog.session() as session:
        patients = session.scalars(select(Patient)).all()
        studies = session.scalar(select(func.count(Study.id)))
    assert sorted(p.age for p in patients) == [54, 61]
    assert {p.key_kind for p in patients} == {"patient"}
    assert studies == 3


def test_unusable_sources_give_one_clear_error(workspace, tmp_path):
    with pytest.raises(IngestError, match="is not a folder"):
        ingest(workspace, tmp_path / "nowhere")
    with pytest.raises(IngestError, match="unknown modality 'radiology'"):
        ingest(workspace, tmp_path, modality="radiology")
    (tmp_path / "bad.csv").write_text("file,diagnosis\na.png,x\n")
    with pytest.raises(IngestError, match="needs a 'path' column"):
        ingest(workspace, tmp_path, labels_csv=tmp_path / "bad.csv")
    assert catalog_files(workspace) == (set(), set())


def test_killed_ingest_leaves_a_consistent_catalog_and_a_rerun_completes(tmp_path, herlev):
    space = Workspace.create(tmp_path / "ws")
    command = [
        sys.executable, "-m", "pathsynth", "ingest", str(herlev), "--modality", "cytology",
        "--workers", "1", "-w", str(space.root),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(space.store.rglob("*.jpg")):
        time.sleep(0.02)
    time.sleep(0.3)  # let it get well into the run
    workers = _children(process.pid)
    assert workers, "the ingest should be decoding in a worker process"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)], "decoding workers outlived a killed ingest"
    rows, files = catalog_files(space)
    assert rows <= files, "a catalog row without its file"
    assert 0 < len(files) < 631, "the kill should land midway"
    report = ingest(space, herlev, modality="cytology")
    assert report.already_present == len(rows)
    assert report.added_total == 631 - len(rows)
    assert set(report.orphans_removed) == files - rows
    assert assert_consistent(space) == 631


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_interrupt_removes_the_uncommitted_batch(workspace, class_source):
    calls = 0

    def interrupt_after_five(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_source(
            workspace,
            class_source,
            IngestOptions(modality="histology", workers=0, batch_size=4),
            on_progress=interrupt_after_five,
        )
    assert assert_consistent(workspace) == 4  # the first batch committed, the second removed
    assert not [p for p in workspace.store.rglob("*") if ".tmp-" in p.name]
    report = ingest(workspace, class_source)
    assert (report.already_present, report.added_total) == (4, 8)


def test_sigterm_is_not_needed_for_consistency_of_sqlite_wal(tmp_path, class_source):
    space = Workspace.create(tmp_path / "ws")
    ingest(space, class_source)
    with space.open_catalog() as catalog, catalog.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
    assert os.path.exists(space.root / "catalog.sqlite")


def test_a_file_listed_twice_with_two_labels_is_refused_naming_both(workspace, tmp_path):
    source = tmp_path / "src"
    for name in ("a.png", "b.png", "c.png"):
        write_image(source / name, seed=len(name) + ord(name[0]))
    (source / "labels.csv").write_text(
        "path,label\na.png,benign\nb.png,benign\na.png,invasive\nc.png,benign\nc.png,benign\n"
    )
    report = ingest(workspace, source)
    assert report.added_total == 2  # b and c; a's label cannot be trusted
    assert reasons(report) == {
        "a.png": "listed twice in labels CSV with labels 'benign' (line 2) and 'invasive' (line 4)",
        "c.png": "listed twice in labels CSV (lines 5 and 6)",
    }


def test_pixel_sizes_come_from_the_csv_column_or_the_option_and_bad_ones_are_refused(
    workspace, tmp_path
):
    source = tmp_path / "src"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(source / name, seed=ord(name[0]))
    (source / "labels.csv").write_text(
        "path,label,pixel_size_um\na.png,benign,0.5\nb.png,benign,\nc.png,benign,-1\n"
        "d.png,benign,wide\n"
    )
    report = ingest(workspace, source, pixel_size_um=0.84)
    assert report.added_total == 2
    assert reasons(report) == {
        "c.png": "pixel_size_um '-1' in labels CSV is not a positive number",
        "d.png": "pixel_size_um 'wide' in labels CSV is not a positive number",
    }
    with workspace.open_catalog() as catalog, catalog.session() as session:
        sizes = session.scalars(select(Study.pixel_size_um).order_by(Study.id)).all()
    assert sorted(sizes) == [0.5, 0.84]  # the column wins; an empty cell takes --pixel-size
    with pytest.raises(ConfigError, match=r"pixel_size_um must be a positive number, got 0\.0"):
        IngestOptions(modality="histology", pixel_size_um=0.0)


def test_a_rerun_with_a_pixel_size_fills_in_studies_without_one_and_changes_none(
    workspace, tmp_path
):
    source = tmp_path / "src"
    for name in ("a.png", "b.png"):
        write_image(source / "benign" / name, seed=ord(name[0]))
    assert ingest(workspace, source).pixel_sizes_filled == 0
    write_image(source / "benign" / "c.png", seed=3)

    again = ingest(workspace, source, pixel_size_um=0.84)
    third = ingest(workspace, source, pixel_size_um=0.5)

    assert (again.added_total, again.already_present, again.pixel_sizes_filled) == (1, 2, 2)
    assert third.pixel_sizes_filled == 0
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.scalars(select(Study.pixel_size_um)).all() == [0.84] * 3


def test_an_unreadable_age_or_date_is_reported_not_dropped(workspace, tmp_path):
    source = tmp_path / "src"
    for name in ("a.png", "b.png", "c.png"):
        write_image(source / name, seed=ord(name[0]))
    (source / "labels.csv").write_text(
        "path,label,age,study_date\n"
        "a.png,benign,fifty,2021-03-04\nb.png,benign,50,04/03/2021\nc.png,benign,50,2021-03-04\n"
    )
    report = ingest(workspace, source)
    assert report.added_total == 1
    assert reasons(report) == {
        "a.png": "age 'fifty' in labels CSV is not a whole number of years",
        "b.png": "study_date '04/03/2021' in labels CSV is not a date (YYYY-MM-DD)",
    }
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.scalars(select(Patient.age)).all() == [50]


def test_two_sources_with_the_same_patient_and_study_folders_keep_their_own_studies(
    workspace, tmp_path
):
    from pathsynth.catalog.api import source_fold

    for site, offset in (("site-a", 0), ("site-b", 500)):
        for p, patient in enumerate(("g0", "g1")):
            for i in range(2):
                write_image(tmp_path / site / patient / "s1" / f"{i}.png", seed=offset + 10 * p + i)
        (tmp_path / site / "meta.csv").write_text(
            "patient,study,label\ng0,s1,benign\ng1,s1,insitu\n"
        )
        report = ingest(workspace, tmp_path / site, labels_csv=tmp_path / site / "meta.csv",
                        layout="patient-study")  # fmt: skip
        assert report.added_total == 4
    assert len(source_fold(workspace, "histology", "site-a")) == 4
    assert len(source_fold(workspace, "histology", "site-b")) == 4  # not filed under site-a
    with workspace.open_catalog() as catalog, catalog.session() as session:
        assert session.scalar(select(func.count(Study.id))) == 4
        assert session.scalar(select(func.count(Patient.id))) == 2  # a patient key is one patient
