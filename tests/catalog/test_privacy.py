"""Source identifiers (patient names, record and accession numbers in folder and file names) never
reach the catalog, the store or an export; the way back is a source map the user keeps."""

from __future__ import annotations

import csv

from helpers import write_image
from sqlalchemy import String, inspect, select

from pathsynth.catalog.export import export_class_folders
from pathsynth.catalog.ingest import IngestOptions, ingest_source
from pathsynth.catalog.models import Base
from pathsynth.catalog.models import Image as ImageRow
from pathsynth.catalog.queries import FoldImage

# Everything below the source folder; the folder's own name ("cards") is kept as the studies'
# source, so that an experiment can find the studies of its source.
IDENTIFIERS = ("SMITH", "JOHN", "778899", "ACC55501", "2021-03-04", "slide")


def patient_cards(tmp_path):
    source = tmp_path / "cards"
    folder = source / "SMITH_JOHN_MRN778899" / "STUDY_2021-03-04_ACC55501"
    for i in range(3):
        write_image(folder / f"SMITH_JOHN_MRN778899_slide{i}.png", seed=i)
    (tmp_path / "meta.csv").write_text(
        "patient,study,label,age,sex\nSMITH_JOHN_MRN778899,STUDY_2021-03-04_ACC55501,benign,54,F\n"
    )
    return source


def all_text_in_catalog(workspace) -> str:
    """Every string value of every table, as one text."""
    values: list[str] = []
    with workspace.open_catalog() as catalog, catalog.session() as session:
        for table in Base.metadata.sorted_tables:
            text_columns = [c for c in table.columns if isinstance(c.type, String)]
            for row in session.execute(select(*text_columns)) if text_columns else []:
                values.extend(str(v) for v in row if v is not None)
        assert inspect(catalog.engine).has_table("images")
    return "\n".join(values)


def ingest_cards(workspace, tmp_path, source_map=None):
    options = IngestOptions(
        modality="histology", layout="patient-study", labels_csv=tmp_path / "meta.csv",
        workers=0, source_map=source_map,
    )  # fmt: skip
    return ingest_source(workspace, patient_cards(tmp_path), options)


def test_catalog_store_and_export_hold_codes_only(workspace, tmp_path):
    report = ingest_cards(workspace, tmp_path)
    assert report.added_total == 3 and report.refused == []
    text = all_text_in_catalog(workspace)
    assert not [word for word in IDENTIFIERS if word in text], text
    stored = [p.relative_to(workspace.store).as_posix() for p in workspace.store.rglob("*.png")]
    assert len(stored) == 3 and not [p for p in stored for w in IDENTIFIERS if w in p]
    if (workspace.root / "catalog.sqlite").exists():  # the database file itself, byte by byte
        data = b"".join(p.read_bytes() for p in workspace.root.glob("catalog.sqlite*"))
        assert not [w for w in IDENTIFIERS if w.encode() in data]
    with workspace.open_catalog() as catalog, catalog.session() as session:
        images = [
            FoldImage(r.id, workspace.store / r.store_path, r.label, r.origin, 0, r.sha256)
            for r in session.scalars(select(ImageRow))
        ]
    export_class_folders(images, tmp_path / "export")
    exported = [p.name for p in (tmp_path / "export").rglob("*.png")]
    assert len(exported) == 3 and not [n for n in exported for w in IDENTIFIERS if w in n]
    again = ingest_cards(workspace, tmp_path)
    assert (again.added_total, again.already_present) == (0, 3)  # codes are stable


def test_the_source_map_leads_back_to_each_file_and_only_when_asked(workspace, tmp_path):
    source_map = tmp_path / "private" / "map.csv"
    source_map.parent.mkdir()
    ingest_cards(workspace, tmp_path, source_map)
    with open(source_map, newline="") as handle:
        mapped = {row["source_code"]: row["source_file"] for row in csv.DictReader(handle)}
    with workspace.open_catalog() as catalog, catalog.session() as session:
        codes = set(session.scalars(select(ImageRow.source_path)))
    assert set(mapped) == codes
    assert sorted(p.rsplit("/", 1)[1] for p in mapped.values()) == [
        f"SMITH_JOHN_MRN778899_slide{i}.png" for i in range(3)
    ]
    assert not list(workspace.root.rglob("*.csv"))  # nothing of it inside the workspace
    assert oct(source_map.stat().st_mode)[-3:] == "600"
