"""Labels are data: every path made from one stays a single safe folder, and maps back."""

from __future__ import annotations

import pytest
from helpers import assert_consistent, write_image
from sqlalchemy import select

from pathsynth.catalog.export import export_class_folders
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.queries import FoldImage
from pathsynth.files import label_folder, label_from_folder

HOSTILE = ("../../pwned_label", "CIN 2/3", ".hidden", "a\\b", "50%", "Normal")


@pytest.mark.parametrize("label", HOSTILE)
def test_a_label_becomes_one_path_component_and_maps_back(label):
    folder = label_folder(label)
    assert "/" not in folder and "\\" not in folder and not folder.startswith(".")
    assert label_from_folder(folder) == label


def test_ordinary_labels_keep_their_names_and_bad_ones_are_refused():
    assert label_folder("severe_dysplastic") == "severe_dysplastic"
    assert label_folder("CIN 2/3") == "CIN 2%2F3"
    with pytest.raises(ValueError, match="empty label"):
        label_folder("")
    with pytest.raises(ValueError, match="too long for a folder name"):
        label_folder("\U0001f600" * 64)


def test_export_keeps_path_like_labels_inside_the_export_folder(workspace, tmp_path):
    source = tmp_path / "src"
    lines = ["path,label"]
    for i, label in enumerate(HOSTILE):
        write_image(source / f"img{i}.png", seed=i)
        lines.append(f'img{i}.png,"{label}"')
    (source / "labels.csv").write_text("\n".join(lines) + "\n")
    report = ingest_source(workspace, source, IngestOptions(modality="histology", workers=0))
    assert report.refused == [] and report.added_total == len(HOSTILE)
    with workspace.open_catalog() as catalog, catalog.session() as session:
        images = [
            FoldImage(
                row.id, workspace.store / row.store_path, row.label, row.origin, 0, row.sha256
            )
            for row in session.scalars(select(ImageRow))
        ]
    out = tmp_path / "deep" / "er" / "out"
    counts = export_class_folders(images, out)
    assert sorted(counts) == sorted(HOSTILE)
    written = [p for p in tmp_path.rglob("*.png") if not p.is_relative_to(source)]
    outside = [p for p in written if not p.is_relative_to(workspace.root)]
    assert all(p.parent.parent == out for p in outside), outside
    assert sorted(label_from_folder(p.parent.name) for p in outside) == sorted(HOSTILE)
    assert (
        not (tmp_path / "pwned_label").exists() and not (tmp_path / "deep" / "pwned_label").exists()
    )


def test_exported_class_folders_ingest_back_under_their_labels(workspace, tmp_path):
    exported = tmp_path / "exported"
    for i, label in enumerate(("CIN 2/3", "../../x")):
        write_image(exported / label_folder(label) / f"{i}.png", seed=i)
    report = ingest_source(workspace, exported, IngestOptions(modality="cytology", workers=0))
    assert dict(report.added) == {"CIN 2/3": 1, "../../x": 1}
    assert assert_consistent(workspace) == 2


def test_labels_with_hidden_characters_are_refused_and_look_alikes_are_named(workspace, tmp_path):
    """A zero-width space or a right-to-left override makes a label that looks like another a
    class of its own: refused, naming the character. Labels that differ only in case or Unicode
    form stay separate classes (the catalog's rule) but the report names them."""
    source = tmp_path / "src"
    rows = ["path,label"]
    labels = ["Normal", "normal", "ﬁbrosis", "fibrosis", "Nor\u200bmal", "\u202eInvasive"]
    for i, label in enumerate(labels):
        write_image(source / f"{i}.png", seed=i)
        rows.append(f"{i}.png,{label}")
    (source / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = ingest_source(workspace, source, IngestOptions(modality="histology", workers=0))
    assert dict(report.added) == {"Normal": 1, "normal": 1, "ﬁbrosis": 1, "fibrosis": 1}
    reasons = {refusal.path: refusal.reason for refusal in report.refused}
    assert "U+200B" in reasons["4.png"] and "invisible or direction-changing" in reasons["4.png"]
    assert "U+202E" in reasons["5.png"]
    assert sorted(map(sorted, report.alike_labels)) == [
        ["Normal", "normal"],
        ["fibrosis", "ﬁbrosis"],
    ]
    assert assert_consistent(workspace) == 4


def test_a_licence_file_beside_the_labels_csv_is_read_not_refused(workspace, tmp_path):
    """A source states its licence in a LICENSE file (the data README's way); with a labels CSV
    it was refused as "not listed" and ingest exited 1. An image named like a document is still
    listed and refused when the CSV does not name it."""
    source = tmp_path / "src"
    write_image(source / "a.png", seed=1)
    write_image(source / "readme.png", seed=2)
    (source / "labels.csv").write_text("path,label\na.png,benign\n", encoding="utf-8")
    (source / "LICENSE").write_text("CC BY 4.0\n", encoding="utf-8")
    (source / "CITATION.cff").write_text("title: x\n", encoding="utf-8")
    report = ingest_source(workspace, source, IngestOptions(modality="histology", workers=0))
    assert dict(report.added) == {"benign": 1}
    assert [(r.path, r.reason) for r in report.refused] == [
        ("readme.png", "not listed in labels CSV")
    ]
