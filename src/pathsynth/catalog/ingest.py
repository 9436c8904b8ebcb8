"""Ingest a source folder into a workspace: validate, describe, copy into the store, catalog.

The work per image: hash the bytes (sha256), decode and validate them, compute the catalog
features, copy the file atomically into ``store/<patient>/<study>/``, and insert its rows. Decoding
and features run in a process pool; files and rows are written by this process only, in
transactions of :attr:`IngestOptions.batch_size` images whose files are on disk before the rows
commit. A refused image is reported with its path and reason and the rest goes on.

Idempotent: an image whose content (sha256) is already catalogued from the same source path is
skipped; the same content under another path is refused as a duplicate.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pathsynth.catalog.models import MODALITIES, Image, Patient, Study, image_features
from pathsynth.catalog.sources import Candidate, Refusal, plan_source
from pathsynth.catalog.store import sweep_orphans
from pathsynth.catalog.workspace import Workspace
from pathsynth.catalog.writer import BatchWriter
from pathsynth.errors import ImageRefused, IngestError
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
        pixel_size_um: micrometres per pixel, if known.
        workers: decoding processes (0 decodes in this process).
        batch_size: images per catalog transaction.
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


@dataclass
class IngestReport:
    """What an ingest did: images added per class, skipped, refused, orphans removed."""

    layout: str
    added: Counter[str] = field(default_factory=Counter)
    already_present: int = 0
    refused: list[Refusal] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)

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
) -> IngestReport:
    """Ingest every image under ``source`` into the workspace.

    Args:
        workspace: the target workspace.
        source: the folder to ingest.
        options: layout, labels, modality and study fields.
        on_progress: called with (images done, images planned) as the ingest advances.
        on_refusal: called with each refusal as it happens.

    Returns:
        The report; refused images are in ``report.refused`` and nothing of them is stored.

    Raises:
        IngestError: the modality is unknown or the source cannot be read at all (see
            :func:`~pathsynth.catalog.sources.plan_source`).
        CatalogUnavailable: the catalog cannot be reached.
    """
    if options.modality not in MODALITIES:
        raise IngestError(
            f"unknown modality {options.modality!r}; choose one of {', '.join(MODALITIES)}"
        )
    plan = plan_source(source, options.layout, options.labels_csv, options.classes)
    report = IngestReport(layout=plan.layout)
    done = 0

    def refuse(refusal: Refusal) -> None:
        report.refused.append(refusal)
        if on_refusal is not None:
            on_refusal(refusal)

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, len(plan.candidates))

    for refusal in plan.refusals:
        refuse(refusal)
    source_name = source.resolve().name
    with workspace.open_catalog() as catalog:
        with catalog.session() as session:
            known = {
                digest: (source_path, store_path)
                for digest, source_path, store_path in session.execute(
                    select(Image.sha256, Image.source_path, Image.store_path)
                )
            }
        report.orphans_removed = sweep_orphans(
            workspace.store, {store_path for _, store_path in known.values()}
        )

        def new_files() -> Iterator[tuple[Candidate, bytes]]:
            """Read and hash each candidate; yield only content the catalog does not hold."""
            first_seen: dict[str, str] = {}
            for candidate in plan.candidates:
                try:
                    data = candidate.path.read_bytes()
                except OSError as error:
                    refuse(Refusal(candidate.relative, f"cannot read file ({error.strerror})"))
                    tick()
                    continue
                digest = sha256(data).hexdigest()
                if digest in known and known[digest][0] == f"{source_name}/{candidate.relative}":
                    report.already_present += 1
                elif digest in known:
                    refuse(Refusal(candidate.relative, f"duplicate of {known[digest][0]}"))
                elif digest in first_seen:
                    refuse(Refusal(candidate.relative, f"duplicate of {first_seen[digest]}"))
                else:
                    first_seen[digest] = candidate.relative
                    yield candidate, data
                    continue
                tick()

        writer = BatchWriter(workspace.store, catalog.session, options.batch_size)
        added_in_batch: list[str] = []

        def count_committed(_: int) -> None:
            report.added.update(added_in_batch)
            added_in_batch.clear()

        writer.on_commit = count_committed
        analysed = _analyse_all(new_files(), workspace.config.pixel_limit, options.workers)
        try:
            for candidate, data, analysis in analysed:
                if analysis.reason is not None:
                    refuse(Refusal(candidate.relative, analysis.reason))
                else:
                    store_path = _store_path(workspace, candidate, analysis.sha256)
                    rows = _image_rows(
                        writer, options, source_name, candidate, analysis, store_path
                    )
                    added_in_batch.append(candidate.label)
                    writer.add(store_path, data, rows)
                tick()
            writer.commit()
        except BaseException:
            writer.discard()
            raise
    return report


def _store_path(workspace: Workspace, candidate: Candidate, sha256_hex: str) -> str:
    """``<patient code>/<study code>/<name>-<hash prefix><ext>``: BPCI2100's folder layout."""
    patient_key = candidate.patient_key or f"image:{sha256_hex}"
    patient_code = workspace.pseudonym("patient", patient_key)
    study_code = workspace.pseudonym("study", f"{patient_key}\0{candidate.study_key}")
    name = Path(candidate.relative)
    return f"{patient_code}/{study_code}/{name.stem}-{sha256_hex[:8]}{name.suffix.lower()}"


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
    source_name: str,
    candidate: Candidate,
    analysis: _Analysis,
    store_path: str,
) -> Callable[[Session], None]:
    """The function that inserts one real image's patient, study, image and feature rows."""
    patient_code, study_code, _ = store_path.split("/")

    def make_rows(session: Session) -> None:
        patient_id = writer.patient_id(
            session,
            patient_code,
            lambda: Patient(
                code=patient_code, key_kind=candidate.patient_kind, age=candidate.age,
                sex=candidate.sex,
            ),
        )  # fmt: skip
        study_id = writer.study_id(
            session,
            study_code,
            lambda: Study(
                code=study_code,
                patient_id=patient_id,
                modality=options.modality,
                stain=options.stain or DEFAULT_STAIN[options.modality],
                magnification=options.magnification,
                pixel_size_um=options.pixel_size_um,
                study_date=candidate.study_date,
                source=source_name,
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
            origin="real",
            source_path=f"{source_name}/{candidate.relative}",
            transform={"pages": analysis.pages} if analysis.pages > 1 else None,
        )
        session.add(image)
        session.flush()
        session.execute(insert(image_features), [{"image_id": image.id, **analysis.features}])

    return make_rows
