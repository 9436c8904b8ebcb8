"""Reading a source folder: which files are images of which class, patient and study.

Three layouts:

- ``class-folders``: ``SOURCE/<class>/<image>``; an optional labels CSV adds patient/group and
  study columns (and must agree with the folder on the label).
- ``patient-study``: ``SOURCE/<patient>/<study>/<image>``, the layout of the reference database; a
  metadata CSV gives the labels (per image with a ``path`` column, or per study with ``patient``,
  ``study`` and ``label`` columns) and optional patient fields.
- ``csv``: a labels CSV (``path,label`` plus optional ``patient``/``group``/``slide_group``,
  ``study``, ``age``, ``sex``, ``study_date``) lists the images; paths are relative to SOURCE.

``auto`` picks ``csv`` when a labels CSV is given or ``SOURCE/labels.csv`` exists, else the layout
the folder depth shows. Nothing here reads pixels: planning only decides what each file is, and
refuses what cannot be ingested with the path and the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from pathsynth.errors import IngestError
from pathsynth.files import label_from_folder

LAYOUTS = ("auto", "class-folders", "patient-study", "csv", "unlabelled")
UNLABELLED_LABEL = ""  # the label of an image ingested without one (origin "unlabelled")
DEFAULT_LABELS_NAME = "labels.csv"
# Columns that name the patient in a labels CSV, most specific first, and what the key stands for.
PATIENT_COLUMNS = (("patient", "patient"), ("group", "group"), ("slide_group", "group"))
# Documentation beside the images at SOURCE's top level: not images, not reported.
_DOC_SUFFIXES = {".csv", ".md", ".txt", ".json", ".pdf", ".rst"}
# top-level files that describe the source, by name without suffix (a LICENSE file is how the
# data README asks a source to state its licence; it is read for the report, never ingested)
_DOC_NAMES = frozenset({"license", "licence", "copying", "readme", "notice", "citation", "authors"})


@dataclass(frozen=True)
class Candidate:
    """A file planned for ingest, with everything known about it before its pixels are read.

    Attributes:
        path: absolute path of the file.
        relative: path relative to SOURCE, POSIX form (what the catalog records).
        label: class label.
        patient_key: source identifier of the patient or group; None when none is known
            (the image then becomes its own pseudo-patient).
        patient_kind: ``patient``, ``group`` or ``image``.
        study_key: source identifier of the study.
        age, sex, study_date: optional patient/study fields from the metadata CSV.
        pixel_size_um: micrometres per pixel from the CSV's ``pixel_size_um`` column (it
            overrides ``ingest --pixel-size`` for the file's study).
    """

    path: Path
    relative: str
    label: str
    patient_key: str | None
    patient_kind: str
    study_key: str
    age: int | None = None
    sex: str | None = None
    study_date: dt.date | None = None
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class Refusal:
    """A file or row that was not ingested, and why."""

    path: str
    reason: str


@dataclass
class SourcePlan:
    """The outcome of planning: what to ingest and what was refused."""

    layout: str
    candidates: list[Candidate] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def plan_source(
    source: Path,
    layout: str = "auto",
    labels_csv: Path | None = None,
    classes: tuple[str, ...] | None = None,
) -> SourcePlan:
    """Decide, for every file under ``source``, whether and as what it will be ingested.

    Args:
        source: the folder to ingest.
        layout: one of :data:`LAYOUTS`; ``unlabelled`` takes every image under ``source`` (any
            depth) without a label, for self-supervised pretraining only.
        labels_csv: labels/metadata CSV; None uses ``SOURCE/labels.csv`` if present.
        classes: the allowed class labels; None accepts any label found.

    Returns:
        The candidates and refusals (rows pointing outside SOURCE, missing or unknown labels,
        missing files, files no row lists, empty class folders, links escaping SOURCE).

    Raises:
        IngestError: SOURCE is not a folder, the layout is unknown, or the CSV cannot be read or
            lacks the columns the layout needs.
    """
    if layout not in LAYOUTS:
        raise IngestError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not source.is_dir():
        raise IngestError(f"source {source} is not a folder")
    root = source.resolve()
    if labels_csv is None and (root / DEFAULT_LABELS_NAME).is_file():
        labels_csv = root / DEFAULT_LABELS_NAME
    rows = _read_csv(labels_csv) if labels_csv is not None else None
    files, refusals = _scan(root, skip={labels_csv.resolve()} if labels_csv else set())
    if layout == "auto":
        layout = "csv" if rows is not None else _layout_by_depth(files)
    plan = SourcePlan(layout=layout, refusals=refusals)
    if layout == "unlabelled":
        if rows is not None or classes is not None:
            raise IngestError("unlabelled images take no labels CSV and no --classes")
        for relative in files:  # every image anywhere under SOURCE, each its own patient
            _add(
                plan,
                _candidate(root, root / relative, UNLABELLED_LABEL, {}, (None, "image"), root.name),
            )
    elif layout == "csv":
        if rows is None:
            raise IngestError("layout csv needs a labels CSV (--labels)")
        _plan_csv(root, rows, files, plan)
    elif layout == "class-folders":
        _plan_class_folders(root, rows, files, plan)
    else:
        if rows is None:
            raise IngestError("layout patient-study needs a metadata CSV with labels (--labels)")
        _plan_patient_study(root, rows, files, plan)
    if classes is not None:
        _keep_classes(plan, set(classes))
    plan.refusals = list(dict.fromkeys(plan.refusals))  # a file refused by scan and by its row
    return plan


def _keep_classes(plan: SourcePlan, allowed: set[str]) -> None:
    """Refuse the planned images whose label is not one of ``allowed``."""
    kept = []
    for candidate in plan.candidates:
        if candidate.label in allowed:
            kept.append(candidate)
        else:
            plan.refusals.append(Refusal(candidate.relative, f"unknown label {candidate.label!r}"))
    plan.candidates = kept


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [
                {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
                for row in reader
            ]
            header = [name.strip().lower() for name in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise IngestError(f"cannot read labels CSV {path}: {error}") from None
    if "path" not in header and not {"patient", "study", "label"} <= set(header):
        raise IngestError(
            f"labels CSV {path} needs a 'path' column (or 'patient', 'study' and 'label'); "
            f"it has {', '.join(header) or 'no header'}"
        )
    return rows


def _scan(root: Path, skip: set[Path]) -> tuple[list[str], list[Refusal]]:
    """Every file under root (relative POSIX paths), skipping hidden ones and top-level docs."""
    files: list[str] = []
    refusals: list[Refusal] = []
    for folder, subfolders, names in os.walk(root):
        folder_path = Path(folder)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in list(subfolders):
            if (folder_path / name).is_symlink():
                subfolders.remove(name)
                refusals.append(
                    Refusal(_relative(folder_path / name, root), "linked folder not followed")
                )
        for name in sorted(names):
            path = folder_path / name
            if name.startswith(".") or path.resolve() in skip:
                continue
            if folder_path == root and (
                path.suffix.lower() in _DOC_SUFFIXES
                or (path.stem.lower() in _DOC_NAMES and path.suffix.lower() in ("", ".cff"))
            ):
                continue
            relative = _relative(path, root)
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                refusals.append(Refusal(relative, "link points outside SOURCE"))
                continue
            files.append(relative)
    return files, refusals


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _layout_by_depth(files: list[str]) -> str:
    depths = {relative.count("/") for relative in files}
    if depths == {2}:
        return "patient-study"
    return "class-folders"


def _resolve_row_path(root: Path, raw: str) -> tuple[Path | None, str | None]:
    """The file a CSV row names, or None and why it is refused."""
    if not raw:
        return None, "row has no path"
    if Path(raw).is_absolute() or raw.startswith(("/", "\\")):
        return None, "absolute path in labels CSV; paths must be relative to SOURCE"
    named = Path(os.path.normpath(root / raw))
    resolved = named.resolve()
    if not named.is_relative_to(root):
        return None, "path escapes SOURCE"
    if not resolved.is_relative_to(root):
        return None, "link points outside SOURCE"
    if not resolved.is_file():
        return None, "file not found"
    return resolved, None


def _patient_of(row: dict[str, str]) -> tuple[str | None, str]:
    for column, kind in PATIENT_COLUMNS:
        if row.get(column):
            return row[column], kind
    return None, "image"


def _candidate(
    root: Path,
    path: Path,
    label: str,
    row: dict[str, str],
    patient: tuple[str | None, str],
    study_key: str,
) -> Candidate | Refusal:
    """The candidate for one file, or its refusal when an age or date in its row is unreadable."""
    relative = _relative(path, root)
    age, date = row.get("age") or None, row.get("study_date") or None
    if age is not None and not (age.isdigit() and int(age) < 150):
        return Refusal(relative, f"age {age!r} in labels CSV is not a whole number of years")
    try:
        study_date = dt.date.fromisoformat(date) if date else None
    except ValueError:
        return Refusal(relative, f"study_date {date!r} in labels CSV is not a date (YYYY-MM-DD)")
    pixel = row.get("pixel_size_um") or None
    try:
        pixel_size = float(pixel) if pixel is not None else None
    except ValueError:
        pixel_size = -1.0
    if pixel_size is not None and not (0.0 < pixel_size < 1000.0):
        return Refusal(relative, f"pixel_size_um {pixel!r} in labels CSV is not a positive number")
    return Candidate(
        path=path,
        relative=relative,
        label=label,
        patient_key=patient[0],
        patient_kind=patient[1],
        study_key=study_key,
        age=int(age) if age is not None else None,
        sex=row.get("sex") or None,
        study_date=study_date,
        pixel_size_um=pixel_size,
    )


def _add(plan: SourcePlan, found: Candidate | Refusal) -> None:
    if isinstance(found, Refusal):
        plan.refusals.append(found)
    else:
        plan.candidates.append(found)


def _plan_csv(root: Path, rows: list[dict[str, str]], files: list[str], plan: SourcePlan) -> None:
    """One candidate per listed file; a file listed twice with different labels is refused with
    both labels named, since neither can be trusted."""
    listed: dict[str, tuple[int, str]] = {}  # relative path -> (first line, its label)
    conflicting: set[str] = set()
    for number, row in enumerate(rows, start=2):
        raw = row.get("path", "")
        where = raw or f"labels CSV line {number}"
        path, reason = _resolve_row_path(root, raw)
        if path is None:
            plan.refusals.append(Refusal(where, reason or "unusable row"))
            continue
        relative = _relative(path, root)
        label = row.get("label", "")
        if relative in listed:
            first_line, first_label = listed[relative]
            if first_label != label:
                conflicting.add(relative)
                why = f"listed twice in labels CSV with labels {first_label!r} (line "
                why += f"{first_line}) and {label!r} (line {number})"
            else:
                why = f"listed twice in labels CSV (lines {first_line} and {number})"
            plan.refusals.append(Refusal(relative, why))
            continue
        listed[relative] = (number, label)
        if not label:
            plan.refusals.append(Refusal(relative, "missing label"))
            continue
        study = row.get("study") or root.name
        _add(plan, _candidate(root, path, label, row, _patient_of(row), study))
    plan.candidates = [c for c in plan.candidates if c.relative not in conflicting]
    for relative in files:
        if relative not in listed:
            plan.refusals.append(Refusal(relative, "not listed in labels CSV"))


def _plan_class_folders(
    root: Path, rows: list[dict[str, str]] | None, files: list[str], plan: SourcePlan
) -> None:
    by_path: dict[str, dict[str, str]] = {}
    for row in rows or []:
        path, _ = _resolve_row_path(root, row.get("path", ""))
        if path is not None:
            by_path[_relative(path, root)] = row
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not any(child.is_file() for child in folder.rglob("*")):
            plan.refusals.append(Refusal(folder.name + "/", "empty class folder"))
    for relative in files:
        parts = relative.split("/")
        if len(parts) != 2:
            plan.refusals.append(Refusal(relative, "not inside a class folder SOURCE/<class>/"))
            continue
        row = by_path.get(relative, {})
        label = label_from_folder(parts[0])
        if row.get("label") and row["label"] != label:
            plan.refusals.append(
                Refusal(relative, f"labels CSV says {row['label']!r} but the folder is {label!r}")
            )
            continue
        study = row.get("study") or root.name
        _add(plan, _candidate(root, root / relative, label, row, _patient_of(row), study))


def _plan_patient_study(
    root: Path, rows: list[dict[str, str]], files: list[str], plan: SourcePlan
) -> None:
    by_path: dict[str, dict[str, str]] = {}
    by_study: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        if row.get("path"):
            path, _ = _resolve_row_path(root, row["path"])
            if path is not None:
                by_path[_relative(path, root)] = row
        elif row.get("patient") and row.get("study"):
            by_study[(row["patient"], row["study"])] = row
    for relative in files:
        parts = relative.split("/")
        if len(parts) != 3:
            plan.refusals.append(Refusal(relative, "not inside SOURCE/<patient>/<study>/"))
            continue
        patient, study = parts[0], parts[1]
        found = by_path.get(relative) or by_study.get((patient, study))
        if found is None or not found.get("label"):
            plan.refusals.append(Refusal(relative, "missing label (no row in metadata CSV)"))
            continue
        _add(
            plan,
            _candidate(root, root / relative, found["label"], found, (patient, "patient"), study),
        )
