"""Ingest a source folder into a workspace: validate, describe, copy into the store, catalog.

The work per image: hash the bytes (sha256), decode and validate them, compute the catalog
features, copy the file atomically into ``store/<patient>/<study>/``, and insert its rows. The
catalog and the store hold only codes below the source folder's own name (kept as the study's
``source``): the source path is recorded as ``<source code>/<image code>`` and the stored file is
named by the image code, since patient and study folder names and file names often hold patient
names or record numbers. The way back to the source files is an optional CSV
(:attr:`IngestOptions.source_map`) that the user keeps where they choose. Decoding
and features run in a process pool; files and rows are written by this process only, in
transactions of :attr:`IngestOptions.batch_size` images whose files are on disk before the rows
commit. A refused image is reported with its path and reason and the rest goes on.

Idempotent: an image whose content (sha256) is already catalogued from the same source path is
skipped; the same content under another path is refused as a duplicate. A row the database
refuses (see :class:`~pathsynth.catalog.writer.BatchWriter`) is reported like any refused image.
"""

from __future__ import annotations

import csv
import ctypes
import os
import signal
import sys
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from pathsynth.catalog.db import Catalog
from pathsynth.catalog.models import (
    MODALITIES,
    UNLABELLED_ORIGIN,
    Image,
    Patient,
    Study,
    image_features,
    too_long,
)
from pathsynth.catalog.sources import (
    UNLABELLED_LABEL,
    Candidate,
    Refusal,
    SourcePlan,
    plan_source,
)
from pathsynth.catalog.store import sweep_orphans
from pathsynth.catalog.workspace import Workspace
from pathsynth.catalog.writer import BatchWriter
from pathsynth.errors import ConfigError, ImageRefused, IngestError
from pathsynth.files import label_folder
from pathsynth.imaging.decode import decode_bytes
from pathsynth.imaging.features import compute_features

_PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent dies
DEFAULT_STAIN = {"histology": "H&E", "cytology": "Papanicolaou"}


@dataclass
class IngestOptions:
    """How to ingest one source.

    Attributes:
        modality: ``histology`` or ``cytology``.
        layout: ``auto``, ``class-folders``, ``patient-study`` or ``csv``.
        labels_csv: labels/metadata CSV (default ``SOURCE/labels.csv`` when present).
        classes: allowed class labels; None accepts every label found.
        stain: stain of the studies (default H&E for histology, Papanicolaou for cytology).
        magnification: objective magnification, if known.
        pixel_size_um: micrometres per pixel, if known (also given to this source's studies
            ingested earlier without one; a recorded pixel size is never changed).
        workers: decoding processes (0 decodes in this process).
        batch_size: images per catalog transaction.
        source_map: a CSV to append (source code, source file) lines to, kept outside the
            catalog; None keeps no way back from the catalog to the source files.
        unlabelled: images without a class (origin ``unlabelled``, label ""), for
            self-supervised pretraining; no split, export or classifier takes them.
        source_name: the name the catalog knows the source by; None: its folder's name (two
            sources with one folder name, a lab's ``site1/bach`` and ``site2/bach``, need
            distinct names).
    """

    modality: str
    layout: str = "auto"
    labels_csv: Path | None = None
    classes: tuple[str, ...] | None = None
    stain: str | None = None
    magnification: float | None = None
    pixel_size_um: float | None = None
    workers: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))
    batch_size: int = 64
    source_map: Path | None = None
    unlabelled: bool = False
    source_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("magnification", "pixel_size_um"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1000.0:
                raise ConfigError(f"{name} must be a positive number, got {value}")


@dataclass
class IngestReport:
    """What an ingest did: images added per class, skipped, refused, orphans removed."""

    layout: str
    added: Counter[str] = field(default_factory=Counter)
    already_present: int = 0
    refused: list[Refusal] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    pixel_sizes_filled: int = 0  # studies ingested earlier without a pixel size that got one
    alike_labels: list[list[str]] = field(default_factory=list)  # labels that differ only in case
    #   or Unicode form (this source's and the catalog's): separate classes, which may be a typo

    @property
    def added_total(self) -> int:
        return sum(self.added.values())


@dataclass(frozen=True)
class _Analysis:
    """What a worker learned about one file: its pixel format and features, or why it is refused.

    The pixels themselves stay in the worker; only their description travels back.
    """

    sha256: str = ""
    width: int = 0
    height: int = 0
    channels: int = 0
    bit_depth: int = 0
    original_mode: str = ""
    original_format: str = ""
    pages: int = 1
    features: dict[str, float] = field(default_factory=dict)
    reason: str | None = None


def _analyse(data: bytes, pixel_limit: int) -> _Analysis:
    try:
        decoded = decode_bytes(data, pixel_limit)
    except ImageRefused as refusal:
        return _Analysis(reason=str(refusal))
    return _Analysis(
        sha256=decoded.sha256,
        width=decoded.width,
        height=decoded.height,
        channels=decoded.channels,
        bit_depth=decoded.bit_depth,
        original_mode=decoded.original_mode,
        original_format=decoded.original_format,
        pages=decoded.pages,
        features=compute_features(decoded.rgb),
    )


def _init_worker() -> None:
    """Decoding workers leave Ctrl-C to the parent, and die with it even when it is killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def ingest_source(
    workspace: Workspace,
    source: Path,
    options: IngestOptions,
    on_progress: Callable[[int, int], None] | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest every image under ``source`` into the workspace.

    Holds the workspace's write lock while it writes, so two ingests (or an ingest and a
    generation) into one workspace run one after the other, never over each other's files.

    Args:
        workspace: the target workspace.
        source: the folder to ingest.
        options: layout, labels, modality and study fields.
        on_progress: called with (images done, images planned) as the ingest advances.
        on_refusal: called with each refusal as it happens.
        on_wait: called with the holder when another run holds the write lock (default: one
            line on stderr).

    Returns:
        The report; refused images are in ``report.refused`` and nothing of them is stored.

    Raises:
        IngestError: the modality or stain is unusable or the source cannot be read at all (see
            :func:`~pathsynth.catalog.sources.plan_source`).
        WorkspaceError: the workspace is read-only.
        CatalogUnavailable: the catalog cannot be reached or was lost.
        StoreUnwritable: the store cannot be written (disk full, read-only).
    """
    if options.modality not in MODALITIES:
        raise IngestError(
            f"unknown modality {options.modality!r}; choose one of {', '.join(MODALITIES)}"
        )
    stain = options.stain or DEFAULT_STAIN[options.modality]
    if (problem := too_long(Study, {"stain": stain})) is not None:
        raise IngestError(problem)
    layout = "unlabelled" if options.unlabelled else options.layout
    if options.unlabelled and options.layout not in ("auto", "unlabelled"):
        raise IngestError(
            f"--unlabelled reads every image under SOURCE; --layout {options.layout} names labels"
        )
    plan = plan_source(source, layout, options.labels_csv, options.classes)
    name = options.source_name or source.resolve().name
    run = _IngestRun(workspace, name, options, plan, on_progress, on_refusal)
    for refusal in plan.refusals:
        run.refuse(refusal)
    with workspace.write_lock(on_wait), workspace.open_catalog() as catalog:
        run.read_catalog(catalog)
        run.report.orphans_removed = sweep_orphans(workspace.store, run.catalogued)
        run.write(catalog)
        run.report.alike_labels = _alike_in_catalog(catalog, plan)
        if options.pixel_size_um is not None:
            run.report.pixel_sizes_filled = _fill_pixel_sizes(
                catalog, run.source_name, options.modality, options.pixel_size_um
            )
    return run.report


def _fill_pixel_sizes(catalog: Catalog, source: str, modality: str, pixel_size_um: float) -> int:
    """Give the source's studies that have no pixel size ``pixel_size_um`` (a rerun of an ingest
    with ``--pixel-size``); a recorded pixel size is never changed. Returns the studies updated."""
    with catalog.session() as session:
        result = session.execute(
            update(Study)
            .where(
                Study.source == source,
                Study.modality == modality,
                Study.pixel_size_um.is_(None),
            )
            .values(pixel_size_um=pixel_size_um)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class _IngestRun:
    """The state of one ingest: what the catalog holds, what was added, refused and skipped."""

    def __init__(
        self,
        workspace: Workspace,
        source_name: str,
        options: IngestOptions,
        plan: SourcePlan,
        on_progress: Callable[[int, int], None] | None,
        on_refusal: Callable[[Refusal], None] | None,
    ) -> None:
        self.workspace = workspace
        self.source_name = source_name
        self.source_code = workspace.pseudonym("source", source_name)
        self.options = options
        self.plan = plan
        self.report = IngestReport(layout=plan.layout)
        self.on_progress = on_progress
        self.on_refusal = on_refusal
        self.done = 0
        self.known: dict[str, str] = {}  # sha256 -> source path recorded in the catalog
        self.catalogued: set[str] = set()
        self.pending: dict[str, Candidate] = {}  # store path -> candidate, until committed

    def refuse(self, refusal: Refusal) -> None:
        self.report.refused.append(refusal)
        if self.on_refusal is not None:
            self.on_refusal(refusal)

    def tick(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, len(self.plan.candidates))

    def source_path(self, candidate: Candidate) -> str:
        """What the catalog records as the image's source: codes, never the source's names."""
        image_code = self.workspace.pseudonym("image", f"{self.source_name}/{candidate.relative}")
        return f"{self.source_code}/{image_code}"

    def read_catalog(self, catalog: Catalog) -> None:
        """Read what the catalog holds (under the write lock, so nothing is added meanwhile)."""
        with catalog.session() as session:
            for digest, source_path, store_path in session.execute(
                select(Image.sha256, Image.source_path, Image.store_path)
            ):
                self.known[digest] = source_path or ""
                self.catalogued.add(store_path)

    def new_files(self) -> Iterator[tuple[Candidate, bytes]]:
        """Read and hash each candidate; yield only content the catalog does not hold."""
        first_seen: dict[str, str] = {}
        for candidate in self.plan.candidates:
            try:
                data = candidate.path.read_bytes()
            except OSError as error:
                self.refuse(Refusal(candidate.relative, f"cannot read file ({error.strerror})"))
                self.tick()
                continue
            digest = sha256(data).hexdigest()
            if digest in self.known and self.known[digest] == self.source_path(candidate):
                self.report.already_present += 1
            elif digest in self.known:
                self.refuse(Refusal(candidate.relative, f"duplicate of {self.known[digest]}"))
            elif digest in first_seen:
                self.refuse(Refusal(candidate.relative, f"duplicate of {first_seen[digest]}"))
            else:
                first_seen[digest] = candidate.relative
                yield candidate, data
                continue
            self.tick()

    def write(self, catalog: Catalog) -> None:
        """Analyse the new files in worker processes and write them with their rows."""
        writer = BatchWriter(
            self.workspace.store,
            catalog.session,
            self.options.batch_size,
            on_commit=self.committed,
            on_reject=self.rejected,
        )
        analysed = _analyse_all(
            self.new_files(), self.workspace.config.pixel_limit, self.options.workers
        )
        try:
            for candidate, data, analysis in analysed:
                problem = analysis.reason or _unstorable(candidate)
                if problem is not None:
                    self.refuse(Refusal(candidate.relative, problem))
                else:
                    source_path = self.source_path(candidate)
                    store_path = _store_path(
                        self.workspace,
                        candidate,
                        analysis.sha256,
                        source_path.split("/")[1],
                        self.source_name,
                    )
                    rows = _image_rows(
                        writer,
                        self.options,
                        source_path,
                        candidate,
                        analysis,
                        store_path,
                        self.source_name,
                    )
                    self.pending[store_path] = candidate
                    writer.add(store_path, data, rows)
                self.tick()
            writer.commit()
        except BaseException:
            writer.discard()
            raise

    def committed(self, _: int) -> None:
        self.report.added.update(candidate.label for candidate in self.pending.values())
        if self.options.source_map is not None:
            _append_source_map(
                self.options.source_map,
                [(self.source_path(c), str(c.path)) for c in self.pending.values()],
            )
        self.pending.clear()

    def rejected(self, store_path: str, reason: str) -> None:
        candidate = self.pending.pop(store_path)
        self.refuse(Refusal(candidate.relative, f"refused by the catalog database: {reason}"))


def _alike_in_catalog(catalog: Catalog, plan: SourcePlan) -> list[list[str]]:
    """:func:`alike_labels` over this source's labels and the catalog's."""
    with catalog.session() as session:
        known = set(session.scalars(select(Image.label).distinct()))
    return alike_labels((known | {c.label for c in plan.candidates}) - {UNLABELLED_LABEL})


def alike_labels(labels: set[str]) -> list[list[str]]:
    """Groups of labels that differ only in case or Unicode form (``Normal``/``normal``,
    ``ﬁbrosis``/``fibrosis``): the catalog keeps them as separate classes, which is seldom meant."""
    groups: dict[str, list[str]] = {}
    for label in sorted(labels):
        groups.setdefault(unicodedata.normalize("NFKC", label).casefold(), []).append(label)
    return [group for group in groups.values() if len(group) > 1]


def _hidden_character(text: str) -> str | None:
    """The first invisible or direction-changing character of ``text`` (zero-width space,
    right-to-left override, other format and control characters), as ``U+XXXX``."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            return f"U+{ord(char):04X}"
    return None


def _unstorable(candidate: Candidate) -> str | None:
    """Why the catalog or a class folder cannot hold this candidate's fields, if it cannot."""
    problem = too_long(Image, {"label": candidate.label}) or too_long(
        Patient, {"sex": candidate.sex}
    )
    if problem is not None:
        return problem
    hidden = _hidden_character(candidate.label)
    if hidden is not None:  # two labels that look the same would be two classes
        return f"label {candidate.label!r} holds an invisible or direction-changing character ({hidden})"
    if candidate.label == UNLABELLED_LABEL:  # never written as a class folder
        return None
    try:
        label_folder(candidate.label)
    except ValueError as error:
        return str(error)
    return None


def _append_source_map(path: Path, pairs: list[tuple[str, str]]) -> None:
    """Append (catalog source code, source file) lines to the user's private source map CSV."""
    new = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # yours only
    with open(descriptor, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["source_code", "source_file"])
        writer.writerows(pairs)


def _store_path(
    workspace: Workspace, candidate: Candidate, sha256_hex: str, image_code: str, source: str
) -> str:
    """``<patient code>/<study code>/<image code>-<hash prefix><ext>``: BPCI2100's folder layout,
    with names made of codes (the source's file names may hold patient identifiers).

    A patient key means the same patient in every source (the safe reading for leakage); a study
    belongs to one source, so images of another source never join its studies (and its
    ``studies.source``) because their folder or CSV keys look alike.
    """
    patient_key = candidate.patient_key or f"image:{sha256_hex}"
    patient_code = workspace.pseudonym("patient", patient_key)
    study_code = workspace.pseudonym("study", f"{source}\0{patient_key}\0{candidate.study_key}")
    suffix = Path(candidate.relative).suffix.lower()
    return f"{patient_code}/{study_code}/{image_code}-{sha256_hex[:8]}{suffix}"


def _analyse_all(
    files: Iterator[tuple[Candidate, bytes]], pixel_limit: int, workers: int
) -> Iterator[tuple[Candidate, bytes, _Analysis]]:
    """Analyse files in a process pool, in order, with a bounded number in flight."""
    if workers <= 0:
        for candidate, data in files:
            yield candidate, data, _analyse(data, pixel_limit)
        return
    window = 4 * workers
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        in_flight: deque[tuple[Candidate, bytes, Future[_Analysis]]] = deque()
        try:
            for candidate, data in files:
                in_flight.append((candidate, data, pool.submit(_analyse, data, pixel_limit)))
                if len(in_flight) >= window:
                    first, first_data, future = in_flight.popleft()
                    yield first, first_data, future.result()
            while in_flight:
                first, first_data, future = in_flight.popleft()
                yield first, first_data, future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _image_rows(
    writer: BatchWriter,
    options: IngestOptions,
    source_path: str,
    candidate: Candidate,
    analysis: _Analysis,
    store_path: str,
    source_name: str,
) -> Callable[[Session], None]:
    """The function that inserts one real image's patient, study, image and feature rows."""
    patient_code, study_code, _ = store_path.split("/")

    def make_rows(session: Session) -> None:
        patient_id = writer.patient_id(
            session,
            patient_code,
            lambda: Patient(
                code=patient_code,
                key_kind=candidate.patient_kind,
                age=candidate.age,
                sex=candidate.sex,
            ),
        )
        study_id = writer.study_id(
            session,
            study_code,
            lambda: Study(
                code=study_code,
                patient_id=patient_id,
                modality=options.modality,
                stain=options.stain or DEFAULT_STAIN[options.modality],
                magnification=options.magnification,
                pixel_size_um=candidate.pixel_size_um or options.pixel_size_um,
                study_date=candidate.study_date,
                source=source_name,  # the experiment finds its studies by the folder's name
            ),
        )
        image = Image(
            study_id=study_id,
            store_path=store_path,
            sha256=analysis.sha256,
            width=analysis.width,
            height=analysis.height,
            channels=analysis.channels,
            bit_depth=analysis.bit_depth,
            original_mode=analysis.original_mode,
            original_format=analysis.original_format,
            label=candidate.label,
            origin=UNLABELLED_ORIGIN if options.unlabelled else "real",
            source_path=source_path,
            transform={"pages": analysis.pages} if analysis.pages > 1 else None,
        )
        session.add(image)
        session.flush()
        session.execute(insert(image_features), [{"image_id": image.id, **analysis.features}])

    return make_rows
